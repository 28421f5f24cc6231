"""log.jsonl, the record a run keeps of its steps and evaluations: one JSON object a line.

loop.Run writes each record as one `write` of the whole line followed by a flush, so a kill leaves
a line whole or absent; what can still go wrong is kept out here, around the run:

    open_log(path, step)   before a run appends: the log is cut after the last record of a step
                           <= `step`, the step the run (re)starts at: a run resumed from its
                           checkpoint redoes the steps after it that the stopped run had logged,
                           and would log them twice; a torn last line (part of a record, from a
                           full disk or a kill inside a large write) goes with them. One truncate.
    close_log(f, path, error, kept)
                           after the run: close the file; when writing a record failed (a full
                           disk), cut the part of it that was written and raise, in place of the
                           bare OSError, one naming the file, the reason, and `kept` (what the run
                           still has).
    append_record(path, record)
                           one record after the run (finetune's test result), with the same care.

So after a kill and `--resume`, the log holds each step once, in order: the records the run that
was never stopped writes. Leaves out: rotating or compressing logs; records that are not JSON
objects with an integer "step" (kept as they are, wherever they are).
"""
import json
import os
from pathlib import Path

from ..files import os_error, write_error


def _step(line):
    """The integer "step" of a log line, or None (not JSON, not a record with a step)."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    step = record.get("step") if isinstance(record, dict) else None
    return step if isinstance(step, int) and not isinstance(step, bool) else None


def open_log(path, step):
    """log.jsonl at `path` opened for appending, cut after the last record of a step <= `step`:
    the records of later steps and a torn last line go. Returns the open text file.

    The cut is one truncate (whole or not done, as a rename is); only the end of the file is read,
    unless the records after `step` are more than TAIL bytes."""
    path = Path(path)
    if path.is_file():
        size = path.stat().st_size
        end = _end_of(path, size, step)
        if end < size:
            os.truncate(path, end)
    return open(path, "a", encoding="utf-8")


TAIL = 4 << 20  # bytes of the log's end read first to find where a resumed run cuts it


def _end_of(path, size, step):
    """The offset just after the last whole line holding a record of a step <= `step` (0: none)."""
    with open(path, "rb") as f:
        for start in ([size - TAIL, 0] if size > TAIL else [0]):
            f.seek(start)
            data = f.read()
            first = 0 if start == 0 else data.find(b"\n") + 1  # (a window starts inside a line)
            end, pos = None, first
            for line in data[first:].split(b"\n")[:-1]:  # whole lines: the part after the last newline is torn
                pos += len(line) + 1
                found = _step(line)
                if found is not None and found <= step:
                    end = start + pos
            if end is not None:
                return end
    return 0


def cut_torn_tail(path):
    """Truncate `path` after its last newline; returns whether there was anything to cut."""
    try:
        with open(path, "rb+") as f:
            size = f.seek(0, os.SEEK_END)
            start = max(0, size - (1 << 20))  # a record is far smaller than 1 MB
            f.seek(start)
            tail = f.read()
            if not tail or tail.endswith(b"\n"):
                return False
            cut = tail.rfind(b"\n")
            f.truncate(start + cut + 1 if cut >= 0 else start)
            return True
    except OSError:
        return False  # nothing there, or nothing we may change


def _failure_text(path, error, kept):
    """'<path>: could not write the run log (<reason>); it keeps every record before this one; <advice>; <kept>'."""
    text = str(write_error(path, error, "the run log", kept="it keeps every record before this one"))
    return text + (f"; {kept}" if kept else "")


def close_log(f, path, error=None, kept=""):
    """Close log.jsonl; if a record could not be written (a full disk), cut what was written of it.

    Args:
        f: the file `open_log` returned.
        path: its path.
        error: the exception ending the run, if any (None: the run ended normally).
        kept: what the run still has, for the message (its last checkpoint, or that it has none).
    Raises:
        OSError naming the file, the reason and `kept`, in place of `error` (the OSError of the write
        that failed) or, with no `error`, when the last record could not be flushed. Another
        exception ending the run (Ctrl-C) is left to go on: the log is only cut.
    """
    failed = None
    try:
        f.close()  # flushes what is left; fails again when the disk is still full
    except OSError as e:
        failed = e
    torn = cut_torn_tail(path)
    if not (torn or failed):
        return
    if isinstance(error, OSError) or (error is None and failed is not None):  # the log's own failure
        cause = error if error is not None else failed
        raise os_error(cause.errno, _failure_text(path, cause, kept)) from None


def append_record(path, record):
    """Append one JSON record to log.jsonl at `path`, whole or not at all (a failed write is cut off
    again and raised, naming the file)."""
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
    except OSError as e:
        cut_torn_tail(path)
        raise os_error(e.errno, _failure_text(path, e, "")) from None


__all__ = ["append_record", "close_log", "cut_torn_tail", "open_log"]

"""Printing that a closed stdout or stderr cannot turn into the run's end.

`train ... | head -3` closes the pipe once head has its lines; a terminal that went away (a
closed window, a dropped SSH session) makes every write fail with EIO. Python reports both as
an OSError from `print`, which would end a training run that has nothing wrong with it.

    with guarded_streams():       # the CLI, around train and finetune
        ...
    installed = guard()           # loop.Run: in __init__ ...
    restore(installed)            # ... and in close()

wrap sys.stdout and sys.stderr (a stream already wrapped is left as it is). A write or flush
that raises OSError (EPIPE, EIO, ENOSPC, ...) marks that stream lost: its file descriptor is
pointed at os.devnull (the recipe of Python's "Note on SIGPIPE", so that nothing written later,
by Python, C code or the interpreter's final flush, fails again, and the process does not end
with status 120), every later write is dropped, and when stdout is lost while stderr is not,
one line on stderr says so. Printing stops;
training, checkpoints and log.jsonl, which never go through these streams, go on.

Leaves out: printing again once the reader comes back (a lost stream stays lost), and SIGPIPE
(Python ignores it, so a closed pipe is an error on write, not a signal).
"""
import os
import sys
from contextlib import contextmanager


class GuardedStream:
    """A text stream (sys.stdout or sys.stderr) whose failed writes drop the text instead of raising.

    Every attribute other than write, writelines and flush is the wrapped stream's own.
    """

    def __init__(self, stream, name):
        self.stream, self.name, self.lost = stream, name, None  # lost: the OSError that ended printing

    def write(self, text):
        if self.lost is None:
            try:
                return self.stream.write(text)
            except (OSError, ValueError) as e:  # ValueError: a stream closed in this process
                self._lose(e)
        return len(text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        if self.lost is None:
            try:
                self.stream.flush()
            except (OSError, ValueError) as e:
                self._lose(e)

    def __getattr__(self, name):  # only called for names the wrapper itself lacks
        return getattr(self.stream, name)

    def _lose(self, error):
        if isinstance(error, ValueError) and not getattr(self.stream, "closed", False):
            raise error  # not a closed stream: a real error (e.g. a character the encoding lacks)
        self.lost = error
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, self.stream.fileno())
            finally:
                os.close(devnull)
            self.stream.flush()  # what the failed write left in the buffer drains into os.devnull
        except (OSError, ValueError, AttributeError):  # no file descriptor (a StringIO, pytest's capture)
            pass
        other = sys.stderr
        if self.name == "stdout" and isinstance(other, GuardedStream) and other.lost is None:
            reason = getattr(error, "strerror", None) or error
            other.write(f"tinygrad-lm: stdout was closed ({reason}): printing stops; the run goes on and writes "
                        "its log.jsonl and checkpoints as before\n")
            other.flush()


def guard():
    """Wrap sys.stdout and sys.stderr, those not wrapped yet; returns what `restore` takes."""
    installed = []
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, GuardedStream):
            wrapper = GuardedStream(stream, name)
            setattr(sys, name, wrapper)
            installed.append((name, wrapper))
    return installed


def restore(installed):
    """Give sys.stdout and sys.stderr back the streams `guard` wrapped (where nothing replaced them since)."""
    for name, wrapper in installed:
        if getattr(sys, name) is wrapper:
            setattr(sys, name, wrapper.stream)


@contextmanager
def guarded_streams():
    """sys.stdout and sys.stderr guarded inside the block."""
    installed = guard()
    try:
        yield
    finally:
        restore(installed)


__all__ = ["GuardedStream", "guard", "guarded_streams", "restore"]

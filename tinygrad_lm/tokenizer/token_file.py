"""Token files: the ids of a text on disk, whole or absent, with a sidecar that says what wrote them.

A token file (``Tokenizer.encode_file``, ``tokenize --encode-to``) holds the ids as a raw
little-endian uint16/uint32 array and nothing else, so ``np.memmap(path, dtype)`` reads it as it
reads nanoGPT's train.bin. Beside it, ``NAME.json`` (``sidecar_path``) records what made it::

    {"format": "tinygrad_lm tokens", "version": 1, "dtype": "uint16", "count": 4960,
     "sha256": "<of the ids' bytes>",
     "tokenizer": {"name": "tok.model", "description": "CharTokenizer(vocab_size=30)",
                   "fingerprint": "<Tokenizer.fingerprint()>", "vocab_size": 30, "special_tokens": {}}}

* ``write_token_file``: the ids stream into ``.NAME.tmpPID`` (hashed and counted on the way), the
  sidecar into its own temporary; both are flushed to disk, then renamed into place, the sidecar
  first. A failure (a full disk, a read-only folder) or a kill at any moment leaves the previous
  file and sidecar as they were (or, killed between the two renames, a new sidecar that the old
  ids do not match: refused when read, never trained on). A temporary that a killed writer left
  is removed by the next write of the same file.
* ``read_token_file``: the ids as a memory map, refused with a ValueError naming the file and what
  is wrong when the sidecar is damaged or of a newer format, when the ids are cut short, longer
  or changed since (count, SHA-256), or when the tokenizer given is not the one that wrote them
  (fingerprints differ, or a special token has another id; both tokenizers named). A token file
  without a sidecar (written before sidecars, or copied without one) is read with a one-line
  warning and the checks its bytes allow (a whole number of ids, not a sidecar, not text).
Leaves out: a header inside the file (it would break ``np.fromfile`` readers), locking (a run
folder's lock is the run's business), and conversion between dtypes.
It follows the write-to-a-temporary-then-rename of SQLite and Git (checkpoint.py does the same).
"""
from __future__ import annotations

import codecs
import errno
import hashlib
import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..version import is_newer, newer_format

FORMAT = "tinygrad_lm tokens"
VERSION = 1
DTYPES = ("uint16", "uint32")


def sidecar_path(path: str | os.PathLike) -> Path:
    """The sidecar of the token file at ``path``: ``path`` + ``.json`` (``t.bin`` -> ``t.bin.json``)."""
    return Path(f"{path}.json")


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def _remove_dead_temporaries(path: Path) -> None:
    """Remove ``.NAME.tmpPID`` files of ``path`` whose writer no longer runs (it was killed). POSIX only:
    on Windows ``os.kill(pid, 0)`` would send a Ctrl-C, not ask, so temporaries are left there."""
    if os.name == "nt":
        return
    for tmp in path.parent.glob(f".{path.name}.tmp*"):
        pid = tmp.name.rsplit(".tmp", 1)[-1]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)  # signal 0 only asks whether the process exists
            continue
        except ProcessLookupError:
            pass
        except (PermissionError, OSError):
            continue  # someone else's, alive (or we cannot tell): leave it
        try:
            tmp.unlink()
        except OSError:
            pass


def _tokenizer_record(tokenizer, name):
    return {"name": None if name is None else str(name), "description": repr(tokenizer),
            "fingerprint": tokenizer.fingerprint(), "vocab_size": int(tokenizer.vocab_size),
            "special_tokens": {str(s): int(i) for s, i in getattr(tokenizer, "special_tokens", {}).items()}}


FIXES = {errno.ENOSPC: "free some space", getattr(errno, "EDQUOT", errno.ENOSPC): "free some space (quota)",
         errno.EROFS: "pick a folder you can write to", errno.EACCES: "pick a folder you can write to",
         errno.EPERM: "pick a folder you can write to"}  # errno of a failed write -> what to do about it


@contextmanager
def _writing(out_path):
    """Turn an OSError of writing into one that names the token file, says the old one is kept and the fix."""
    try:
        yield
    except OSError as e:
        fix = FIXES.get(e.errno, "pick another folder")
        raise OSError(e.errno, f"{out_path}: could not write the token file ({e.strerror or e}); the previous "
                               f"{out_path.name}, if any, is unchanged; {fix}, then encode again") from None


def write_token_file(out_path, pieces, dtype, tokenizer, tokenizer_name=None) -> int:
    """Write the ids of ``pieces`` (an iterable of id lists) to ``out_path`` as ``dtype``, and its sidecar.

    Args:
        out_path: the token file (replaced only once the whole new one is on disk).
        pieces: lists (or arrays) of ids, in order; consumed once.
        dtype: the ids' NumPy dtype (little-endian uint16 or uint32).
        tokenizer: the tokenizer that made the ids (its ``fingerprint`` goes in the sidecar).
        tokenizer_name: a readable name for it (the file it was saved to); default its repr.
    Returns:
        The number of ids written.
    Raises:
        OSError: naming ``out_path`` and why (the errno kept), when it cannot be written.
    """
    out_path, dtype = Path(out_path), np.dtype(dtype)
    side = sidecar_path(out_path)
    if not out_path.parent.is_dir():
        raise FileNotFoundError(f"{out_path}: the folder {out_path.parent} does not exist; create it or pick another")
    _remove_dead_temporaries(out_path)
    _remove_dead_temporaries(side)
    tmp, side_tmp = _temporary(out_path), _temporary(side)
    digest, count = hashlib.sha256(), 0
    try:
        with _writing(out_path):
            f = open(tmp, "wb")
        with f:
            for ids in pieces:  # an error reading the text (not UTF-8, gone) passes through as it is
                data = np.asarray(ids, dtype=dtype).tobytes()
                with _writing(out_path):
                    f.write(data)
                digest.update(data)
                count += len(data) // dtype.itemsize
            with _writing(out_path):
                f.flush()
                os.fsync(f.fileno())
        record = {"format": FORMAT, "version": VERSION, "dtype": dtype.name, "count": count,
                  "sha256": digest.hexdigest(), "tokenizer": _tokenizer_record(tokenizer, tokenizer_name)}
        with _writing(out_path):
            with open(side_tmp, "w", encoding="utf-8") as g:
                g.write(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
                g.flush()
                os.fsync(g.fileno())
            os.replace(side_tmp, side)  # the sidecar first: a kill between the two leaves ids it does not match
            os.replace(tmp, out_path)
    finally:
        for t in (tmp, side_tmp):
            if t.exists():
                t.unlink()
    return count


def _damaged(side, why, path):
    return ValueError(f"{side} is damaged ({why}); encode the text again to write {path.name} and its sidecar "
                      f"(`tokenize --load TOKENIZER --data TEXT --encode-to {path}`)")


def read_sidecar(path) -> dict:
    """The checked record of the sidecar of the token file ``path`` (ValueError naming the sidecar)."""
    path = Path(path)
    side = sidecar_path(path)
    try:
        record = json.loads(side.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
        raise _damaged(side, f"not JSON: {e}", path) from None
    if not isinstance(record, dict):
        raise _damaged(side, f"not a JSON object but {type(record).__name__}", path)
    if record.get("format") != FORMAT:
        raise ValueError(f"{side} is not a token file's sidecar (format {record.get('format')!r}, expected "
                         f"{FORMAT!r}); move it away: {path.name}.json is the name `encode_file` gives its sidecar")
    if is_newer(record.get("version"), VERSION):
        raise newer_format(side, "token file", record["version"], VERSION)
    kinds = {"version": int, "dtype": str, "count": int, "sha256": str, "tokenizer": dict}
    for key, kind in kinds.items():
        if not isinstance(record.get(key), kind) or isinstance(record.get(key), bool):
            what = "no" if key not in record else f"a {type(record[key]).__name__} as its"
            raise _damaged(side, f"{what} {key!r} entry", path)
    if record["version"] != VERSION:
        raise _damaged(side, f"version {record['version']!r}", path)
    if record["dtype"] not in DTYPES:
        raise _damaged(side, f"dtype {record['dtype']!r}, where a token file is {' or '.join(DTYPES)}", path)
    if record["count"] < 0:
        raise _damaged(side, f"count {record['count']}", path)
    tok = record["tokenizer"]
    if not (isinstance(tok.get("fingerprint"), str) and isinstance(tok.get("special_tokens"), dict)):
        raise _damaged(side, "its 'tokenizer' entry has no fingerprint or special_tokens", path)
    return record


def _describe(name, description, fingerprint):
    named = f"{name} ({description}, " if name else f"{description} ("
    return f"{named}fingerprint {fingerprint[:12]})"


def _check_tokenizer(path, record, tokenizer, tokenizer_name):
    """The tokenizer given must give every id of the file its meaning: the same fingerprint, and every
    special token of the file at the same id (more special tokens after them are fine: MLM adds four)."""
    wrote = record["tokenizer"]
    fingerprint = tokenizer.fingerprint()
    given = getattr(tokenizer, "special_tokens", {})
    moved = [s for s, i in wrote["special_tokens"].items() if given.get(s) != i]
    if wrote["fingerprint"] == fingerprint and not moved:
        return
    why = (f"special token(s) {moved[:3]} have other ids" if wrote["fingerprint"] == fingerprint
           else "their vocabularies differ")
    this = f"{tokenizer_name} is {repr(tokenizer)}" if tokenizer_name else f"the tokenizer given is {repr(tokenizer)}"
    wrote_by = _describe(wrote.get("name"), wrote.get("description", "?"), wrote["fingerprint"])
    which = f" ({wrote['name']})" if wrote.get("name") else ""
    raise ValueError(f"{path} was encoded by {wrote_by} but {this} (fingerprint {fingerprint[:12]}): {why}, so its ids "
                     f"would mean other tokens; train with the tokenizer that wrote it{which}, or encode the text "
                     "again with this one")


def _warn_unrecorded(path, tokenizer):
    print(f"warning: {path} has no {sidecar_path(path).name} beside it (written before token files recorded their "
          f"tokenizer, or copied without it): cannot check which tokenizer wrote it, only that its ids are below "
          f"{tokenizer.vocab_size}; encode the text again to record it", file=sys.stderr)


def _looks_like_text(head: bytes) -> bool:
    """Whether the first bytes of a file are printable UTF-8 text (a token file's ids hold NULs or
    control bytes: an id below 8192 has a high byte below 0x20)."""
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(head)  # a character cut at the end is no error
    except UnicodeDecodeError:
        return False
    return bool(text) and all(c.isprintable() or c in "\n\r\t" for c in text)


def _read_unrecorded(path, tokenizer):
    """A token file without a sidecar: read as the tokenizer's dtype, with the checks its size allows."""
    with open(path, "rb") as f:
        head = f.read(4096)
    if FORMAT.encode() in head and head.lstrip().startswith(b"{"):
        token_file = path.with_suffix("")
        raise ValueError(f"{path} is the sidecar of the token file {token_file.name}; pass {token_file} itself")
    if _looks_like_text(head):
        raise ValueError(f"{path} looks like text (UTF-8), not a token file; train on a text with --data, or encode "
                         f"it first (`tokenize --load TOKENIZER --data {path} --encode-to FILE`)")
    dtype = tokenizer.token_dtype().newbyteorder("<")
    size = path.stat().st_size
    if size == 0 or size % dtype.itemsize:
        raise ValueError(f"{path}: {size} bytes is not a whole number of {dtype.name} ids (what a tokenizer of "
                         f"{tokenizer.vocab_size} tokens writes); pass the token file this --tokenizer-file wrote")
    ids = np.memmap(path, dtype=dtype, mode="r")
    if dtype.itemsize == 2 and len(ids) >= 16 and not ids[1::2].any() and ids[::2].any():  # uint32's high halves
        raise ValueError(f"{path} looks like a uint32 token file (every second uint16 is 0), written by a "
                         f"tokenizer of more than 65,536 tokens, but this one has {tokenizer.vocab_size} (uint16 "
                         "ids); pass the --tokenizer-file that wrote it")
    return ids


def read_token_file(path, tokenizer, tokenizer_name=None):
    """The ids of the token file ``path`` as a read-only memory map, and their SHA-256 (None without a sidecar).

    Args:
        path: a token file written by ``write_token_file`` (``encode_file``), or a raw one without sidecar.
        tokenizer: the tokenizer the ids are meant for.
        tokenizer_name: how to name it in a refusal (the file it came from).
    Raises:
        ValueError: naming the file and what is wrong (see the module docstring).
    """
    path = Path(path)
    if not sidecar_path(path).is_file():
        _warn_unrecorded(path, tokenizer)
        return _read_unrecorded(path, tokenizer), None
    record = read_sidecar(path)
    _check_tokenizer(path, record, tokenizer, tokenizer_name)
    dtype = np.dtype(record["dtype"]).newbyteorder("<")
    count, size = record["count"], path.stat().st_size
    if size != count * dtype.itemsize:
        how = ("the file is cut (a write or a copy that stopped short?)" if size < count * dtype.itemsize
               else "the file is longer than what was encoded (changed since?)")
        raise ValueError(f"{path}: {size} bytes but {sidecar_path(path).name} counts {count} {dtype.name} ids "
                         f"({count * dtype.itemsize} bytes): {how}; encode the text again")
    if count == 0:
        raise ValueError(f"{path} holds no ids (the text it encoded was empty); training needs tokens")
    ids = np.memmap(path, dtype=dtype, mode="r")
    sha256 = hashlib.sha256(ids).hexdigest()
    if sha256 != record["sha256"]:
        raise ValueError(f"{path} does not match {sidecar_path(path).name}: its SHA-256 differs from the one recorded "
                         "when it was written (damaged, or changed since); encode the text again")
    return ids, sha256

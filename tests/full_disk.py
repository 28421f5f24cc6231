"""A full disk, made in the test's own process: the `disk_full` fixture (import it into a test module).

Calling `disk_full()` wraps `open` (and `io.open`, which pathlib uses) so that every file opened
for writing under the test's tmp_path takes half of its first write, then raises
OSError(ENOSPC, "No space left on device"), as a write does when the disk fills up in the middle
of it. Files elsewhere (pytest's own, the package's sources) are untouched.
"""
import builtins
import errno
import io
import os

import pytest


class _FullDisk:
    """A writable file whose first write stores half of what it was given, then fails: ENOSPC."""

    def __init__(self, f):
        self._f = f

    def write(self, data):
        self._f.write(data[:len(data) // 2])
        self._f.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()

    def __iter__(self):
        return iter(self._f)


@pytest.fixture
def disk_full(monkeypatch, tmp_path):
    """Call it to fill the disk: from then on every file opened for writing under tmp_path fails."""
    real_open = builtins.open

    def full_open(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        inside = isinstance(file, (str, os.PathLike)) and str(tmp_path) in os.path.abspath(os.fspath(file))
        return _FullDisk(f) if inside and any(c in mode for c in "wax+") else f

    def fill():
        monkeypatch.setattr(builtins, "open", full_open)
        monkeypatch.setattr(io, "open", full_open)  # pathlib's write_text / write_bytes
    return fill

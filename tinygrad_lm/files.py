"""Writing a file so that it is whole or absent: `atomic_write(path, data)`.

The bytes go to a temporary file in the same folder (`.NAME.tmpPID`), are flushed and fsync'ed,
and `os.replace` then puts that file in place of `path` in one step; the folder is fsync'ed after,
so the rename itself survives a power cut. Whatever stops the write (a full disk, a read-only
folder, a kill), `path` is either the old file, untouched, or the new one, whole: never half of
one. It is SQLite's promise ("a transaction either completes or has no effect") for one file, kept
the way PyTorch's and Hugging Face's `save` keep it: a temporary name in the same folder, a rename.

    atomic_write(path, data, what=..., fix=...)   data: bytes, str (UTF-8), or write(f) taking the
                                                  open binary file; returns path as a Path
    with writing(path, what, fix) as tmp: ...    the same for a writer that takes a file name:
                                                  write `tmp`; leaving the block renames it
    write_error(path, error, what, fix)          the OSError a failed write raises: the file,
                                                  what it is, the OS's reason, that the old file
                                                  is unchanged, and what to do (by errno)
    remove_stale_temporaries(folder, name=None)  delete the temporaries of writers that died
                                                  (kill -9) before they could clean up

A write that fails removes its temporary file and raises one OSError naming the file; a writer
killed outright leaves `.NAME.tmpPID`, which the next write of the same file (or
`remove_stale_temporaries` of its folder) removes once process PID is gone. The folder is
created when missing; a file where a folder is expected is named as such.
Leaves out: locking (two writers of one file: the last rename wins, each file whole), keeping the
old file's permissions (the new one gets the umask's), and Windows' refusal to replace an open file.
Imports nothing of the package: every layer, the tokenizer included, may use it.
"""
import errno
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

ADVICE = {  # errno -> what to do about it; {folder} is the folder written into (getattr: not every OS has all)
    errno.ENOSPC: "free some space",
    getattr(errno, "EDQUOT", -1): "free some space (the disk quota is full)",
    errno.EACCES: "you have no permission to write in {folder}; choose another place",
    errno.EPERM: "you have no permission to write in {folder}; choose another place",
    getattr(errno, "EROFS", -2): "{folder} is on a read-only file system; choose another place",
    errno.EFBIG: "the file is larger than this system lets a process write (ulimit -f)",
}


def os_error(code, message):
    """An OSError of errno `code` (the subclass Python picks for it: FileNotFoundError, ...) whose
    text is `message` alone, without the '[Errno N]' in front that tells a user nothing."""
    error = type(OSError(code, ""))(message)
    error.errno = code
    return error


def write_error(path, error, what="the file", fix=None, kept=None):
    """The OSError to raise when writing `what` to `path` failed with the OSError `error`:
    '<path>: could not write <what> (<reason>); the previous <name>, if any, is unchanged; <advice>, or
    <fix>' (`kept` replaces the part that says what is unchanged)."""
    path = Path(path)
    advice = ADVICE.get(error.errno, "").format(folder=path.parent)
    reason = error.strerror or str(error)  # (the OS's words: "No space left on device")
    todo = ", or ".join(text for text in (advice, fix) if text)
    kept = kept or f"the previous {path.name}, if any, is unchanged"
    return os_error(error.errno, f"{path}: could not write {what} ({reason}); {kept}" + (f"; {todo}" if todo else ""))


def make_folder(folder, path, what):
    """Create `folder` (and its parents) to write `what` at `path` in it; a file in the way is named,
    not reported as 'File exists'."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocking = next((p for p in [folder, *folder.parents] if p.exists() and not p.is_dir()), folder)
        raise os_error(errno.ENOTDIR, f"{path}: cannot write {what} there: {blocking} is a file, not a folder; "
                                      "choose another path") from None
    except OSError as e:
        raise write_error(path, e, what) from None


def temporary_name(path):
    """Where `atomic_write` writes `path` before the rename: `.NAME.tmpPID` beside it."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


@contextmanager
def writing(path, what="the file", fix=None):
    """`atomic_write` for writers that take a file name (another program, safetensors' save_file):
    yields the temporary path to write; leaving the block fsyncs it and renames it onto `path`.
    An exception in the block removes the temporary file and leaves `path` untouched."""
    path = Path(path)
    if path.is_dir():
        raise os_error(errno.EISDIR, f"{path} is a folder; pass a file name to write {what} to")
    make_folder(path.parent, path, what)
    remove_stale_temporaries(path.parent, path.name)
    tmp = temporary_name(path)
    try:
        yield tmp
        with open(tmp, "r+b") as f:  # (whoever wrote it may not have flushed it to the disk)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:  # a full disk, a read-only folder: one error, and the old file untouched
        raise write_error(path, e, what, fix) from None
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass  # the folder went away or became read-only: nothing left to clean
    sync_folder(path.parent)


def atomic_write(path, data, what="the file", fix=None):
    """Write `data` to `path` so that it is whole or absent (see the module's docstring).

    Args:
        path: the file to write (str or Path); its folder is created when missing.
        data: bytes, a str (written as UTF-8), or a function write(f) that writes into the open
            binary file f (np.savez, matplotlib's savefig, ...).
        what: what the file is, for the error message ("the checkpoint", "the tokenizer").
        fix: what the user can do besides the errno's advice, for the error message.
    Returns:
        `path` as a Path.
    Raises:
        IsADirectoryError: `path` is a folder. NotADirectoryError: a file is where a folder of the
        path should be. OSError: the write failed (`write_error`): the old file is unchanged.
        Anything `data(f)` raises, after the temporary file is removed.
    """
    path = Path(path)
    with writing(path, what, fix) as tmp:
        with open(tmp, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def sync_folder(folder):
    """fsync a folder, so that a rename in it is on disk (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows, or a folder we may not open: the rename is done, only its durability is unsure
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_temporaries(folder, name=None):
    """Delete the temporary files (and folders) in `folder` that writes killed outright (kill -9)
    left: `*.tmpPID` whose process no longer runs; only those of the file `name` when given.
    Returns the paths removed."""
    removed = []
    pattern = f".{name}.tmp*" if name is not None else "*.tmp*"
    for tmp in Path(folder).glob(pattern):
        pid = tmp.name.rsplit(".tmp", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            try:
                shutil.rmtree(tmp) if tmp.is_dir() and not tmp.is_symlink() else tmp.unlink()
                removed.append(tmp)
            except OSError:
                pass  # another process cleaned it first
    return removed


def _alive(pid):
    if os.name == "nt":  # os.kill(pid, 0) is no probe there (it sends CTRL_C_EVENT): keep the file
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # exists, another user's (or not a pid at all: leave the file alone)
    return True


__all__ = ["atomic_write", "make_folder", "os_error", "remove_stale_temporaries", "sync_folder", "temporary_name",
           "write_error", "writing"]

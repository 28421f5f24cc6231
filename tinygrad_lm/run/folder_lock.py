"""One writer per run folder: an OS-level lock on `--out-dir`, held for as long as a run lasts.

    with lock_folder("runs/x"):        # or lock = lock_folder(...) ... lock.release()
        ...                            # this process alone writes runs/x

A run (train, train --objective mlm, finetune) takes the lock before it reads, deletes or writes
anything in its folder (`loop.claim_folder`), and lets go when its loop ends (`loop.Run.close`).
The lock is `fcntl.flock(LOCK_EX | LOCK_NB)` on the file `OUT_DIR/.lock`: the kernel holds it
for the open file, so it goes when the process dies, however it dies (kill -9, a crash, a lost
machine's NFS lease): a lock file left by a killed run never blocks the next one; only a living
holder does. A second run into a locked folder is refused at once (FolderInUse), whatever its
flags (--overwrite and --resume included), naming the folder and the holder: the file holds the
holder's PID, host, start time and command line, as Git's `index.lock` names who holds it.
A run that ends removes its lock file (taking the lock checks that the file it locked is still
the one at that path, so a run that ends while another starts cannot leave two holders).

Follows SQLite's one lock per database file (released by the OS with the process) and Git's
lock files that name their holder. Leaves out: waiting for the folder to become free (a second
run is refused, not queued), and platforms without `fcntl` (Windows), where no lock is taken and
runs are as before; on a filesystem that cannot lock (some network mounts) the run goes on and
says so on stderr.
"""
import errno
import json
import os
import shlex
import socket
import sys
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock
    fcntl = None

LOCK_NAME = ".lock"


class FolderInUse(RuntimeError):
    """Another living process holds the run folder's lock."""


class FolderLock:
    """The lock on one folder, held until `release()` (or the end of a `with` block)."""

    def __init__(self, folder, fd=None, created=False):
        self.folder, self.path, self.fd, self.created = Path(folder), Path(folder) / LOCK_NAME, fd, created

    def release(self):
        """Remove the lock file and let go (closing the file releases the flock); then, when this
        lock created the folder and it is still empty (the run failed while starting), remove it."""
        if self.fd is not None:
            try:
                self.path.unlink()  # while still held: a process that opened it before is told to retry
            except OSError:
                pass
            os.close(self.fd)
            self.fd = None
        if self.created:
            self.created = False
            try:
                self.folder.rmdir()  # only an empty folder goes
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()

    def __del__(self):  # a lock dropped without release() (an error between taking and handing it on)
        if getattr(self, "fd", None) is not None:
            try:
                os.close(self.fd)
            except (OSError, TypeError):  # TypeError: at interpreter exit, os may be gone
                pass


def lock_folder(folder):
    """Create `folder` if needed and take its lock; returns the FolderLock.

    Raises:
        FolderInUse: another living process holds it (the message names the folder and the holder).
        OSError (one line naming --out-dir): the folder is a file, or cannot be created or written.
    """
    folder = Path(folder)
    created = _make_folder(folder)
    if fcntl is None:
        return FolderLock(folder, None, created)
    path = folder / LOCK_NAME
    for _ in range(100):  # retried only while runs that end remove the file under us
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            FolderLock(folder, None, created).release()
            raise type(e)(f"--out-dir {folder}: cannot create the run's lock file {path} ({e.strerror}); a run "
                          "writes its checkpoints and log there: choose a folder you can write to") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise FolderInUse(_refusal(folder, path)) from None
            print(f"warning: --out-dir {folder}: cannot lock {path} ({e.strerror}: this filesystem has no locks); "
                  "make sure no other run writes to this folder meanwhile", file=sys.stderr)
            return FolderLock(folder, None, created)
        if _same_file(fd, path):
            break
        os.close(fd)  # a run that just ended removed the file we opened: lock the new one
    else:
        raise FolderInUse(f"{folder}: could not take the run folder's lock {path} (it kept being replaced)")
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
              "command": _command()}
    try:
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps(holder) + "\n").encode("utf-8"))
    except OSError:  # a full disk: the lock holds all the same; a refused run just cannot name us
        pass
    return FolderLock(folder, fd, created)


def _make_folder(folder):
    """Create `folder` (and its parents); True when it did not exist. Errors name --out-dir."""
    if folder.is_dir():
        return False
    if folder.exists() or folder.is_symlink():
        what = "is a file, not a folder" if folder.is_file() else "is there but is no folder (a broken link?)"
        fix = f"--out-dir {folder.parent} (the checkpoint's folder)" if folder.suffix == ".npz" else "another --out-dir"
        raise FileExistsError(f"--out-dir {folder} {what}: a run writes its checkpoints and log.jsonl into a "
                              f"folder; pass {fix}")
    try:
        folder.mkdir(parents=True)
    except FileExistsError:  # made meanwhile by another process (a second run starting)
        if not folder.is_dir():
            raise FileExistsError(f"--out-dir {folder} is a file, not a folder; choose another --out-dir") from None
        return False
    except OSError as e:  # a parent is a file, a read-only place, no permission
        raise type(e)(f"--out-dir {folder}: cannot create this folder ({e.strerror}); choose a folder you can "
                      "write to") from None
    return True


def _command():
    """This process's command line as typed: `python -m tinygrad_lm train ...`, `tinygrad-lm train ...`."""
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    if program == "__main__.py":
        program = "python -m tinygrad_lm"
    return " ".join([program] + [shlex.quote(a) for a in sys.argv[1:]])


def _same_file(fd, path):
    try:
        here, there = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _holder(path):
    """The holder the lock file names (a dict), or None while it is being written."""
    for _ in range(20):
        try:
            return json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            time.sleep(0.01)  # the holder has just taken the lock and is writing its name
    return None


def _refusal(folder, path):
    holder = _holder(path)
    if not isinstance(holder, dict) or "pid" not in holder:
        who, stop = f"(its lock file {path} does not name it yet)", "stop it"
    else:
        pid, host = holder["pid"], holder.get("host")
        here, mine = host == socket.gethostname(), host == socket.gethostname() and pid == os.getpid()
        who = f"(PID {pid}{', this process' if mine else ''}{'' if here else ' on host ' + str(host)}, " \
              f"since {holder.get('started')}: {holder.get('command')})"
        stop = "end the other run of this process first" if mine else \
            f"stop it (kill -TERM {pid}{'' if here else ' on ' + str(host)} saves a checkpoint that --resume continues)"
    return (f"{folder} is in use by another run {who}; one run at a time writes a run folder, with --overwrite or "
            f"--resume too: wait for that run to end, {stop}, or choose another --out-dir")


__all__ = ["FolderInUse", "FolderLock", "LOCK_NAME", "lock_folder"]

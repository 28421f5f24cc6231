"""tinygrad_lm/files.py, the one writer every layer uses: whole or absent, and errors that say why.

Each property in isolation (the writers that use it are tried in test_whole_or_absent.py): what
can be written (bytes, text, a function of the open file, a file name for another program), that
a failure of any kind leaves the old file and no temporary, the message for each errno, the
paths that are not files, and the clean-up of what killed writers left.
"""
import errno
import os
import subprocess
import sys

import pytest

from tinygrad_lm import files
from tinygrad_lm.files import atomic_write, remove_stale_temporaries, temporary_name, writing


def dead_pid():
    """The id of a process that has ended."""
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


def test_bytes_text_and_a_writer_function_are_written_and_the_path_returned(tmp_path):
    assert atomic_write(str(tmp_path / "a.bin"), b"\x00\x01") == tmp_path / "a.bin"
    assert atomic_write(tmp_path / "b.txt", "héllo\n").read_bytes() == "héllo\n".encode("utf-8")
    atomic_write(tmp_path / "c.bin", lambda f: (f.write(b"ab"), f.write(b"cd")))
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01" and (tmp_path / "c.bin").read_bytes() == b"abcd"
    assert atomic_write(tmp_path / "new" / "deeper" / "d.txt", "x").read_text() == "x"  # folders created
    assert leftovers(tmp_path) == []


def test_an_exception_in_the_writer_leaves_the_old_file_and_propagates(tmp_path):
    path = atomic_write(tmp_path / "f.txt", "old")

    def half_then_fail(f):
        f.write(b"new, but only the beginning")
        raise ValueError("the writer's own error")

    with pytest.raises(ValueError, match="the writer's own error"):
        atomic_write(path, half_then_fail)
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C in the middle: the same
        atomic_write(path, lambda f: (f.write(b"new"), (_ for _ in ()).throw(KeyboardInterrupt)))
    assert path.read_text() == "old" and leftovers(tmp_path) == []


@pytest.mark.parametrize("code, advice", [
    (errno.ENOSPC, "free some space"),
    (errno.EACCES, "you have no permission to write in {folder}; choose another place"),
    (errno.EROFS, "{folder} is on a read-only file system; choose another place"),
    (errno.EIO, None),
])
def test_a_failed_write_names_the_file_the_reason_what_is_kept_and_what_to_do(tmp_path, code, advice):
    path = atomic_write(tmp_path / "f.txt", "old")

    def fail(f):
        f.write(b"half")
        raise OSError(code, os.strerror(code))

    with pytest.raises(OSError) as caught:
        atomic_write(path, fail, what="the tokenizer", fix="save it elsewhere")
    e = caught.value
    message = str(e)
    assert e.errno == code and "Errno" not in message, message
    assert message.startswith(f"{path}: could not write the tokenizer ({os.strerror(code)}); the previous f.txt, "
                              "if any, is unchanged; "), message
    assert message.endswith((advice.format(folder=tmp_path) + ", or " if advice else "") + "save it elsewhere"), message
    assert path.read_text() == "old" and leftovers(tmp_path) == []


def test_the_error_is_the_subclass_python_gives_its_errno(tmp_path):
    def denied(f):
        raise PermissionError(errno.EACCES, "Permission denied")

    with pytest.raises(PermissionError):
        atomic_write(tmp_path / "f.txt", denied)


def test_a_folder_at_the_path_and_a_file_on_the_way_are_named(tmp_path):
    (tmp_path / "folder").mkdir()
    with pytest.raises(IsADirectoryError, match=r"folder is a folder; pass a file name to write the picture to"):
        atomic_write(tmp_path / "folder", b"x", what="the picture")
    (tmp_path / "notes").write_text("a file")
    with pytest.raises(NotADirectoryError) as caught:
        atomic_write(tmp_path / "notes" / "sub" / "f.txt", b"x")
    assert f"{tmp_path / 'notes'} is a file, not a folder" in str(caught.value)
    assert "Errno" not in str(caught.value)


def test_writing_gives_a_file_name_for_another_writer_and_renames_only_when_whole(tmp_path):
    path = atomic_write(tmp_path / "p.svg", "old")
    with writing(path) as tmp:
        assert tmp == temporary_name(path) and tmp.parent == tmp_path
        tmp.write_text("new")
        assert path.read_text() == "old"  # not before the block ends
    assert path.read_text() == "new"
    with pytest.raises(RuntimeError):
        with writing(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("the other program failed")
    assert path.read_text() == "new" and leftovers(tmp_path) == []


def test_the_temporaries_of_dead_writers_are_removed_and_those_of_live_ones_kept(tmp_path):
    dead, alive = dead_pid(), os.getppid()
    stale = [tmp_path / f".f.txt.tmp{dead}", tmp_path / f".other.txt.tmp{dead}", tmp_path / f"cache.bin.tmp{dead}"]
    for p in stale:
        p.write_text("half")
    (tmp_path / f".hf.tmp{dead}").mkdir()  # a staging folder of a killed export
    (tmp_path / f".hf.tmp{dead}" / "model.safetensors").write_text("half")
    live = tmp_path / f".f.txt.tmp{alive}"
    live.write_text("being written")
    atomic_write(tmp_path / "f.txt", "whole")  # cleans the temporaries of its own name only
    assert not stale[0].exists() and stale[1].exists() and live.exists()
    removed = remove_stale_temporaries(tmp_path)  # the whole folder
    assert sorted(p.name for p in removed) == sorted([stale[1].name, stale[2].name, f".hf.tmp{dead}"])
    assert live.exists() and (tmp_path / "f.txt").read_text() == "whole"


def test_the_file_and_the_rename_reach_the_disk(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(files.os, "fsync", lambda fd: (synced.append(os.fstat(fd).st_mode), real_fsync(fd)))
    atomic_write(tmp_path / "f.txt", "x")
    import stat

    assert [stat.S_ISREG(m) for m in synced] == [True, False]  # the file, then its folder

"""`python -m tinygrad_lm data shakespeare` (tinygrad_lm/run/datasets.py) and the scripts that use it.

No test touches the network: downloads are replaced by a fake `urlopen` that returns chosen
bytes or fails as an offline machine does. Most tests use a small made-up corpus (its size and
SHA-256 computed here); the ones about the real file read ../shared and skip without it.
"""
import hashlib
import io
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tinygrad_lm.run import datasets
from tinygrad_lm.run.cli import main

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
TEXT = "FIRST CITIZEN:\nWe are accounted poor citizens.\n\nSECOND CITIZEN:\nWould you proceed?\n".encode()


def corpus_of(data):
    return datasets.Corpus("tiny", "https://example.invalid/tiny.txt", len(data), hashlib.sha256(data).hexdigest(),
                           "TINYGRAD_LM_TEST_UNUSED", "a made-up corpus")


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv(datasets.SHAKESPEARE.env, raising=False)


def fake_urlopen(monkeypatch, data=None, error=None):
    calls = []

    def urlopen(url, timeout=None):
        calls.append((url, timeout))
        if error is not None:
            raise error
        return io.BytesIO(data)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return calls


def test_download_is_checked_then_written(tmp_path, monkeypatch):
    calls = fake_urlopen(monkeypatch, TEXT)
    out = tmp_path / "sub" / "tiny.txt"
    said = datasets.fetch(corpus_of(TEXT), out)
    assert out.read_bytes() == TEXT and "wrote" in said
    assert calls == [("https://example.invalid/tiny.txt", datasets.TIMEOUT_S)]
    assert sorted(p.name for p in out.parent.iterdir()) == ["tiny.txt"]  # no temporary file left


def test_a_cut_download_writes_nothing(tmp_path, monkeypatch):
    fake_urlopen(monkeypatch, TEXT[:-5])
    out = tmp_path / "tiny.txt"
    with pytest.raises(ValueError, match=rf"https://example.invalid/tiny.txt: {len(TEXT) - 5} bytes .* is {len(TEXT)} bytes"):
        datasets.fetch(corpus_of(TEXT), out)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_offline_says_in_one_line_how_to_get_it(tmp_path, monkeypatch, capsys, no_env):
    fake_urlopen(monkeypatch, error=urllib.error.URLError(OSError(-3, "Temporary failure in name resolution")))
    out = tmp_path / "input.txt"
    assert main(["data", "shakespeare", "--out", str(out)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("tinygrad-lm data: error: could not download shakespeare from https://")
    assert "Temporary failure in name resolution" in err[0]
    assert f"python -m tinygrad_lm data shakespeare --from FILE --out {out}" in err[0]  # the command to rerun
    assert "Traceback" not in "\n".join(err) and len(err) == 2  # the message, then the usual debug hint
    assert not out.exists()


def test_an_existing_copy_is_kept_and_another_file_is_never_overwritten(tmp_path, monkeypatch):
    calls = fake_urlopen(monkeypatch, TEXT)
    corpus, out = corpus_of(TEXT), tmp_path / "tiny.txt"
    out.write_bytes(TEXT)
    assert "nothing to do" in datasets.fetch(corpus, out)
    assert calls == []  # nothing downloaded
    out.write_bytes(b"my own notes")
    with pytest.raises(FileExistsError, match=r"tiny.txt exists and is not tiny; pass another --out, or --force"):
        datasets.fetch(corpus, out)
    assert out.read_bytes() == b"my own notes"
    datasets.fetch(corpus, out, force=True)
    assert out.read_bytes() == TEXT


def test_a_local_copy_is_checked_too(tmp_path, monkeypatch):
    fake_urlopen(monkeypatch, error=AssertionError("no download when a local copy is given"))
    corpus = corpus_of(TEXT)
    good, bad = tmp_path / "good.txt", tmp_path / "bad.txt"
    good.write_bytes(TEXT)
    bad.write_bytes(TEXT.replace(b"poor", b"rich"))
    with pytest.raises(ValueError, match=rf"bad.txt: {len(TEXT)} bytes with SHA-256"):
        datasets.fetch(corpus, tmp_path / "out.txt", source=bad)
    with pytest.raises(FileNotFoundError, match=r"missing.txt: no such file"):
        datasets.fetch(corpus, tmp_path / "out.txt", source=tmp_path / "missing.txt")
    with pytest.raises(IsADirectoryError, match=r"is a directory"):
        datasets.fetch(corpus, tmp_path, source=good)  # --out a folder
    assert not (tmp_path / "out.txt").exists()
    datasets.fetch(corpus, tmp_path / "out.txt", source=good)
    assert (tmp_path / "out.txt").read_bytes() == TEXT


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    out = tmp_path / "tiny.txt"
    out.write_bytes(b"old")

    def full_disk(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(datasets.os, "replace", full_disk)
    with pytest.raises(OSError, match=r"tiny.txt: could not write it \(No space left on device\)"):
        datasets.write_atomic(out, TEXT)
    assert out.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["tiny.txt"]


@pytest.mark.skipif(not SHARED.exists(), reason="needs ../shared/data/tinyshakespeare.txt")
def test_the_real_file_from_flag_and_from_environment(tmp_path, monkeypatch, capsys, no_env):
    fake_urlopen(monkeypatch, error=AssertionError("no download when a local copy is given"))
    data = SHARED.read_bytes()
    assert (len(data), hashlib.sha256(data).hexdigest()) == (datasets.SHAKESPEARE.size, datasets.SHAKESPEARE.sha256)
    monkeypatch.chdir(tmp_path)
    assert main(["data", "shakespeare", "--from", str(SHARED)]) == 0  # default --out: input.txt
    assert (tmp_path / "input.txt").read_bytes() == data
    assert "train on it: python -m tinygrad_lm train --data input.txt" in capsys.readouterr().out
    monkeypatch.setenv(datasets.SHAKESPEARE.env, str(SHARED))
    assert main(["data", "shakespeare", "--out", "copy.txt"]) == 0
    assert (tmp_path / "copy.txt").read_bytes() == data


def speaker_script(argv, monkeypatch):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import make_speaker_dataset
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    return make_speaker_dataset.main(argv)


def test_speaker_dataset_without_input_says_which_command_makes_it(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        speaker_script(["--out", "spk"], monkeypatch)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "input.txt: no such file; get Tiny Shakespeare with `python -m tinygrad_lm data shakespeare" in err
    assert "Traceback" not in err and not (tmp_path / "spk").exists()


def test_speaker_dataset_names_a_file_without_speeches(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("notes.txt").write_text("no speakers here\n")
    with pytest.raises(SystemExit) as e:
        speaker_script(["--data", "notes.txt", "--out", "spk"], monkeypatch)
    assert e.value.code == 2
    assert "notes.txt: no speeches found" in capsys.readouterr().err


def test_speaker_dataset_reads_input_txt_by_default(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    speeches = "".join(f"{name}:\nline {i} of {name}\n\n" for i in range(400) for name in ("ANNE", "BOB", "CY"))
    Path("input.txt").write_text(speeches)
    speaker_script(["--out", "spk", "--k", "2"], monkeypatch)
    assert sorted(p.name for p in (tmp_path / "spk").iterdir()) == [
        "info.json", "pretrain.txt", "test.jsonl", "train.jsonl", "val.jsonl"]
    assert "speakers: ANNE, BOB" in capsys.readouterr().out


def test_get_shakespeare_script_offline_is_one_line_not_a_traceback(tmp_path):
    """The old script, now a wrapper of `data shakespeare`, run as a user would, with the network
    unreachable (a proxy on a closed local port): exit 2, and a message saying how to get the file."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), https_proxy="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9")
    for name in ("no_proxy", "NO_PROXY", "TINYGRAD_LM_DEBUG", datasets.SHAKESPEARE.env):
        env.pop(name, None)
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "get_shakespeare.py"), "--out", str(tmp_path / "in.txt")],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "could not download shakespeare" in r.stderr and "data shakespeare --from FILE" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "in.txt").exists()


def test_a_missing_input_txt_points_at_the_data_command(tmp_path):
    from tinygrad_lm.run.data import load_corpus

    with pytest.raises(FileNotFoundError, match=r"data shakespeare --out .*input\.txt"):
        load_corpus(str(tmp_path / "input.txt"))
    with pytest.raises(FileNotFoundError) as other:
        load_corpus(str(tmp_path / "notes.txt"))
    assert "shakespeare" not in str(other.value)  # the hint is only for the README's file name

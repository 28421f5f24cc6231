"""Token files say what made them and are whole or absent (tokenizer/token_file.py, issue #28).

`encode_file` (`tokenize --encode-to`) writes the raw ids (still `np.memmap`-able, as nanoGPT's
train.bin) and, beside them, `NAME.json`: the format version, dtype, count, SHA-256 of the ids and
the tokenizer that encoded them (a readable name and a fingerprint). Reading (`TokenData.from_file`,
`train --tokens`) refuses another tokenizer naming both, a cut or damaged file or sidecar naming
the file, a sidecar of a newer format; a token file without a sidecar (written before) loads with
a one-line warning. Writing goes through a temporary file: a full disk or a kill leaves the old
file and its sidecar as they were.
"""
import errno
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinygrad_lm.run.config import from_flat
from tinygrad_lm.run.data import TokenData
from tinygrad_lm.run.train import TrainConfig, train
from tinygrad_lm.tokenizer import BPETokenizer, CharTokenizer
from tinygrad_lm.tokenizer.token_file import sidecar_path

ROOT = Path(__file__).resolve().parents[1]
TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n" * 40)

pytestmark = pytest.mark.usefixtures("isolated_cache")  # conftest.py: a cache per test


@pytest.fixture
def encoded(tmp_path, text_file):
    """(tokenizer, token file): the corpus encoded by a char tokenizer saved as tok.model."""
    tok = CharTokenizer(TEXT)
    tok.save(tmp_path / "tok.model")
    tok.encode_file(text_file, tmp_path / "t.bin", tokenizer_name="tok.model")
    return tok, tmp_path / "t.bin"


def test_the_ids_stay_raw_and_the_sidecar_records_the_tokenizer(encoded):
    tok, path = encoded
    assert np.array_equal(np.fromfile(path, dtype="<u2"), tok.encode(TEXT))  # nanoGPT's train.bin, as before
    side = json.loads(sidecar_path(path).read_text(encoding="utf-8"))
    assert side["format"] == "tinygrad_lm tokens" and side["version"] == 1
    assert side["dtype"] == "uint16" and side["count"] == len(TEXT)
    assert side["tokenizer"]["name"] == "tok.model" and side["tokenizer"]["fingerprint"] == tok.fingerprint()
    assert side["tokenizer"]["vocab_size"] == tok.vocab_size
    assert sorted(p.name for p in path.parent.iterdir() if p.name.startswith("t.bin")) == ["t.bin", "t.bin.json"]


def test_a_fingerprint_is_the_content_not_the_object():
    a, b = BPETokenizer("gpt4"), BPETokenizer("gpt4")
    a.train(TEXT, 270)
    b.train(TEXT, 270)
    assert a.fingerprint() == b.fingerprint() and len(a.fingerprint()) == 64
    b.train(TEXT, 271)
    assert a.fingerprint() != b.fingerprint()
    assert BPETokenizer("gpt2").fingerprint() != BPETokenizer("gpt4").fingerprint()  # the split pattern counts
    assert CharTokenizer("abc").fingerprint() != CharTokenizer("abd").fingerprint()


def test_another_tokenizer_is_refused_naming_both(tmp_path, encoded):
    """Today's hole: a tokenizer whose vocabulary covers the file's ids trains on silently wrong ids."""
    _, path = encoded
    other = CharTokenizer(TEXT + "Q")  # 'Q' joins the sorted characters: the ids after it shift by one
    other.save(tmp_path / "other.model")
    with pytest.raises(ValueError, match=r"t\.bin was encoded by tok\.model \(CharTokenizer\(vocab_size=\d+\), "
                                         r"fingerprint [0-9a-f]{12}\) but other\.model is CharTokenizer"):
        TokenData.from_file(path, other, tokenizer_name="other.model")
    config = from_flat(TrainConfig, block_size=8, n_layer=1, n_head=2, n_embd=16, batch_size=2, max_iters=2,
                       eval_interval=2, eval_iters=1, sample_tokens=0, quiet=True, out_dir=str(tmp_path / "r"),
                       tokens=str(path), tokenizer_file=str(tmp_path / "other.model"))
    with pytest.raises(ValueError, match=r"encoded by tok\.model .* but .*other\.model is"):
        train(config)


def test_the_same_tokenizer_with_more_special_tokens_reads_the_file(encoded):
    """`train --objective mlm` adds [CLS] [SEP] [MASK] [PAD] after the vocabulary: every id of the file keeps
    its meaning, so the file is accepted; a special token the file used at another id is refused."""
    tok, path = encoded
    more = CharTokenizer.from_dict(tok.to_dict())
    more.add_special_tokens(["[CLS]", "[SEP]"])
    assert len(TokenData.from_file(path, more).train) > 0
    with_special = CharTokenizer(TEXT)
    with_special.add_special_tokens(["<s>"])
    with_special.encode_file(path.parent / "corpus.txt", path.parent / "s.bin")
    swapped = CharTokenizer(TEXT)
    swapped.add_special_tokens(["[CLS]", "<s>"])  # <s> one id later
    with pytest.raises(ValueError, match=r"s\.bin was encoded by .* but .* is"):
        TokenData.from_file(path.parent / "s.bin", swapped)


def test_a_token_file_without_a_sidecar_loads_with_a_warning(tmp_path, capsys):
    tok = CharTokenizer("abcd")
    (tmp_path / "old.bin").write_bytes(np.array([0, 1, 2, 3] * 4, dtype="<u2").tobytes())
    data = TokenData.from_file(tmp_path / "old.bin", tok)
    assert len(data.train) + len(data.val) == 16
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("warning: ")
    assert "old.bin has no old.bin.json beside it" in err and "cannot check which tokenizer wrote it" in err


def test_a_cut_token_file_is_refused(encoded):
    """A whole number of ids, but fewer than the sidecar counts (a copy or a write cut short)."""
    tok, path = encoded
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match=rf"t\.bin: {2 * len(TEXT) - 100} bytes but t\.bin\.json counts "
                                         rf"{len(TEXT)} uint16 ids \({2 * len(TEXT)} bytes\): the file is cut"):
        TokenData.from_file(path, tok)


def test_a_damaged_token_file_is_refused(encoded):
    tok, path = encoded
    data = bytearray(path.read_bytes())
    data[10] ^= 1  # one id changed, the size the same
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"t\.bin does not match t\.bin\.json: its SHA-256 differs"):
        TokenData.from_file(path, tok)


@pytest.mark.parametrize("damage, message", [
    (lambda s: s[:len(s) // 2], r"t\.bin\.json is damaged \(not JSON"),
    (lambda s: "[1, 2]", r"t\.bin\.json is damaged \(not a JSON object"),
    (lambda s: s.replace('"count"', '"cnt"'), r"t\.bin\.json is damaged \(no 'count'"),
    (lambda s: s.replace('"dtype": "uint16"', '"dtype": "float7"'), r"t\.bin\.json is damaged \(dtype 'float7'"),
    (lambda s: s.replace("tinygrad_lm tokens", "something else"), r"t\.bin\.json is not a token file's sidecar"),
])
def test_a_damaged_sidecar_is_refused_naming_it(encoded, damage, message):
    tok, path = encoded
    side = sidecar_path(path)
    side.write_text(damage(side.read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        TokenData.from_file(path, tok)


def test_a_sidecar_of_a_newer_format_is_refused(encoded):
    tok, path = encoded
    side = sidecar_path(path)
    side.write_text(side.read_text(encoding="utf-8").replace('"version": 1', '"version": 2'), encoding="utf-8")
    with pytest.raises(ValueError, match=r"t\.bin\.json: written by a newer tinygrad_lm \(token file format 2, "
                                         r"this tinygrad_lm .* reads up to 1\): upgrade"):
        TokenData.from_file(path, tok)


def test_a_failed_write_leaves_the_old_file_and_says_which_and_why(encoded, monkeypatch):
    """A full disk (ENOSPC when the data reaches the disk): the previous token file and sidecar as they were."""
    tok, path = encoded
    before = {p.name: p.read_bytes() for p in (path, sidecar_path(path))}

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    other = CharTokenizer(TEXT + "Q")
    with pytest.raises(OSError, match=r"t\.bin: could not write the token file \(No space left on device\); "
                                      r"the previous t\.bin, if any, is unchanged") as info:
        other.encode_file(path.parent / "corpus.txt", path)
    assert info.value.errno == errno.ENOSPC
    assert {p.name: p.read_bytes() for p in (path, sidecar_path(path))} == before
    assert sorted(p.name for p in path.parent.iterdir() if "t.bin" in p.name) == ["t.bin", "t.bin.json"]


KILLED_WRITER = """
import os, sys, time
from tinygrad_lm.tokenizer import CharTokenizer
tok = CharTokenizer(open(sys.argv[1], encoding="utf-8").read() + "Q")
encode_piece = tok._encode_piece
def slow(text, **kw):
    ids = encode_piece(text, **kw)
    print("piece", flush=True)
    time.sleep(60)  # killed here, between two pieces of the file
    return ids
tok._encode_piece = slow
tok.encode_file(sys.argv[1], sys.argv[2], piece_bytes=64)
"""


def test_a_write_killed_midway_leaves_the_old_file_and_the_next_write_clears_its_temporary(encoded):
    tok, path = encoded
    before = {p.name: p.read_bytes() for p in (path, sidecar_path(path))}
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path.parent / "corpus.txt"), str(path)],
                            stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline() == "piece\n"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert {p.name: p.read_bytes() for p in (path, sidecar_path(path))} == before
    left = [p.name for p in path.parent.iterdir() if p.name.startswith(".t.bin.tmp")]
    assert left == [f".t.bin.tmp{proc.pid}"]  # what a kill -9 leaves; the old file is what gets read
    assert len(TokenData.from_file(path, tok).train) > 0
    tok.encode_file(path.parent / "corpus.txt", path.parent / "t.bin")  # the next write removes the dead temporary
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".t.bin.tmp")]


def test_tokenize_names_the_saved_tokenizer_in_the_sidecar(tmp_path, text_file):
    env = dict(os.environ, TINYGRAD_LM_CACHE=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "tinygrad_lm", "tokenize", "--data", str(text_file), "--tokenizer",
                           "char", "--save", "tok.model", "--encode-to", "t.bin"], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "t.bin.json").read_text(encoding="utf-8"))["tokenizer"]["name"] == "tok.model"


# ---- what a harsh user tries next
def test_encoding_a_text_onto_itself_is_refused_and_the_text_kept(tmp_path, text_file):
    """`tokenize --data corpus.txt --encode-to corpus.txt`: today the text is emptied before it is read."""
    with pytest.raises(ValueError, match=r"corpus\.txt is the text being encoded; write the ids to another file"):
        CharTokenizer(TEXT).encode_file(text_file, tmp_path / "." / "corpus.txt")
    assert text_file.read_text(encoding="utf-8") == TEXT


def test_the_sidecar_passed_as_the_token_file_is_refused(encoded):
    tok, path = encoded
    with pytest.raises(ValueError, match=r"t\.bin\.json is the sidecar of the token file t\.bin; pass .*t\.bin"):
        TokenData.from_file(sidecar_path(path), tok)


def test_a_text_file_passed_as_a_token_file_is_named_as_text(text_file):
    """With a large vocabulary, two ASCII letters read as one uint16 id are a valid id: today it trains on them."""
    big = BPETokenizer._from_parts("gpt4", [(a, b) for a in range(256) for b in range(256)][:40000], {})
    for tok in (CharTokenizer(TEXT), big):
        with pytest.raises(ValueError, match=r"corpus\.txt looks like text \(UTF-8\), not a token file; train on a "
                                             r"text with --data, or encode it first"):
            TokenData.from_file(text_file, tok)


def test_a_token_file_into_a_missing_folder_names_the_folder(tmp_path, text_file):
    with pytest.raises(FileNotFoundError, match=r"nowhere/t\.bin: the folder .*nowhere does not exist; create it"):
        CharTokenizer(TEXT).encode_file(text_file, tmp_path / "nowhere" / "t.bin")


@pytest.mark.parametrize("code, fix", [(errno.ENOSPC, "free some space"), (errno.EROFS, "pick a folder you can write to"),
                                       (errno.EACCES, "pick a folder you can write to")])
def test_a_failed_write_says_the_fix_for_its_cause(tmp_path, text_file, monkeypatch, code, fix):
    def fail(fd):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match=rf"t\.bin: could not write the token file \({os.strerror(code)}\); the previous "
                                      rf"t\.bin, if any, is unchanged; {fix}"):
        CharTokenizer(TEXT).encode_file(text_file, tmp_path / "t.bin")
    assert not [p.name for p in tmp_path.iterdir() if "t.bin" in p.name]  # no file, no sidecar, no temporary

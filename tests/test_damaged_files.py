"""A damaged or cut file that the package reads later (issue #28, item 2): caches are rebuilt with a
one-line note; tokenizer files are refused with a message naming the file and what is wrong.

Caches (run/data.py: the built-in corpus, trained BPE tokenizers, token files of a text): every
kind of damage is tried on each (the data cut, emptied or missing, the sidecar garbage, empty,
missing or not ASCII, a digest that matches content this version cannot use, a folder where the
file belongs) and the next read must rebuild, never train on it or stop with a traceback.
Tokenizer files: cut at every byte, a file must load as the tokenizer saved or be refused; an
empty file and a cut char tokenizer say so. Token files (`--tokens`) are test_tokens_file.py's.
"""
import hashlib
import json
import random

import numpy as np
import pytest

from tinygrad_lm.run import cli, data
from tinygrad_lm.run.data import TokenData, build_tokenizer, read_cached, write_cached
from tinygrad_lm.tokenizer import BPETokenizer, CharTokenizer, load_tokenizer

_rng = random.Random(0)
TEXT = " ".join("".join(_rng.choice("abcdefgh") for _ in range(_rng.randint(2, 6))) for _ in range(800)) + "\n"

pytestmark = pytest.mark.usefixtures("isolated_cache")  # conftest.py: a cache per test


def _sidecar(path):
    return path.with_name(path.name + ".sha256")


DAMAGE = {  # name -> what it does to a cache entry (its data file and its .sha256 sidecar)
    "data cut": lambda p: p.write_bytes(p.read_bytes()[:len(p.read_bytes()) // 3]),
    "data emptied": lambda p: p.write_bytes(b""),
    "data missing": lambda p: p.unlink(),
    "a byte flipped": lambda p: p.write_bytes(bytes([p.read_bytes()[0] ^ 1]) + p.read_bytes()[1:]),
    "sidecar garbage": lambda p: _sidecar(p).write_bytes(b"garbage"),
    "sidecar size not a number": lambda p: _sidecar(p).write_text("abc xyz\n"),
    "sidecar emptied": lambda p: _sidecar(p).write_bytes(b""),
    "sidecar missing": lambda p: _sidecar(p).unlink(),
    "sidecar not ascii": lambda p: _sidecar(p).write_bytes(b"\xff\xfe\x00 12"),
    "sidecar digest not hex": lambda p: _sidecar(p).write_text("zz " + _sidecar(p).read_text().split()[1]),
}


def _entry(cache, pattern):
    (path,) = [p for p in cache.glob(pattern) if not p.name.endswith(".sha256")]
    return path


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_every_kind_of_damage_to_a_cache_entry_is_rebuilt_with_a_note(tmp_path, capsys, damage):
    cache = tmp_path / "cache"
    tok = build_tokenizer("bpe", TEXT, 280)
    ids = np.array(TokenData(TEXT, tok).train)  # a copy: the damage below rewrites the memory-mapped file in place
    capsys.readouterr()
    for pattern in ("bpe_*.json", "tokens_*"):
        DAMAGE[damage](_entry(cache, pattern))
    again = build_tokenizer("bpe", TEXT, 280)
    rebuilt = TokenData(TEXT, again)
    err = capsys.readouterr().err
    assert again.merges == tok.merges and np.array_equal(rebuilt.train, ids)
    notes = [line for line in err.splitlines() if line.startswith("note: ")]
    assert len(notes) == 2 and all("rebuilding it" in n and str(cache) in n for n in notes), err
    if damage.startswith("sidecar") and damage != "sidecar missing":
        assert all("has a damaged sidecar" in n for n in notes), err
    assert read_cached(_entry(cache, "bpe_*.json")) is not None  # whole again
    capsys.readouterr()
    build_tokenizer("bpe", TEXT, 280)
    assert capsys.readouterr().err == ""  # a sound cache says nothing


def _with_digest(path, raw):
    """Write `raw` as a cache entry whose sidecar matches it: damage no digest can see."""
    path.write_bytes(raw)
    _sidecar(path).write_text(f"{hashlib.sha256(raw).hexdigest()} {len(raw)}\n")


def test_a_cached_tokenizer_this_version_cannot_read_is_rebuilt(tmp_path, capsys):
    tok = build_tokenizer("bpe", TEXT, 280)
    path = _entry(tmp_path / "cache", "bpe_*.json")
    _with_digest(path, json.dumps({"type": "sentencepiece", "version": 9}).encode())  # another version's file
    again = build_tokenizer("bpe", TEXT, 280)
    assert again.merges == tok.merges
    assert f"note: the cached tokenizer {path} cannot be read" in capsys.readouterr().err
    _with_digest(path, b"\xff not json")
    assert build_tokenizer("bpe", TEXT, 280).merges == tok.merges


def test_a_cached_corpus_that_is_not_utf8_is_rebuilt(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(data, "_stdlib_docstrings", lambda: iter(["First docstring.", "Second one."]))
    monkeypatch.setattr(data, "_pydoc_topics", lambda: [])
    text = data.builtin_corpus()
    (path,) = (tmp_path / "cache").glob("builtin_corpus_*.txt")
    _with_digest(path, b"\xff\xfe half of a character")
    assert data.builtin_corpus() == text
    assert f"note: the cached corpus {path} is not UTF-8" in capsys.readouterr().err
    assert path.read_text(encoding="utf-8") == text


def test_a_folder_where_a_cache_file_belongs_is_named(tmp_path):
    tok = build_tokenizer("bpe", TEXT, 280)
    path = _entry(tmp_path / "cache", "bpe_*.json")
    path.unlink()
    path.mkdir()
    with pytest.raises(IsADirectoryError) as caught:
        build_tokenizer("bpe", TEXT, 280)
    assert f"{path} is a folder where tinygrad_lm keeps a cache file" in str(caught.value), caught.value
    assert "remove it" in str(caught.value) and "free some space" not in str(caught.value)
    assert tok is not None


def test_a_cache_variable_naming_a_file_is_refused_with_the_variable(tmp_path, monkeypatch):
    (tmp_path / "afile").write_text("not a folder")
    monkeypatch.setenv("TINYGRAD_LM_CACHE", str(tmp_path / "afile"))
    with pytest.raises(NotADirectoryError, match=r"TINYGRAD_LM_CACHE=.*afile is a file; point it at a folder"):
        data.cache_dir()


def test_write_cached_then_read_cached_round_trips(tmp_path):
    write_cached(tmp_path / "x.bin", b"\x00\x01" * 50)
    assert read_cached(tmp_path / "x.bin") == b"\x00\x01" * 50
    assert read_cached(tmp_path / "never.bin") is None  # nothing cached yet: no note, just None


# ---- tokenizer files --------------------------------------------------------------------------

def test_a_tokenizer_file_cut_anywhere_loads_as_saved_or_is_refused_by_name(tmp_path):
    tok = BPETokenizer("gpt4")
    tok.train(TEXT, 290)
    whole = tmp_path / "tok.model"
    tok.save(whole)
    raw = whole.read_bytes()
    cut = tmp_path / "cut.model"
    for n in range(len(raw) - 1, 0, -1):
        cut.write_bytes(raw[:n])
        try:
            loaded = load_tokenizer(cut)
        except ValueError as e:
            assert str(e).startswith(str(cut)), e
            continue
        raise AssertionError(f"{n} of {len(raw)} bytes loaded as a tokenizer "
                             f"({'the same merges' if loaded.merges == tok.merges else 'other merges'})")
    cut.write_bytes(raw[:raw.rindex(b"\n", 0, len(raw) - 1) + 1])  # cut after a whole line: one merge short
    n = len(tok.merges)
    announced = rf"cut short\? it ends at line \d+, after {n - 1} of the {n} merges it announces"
    with pytest.raises(ValueError, match=announced):
        load_tokenizer(cut)


def test_a_missing_tokenizer_file_names_the_path_and_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"tokenizer file .*nope.model does not exist: check the path, "
                                                r"or write one with `python -m tinygrad_lm tokenize"):
        load_tokenizer(tmp_path / "nope.model")
    with pytest.raises(FileNotFoundError, match=r"is a folder, not a file"):
        load_tokenizer(tmp_path)


def test_an_empty_tokenizer_file_says_it_is_empty(tmp_path):
    (tmp_path / "tok.model").write_bytes(b"")
    with pytest.raises(ValueError, match=r"tok.model is empty"):
        load_tokenizer(tmp_path / "tok.model")


def test_a_cut_char_tokenizer_file_says_it_is_cut(tmp_path):
    CharTokenizer(TEXT).save(tmp_path / "c.json")
    raw = (tmp_path / "c.json").read_bytes()
    for n in (len(raw) - 2, len(raw) // 2, 12):  # (without its last newline it is the same JSON)
        (tmp_path / "c.json").write_bytes(raw[:n])
        with pytest.raises(ValueError, match=r"c.json: a char tokenizer file cut short or damaged"):
            load_tokenizer(tmp_path / "c.json")


def test_train_with_a_cut_tokenizer_file_is_one_line(tmp_path, text_file, capsys):
    tok = BPETokenizer("gpt4")
    tok.train(TEXT, 290)
    tok.save(tmp_path / "tok.model")
    raw = (tmp_path / "tok.model").read_bytes()
    (tmp_path / "tok.model").write_bytes(raw[:-3])
    rc = cli.main(["train", "--data", str(text_file), "--tokenizer-file", str(tmp_path / "tok.model"),
                   "--out-dir", str(tmp_path / "run"), "--quiet", "--max-iters", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and f"{tmp_path / 'tok.model'}: cut short" in err and "Traceback" not in err, err

"""`train --tokenizer-file` and `--tokens` (what `tokenize --save --encode-to` writes), the checks on
a token file, and `--resume` with the data at a new path (the SHA-256 the checkpoint records)."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinygrad_lm import checkpoint
from tinygrad_lm.run.config import from_flat
from tinygrad_lm.run.data import TokenData, build_tokenizer
from tinygrad_lm.tokenizer import BPETokenizer, CharTokenizer
from tinygrad_lm.run.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n" * 40)


pytestmark = pytest.mark.usefixtures("isolated_cache")  # conftest.py: a cache per test


def cfg(out_dir, **kw):
    values = dict(block_size=8, n_layer=1, n_head=2, n_embd=16, batch_size=2, max_iters=4, eval_interval=2,
                  eval_iters=1, sample_tokens=0, quiet=True, out_dir=str(out_dir), dropout=0.1)
    values.update(kw)
    return from_flat(TrainConfig, **values)


def cli(tmp_path, *args):
    env = dict(os.environ, TINYGRAD_LM_CACHE=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "tinygrad_lm", *map(str, args)], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=120)
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_tokenize_outputs_train_as_the_text_does(tmp_path, text_file, kind):
    """`tokenize --save tok.model --encode-to train.bin`, then `train --tokenizer-file tok.model
    --tokens train.bin`: the run of `train --tokenizer-file tok.model --data corpus.txt`, loss for loss."""
    rc, out, err = cli(tmp_path, "tokenize", "--data", text_file, "--tokenizer", kind, "--vocab-size", "280",
                       "--save", "tok.model", "--encode-to", "train.bin")
    assert rc == 0, err
    from_tokens = train(cfg(tmp_path / "a", tokenizer_file=str(tmp_path / "tok.model"),
                            tokens=str(tmp_path / "train.bin")))
    from_text = train(cfg(tmp_path / "b", tokenizer_file=str(tmp_path / "tok.model"), data=str(text_file)))
    assert from_tokens["losses"] == from_text["losses"]
    assert from_tokens["bytes_per_token"] == pytest.approx(from_text["bytes_per_token"], rel=1e-12)
    assert type(from_tokens["tokenizer"]).__name__ == {"char": "CharTokenizer", "bpe": "BPETokenizer"}[kind]
    meta, _, _ = checkpoint.load(tmp_path / "a" / "ckpt.npz")
    assert meta["tokenizer"] == from_tokens["tokenizer"].to_dict()
    rc, out, err = cli(tmp_path, "sample", "--ckpt", tmp_path / "a" / "ckpt.npz", "--max-new-tokens", "5", "--seed", "0")
    assert rc == 0, err


def test_a_tokenizer_file_replaces_training_one(tmp_path, text_file):
    tok = CharTokenizer(TEXT + "XYZ")  # three characters the corpus lacks
    tok.save(tmp_path / "tok.model")
    result = train(cfg(tmp_path / "r", data=str(text_file), tokenizer_file=str(tmp_path / "tok.model"),
                       tokenizer="bpe"))
    assert result["tokenizer"].chars == tok.chars and result["model"].config.vocab_size == tok.vocab_size


def test_tokens_need_the_tokenizer_and_exclude_data():
    with pytest.raises(ValueError, match="--tokens t.bin needs the tokenizer that wrote it: add --tokenizer-file"):
        from_flat(TrainConfig, tokens="t.bin")
    with pytest.raises(ValueError, match="--tokens t.bin and --data x.txt are two sources"):
        from_flat(TrainConfig, tokens="t.bin", tokenizer_file="tok.model", data="x.txt")


def test_a_token_file_from_another_tokenizer_or_of_the_wrong_size_is_refused(tmp_path):
    tok = CharTokenizer("abc")
    (tmp_path / "big.bin").write_bytes(np.array([0, 1, 2, 7], dtype="<u2").tobytes())
    with pytest.raises(ValueError, match=r"big.bin holds token id 7 but the tokenizer has only 3 tokens"):
        TokenData.from_file(tmp_path / "big.bin", tok)
    (tmp_path / "odd.bin").write_bytes(b"\x00\x01\x02")
    with pytest.raises(ValueError, match=r"odd.bin: 3 bytes is not a whole number of uint16 ids"):
        TokenData.from_file(tmp_path / "odd.bin", tok)
    with pytest.raises(FileNotFoundError, match=r"nope.bin does not exist"):
        TokenData.from_file(tmp_path / "nope.bin", tok)
    with pytest.raises(FileNotFoundError, match=r"nope.model: no such file; --tokenizer-file takes the file"):
        train(cfg(tmp_path / "r", tokens=str(tmp_path / "big.bin"), tokenizer_file=str(tmp_path / "nope.model")))
    (tmp_path / "wide.bin").write_bytes(np.array([1, 2, 0, 1] * 8, dtype="<u4").tobytes())  # uint32 ids
    with pytest.raises(ValueError, match=r"wide.bin looks like a uint32 token file"):
        TokenData.from_file(tmp_path / "wide.bin", tok)
    data = TokenData.from_file(tmp_path / "big.bin", CharTokenizer("abcdefgh"))  # ids < 8: fine
    assert list(data.train) == [0, 1, 2] and list(data.val) == [7]


def test_a_bpe_vocabulary_short_of_the_size_asked_is_a_warning(tmp_path, capsys):
    tok = build_tokenizer("bpe", "hello world " * 20, 1024, cache=tmp_path, name="tiny.txt")
    err = capsys.readouterr().err
    assert tok.vocab_size < 1024
    assert f"asked for a BPE vocabulary of 1024 but tiny.txt (240 bytes) gives only {tok.vocab_size}" in err
    assert f"--vocab-size {tok.vocab_size} or less" in err
    build_tokenizer("bpe", "hello world " * 20, 260, cache=tmp_path)
    assert capsys.readouterr().err == ""


def test_tokenize_warns_of_a_short_bpe_vocabulary(tmp_path, text_file):
    rc, out, err = cli(tmp_path, "tokenize", "--data", text_file, "--vocab-size", "1024", "--save", "t.model")
    assert rc == 0 and "warning: asked for a BPE vocabulary of 1024" in err
    assert BPETokenizer.load(tmp_path / "t.model").vocab_size < 1024


# ---- --resume with the data elsewhere
def test_resume_accepts_the_same_data_at_a_new_path(tmp_path, text_file):
    full = train(cfg(tmp_path / "a", data=str(text_file), max_iters=6))
    train(cfg(tmp_path / "b", data=str(text_file), max_iters=6), stop_at=3)
    moved = tmp_path / "moved" / "corpus.txt"
    moved.parent.mkdir()
    shutil.move(text_file, moved)
    resumed = train(cfg(tmp_path / "b", data=str(moved), max_iters=6), resume=True, given={"data"})
    assert resumed["losses"] == full["losses"][3:]
    assert checkpoint.load(tmp_path / "b" / "ckpt.npz")[0]["train_config"]["data"] == str(moved)


def test_resume_refuses_other_data_naming_both_paths(tmp_path, text_file):
    train(cfg(tmp_path / "a", data=str(text_file)))
    other = tmp_path / "other.txt"
    other.write_text(TEXT.upper(), encoding="utf-8")
    with pytest.raises(ValueError, match=rf"--data {other} is not what the run in .*ckpt.npz trained on \({text_file}\)"):
        train(cfg(tmp_path / "a", data=str(other), max_iters=6), resume=True, given={"data", "max_iters"})
    with pytest.raises(FileNotFoundError, match=r"--data .*missing.txt: no such file"):
        train(cfg(tmp_path / "a", data=str(tmp_path / "missing.txt")), resume=True, given={"data"})
    text_file.write_text(TEXT + "more", encoding="utf-8")  # the same path, changed in place
    with pytest.raises(ValueError, match=r"corpus.txt has changed since .*ckpt.npz was written"):
        train(cfg(tmp_path / "a", data=str(text_file), max_iters=6), resume=True, given={"max_iters"})


def test_resume_after_the_data_moved_says_how_to_point_at_it(tmp_path, text_file):
    train(cfg(tmp_path / "a", data=str(text_file)))
    text_file.rename(tmp_path / "elsewhere.txt")
    with pytest.raises(FileNotFoundError, match=r"corpus.txt: the run in .* trained on this file, which is not there "
                                                r"any more; pass its new place with --data NEW_PATH"):
        train(cfg(tmp_path / "a", data=str(text_file), max_iters=6), resume=True, given={"max_iters"})


def test_an_old_checkpoint_without_a_data_hash_resumes_only_from_its_own_path(tmp_path, text_file):
    train(cfg(tmp_path / "a", data=str(text_file)))
    path = tmp_path / "a" / "ckpt.npz"
    meta, model_state, optim_state = checkpoint.load(path)
    del meta["data_sha256"]
    checkpoint.save(path, model_state, optim_state, {k: v for k, v in meta.items() if k not in ("format", "version")})
    copy = tmp_path / "copy.txt"
    shutil.copy(text_file, copy)
    with pytest.raises(ValueError, match=rf"records no hash of its data {text_file} .* pass --data {text_file}"):
        train(cfg(tmp_path / "a", data=str(copy), max_iters=6), resume=True, given={"data", "max_iters"})
    train(cfg(tmp_path / "a", data=str(text_file), max_iters=6), resume=True, given={"data", "max_iters"})


def test_tokens_runs_resume_bit_for_bit_and_accept_moved_files(tmp_path, text_file):
    tok = CharTokenizer(TEXT)
    tok.save(tmp_path / "tok.model")
    tok.encode_file(text_file, tmp_path / "t.bin")
    kw = dict(tokens=str(tmp_path / "t.bin"), tokenizer_file=str(tmp_path / "tok.model"), max_iters=6)
    full = train(cfg(tmp_path / "a", **kw))
    train(cfg(tmp_path / "b", **kw), stop_at=3)
    (tmp_path / "m").mkdir()
    for name in ("t.bin", "tok.model"):
        shutil.move(tmp_path / name, tmp_path / "m" / name)
    moved = dict(kw, tokens=str(tmp_path / "m" / "t.bin"), tokenizer_file=str(tmp_path / "m" / "tok.model"))
    resumed = train(cfg(tmp_path / "b", **moved), resume=True, given={"tokens", "tokenizer_file"})
    assert resumed["losses"] == full["losses"][3:]
    CharTokenizer(TEXT + "Q").save(tmp_path / "m" / "other.model")
    with pytest.raises(ValueError, match=r"--tokenizer-file .*other.model is not what the run"):
        train(cfg(tmp_path / "b", **dict(moved, tokenizer_file=str(tmp_path / "m" / "other.model"))), resume=True,
              given={"tokenizer_file"})

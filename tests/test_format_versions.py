"""Files from a newer tinygrad_lm are refused by name, not misread (version.py, issue #28).

Every versioned format the package reads (a checkpoint's meta, a BPE or char tokenizer file, a
tokenizer dict inside a checkpoint; token files' sidecars: test_token_file_provenance.py) refuses a
format number above the one it writes with "written by a newer tinygrad_lm (... format N, this
tinygrad_lm V reads up to M): upgrade", never a KeyError or "not a tokenizer file". Checkpoints
record the version of the tinygrad_lm that wrote them.
"""
import json

import numpy as np
import pytest

import tinygrad_lm
from tinygrad_lm import checkpoint
from tinygrad_lm.tokenizer import BPETokenizer, CharTokenizer, load_tokenizer, tokenizer_from_dict

NEWER = r"written by a newer tinygrad_lm{} \({} format 2, this tinygrad_lm {} reads up to 1\): upgrade tinygrad_lm"


def newer(what, writer=""):
    return NEWER.format(writer and " " + writer.replace(".", r"\."), what, tinygrad_lm.__version__.replace(".", r"\."))


def rewrite_meta(path, **changes):
    """The checkpoint at `path` with its meta entries changed (as a newer writer would have put them)."""
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"]))
    meta.update(changes)
    arrays["meta"] = np.array(json.dumps(meta))
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def test_a_checkpoint_records_the_tinygrad_lm_that_wrote_it(tmp_path):
    checkpoint.save(tmp_path / "c.npz", {"w": np.zeros(2)}, meta={"tinygrad_lm_version": "0.0.1"})
    meta, _, _ = checkpoint.load(tmp_path / "c.npz")
    assert meta["tinygrad_lm_version"] == tinygrad_lm.__version__  # the writer, whatever the meta passed said


def test_a_checkpoint_of_a_newer_format_is_refused_naming_the_writer(tmp_path):
    checkpoint.save(tmp_path / "c.npz", {"w": np.zeros(2)})
    rewrite_meta(tmp_path / "c.npz", version=2, tinygrad_lm_version="9.0.0")
    with pytest.raises(ValueError, match=r"c\.npz: " + newer("checkpoint", "9.0.0")):
        checkpoint.load(tmp_path / "c.npz")
    rewrite_meta(tmp_path / "c.npz", version=2, tinygrad_lm_version=None)  # a writer that did not say
    with pytest.raises(ValueError, match=r"c\.npz: " + newer("checkpoint")):
        checkpoint.load(tmp_path / "c.npz")


@pytest.mark.parametrize("version", [None, "1", 0, True])
def test_a_checkpoint_without_a_readable_format_version_is_damaged(tmp_path, version):
    checkpoint.save(tmp_path / "c.npz", {"w": np.zeros(2)})
    rewrite_meta(tmp_path / "c.npz", version=version)
    with pytest.raises(ValueError, match=rf"c\.npz: the checkpoint's format version is {version!r}, not a number "
                                         r"from 1 to 1 \(damaged metadata\?\)"):
        checkpoint.load(tmp_path / "c.npz")


def test_a_bpe_tokenizer_file_of_a_newer_format_is_refused(tmp_path):
    tok = BPETokenizer()
    tok.train("aaabdaaabac", 259)
    tok.save(tmp_path / "tok.model")
    text = (tmp_path / "tok.model").read_text(encoding="utf-8").replace("tinygrad_lm bpe v1", "tinygrad_lm bpe v2")
    (tmp_path / "tok.model").write_text(text, encoding="utf-8")
    for load in (BPETokenizer.load, load_tokenizer):
        with pytest.raises(ValueError, match=r"tok\.model: " + newer("BPE tokenizer file")):
            load(tmp_path / "tok.model")


def test_a_char_tokenizer_file_of_a_newer_format_is_refused(tmp_path):
    CharTokenizer("hello").save(tmp_path / "tok.model")
    text = (tmp_path / "tok.model").read_text(encoding="utf-8").replace("tinygrad_lm char v1", "tinygrad_lm char v2")
    (tmp_path / "tok.model").write_text(text, encoding="utf-8")
    for load in (CharTokenizer.load, load_tokenizer):
        with pytest.raises(ValueError, match=r"tok\.model: " + newer("char tokenizer file")):
            load(tmp_path / "tok.model")


@pytest.mark.parametrize("tok", [CharTokenizer("hello"), BPETokenizer()], ids=["char", "bpe"])
def test_a_tokenizer_dict_of_a_newer_format_is_refused(tok):
    d = dict(tok.to_dict(), version=2)
    kind = d["type"]
    with pytest.raises(ValueError, match=r"the tokenizer: " + newer(f"{kind} tokenizer dict")):
        tokenizer_from_dict(d)
    with pytest.raises(ValueError, match=rf"not a {kind} tokenizer dict of version 1: version=0"):
        tokenizer_from_dict(dict(d, version=0))


# ---- a newer writer of the same format: a setting this tinygrad_lm does not know
def test_a_checkpoint_from_a_newer_tinygrad_lm_with_unknown_settings_says_upgrade(tmp_path, monkeypatch):
    from tinygrad_lm.run.config import from_flat
    from tinygrad_lm.run.train import TrainConfig, load_model, train

    monkeypatch.setenv("TINYGRAD_LM_CACHE", str(tmp_path / "cache"))
    (tmp_path / "corpus.txt").write_text("some text to train a char model on. " * 40, encoding="utf-8")
    values = dict(data=str(tmp_path / "corpus.txt"), tokenizer="char", block_size=8, n_layer=1, n_head=2, n_embd=8,
                  batch_size=2, max_iters=2, eval_interval=2, eval_iters=1, sample_tokens=0, quiet=True,
                  out_dir=str(tmp_path / "run"))
    train(from_flat(TrainConfig, **values))
    path = tmp_path / "run" / "ckpt.npz"
    meta, _, _ = checkpoint.load(path)
    rewrite_meta(path, tinygrad_lm_version="9.0.0", model_config=dict(meta["model_config"], rope_base=1e4),
                 train_config=dict(meta["train_config"], curriculum="short-first"))
    upgrade = r"written by tinygrad_lm 9\.0\.0, newer than this {}: upgrade".format(
        tinygrad_lm.__version__.replace(".", r"\."))
    with pytest.raises(ValueError, match=r"ckpt\.npz: checkpoint has an incompatible model config: .*" + upgrade):
        load_model(path)
    with pytest.raises(ValueError, match=r"ckpt\.npz: train_config \(" + upgrade):
        train(from_flat(TrainConfig, **dict(values, max_iters=4)), resume=True, given={"max_iters"})
    rewrite_meta(path, tinygrad_lm_version=tinygrad_lm.__version__)  # the same version: no advice to upgrade
    with pytest.raises(ValueError, match=r"incompatible model config") as info:
        load_model(path)
    assert "upgrade" not in str(info.value)

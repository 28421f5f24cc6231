"""Loading keeps precision (issue #28): float64 weights stay float64 bit for bit, never via float32.

`GPT.from_pretrained(path, dtype=np.float64)` and `BertForMaskedLM.from_pretrained` of a float64
Hugging Face folder, `train --init-from` such a folder with `--dtype float64`, `Module.load_state_dict`
of float64 arrays into a float64 model, and `load_model` of a checkpoint trained in float64 all
give the file's values exactly; a float32 folder loaded as float64 is the exact upcast.
The Hugging Face folders need safetensors (the oracle extra); the rest runs with NumPy alone.
"""
import numpy as np
import pytest

from tinygrad_lm.hf.gpt2 import _is_conv1d, hf_shapes as gpt2_shapes
from tinygrad_lm.models.gpt import GPT, GPTConfig
from tinygrad_lm.run.config import from_flat
from tinygrad_lm.run.train import TrainConfig, load_model, train

from oracles import oracle  # tests/oracles.py

TINY = dict(vocab_size=50, block_size=16, n_layer=1, n_head=2, n_embd=8)
TEXT = "a small corpus for a small model, trained in float64 for two steps.\n" * 30


def beyond_float32(model, rng):
    """`model` in float64 with every weight nudged below float32's resolution: a float32 round trip shows."""
    model.to(dtype=np.float64)
    for p in model.parameters():
        p.data = p.data + rng.normal(size=p.shape) * 1e-10
    state = model.state_dict()
    assert all(not np.array_equal(a.astype(np.float32).astype(np.float64), a) for a in state.values())
    return state


def assert_bitwise(model, state):
    got = model.state_dict()
    assert set(got) == set(state)
    for name, a in state.items():
        assert got[name].dtype == np.float64 and np.array_equal(got[name], a), name


def test_load_state_dict_keeps_float64(rng):
    state = beyond_float32(GPT(GPTConfig(**TINY)), rng)
    model = GPT(GPTConfig(**TINY)).to(dtype=np.float64)
    model.load_state_dict(state)
    assert_bitwise(model, state)


@pytest.fixture
def safetensors():
    return oracle("safetensors.numpy")


def write_gpt2_float64(safetensors, model, path):
    """`model` (float64) as a GPT-2 folder whose model.safetensors holds float64 tensors."""
    model.save_pretrained(path)  # config.json (and float32 tensors, replaced next)
    state = model.state_dict()
    tensors = {k: np.ascontiguousarray(state[k].T if _is_conv1d(k) else state[k]) for k in gpt2_shapes(model.config)}
    safetensors.save_file(tensors, str(path / "model.safetensors"), metadata={"format": "pt"})


@pytest.mark.oracle
def test_gpt_from_a_float64_folder_is_float64_bit_for_bit(safetensors, tmp_path, rng):
    model = GPT(GPTConfig(**TINY))
    state = beyond_float32(model, rng)
    write_gpt2_float64(safetensors, model, tmp_path / "m")
    assert_bitwise(GPT.from_pretrained(tmp_path / "m", dtype=np.float64), state)
    assert_bitwise(GPT.from_pretrained(str(tmp_path / "m"), dtype="float64"), state)
    as32 = GPT.from_pretrained(tmp_path / "m")  # the default float32: the nearest float32s
    assert all(a.dtype == np.float32 and np.array_equal(a, state[k].astype(np.float32))
               for k, a in as32.state_dict().items())


@pytest.mark.oracle
def test_a_float32_folder_loaded_as_float64_is_the_exact_upcast(safetensors, tmp_path):
    model = GPT(GPTConfig(**TINY))
    model.save_pretrained(tmp_path / "m")
    wide = GPT.from_pretrained(tmp_path / "m", dtype=np.float64)
    assert_bitwise(wide, {k: a.astype(np.float64) for k, a in model.state_dict().items()})


@pytest.mark.oracle
def test_bert_from_a_float64_folder_is_float64_bit_for_bit(safetensors, tmp_path, rng):
    from tinygrad_lm.hf.bert import hf_shapes
    from tinygrad_lm.models.bert import BertConfig, BertForMaskedLM

    config = BertConfig(vocab_size=40, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=12, max_position_embeddings=16)
    model = BertForMaskedLM(config)
    state = beyond_float32(model, rng)
    model.save_pretrained(tmp_path / "m")
    safetensors.save_file({k: np.ascontiguousarray(state[k]) for k in hf_shapes(config)},
                          str(tmp_path / "m" / "model.safetensors"), metadata={"format": "pt"})
    assert_bitwise(BertForMaskedLM.from_pretrained(tmp_path / "m", dtype=np.float64), state)


@pytest.mark.oracle
def test_init_from_a_float64_folder_with_dtype_float64_starts_from_its_exact_weights(safetensors, tmp_path, rng):
    from tinygrad_lm.run.train import _pretrained
    from tinygrad_lm.tokenizer import BPETokenizer

    tok = BPETokenizer("gpt2", special_tokens=["<|endoftext|>"])
    tok.train(TEXT, 256 + 10 + 1)
    model = GPT(GPTConfig(**dict(TINY, vocab_size=tok.vocab_size)))
    state = beyond_float32(model, rng)
    model.save_pretrained(tmp_path / "m", tokenizer=tok)
    write_gpt2_float64(safetensors, model, tmp_path / "m")
    cfg = from_flat(TrainConfig, init_from=str(tmp_path / "m"), dtype="float64", block_size=16)
    _, pretrained, _ = _pretrained(cfg)
    for name, a in state.items():
        assert pretrained[name].dtype == np.float64 and np.array_equal(pretrained[name], a), name


def test_load_model_keeps_the_checkpoints_float64(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYGRAD_LM_CACHE", str(tmp_path / "cache"))
    (tmp_path / "corpus.txt").write_text(TEXT, encoding="utf-8")
    cfg = from_flat(TrainConfig, data=str(tmp_path / "corpus.txt"), tokenizer="char", dtype="float64", block_size=8,
                    n_layer=1, n_head=2, n_embd=8, batch_size=2, max_iters=2, eval_interval=2, eval_iters=1,
                    sample_tokens=0, quiet=True, out_dir=str(tmp_path / "run"))
    trained = train(cfg)["model"].state_dict()
    model, _, _ = load_model(tmp_path / "run" / "ckpt.npz")
    assert_bitwise(model, trained)

"""Hugging Face GPT-2 folders (hf/gpt2.py, hf/safetensors_io.py).

Without optional packages: the name and layout mapping (Conv1D weights transposed), config.json
validation, tensor validation and folder errors, and the ImportError when safetensors is
missing. With safetensors: save_pretrained -> from_pretrained is exact, bad files name the file
and the key. With transformers and torch (CPU) as oracles: a tiny random GPT2LMHeadModel built
and saved by transformers gives our logits (float32, 1e-5), transformers loads our folders and
gives our logits, ours -> HF -> ours is exact, and greedy generation (our KV cache) matches
transformers' generate.
"""
import json
import sys

import numpy as np
import pytest

from tinygrad_lm import fast
from tinygrad_lm.hf import safetensors_io as io
from tinygrad_lm.hf.gpt2 import config_from_hf, config_to_hf, hf_shapes, state_from_hf, state_to_hf
from tinygrad_lm.models.gpt import GPT, GPTConfig

from oracles import oracle  # tests/oracles.py

TINY = dict(vocab_size=50, block_size=16, n_layer=2, n_head=2, n_embd=8)


def tiny_gpt(**kw):
    return GPT(GPTConfig(**{**TINY, **kw}))


def hf_config(**changes):
    return {**config_to_hf(GPTConfig(**TINY)), **changes}


def logits_of(model, idx):
    model.eval()
    logits, _ = model(idx, targets=np.zeros_like(idx))  # targets: the logits of every position
    return logits.data


# ----------------------------------------------------------------- the mapping (NumPy only)
@pytest.mark.parametrize("tie", [True, False])
def test_state_round_trips_through_gpt2_layout(tie):
    model = tiny_gpt(tie_weights=tie)
    state = model.state_dict()
    hf = state_to_hf(state, model.config)
    assert set(hf) == set(hf_shapes(model.config)) and ("lm_head.weight" in hf) == (not tie)
    c_attn = "transformer.h.1.attn.c_attn.weight"
    assert hf[c_attn].shape == (8, 24) and np.array_equal(hf[c_attn], state[c_attn].T)  # Conv1D is (in, out)
    assert np.array_equal(hf["transformer.h.0.mlp.c_fc.weight"], state["transformer.h.0.mlp.c_fc.weight"].T)
    assert np.array_equal(hf["transformer.wte.weight"], state["transformer.wte.weight"])  # embeddings as they are
    back = state_from_hf(hf, model.config)
    assert set(back) == set(state)
    for name in state:
        assert np.array_equal(back[name], state[name]), name


def test_hub_names_without_prefix_and_mask_buffers_load():
    """The Hub's own gpt2 file: no `transformer.` prefix, and causal-mask buffers beside the weights."""
    model = tiny_gpt()
    hf = {k.removeprefix("transformer."): v for k, v in state_to_hf(model.state_dict(), model.config).items()}
    hf["h.0.attn.bias"] = np.tril(np.ones((1, 1, 16, 16), dtype=np.float32))
    hf["h.0.attn.masked_bias"] = np.float32(-1e4) * np.ones(())
    back = state_from_hf(hf, model.config)
    assert np.array_equal(back["transformer.h.0.attn.c_proj.weight"], model.state_dict()["transformer.h.0.attn.c_proj.weight"])


def test_config_round_trips():
    for cfg in (GPTConfig(**TINY), GPTConfig(**TINY, dropout=0.2, tie_weights=False)):
        assert GPTConfig(**config_from_hf(json.loads(json.dumps(config_to_hf(cfg))))) == cfg


@pytest.mark.parametrize("changes, message", [
    ({"model_type": "bert"}, "model_type is 'bert'"),
    ({"activation_function": "relu"}, "activation_function='relu' is not supported"),
    ({"layer_norm_epsilon": 1e-6}, "layer_norm_epsilon=1e-06 is not supported"),
    ({"n_inner": 20}, "n_inner=20 is not supported"),
    ({"n_layer": "2"}, "key 'n_layer' must be int"),
    ({"attn_pdrop": 0.3}, "dropouts .* differ"),
    ({"scale_attn_by_inverse_layer_idx": True}, "scale_attn_by_inverse_layer_idx=True is not supported"),
    ({"add_cross_attention": True}, "add_cross_attention=True"),
])
def test_unsupported_configs_name_the_file_and_the_key(changes, message):
    with pytest.raises(ValueError, match=r"^gpt2/config\.json: " + message):
        config_from_hf(hf_config(**changes), "gpt2/config.json")


def test_missing_config_keys_are_named():
    cfg = hf_config()
    del cfg["n_embd"]
    with pytest.raises(ValueError, match=r"config\.json: missing key 'n_embd'"):
        config_from_hf(cfg)
    cfg = hf_config()
    del cfg["n_positions"]
    assert config_from_hf({**cfg, "n_ctx": 16})["block_size"] == 16  # the old name still read


def test_sizes_our_config_refuses_name_the_file(tmp_path):
    """hf/ returns plain values; GPT.from_pretrained builds the GPTConfig, before reading any tensor."""
    (tmp_path / "config.json").write_text(json.dumps(hf_config(n_head=3)))
    with pytest.raises(ValueError, match=r"config\.json: GPTConfig: n_embd=8 must be divisible by n_head=3"):
        GPT.from_pretrained(tmp_path)


def test_bad_tensors_name_the_file_and_the_key():
    model = tiny_gpt()
    hf = state_to_hf(model.state_dict(), model.config)
    wrong = {**hf, "transformer.h.0.attn.c_attn.weight": hf["transformer.h.0.attn.c_attn.weight"].T}
    with pytest.raises(ValueError, match=r"f\.safetensors: .*mis-shaped \['transformer\.h\.0\.attn\.c_attn\.weight: "
                                         r"\(24, 8\), expected \(8, 24\)'\]"):
        state_from_hf(wrong, model.config, "f.safetensors")
    missing = {k: v for k, v in hf.items() if k != "transformer.ln_f.bias"}
    with pytest.raises(ValueError, match=r"missing \['transformer\.ln_f\.bias'\]"):
        state_from_hf(missing, model.config)
    with pytest.raises(ValueError, match=r"unexpected \['transformer\.h\.2\.ln_1\.weight'\]"):
        state_from_hf({**hf, "h.2.ln_1.weight": np.ones(8)}, model.config)


def test_models_gpt2_cannot_hold_are_refused(tmp_path):
    for cfg in (dict(bias=False), dict(pos_encoding="sinusoidal")):
        with pytest.raises(ValueError, match="GPT-2 has biases and learned positions"):
            tiny_gpt(**cfg).save_pretrained(tmp_path / "out")
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_bad_folders_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        GPT.from_pretrained(tmp_path / "nowhere")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        GPT.from_pretrained(tmp_path / "file")
    with pytest.raises(FileNotFoundError, match=r"config\.json: missing"):
        GPT.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("{oops")
    with pytest.raises(ValueError, match=r"config\.json: not valid JSON"):
        GPT.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"config\.json: expected a JSON object"):
        GPT.from_pretrained(tmp_path)


def test_without_safetensors_the_error_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "safetensors", None)  # makes `import safetensors` fail
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    io.write_config(tmp_path, hf_config())
    for call in (lambda: GPT.from_pretrained(tmp_path), lambda: tiny_gpt().save_pretrained(tmp_path / "out")):
        with pytest.raises(ImportError, match=r"needs the safetensors package: pip install -e \.\[hf\]"):
            call()


# ----------------------------------------------------------------- files (safetensors)
@pytest.fixture
def safetensors():
    return oracle("safetensors.numpy")


@pytest.mark.oracle
@pytest.mark.parametrize("fused", [False, True], ids=["reference", "fast"])
def test_save_pretrained_then_from_pretrained_is_exact(safetensors, tmp_path, rng, fused):
    model = tiny_gpt()
    if fused:
        fast.fuse(model)  # the same parameters: a fused model saves the same folder
    model.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    back = GPT.from_pretrained(tmp_path / "m")
    assert back.config == model.config and not back.training
    if fused:
        fast.fuse(back)
    for (name, a), (name_b, b) in zip(model.state_dict().items(), back.state_dict().items()):
        assert name == name_b and a.dtype == b.dtype == np.float32 and np.array_equal(a, b), name
    idx = rng.integers(0, 50, size=(2, 16))
    assert np.array_equal(logits_of(model, idx), logits_of(back, idx))


@pytest.mark.oracle
def test_bad_tensor_files_name_the_file(safetensors, tmp_path):
    model = tiny_gpt()
    model.save_pretrained(tmp_path)
    tensors = io.read_tensors(tmp_path)
    tensors["transformer.wpe.weight"] = tensors["transformer.wpe.weight"][:8]
    safetensors.save_file(tensors, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match=r"model\.safetensors: .*transformer\.wpe\.weight: \(8, 8\), expected \(16, 8\)"):
        GPT.from_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(ValueError, match=r"model\.safetensors: cannot read it as a safetensors file"):
        GPT.from_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    (tmp_path / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"model\.safetensors: missing \(found pytorch_model\.bin"):
        GPT.from_pretrained(tmp_path)


@pytest.mark.oracle
def test_the_tokenizer_is_written_beside_the_weights(safetensors, tmp_path):
    from tinygrad_lm.hf.gpt2 import load_tokenizer
    from tinygrad_lm.tokenizer import BPETokenizer

    tok = BPETokenizer("gpt2", special_tokens=["<|endoftext|>"])
    tok.train("a small text to train a small tokenizer on, a small one.\n" * 10, 256 + 20 + 1)
    model = tiny_gpt(vocab_size=tok.vocab_size)
    assert load_tokenizer(tmp_path) is None
    model.save_pretrained(tmp_path, tokenizer=tok)
    back = load_tokenizer(tmp_path)
    assert back.encode("a small tokenizer") == tok.encode("a small tokenizer")  # bytes 0..255 keep their ids here
    assert io.read_config(tmp_path)["eos_token_id"] == tok.special_tokens["<|endoftext|>"]
    gpt4 = BPETokenizer("gpt4")  # GPT-2's files hold no split pattern: transformers would split it differently
    gpt4.train("a small text", 256 + 3)
    with pytest.raises(ValueError, match="cannot hold BPETokenizer.*GPT-2's split pattern"):
        tiny_gpt(vocab_size=gpt4.vocab_size).save_pretrained(tmp_path / "gpt4", tokenizer=gpt4)
    assert not (tmp_path / "gpt4").exists()


# ----------------------------------------------------------------- transformers (and torch) as the oracle
@pytest.fixture
def transformers(safetensors):
    oracle("torch")
    return oracle("transformers")


def hf_tiny(transformers, tmp_path, tie=True):
    import torch

    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=50, n_positions=16, n_embd=8, n_layer=2, n_head=2,
                                  tie_word_embeddings=tie)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    if not tie:  # an untied head must differ from the embeddings, or the test could not tell
        torch.nn.init.normal_(model.lm_head.weight, std=0.02)
    model.save_pretrained(tmp_path / "hf")
    return model


def hf_logits(hf_model, idx):
    import torch

    with torch.no_grad():
        return hf_model(torch.tensor(idx)).logits.numpy()


@pytest.mark.oracle
@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
def test_our_logits_equal_transformers_logits(transformers, tmp_path, rng, tie):
    theirs = hf_tiny(transformers, tmp_path, tie)
    ours = GPT.from_pretrained(tmp_path / "hf")
    assert ours.config.tie_weights == tie
    idx = rng.integers(0, 50, size=(3, 16))
    np.testing.assert_allclose(logits_of(ours, idx), hf_logits(theirs, idx), rtol=0, atol=1e-5)


@pytest.mark.oracle
@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
def test_transformers_loads_our_folder_and_gives_our_logits(transformers, tmp_path, rng, tie):
    ours = tiny_gpt(tie_weights=tie)
    ours.save_pretrained(tmp_path / "ours")
    theirs = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "ours").eval()
    idx = rng.integers(0, 50, size=(3, 16))
    np.testing.assert_allclose(hf_logits(theirs, idx), logits_of(ours, idx), rtol=0, atol=1e-5)


@pytest.mark.oracle
def test_ours_to_transformers_to_ours_is_exact(transformers, tmp_path):
    ours = tiny_gpt()
    ours.save_pretrained(tmp_path / "ours")
    transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "ours").save_pretrained(tmp_path / "hf")
    back = GPT.from_pretrained(tmp_path / "hf")
    for (name, a), b in zip(ours.state_dict().items(), back.state_dict().values()):
        assert np.array_equal(a, b), name


@pytest.mark.oracle
@pytest.mark.parametrize("fused", [False, True], ids=["reference", "fast"])
def test_greedy_generation_matches_transformers_generate(transformers, tmp_path, rng, fused):
    import torch

    theirs = hf_tiny(transformers, tmp_path)
    ours = GPT.from_pretrained(tmp_path / "hf")
    if fused:
        fast.fuse(ours)
    prompt = rng.integers(0, 50, size=(1, 4))
    with torch.no_grad():
        expected = theirs.generate(torch.tensor(prompt), max_new_tokens=10, do_sample=False,
                                   pad_token_id=0).numpy()
    np.testing.assert_array_equal(ours.generate(prompt, 10, temperature=0), expected)


@pytest.mark.oracle
def test_transformers_reads_the_tokenizer_files_we_write(transformers, tmp_path):
    from tinygrad_lm.tokenizer import BPETokenizer

    text = "ROMEO: But soft, what light through yonder window breaks? It is the east.\n" * 20
    tok = BPETokenizer("gpt2", special_tokens=["<|endoftext|>"])
    tok.train(text, 256 + 60 + 1)
    tiny_gpt(vocab_size=tok.vocab_size).save_pretrained(tmp_path, tokenizer=tok)
    hf = transformers.AutoTokenizer.from_pretrained(tmp_path)
    for sample in (text, "What light? Yonder east, ROMEO!", "  spaces  and\nnew lines\n\n", "héllo wörld"):
        assert hf(sample).input_ids == tok.encode(sample)

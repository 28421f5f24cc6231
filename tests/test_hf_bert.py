"""Hugging Face BERT folders (hf/bert.py, through the shared hf/safetensors_io.py).

Without optional packages: the mapping (tied tensors written once, the pooler optional, old
gamma/beta names), config.json validation and tensor validation naming the file and the key.
With safetensors: save_pretrained -> from_pretrained is exact (reference and fused models).
With transformers and torch (CPU) as oracles: a tiny random `transformers.BertForMaskedLM`
gives our MLM logits within float32 1e-5 on a padded batch with token types, transformers
loads our folder and gives our logits (and BertModel our pooler's output), and
ours -> transformers -> ours is exact.
"""
import json

import numpy as np
import pytest

from tinygrad_lm import fast, manual_seed
from tinygrad_lm.models.bert import BertConfig, BertForMaskedLM
from tinygrad_lm.hf import safetensors_io as io
from tinygrad_lm.hf.bert import config_from_hf, config_to_hf, hf_shapes, state_from_hf, state_to_hf

from oracles import oracle  # tests/oracles.py

TINY = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
            max_position_embeddings=16)


def tiny_bert(seed=0, scale=0.2):
    """Our tiny model with weights far from the 0.02 init, so the logits are O(1) and differ per token."""
    manual_seed(seed)
    model = BertForMaskedLM(BertConfig(**TINY))
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.data = (p.data + rng.standard_normal(p.shape) * scale).astype(np.float32)
    return model.eval()


def padded_batch(rng):
    idx = rng.integers(1, 99, size=(3, 9))
    types = (np.arange(9)[None, :] >= rng.integers(2, 7, size=(3, 1))).astype(np.int64)  # segment A then B
    mask = np.ones((3, 9), dtype=np.int64)
    mask[1, 6:] = 0
    mask[2, 3:] = 0
    return np.where(mask == 1, idx, 0), mask, types * mask


def logits_of(model, idx, mask, types):
    return model(idx, mask, types)[0].data


# ----------------------------------------------------------------- the mapping (NumPy only)
def test_state_round_trips_with_tied_tensors_written_once():
    model = tiny_bert()
    state = model.state_dict()
    hf = state_to_hf(state, model.config)
    assert "cls.predictions.decoder.weight" not in hf and "cls.predictions.decoder.bias" not in hf
    assert set(hf) == set(hf_shapes(model.config)) and "bert.pooler.dense.weight" in hf
    back, has_pooler = state_from_hf(hf, model.config)
    assert has_pooler and set(back) == set(state)
    assert all(np.array_equal(back[k], v) for k, v in state.items())


def test_old_names_the_nsp_head_and_no_pooler_load():
    """bert-base-uncased's file: LayerNorm gamma/beta, the next-sentence head, a position_ids buffer."""
    model = tiny_bert()
    hf = state_to_hf(model.state_dict(), model.config)
    old = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
           for k, v in hf.items() if not k.startswith("bert.pooler.")}
    old.update({"cls.seq_relationship.weight": np.zeros((2, 32), np.float32),
                "bert.embeddings.position_ids": np.arange(16)[None]})
    back, has_pooler = state_from_hf(old, model.config)
    assert not has_pooler and "bert.pooler.dense.weight" not in back
    assert np.array_equal(back["bert.embeddings.LayerNorm.weight"], hf["bert.embeddings.LayerNorm.weight"])


def test_config_round_trips():
    c = BertConfig(**TINY, hidden_dropout_prob=0.05, layer_norm_eps=1e-7, pad_token_id=3)
    hf = config_to_hf(c)
    assert hf["model_type"] == "bert" and hf["hidden_act"] == "gelu" and hf["hidden_size"] == 32
    assert BertConfig(**config_from_hf(hf)) == c


@pytest.mark.parametrize("changes, message", [
    ({"model_type": "gpt2"}, r"config\.json: model_type is 'gpt2'; only 'bert'"),
    ({"hidden_act": "relu"}, r"config\.json: hidden_act='relu' is not supported"),
    ({"hidden_act": "gelu_new"}, r"config\.json: hidden_act='gelu_new' is not supported"),
    ({"position_embedding_type": "relative_key"}, r"position_embedding_type='relative_key' is not supported"),
    ({"is_decoder": True}, r"is_decoder=True is not supported"),
    ({"tie_word_embeddings": False}, r"tie_word_embeddings=False is not supported"),
    ({"hidden_size": "32"}, r"config\.json: key 'hidden_size' must be int"),
])
def test_unsupported_configs_name_the_file_and_the_key(changes, message):
    with pytest.raises(ValueError, match=message):
        config_from_hf({**config_to_hf(BertConfig(**TINY)), **changes})


def test_sizes_our_config_refuses_name_the_file(tmp_path):
    """hf/ returns plain values; from_pretrained builds the BertConfig, before reading any tensor."""
    (tmp_path / "config.json").write_text(json.dumps({**config_to_hf(BertConfig(**TINY)), "num_attention_heads": 5}))
    with pytest.raises(ValueError, match=r"config\.json: BertConfig: hidden_size=32 must be divisible"):
        BertForMaskedLM.from_pretrained(tmp_path)


def test_missing_config_keys_are_named():
    hf = config_to_hf(BertConfig(**TINY))
    del hf["intermediate_size"]
    with pytest.raises(ValueError, match=r"my/config\.json: missing key 'intermediate_size'"):
        config_from_hf(hf, "my/config.json")


def test_bad_tensors_name_the_file_and_the_key():
    model = tiny_bert()
    hf = state_to_hf(model.state_dict(), model.config)
    del hf["bert.encoder.layer.1.attention.self.key.bias"]
    hf["cls.predictions.bias"] = hf["cls.predictions.bias"][:50]
    with pytest.raises(ValueError, match=r"m/model\.safetensors: .*missing \['bert\.encoder\.layer\.1\.attention\.self"
                                         r"\.key\.bias'\].*cls\.predictions\.bias: \(50,\), expected \(99,\)"):
        state_from_hf(hf, model.config, "m/model.safetensors")


# ----------------------------------------------------------------- files (safetensors)
@pytest.fixture
def safetensors():
    return oracle("safetensors.numpy")


@pytest.mark.oracle
@pytest.mark.parametrize("fused", [False, True], ids=["reference", "fast"])
def test_save_pretrained_then_from_pretrained_is_exact(safetensors, tmp_path, rng, fused):
    model = tiny_bert()
    if fused:
        fast.fuse(model)
    model.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    back = BertForMaskedLM.from_pretrained(tmp_path / "m")
    assert back.config == model.config and not back.training
    if fused:
        fast.fuse(back)  # the same kernels on both sides: equal bit for bit
    assert back.cls.predictions.decoder.weight is back.bert.embeddings.word_embeddings.weight
    for (name, a), (name_b, b) in zip(model.state_dict().items(), back.state_dict().items()):
        assert name == name_b and a.dtype == b.dtype == np.float32 and np.array_equal(a, b), name
    args = padded_batch(rng)
    assert np.array_equal(logits_of(model, *args), logits_of(back, *args))


@pytest.mark.oracle
def test_bad_files_name_the_file_and_the_key(safetensors, tmp_path):
    tiny_bert().save_pretrained(tmp_path)
    tensors = io.read_tensors(tmp_path)
    del tensors["bert.embeddings.token_type_embeddings.weight"]
    safetensors.save_file(tensors, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match=r"model\.safetensors: .*missing \['bert\.embeddings\.token_type_embeddings"):
        BertForMaskedLM.from_pretrained(tmp_path)
    io.write_config(tmp_path, {**io.read_config(tmp_path), "model_type": "roberta"})
    with pytest.raises(ValueError, match=r"config\.json: model_type is 'roberta'"):
        BertForMaskedLM.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"nowhere: no such folder"):
        BertForMaskedLM.from_pretrained(tmp_path / "nowhere")


# ----------------------------------------------------------------- transformers (and torch) as the oracle
@pytest.fixture
def transformers(safetensors):
    oracle("torch")
    return oracle("transformers")


def hf_tiny(transformers, tmp_path):
    """A transformers BertForMaskedLM with random weights far from its 0.02 init, saved to tmp_path/hf."""
    import torch

    torch.manual_seed(0)
    cfg = transformers.BertConfig(**TINY, type_vocab_size=2)
    model = transformers.BertForMaskedLM(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    model.save_pretrained(tmp_path / "hf")
    return model


def hf_logits(hf_model, idx, mask, types):
    import torch

    with torch.no_grad():
        out = hf_model(input_ids=torch.tensor(idx), attention_mask=torch.tensor(mask),
                       token_type_ids=torch.tensor(types))
    return out.logits.numpy()


@pytest.mark.oracle
@pytest.mark.parametrize("fused", [False, True], ids=["reference", "fast"])
def test_our_logits_equal_transformers_logits_on_a_padded_batch(transformers, tmp_path, rng, fused):
    theirs = hf_tiny(transformers, tmp_path)
    ours = BertForMaskedLM.from_pretrained(tmp_path / "hf")
    if fused:
        fast.fuse(ours)
    args = padded_batch(rng)
    want = hf_logits(theirs, *args)
    assert np.abs(want).max() > 1.0  # logits large enough for 1e-5 to mean something
    np.testing.assert_allclose(logits_of(ours, *args), want, rtol=0, atol=1e-5)


@pytest.mark.oracle
def test_transformers_loads_our_folder_with_equal_logits_and_pooler(transformers, tmp_path, rng):
    import torch

    ours = tiny_bert()
    ours.save_pretrained(tmp_path / "ours")
    theirs = transformers.BertForMaskedLM.from_pretrained(tmp_path / "ours").eval()
    idx, mask, types = padded_batch(rng)
    np.testing.assert_allclose(hf_logits(theirs, idx, mask, types), logits_of(ours, idx, mask, types),
                               rtol=0, atol=1e-5)
    encoder = transformers.BertModel.from_pretrained(tmp_path / "ours").eval()  # has a pooler: ours loads into it
    with torch.no_grad():
        pooled = encoder(input_ids=torch.tensor(idx), attention_mask=torch.tensor(mask),
                         token_type_ids=torch.tensor(types)).pooler_output.numpy()
    np.testing.assert_allclose(pooled, ours.bert(idx, mask, types)[1].data, rtol=0, atol=1e-5)


@pytest.mark.oracle
def test_ours_to_transformers_to_ours_is_exact(transformers, tmp_path):
    ours = tiny_bert()
    ours.save_pretrained(tmp_path / "ours")
    transformers.BertForMaskedLM.from_pretrained(tmp_path / "ours").save_pretrained(tmp_path / "hf")
    back = BertForMaskedLM.from_pretrained(tmp_path / "hf")  # transformers' MLM model has no pooler to write
    for (name, a), b in zip(ours.state_dict().items(), back.state_dict().values()):
        if not name.startswith("bert.pooler."):
            assert np.array_equal(a, b), name

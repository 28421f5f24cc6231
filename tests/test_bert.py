"""The BERT encoder and its MLM head (tinygrad_lm/models/bert.py) and the erf ops under them (ops/erf.py):
gradients against finite differences in float64, erf against math.erf, padding that leaves the
real positions alone, the Hugging Face layout (names, shapes, tying), the fast path pinned to the
reference, and clear errors for bad input. The comparison with transformers is test_hf_bert.py.
"""
import math

import numpy as np
import pytest

from tinygrad_lm import Tensor, fast, manual_seed
from tinygrad_lm.engine import backend, functional as F
from tinygrad_lm.models.bert import IGNORE_INDEX, Bert, BertConfig, BertForMaskedLM
from tinygrad_lm.nn import SelfAttention
from tinygrad_lm.engine.ops import erf, gelu_erf
from tinygrad_lm.engine.ops.erf import erf_array
from tinygrad_lm.testing import check_against, check_gradients
from tinygrad_lm.testing.backends import cuda_devices

TINY = dict(vocab_size=13, hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=12,
            max_position_embeddings=7, type_vocab_size=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def tiny(cls=BertForMaskedLM, seed=0, **kw):
    """A tiny float64 model whose weights are large enough that every path matters (not 0.02-small)."""
    manual_seed(seed)
    model = cls(BertConfig(**{**TINY, **kw}))
    rng = np.random.default_rng(seed)
    for name, p in model.named_parameters():
        p.data = (p.data + rng.standard_normal(p.shape) * 0.3).astype(np.float64)
    return model.to(dtype=np.float64)


def batch(seed=0, B=2, T=5, V=13):
    rng = np.random.default_rng(seed)
    idx = rng.integers(1, V, (B, T))
    types = rng.integers(0, 2, (B, T))
    mask = np.ones((B, T), dtype=np.int64)
    mask[1, 3:] = 0  # the second row is right-padded
    idx[1, 3:] = 0
    return idx, mask, types


# ----------------------------------------------------------------- erf and the exact GELU

def test_erf_is_within_1e_14_of_math_erf_over_the_whole_range():
    x = np.concatenate([np.linspace(-8, 8, 40001), [0.0, 1e-300, 2.0, -2.0, 6.0, 2 + 1e-12, 30.0, -1e4]])
    want = np.array([math.erf(v) for v in x])
    assert np.abs(erf_array(x) - want).max() < 1e-14
    assert np.array_equal(erf_array(np.array([np.inf, -np.inf])), [1.0, -1.0])
    assert np.isnan(erf_array(np.array([np.nan]))).all()


def test_erf_keeps_float32_and_is_accurate_to_float32():
    x = np.random.default_rng(0).standard_normal(1000).astype(np.float32) * 3
    y = erf_array(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, [math.erf(v) for v in x.astype(np.float64)], atol=3e-7)


@pytest.mark.parametrize("op", [erf, gelu_erf])
def test_erf_ops_gradcheck(op):
    x = np.random.default_rng(1).standard_normal((3, 5)) * 2.5  # both series (|x| <= 2 and beyond)
    assert check_gradients(op, x)


def test_exact_gelu_is_x_times_the_normal_cdf_and_F_gelu_selects_it():
    x = np.linspace(-7, 7, 301)
    want = np.array([v * 0.5 * (1 + math.erf(v / math.sqrt(2))) for v in x])
    # atol: erf is within 1e-14, and 1 + erf cancels for negative x (times |x| / 2 <= 3.5)
    np.testing.assert_allclose(gelu_erf(Tensor(x)).data, want, rtol=1e-13, atol=2e-14)
    np.testing.assert_allclose(F.gelu(Tensor(x), approximate="none").data, want, rtol=1e-13, atol=2e-14)
    tanh = F.gelu(Tensor(x)).data  # the default stays GPT-2's tanh approximation
    assert 1e-5 < np.abs(tanh - want).max() < 1e-3
    with pytest.raises(ValueError, match="approximate must be 'tanh' or 'none'"):
        F.gelu(Tensor(x), approximate="erf")


# ----------------------------------------------------------------- gradients of the model

def test_encoder_gradcheck_with_padding_mask_and_token_types():
    model = tiny(Bert)
    idx, mask, types = batch()
    assert check_gradients(lambda: model(idx, mask, types), params=dict(model.named_parameters()))


def test_masked_lm_loss_gradcheck_with_ignored_labels():
    model = tiny(num_hidden_layers=1)  # the head and the loss; the layers are checked above
    idx, mask, types = batch(1)
    labels = np.full(idx.shape, IGNORE_INDEX)
    labels[0, [0, 2]] = [4, 7]
    labels[1, 1] = 12
    assert check_gradients(lambda: model(idx, mask, types, labels=labels)[1], params=dict(model.named_parameters()))


def test_the_loss_is_the_mean_over_labelled_positions_only():
    model = tiny()
    idx, mask, types = batch(2)
    labels = np.full(idx.shape, IGNORE_INDEX)
    labels[0, 1], labels[1, 2] = 3, 9
    logits, loss = model(idx, mask, types, labels=labels)
    z = logits.data
    logp = z - np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True)) - z.max(-1, keepdims=True)
    assert loss.item() == pytest.approx(-(logp[0, 1, 3] + logp[1, 2, 9]) / 2, rel=1e-12)
    assert model(idx, mask, types)[1] is None


# ----------------------------------------------------------------- padding and attention

def test_right_padding_leaves_the_real_positions_unchanged():
    model = tiny(Bert)
    rng = np.random.default_rng(3)
    real = rng.integers(1, 13, (1, 4))
    types = rng.integers(0, 2, (1, 4))
    seq, pooled = model(real, np.ones((1, 4)), types)
    padded = np.concatenate([real, np.zeros((1, 3), dtype=real.dtype)], axis=1)  # three [PAD] (id 0)
    padded_types = np.concatenate([types, np.zeros((1, 3), dtype=types.dtype)], axis=1)
    mask = np.array([[1, 1, 1, 1, 0, 0, 0]])
    seq_p, pooled_p = model(padded, mask, padded_types)
    np.testing.assert_allclose(seq_p.data[:, :4], seq.data, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(pooled_p.data, pooled.data, rtol=1e-12, atol=1e-13)
    unmasked, _ = model(padded, None, padded_types)  # without the mask the padding does leak in
    assert np.abs(unmasked.data[:, :4] - seq.data).max() > 1e-3


def test_attention_is_bidirectional_and_an_all_padding_row_gives_zeros_not_nan():
    manual_seed(0)
    attn = SelfAttention(8, 2).to(dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((2, 4, 8))
    y0 = attn(Tensor(x)).data
    x2 = x.copy()
    x2[:, 3] += 1.0  # change the last token: the first one's output changes too (no causal mask)
    assert np.abs(attn(Tensor(x2)).data[:, 0] - y0[:, 0]).max() > 1e-6
    y = attn(Tensor(x), np.array([[1, 1, 0, 0], [0, 0, 0, 0]])).data
    assert np.isfinite(y).all() and np.array_equal(y[1], np.zeros((4, 8)))


def numpy_bert_attention(attention, x, key_mask=None):
    """BertAttention written out in NumPy float64, one head at a time: query/key/value, softmax of
    q k^T / sqrt(hs) over the real keys of the row (no causal mask), the heads side by side, then
    the output dense, the residual and the post-LN. Returns (self-attention output, layer output)."""
    sa, out = attention.self, attention.output
    B, T, C = x.shape
    hs = C // sa.num_heads

    def linear(layer, a):
        return a @ layer.weight.data.T + layer.bias.data

    q, k, v = linear(sa.query, x), linear(sa.key, x), linear(sa.value, x)  # (B, T, C) each
    y = np.zeros((B, T, C))
    for b in range(B):
        real = np.ones(T, dtype=bool) if key_mask is None else key_mask[b].astype(bool)
        if not real.any():
            continue  # no real key in the row: zero weights, a zero output
        for h in range(sa.num_heads):
            cols = slice(h * hs, (h + 1) * hs)
            s = q[b, :, cols] @ k[b][real][:, cols].T / math.sqrt(hs)  # (T, real keys)
            w = np.exp(s - s.max(-1, keepdims=True))
            y[b, :, cols] = (w / w.sum(-1, keepdims=True)) @ v[b][real][:, cols]
    r = x + linear(out.dense, y)  # (B, T, C)
    ln = out.LayerNorm
    normed = (r - r.mean(-1, keepdims=True)) / np.sqrt(r.var(-1, keepdims=True) + ln.eps)
    return y, normed * ln.weight.data + ln.bias.data


@pytest.mark.parametrize("fused", [False, True], ids=["reference", "fast"])
@pytest.mark.parametrize("heads", [1, 2, 4])  # head sizes 8, 4, 2: a 1/hs scale differs from 1/sqrt(hs) in each
def test_attention_matches_a_numpy_bert_self_attention(heads, fused):
    attention = tiny(Bert, num_attention_heads=heads).encoder.layer[0].attention
    if fused:
        fast.fuse(attention)  # BERT keeps the reference attention; its Linear and LayerNorm layers are fused
    x = np.random.default_rng(1).standard_normal((3, 5, 8))
    mask = np.array([[1, 1, 1, 1, 1], [1, 0, 1, 1, 0], [0, 0, 0, 0, 0]])  # full, holes, all padding
    for key_mask in (None, mask):
        want_self, want = numpy_bert_attention(attention, x, key_mask)
        np.testing.assert_allclose(attention.self(Tensor(x), key_mask).data, want_self, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(attention(Tensor(x), key_mask).data, want, rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------- layout, tying, init

def test_parameter_names_shapes_and_tying_follow_hugging_face():
    model = BertForMaskedLM(BertConfig(**TINY))
    state = model.state_dict()
    C, V, I = 8, 13, 12
    assert state["bert.embeddings.word_embeddings.weight"].shape == (V, C)
    assert state["bert.embeddings.position_embeddings.weight"].shape == (7, C)
    assert state["bert.embeddings.token_type_embeddings.weight"].shape == (2, C)
    assert state["bert.encoder.layer.1.attention.self.query.weight"].shape == (C, C)
    assert state["bert.encoder.layer.1.attention.output.LayerNorm.bias"].shape == (C,)
    assert state["bert.encoder.layer.0.intermediate.dense.weight"].shape == (I, C)  # (out, in), as nn.Linear
    assert state["bert.encoder.layer.0.output.dense.weight"].shape == (C, I)
    assert state["bert.pooler.dense.weight"].shape == (C, C)
    assert state["cls.predictions.transform.LayerNorm.weight"].shape == (C,)
    assert state["cls.predictions.bias"].shape == (V,)
    pred = model.cls.predictions
    assert pred.decoder.weight is model.bert.embeddings.word_embeddings.weight
    assert pred.decoder.bias is pred.bias
    assert "cls.predictions.decoder.weight" in state and "cls.predictions.decoder.bias" in state
    n_layer = 2 * (4 * (C * C + C) + 2 * 2 * C + (I * C + I) + (C * I + C))
    n_emb = V * C + 7 * C + 2 * C + 2 * C
    assert model.num_params() == n_emb + n_layer + (C * C + C) + (C * C + C + 2 * C + V)
    fresh = BertForMaskedLM(BertConfig(**TINY))
    fresh.load_state_dict(state)
    assert all(np.array_equal(fresh.state_dict()[k], v) for k, v in state.items())


def test_init_is_berts():
    manual_seed(1)
    model = BertForMaskedLM(BertConfig(**{**TINY, "vocab_size": 500, "hidden_size": 64, "num_attention_heads": 4}))
    wte = model.bert.embeddings.word_embeddings.weight.data
    assert np.array_equal(wte[0], np.zeros(64))  # the [PAD] row
    assert wte[1:].std() == pytest.approx(0.02, rel=0.05)
    assert model.bert.encoder.layer[0].intermediate.dense.weight.data.std() == pytest.approx(0.02, rel=0.1)
    assert np.array_equal(model.bert.encoder.layer[1].output.LayerNorm.weight.data, np.ones(64))
    assert not model.cls.predictions.bias.data.any() and not model.bert.pooler.dense.bias.data.any()


def test_config_round_trips_and_refuses_bad_values():
    c = BertConfig(**TINY)
    assert BertConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="unknown keys \\['n_embd'\\]"):
        BertConfig.from_dict({**c.to_dict(), "n_embd": 8})
    with pytest.raises(ValueError, match="divisible"):
        BertConfig(hidden_size=10, num_attention_heads=4)
    with pytest.raises(ValueError, match="pad_token_id"):
        BertConfig(vocab_size=5, pad_token_id=5)


def test_bad_inputs_get_clear_errors():
    model = tiny()
    idx, mask, types = batch()
    with pytest.raises(ValueError, match="exceeds max_position_embeddings 7"):
        model(np.ones((1, 8), dtype=np.int64))
    with pytest.raises(ValueError, match=r"token_type_ids must have the shape of the token ids \(2, 5\)"):
        model(idx, mask, types[:, :4])
    with pytest.raises(ValueError, match=r"attention_mask must have the shape"):
        model(idx, mask[:1], types)
    with pytest.raises(ValueError, match="integer token ids of shape"):
        model(idx.astype(float))
    with pytest.raises(IndexError, match="out of range for 2 rows"):
        model(idx, mask, types + 1)


# ----------------------------------------------------------------- the fast path

def test_fuse_leaves_berts_attention_and_gelu_to_the_reference():
    model = fast.fuse(tiny())
    kinds = {type(m).__name__ for m in model.modules()}
    assert {"FusedLinear", "FusedEmbedding", "FusedLayerNorm", "FusedCrossEntropyLoss"} <= kinds
    assert "SelfAttention" in kinds and "FusedSelfAttention" not in kinds  # GPT-2's packed kernel is not BERT's
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_fused_bert_equals_the_reference_logits_loss_and_every_gradient(dropout):
    kw = dict(hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    ref, fused = tiny(**kw), tiny(**kw)
    fast.fuse(fused)
    idx, mask, types = batch(4)
    labels = np.where(np.random.default_rng(5).random(idx.shape) < 0.5, idx, IGNORE_INDEX)
    labels[0, 0] = 2

    def run(model):
        def fn(idx, labels):
            manual_seed(9)  # dropout masks come from the global generator: the same stream on both sides
            return model(idx, mask, types, labels=labels)
        return fn

    check_against(run(fused), run(ref), idx, labels, atol=1e-11, rtol=1e-9,
                  params=(dict(fused.named_parameters()), dict(ref.named_parameters())))


@pytest.mark.parametrize("labelled_rows", [(0, 1, 3), (0, 1)], ids=["every-slice", "a-slice-without-labels"])
def test_the_thread_split_gives_the_reference_loss_and_gradients(labelled_rows):
    """`train --threads 2` wraps the fused model in DataParallel: each half of the batch in a thread."""
    ref, par = tiny(), fast.fuse(tiny())
    split = fast.DataParallel(par, 2)
    idx, mask, types = batch(4, B=4)
    labels = np.full(idx.shape, IGNORE_INDEX)
    for r in labelled_rows:
        labels[r, r % 3] = 3 + r
    _, loss = ref(idx, mask, types, labels=labels)
    loss.backward()
    _, split_loss = split(idx, mask, types, labels=labels)
    split_loss.backward()
    assert split_loss.item() == pytest.approx(loss.item(), rel=1e-12)
    for (name, p), q in zip(ref.named_parameters(), par.parameters()):
        if p.grad is not None:  # the pooler is not part of the MLM loss
            np.testing.assert_allclose(q.grad, p.grad, rtol=1e-9, atol=1e-13, err_msg=name)


# ----------------------------------------------------------------- on the GPU (or the CuPy stand-in)

@pytest.mark.parametrize("device", cuda_devices())
@pytest.mark.parametrize("fused", [False, True], ids=["reference", "fast"])
def test_bert_on_the_device_gives_the_hosts_logits_loss_and_gradients(device, fused):
    host, dev = tiny(), tiny().to(device=device)
    if fused:
        fast.fuse(host), fast.fuse(dev)
    idx, mask, types = batch(6)
    labels = np.where(np.random.default_rng(6).random(idx.shape) < 0.5, idx, IGNORE_INDEX)
    labels[0, 0] = 1
    logits, loss = host(idx, mask, types, labels=labels)
    loss.backward()
    on = lambda a: backend.to_device(a, device)  # noqa: E731
    dev_logits, dev_loss = dev(on(idx), on(mask), on(types), labels=on(labels))
    dev_loss.backward()
    assert dev_logits.device == "cuda"
    np.testing.assert_allclose(backend.to_device(dev_logits.data, "cpu"), logits.data, rtol=1e-10, atol=1e-12)
    assert dev_loss.item() == pytest.approx(loss.item(), rel=1e-10)
    for (name, p), q in zip(host.named_parameters(), dev.parameters()):
        if p.grad is not None:
            np.testing.assert_allclose(backend.to_device(q.grad, "cpu"), p.grad, rtol=1e-9, atol=1e-12, err_msg=name)

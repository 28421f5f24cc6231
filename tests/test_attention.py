"""CausalSelfAttention and Block, reference and fused (`fast.fuse`): causality, the key-padding
mask, dropout in train/eval mode, 1/sqrt(head_dim) scaling against a hand-written NumPy
multi-head attention, and errors.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_lm
from tinygrad_lm import Tensor, fast, nn

BOTH = pytest.mark.parametrize("fused", [False, True], ids=["reference", "fast"])


def impl(module, fused):
    return fast.fuse(module) if fused else module


def numpy_attention(attn, x, key_mask=None):
    """CausalSelfAttention written out with NumPy loops over heads (eval mode, float64)."""
    B, T, C = x.shape
    nh, hs = attn.n_head, C // attn.n_head
    qkv = x @ attn.c_attn.weight.data.T + attn.c_attn.bias.data  # (B, T, 3C)
    q, k, v = qkv[..., :C], qkv[..., C:2 * C], qkv[..., 2 * C:]
    y = np.zeros((B, T, C))
    for b in range(B):
        for h in range(nh):
            sl = slice(h * hs, (h + 1) * hs)
            s = q[b, :, sl] @ k[b, :, sl].T / np.sqrt(hs)  # (T, T)
            allowed = np.tril(np.ones((T, T), dtype=bool))
            if key_mask is not None:
                allowed &= key_mask[b][None, :].astype(bool)
            s = np.where(allowed, s, -np.inf)
            m = s.max(-1, keepdims=True)
            w = np.where(allowed, np.exp(s - np.where(np.isfinite(m), m, 0)), 0)
            w /= np.maximum(w.sum(-1, keepdims=True), 1e-300)
            y[b, :, sl] = w @ v[b, :, sl]
    return y @ attn.c_proj.weight.data.T + attn.c_proj.bias.data


def f64_attention(C=8, n_head=2, dropout=0.0, fused=False):
    return impl(nn.CausalSelfAttention(C, n_head, dropout=dropout).to(dtype=np.float64), fused)


@BOTH
@pytest.mark.parametrize("n_head", [1, 2, 4])
def test_attention_matches_numpy_multi_head_attention(rng, n_head, fused):
    attn = f64_attention(8, n_head, fused=fused).eval()
    x = rng.standard_normal((2, 5, 8))
    np.testing.assert_allclose(attn(Tensor(x)).data, numpy_attention(attn, x), rtol=1e-10, atol=1e-12)
    mask = np.array([[1, 1, 0, 1, 0], [0, 1, 1, 1, 1]])
    np.testing.assert_allclose(attn(Tensor(x), mask).data, numpy_attention(attn, x, mask), rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------- causality
@BOTH
@settings(max_examples=15, deadline=None)
@given(B=st.integers(1, 2), T=st.integers(2, 6), C=st.sampled_from([4, 8]), n_head=st.sampled_from([1, 2, 4]),
       t=st.integers(0, 5), data=st.data())
def test_changing_position_t_changes_no_output_before_t(fused, B, T, C, n_head, t, data):
    t = t % T
    seed = data.draw(st.integers(0, 2 ** 16))
    rng = np.random.default_rng(seed)
    tinygrad_lm.manual_seed(seed)
    for module in (nn.CausalSelfAttention(C, n_head), nn.Block(C, n_head)):
        impl(module, fused).to(dtype=np.float64).eval()
        x = rng.standard_normal((B, T, C))
        x2 = x.copy()
        x2[:, t] += rng.standard_normal((B, C)) * 3
        y, y2 = module(Tensor(x)).data, module(Tensor(x2)).data
        np.testing.assert_allclose(y[:, :t], y2[:, :t], rtol=0, atol=1e-13)  # no leak at all
        assert np.abs(y[:, t:] - y2[:, t:]).max() > 1e-6  # and position t itself does change


def test_gradient_of_an_output_reaches_no_later_input(rng):
    block = nn.Block(8, 2).to(dtype=np.float64)
    x = Tensor(rng.standard_normal((1, 6, 8)), requires_grad=True)
    y = block(x)
    gy = np.zeros(y.shape)
    gy[0, 2] = 1.0  # only output position 2
    y.backward(grad=gy)
    assert np.all(x.grad[0, 3:] == 0) and np.all(np.abs(x.grad[0, :3]).sum(-1) > 0)


# ----------------------------------------------------------------- key-padding mask
@BOTH
@settings(max_examples=15, deadline=None)
@given(B=st.integers(1, 2), T=st.integers(2, 6), n_head=st.sampled_from([1, 2]), data=st.data())
def test_padded_keys_do_not_influence_real_positions(fused, B, T, n_head, data):
    mask = np.array(data.draw(st.lists(st.lists(st.booleans(), min_size=T, max_size=T), min_size=B, max_size=B)))
    mask[:, 0] = True  # keep one real token per row
    rng = np.random.default_rng(T * 10 + B)
    for module in (f64_attention(8, n_head, fused=fused).eval(),
                   impl(nn.Block(8, n_head), fused).to(dtype=np.float64).eval()):
        x = rng.standard_normal((B, T, 8))
        x2 = x.copy()
        x2[~mask] = rng.standard_normal((int((~mask).sum()), 8)) * 10  # new values at padded positions
        y, y2 = module(Tensor(x), mask).data, module(Tensor(x2), mask).data
        np.testing.assert_allclose(y[mask], y2[mask], rtol=1e-12, atol=1e-12)


def test_attention_mask_accepts_ints_bools_and_tensors(rng):
    attn = f64_attention().eval()
    x = Tensor(rng.standard_normal((2, 4, 8)))
    m = np.array([[1, 1, 1, 0], [1, 0, 1, 1]])
    ref = attn(x, m).data
    np.testing.assert_array_equal(attn(x, m.astype(bool)).data, ref)
    np.testing.assert_array_equal(attn(x, Tensor(m)).data, ref)
    np.testing.assert_array_equal(attn(x, np.ones((2, 4), dtype=bool)).data, attn(x).data)


@BOTH
def test_fully_masked_query_row_is_finite(rng, fused):
    # left padding: query 0 of row 0 may only attend to key 0, which is padding
    attn = f64_attention(fused=fused)
    block = impl(nn.Block(8, 2), fused).to(dtype=np.float64)
    mask = np.array([[0, 0, 1, 1], [1, 1, 1, 1]])
    for module in (attn, block):
        x = Tensor(rng.standard_normal((2, 4, 8)), requires_grad=True)
        y = module(x, mask)
        assert np.all(np.isfinite(y.data))
        y.backward(grad=np.ones(y.shape))
        assert np.all(np.isfinite(x.grad))
        assert all(np.all(np.isfinite(p.grad)) for p in module.parameters())
        module.zero_grad()
    # the attention output of a query with nothing to attend to is just the projection bias
    y = attn(Tensor(rng.standard_normal((2, 4, 8))), mask).data
    np.testing.assert_allclose(y[0, 0], attn.c_proj.bias.data, atol=1e-12)
    np.testing.assert_allclose(y[0, 1], attn.c_proj.bias.data, atol=1e-12)


def test_attention_mask_shape_is_checked(rng):
    with pytest.raises(ValueError, match=r"attention_mask must have shape \(B, T\) = \(2, 4\)"):
        f64_attention()(Tensor(rng.standard_normal((2, 4, 8))), np.ones((2, 5)))


def test_n_embd_must_divide_into_heads():
    with pytest.raises(ValueError, match="n_embd=10 is not divisible by n_head=3"):
        nn.CausalSelfAttention(10, 3)


# ----------------------------------------------------------------- dropout modes
@BOTH
def test_attention_dropout_is_active_only_in_train_mode(rng, fused):
    attn = impl(nn.CausalSelfAttention(8, 2, dropout=0.5), fused)
    plain = impl(nn.CausalSelfAttention(8, 2, dropout=0.0), fused)
    plain.load_state_dict(attn.state_dict())
    x = Tensor(rng.standard_normal((2, 5, 8)).astype(np.float32))
    a, b = attn(x).data, attn(x).data
    assert not np.allclose(a, b)  # train: fresh masks each call
    assert not np.allclose(a, plain(x).data)
    attn.eval()
    e1, e2 = attn(x).data, attn(x).data
    np.testing.assert_array_equal(e1, e2)  # eval: deterministic
    np.testing.assert_allclose(e1, plain(x).data, rtol=1e-6)  # and equal to no dropout at all
    attn.train()
    assert not np.allclose(attn(x).data, e1)


def test_attention_has_both_attention_and_residual_dropout(rng, monkeypatch):
    from tinygrad_lm.fast import attention as fused_attention
    from tinygrad_lm.engine.ops.unary import Dropout as DropoutOp

    seen = []
    orig_drop, orig_kernel = DropoutOp.__init__, fused_attention.AttentionKernel.__init__

    def spy_drop(self, p, rng):
        seen.append(("dropout", p))
        orig_drop(self, p, rng)

    def spy_kernel(self, causal=True, mask=None, dropout_p=0.0, rng=None, scale=None):
        seen.append(("kernel", dropout_p))
        orig_kernel(self, causal, mask, dropout_p, rng, scale)

    monkeypatch.setattr(DropoutOp, "__init__", spy_drop)
    monkeypatch.setattr(fused_attention.AttentionKernel, "__init__", spy_kernel)
    x = Tensor(rng.standard_normal((1, 3, 8)).astype(np.float32))
    attn = nn.CausalSelfAttention(8, 2, dropout=0.25)
    attn(x)  # reference: attn_dropout on the weights, then resid_dropout on the output
    assert seen == [("dropout", 0.25), ("dropout", 0.25)]
    attn.eval()(x)
    assert len(seen) == 2  # eval: no dropout at all
    seen.clear()
    fast.fuse(attn).train()(x)  # fused: the kernel drops attention weights, resid_dropout the output
    assert seen == [("kernel", 0.25), ("dropout", 0.25)]
    attn.eval()(x)
    assert seen[2:] == [("kernel", 0.0)]


def test_block_dropout_is_reproducible_under_the_global_seed(rng):
    block = nn.Block(8, 2, dropout=0.3)
    x = Tensor(rng.standard_normal((2, 4, 8)).astype(np.float32))
    tinygrad_lm.manual_seed(11)
    a = block(x).data
    tinygrad_lm.manual_seed(11)
    np.testing.assert_array_equal(block(x).data, a)
    block.eval()
    np.testing.assert_array_equal(block(x).data, block(x).data)


def test_block_is_pre_ln_residual(rng):
    block = nn.Block(8, 2).to(dtype=np.float64).eval()
    x = Tensor(rng.standard_normal((2, 3, 8)))
    h = x.data + block.attn(block.ln_1(x)).data
    want = h + block.mlp(block.ln_2(Tensor(h))).data
    np.testing.assert_allclose(block(x).data, want, rtol=1e-12)
    # zero both output projections: each sublayer adds nothing and the block is the identity
    block.attn.c_proj.weight.data[...] = 0
    block.attn.c_proj.bias.data[...] = 0
    block.mlp.c_proj.weight.data[...] = 0
    block.mlp.c_proj.bias.data[...] = 0
    np.testing.assert_array_equal(block(x).data, x.data)

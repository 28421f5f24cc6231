"""functional: gradchecks and behaviour of every layer function, run on both the reference
(`tinygrad_lm.engine.functional`, composed from primitive ops) and the fast kernels
(`tinygrad_lm.fast.functional`), a NumPy reference for cross-entropy and attention, and the
edge cases (masked rows, ignored targets). Tests that only the fast kernels pass (a query with
no key gives zeros, GELU's cache blocks, packed attention) say so in their names.

The fast-vs-reference value and gradient pinning is in test_fast.py; PyTorch comparisons in
test_torch_oracle_layers.py; module-level tests in test_nn.py and test_attention.py.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinygrad_lm import Tensor
from tinygrad_lm.engine import functional as F
from tinygrad_lm.testing import check_gradients
from tinygrad_lm.fast import functional as FAST

BOTH = pytest.mark.parametrize("F", [F, FAST], ids=["reference", "fast"])

SETTINGS = settings(max_examples=12, deadline=None)
B_ = st.integers(1, 2)
T_ = st.integers(1, 4)
C_ = st.sampled_from([4, 8])


def leaf(rng, *shape, dtype=np.float64, scale=1.0):
    return Tensor((rng.standard_normal(shape) * scale).astype(dtype), requires_grad=True)


def ce_reference(z, t, ignore_index=-1, reduction="mean", label_smoothing=0.0):
    """Cross-entropy written out row by row in NumPy float64, from the textbook formula."""
    z = np.asarray(z, dtype=np.float64)
    V = z.shape[-1]
    z2, t2 = z.reshape(-1, V), np.asarray(t).reshape(-1)
    losses = np.zeros(len(t2))
    for i, (row, ti) in enumerate(zip(z2, t2)):
        if ti == ignore_index:
            continue
        logp = row - (row.max() + np.log(np.exp(row - row.max()).sum()))
        target = np.full(V, label_smoothing / V)
        target[ti] += 1.0 - label_smoothing
        losses[i] = -(target * logp).sum()
    if reduction == "none":
        return losses.reshape(np.shape(t))
    if reduction == "sum":
        return losses.sum()
    return losses.sum() / (t2 != ignore_index).sum()


# ----------------------------------------------------------------- gradchecks, hypothesis sizes
@BOTH
@SETTINGS
@given(B=B_, T=T_, C=C_, out=st.integers(1, 5), bias=st.booleans())
def test_linear_gradcheck(F, B, T, C, out, bias):
    rng = np.random.default_rng(B * 100 + T * 10 + C)
    args = [leaf(rng, B, T, C), leaf(rng, out, C)] + ([leaf(rng, out)] if bias else [])
    assert check_gradients(lambda *a: F.linear(*a), *args)


@BOTH
@SETTINGS
@given(B=B_, T=T_, C=C_, V=st.integers(1, 5))
def test_embedding_gradcheck_with_repeated_ids(F, B, T, C, V):
    rng = np.random.default_rng(B + T + C + V)
    ids = rng.integers(0, V, size=(B, T))  # V <= 5 rows for up to 8 ids: ids repeat
    assert check_gradients(lambda w: F.embedding(ids, w), leaf(rng, V, C))


@BOTH
@SETTINGS
@given(B=B_, T=T_, C=C_, affine=st.sampled_from(["none", "weight", "both"]))
def test_layer_norm_gradcheck(F, B, T, C, affine):
    rng = np.random.default_rng(B * T * C)
    args = [leaf(rng, B, T, C)]
    if affine != "none":
        args.append(leaf(rng, C))
    if affine == "both":
        args.append(leaf(rng, C))
    assert check_gradients(lambda *a: F.layer_norm(*a), *args)


@BOTH
@SETTINGS
@given(B=B_, T=T_, V=st.integers(2, 6), reduction=st.sampled_from(["mean", "sum", "none"]),
       smoothing=st.sampled_from([0.0, 0.1, 0.5]), n_ignored=st.integers(0, 2))
def test_cross_entropy_gradcheck(F, B, T, V, reduction, smoothing, n_ignored):
    rng = np.random.default_rng(B * 7 + T * 3 + V)
    t = rng.integers(0, V, size=(B, T))
    t.reshape(-1)[: min(n_ignored, B * T - 1)] = -1  # keep at least one real row
    z = leaf(rng, B, T, V, scale=2.0)
    assert check_gradients(lambda x: F.cross_entropy(x, t, reduction=reduction, label_smoothing=smoothing), z)


@BOTH
@SETTINGS
@given(B=B_, T=T_, S_extra=st.integers(0, 2), hs=st.sampled_from([2, 4]), nh=st.integers(1, 2),
       causal=st.booleans(), masked=st.booleans())
def test_attention_gradcheck(F, B, T, S_extra, hs, nh, causal, masked):
    rng = np.random.default_rng(B + 3 * T + 5 * S_extra + hs + nh)
    S = T + S_extra
    q, k, v = leaf(rng, B, nh, T, hs), leaf(rng, B, nh, S, hs), leaf(rng, B, nh, S, hs)
    mask = None
    if masked:  # a key-padding mask that always leaves the last key (which every causal row sees)
        mask = rng.random((B, 1, 1, S)) > 0.4
        mask[..., -1] = True
    assert check_gradients(lambda *a: F.scaled_dot_product_attention(*a, causal=causal, mask=mask), q, k, v)


@BOTH
@settings(max_examples=8, deadline=None)
@given(B=B_, T=st.integers(2, 4), p=st.sampled_from([0.2, 0.5]))
def test_attention_dropout_gradcheck_with_a_fixed_mask(F, B, T, p):
    # a fresh Generator per call draws the same dropout mask every time: a fixed function
    rng = np.random.default_rng(T)
    q, k, v = (leaf(rng, B, 2, T, 4) for _ in range(3))
    fn = lambda *a: F.scaled_dot_product_attention(*a, dropout_p=p, rng=np.random.default_rng(1))  # noqa: E731
    assert check_gradients(fn, q, k, v)
    y_drop, y_plain = fn(q, k, v).data, F.scaled_dot_product_attention(q, k, v).data
    assert not np.allclose(y_drop, y_plain)  # the mask really did something


def split_attention_merge(qkv, n_head, **kw):  # the reference path's spelling
    """packed_self_attention's twin from separate ops: split, heads, attention, merge."""
    B, T, C3 = qkv.shape
    C = C3 // 3
    q, k, v = (a.reshape(B, T, n_head, C // n_head).transpose(1, 2) for a in qkv.split(C, axis=2))  # (B, nh, T, hs)
    y = F.scaled_dot_product_attention(q, k, v, **kw)  # (B, nh, T, hs), the reference
    return y.transpose(1, 2).reshape(B, T, C)  # (B, T, nh, hs) -> (B, T, C)


@SETTINGS
@given(B=B_, T=T_, hs=st.sampled_from([1, 3]), nh=st.integers(1, 3), masked=st.booleans())
def test_fast_packed_self_attention_gradcheck(B, T, hs, nh, masked):
    rng = np.random.default_rng(B + 3 * T + hs + 7 * nh)
    qkv = leaf(rng, B, T, 3 * nh * hs)
    mask = None
    if masked:  # key padding that keeps key 0, which every causal query sees
        mask = rng.random((B, 1, 1, T)) > 0.4
        mask[..., 0] = True
    assert check_gradients(lambda a: FAST.packed_self_attention(a, nh, mask=mask), qkv)


@settings(max_examples=10, deadline=None)
@given(B=B_, T=T_, nh=st.integers(1, 3), causal=st.booleans(), masked=st.booleans(),
       p=st.sampled_from([0.0, 0.3]))
def test_fast_packed_self_attention_equals_split_attention_merge(B, T, nh, causal, masked, p):
    rng = np.random.default_rng(B + 3 * T + 7 * nh)
    qkv_data = rng.standard_normal((B, T, 3 * nh * 2))
    gy = rng.standard_normal((B, T, nh * 2))
    mask = rng.random((B, 1, 1, T)) > 0.4 if masked else None
    results = []
    for fn in (lambda a, **kw: FAST.packed_self_attention(a, nh, **kw), lambda a, **kw: split_attention_merge(a, nh, **kw)):
        qkv = Tensor(qkv_data, requires_grad=True)
        # a fresh Generator per side: both draw the same dropout mask
        y = fn(qkv, causal=causal, mask=mask, dropout_p=p, rng=np.random.default_rng(5))
        y.backward(gy)
        results.append((y.data, qkv.grad))
    (y1, g1), (y2, g2) = results
    np.testing.assert_allclose(y1, y2, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g1, g2, rtol=1e-12, atol=1e-14)


def test_fast_packed_self_attention_keeps_float32_and_checks_shapes(rng):
    qkv = Tensor(rng.standard_normal((2, 3, 12)).astype(np.float32), requires_grad=True)
    y = FAST.packed_self_attention(qkv, 2)
    y.backward(np.ones(y.shape, dtype=np.float32))
    assert y.shape == (2, 3, 4) and y.dtype == np.float32 and qkv.grad.dtype == np.float32
    with pytest.raises(ValueError, match=r"\(B, T, 3 \* C\).*n_head=3"):
        FAST.packed_self_attention(Tensor(np.zeros((2, 3, 12))), 3)
    with pytest.raises(ValueError, match=r"\(2, 12\)"):
        FAST.packed_self_attention(Tensor(np.zeros((2, 12))), 2)


@SETTINGS
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), axis=st.sampled_from([0, -1]))
def test_softmax_log_softmax_gelu_gradcheck(shape, axis):
    rng = np.random.default_rng(sum(shape))
    x = leaf(rng, *shape, scale=2.0)
    assert check_gradients(lambda a: F.softmax(a, axis=axis), x)
    assert check_gradients(lambda a: F.log_softmax(a, axis=axis), x)
    assert check_gradients(F.gelu, x)


@SETTINGS
@given(B=B_, T=T_, C=C_, p=st.sampled_from([0.1, 0.5, 0.9]))
def test_dropout_gradcheck_with_a_fixed_mask(B, T, C, p):
    x = leaf(np.random.default_rng(C), B, T, C)
    assert check_gradients(lambda a: F.dropout(a, p, training=True, rng=np.random.default_rng(2)), x)


# ----------------------------------------------------------------- cross-entropy
@BOTH
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 1.0])
def test_cross_entropy_matches_the_numpy_reference(F, rng, reduction, smoothing):
    z = rng.standard_normal((3, 5, 7)) * 3
    t = rng.integers(0, 7, size=(3, 5))
    t[0, :2] = -1
    t[2, 4] = -1
    want = ce_reference(z, t, -1, reduction, smoothing)
    got = F.cross_entropy(Tensor(z), t, ignore_index=-1, reduction=reduction, label_smoothing=smoothing).data
    assert got.shape == np.shape(want)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@BOTH
def test_cross_entropy_honours_a_custom_ignore_index(F, rng):
    z, t = rng.standard_normal((6, 4)), np.array([0, 3, 99, 1, 99, 2])
    got = F.cross_entropy(Tensor(z), t, ignore_index=99)
    np.testing.assert_allclose(got.data, ce_reference(z, t, ignore_index=99), rtol=1e-12)
    x = Tensor(z, requires_grad=True)
    F.cross_entropy(x, t, ignore_index=99).backward()
    assert np.all(x.grad[[2, 4]] == 0) and np.all(x.grad[[0, 1, 3, 5]] != 0)


@BOTH
def test_cross_entropy_ignored_rows_get_zero_loss_and_zero_grad(F, rng):
    x = Tensor(rng.standard_normal((4, 5)), requires_grad=True)
    t = np.array([1, -1, 2, -1])
    loss = F.cross_entropy(x, t, reduction="none", label_smoothing=0.3)
    assert loss.data[1] == 0 and loss.data[3] == 0
    loss.backward(grad=np.ones(4))
    assert np.all(x.grad[[1, 3]] == 0)
    # the grad of each kept row is softmax - target distribution
    p = np.exp(x.data - x.data.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    target = np.full(5, 0.3 / 5)
    target[1] += 0.7
    np.testing.assert_allclose(x.grad[0], p[0] - target, atol=1e-12)


@BOTH
def test_cross_entropy_is_stable_for_huge_logits(F):
    z = np.array([[1e4, 0.0, -1e4], [-1e4, 1e4, 1e4]], dtype=np.float32)
    x = Tensor(z, requires_grad=True)
    loss = F.cross_entropy(x, np.array([0, 1]))
    loss.backward()
    assert np.isfinite(loss.item()) and np.all(np.isfinite(x.grad))
    np.testing.assert_allclose(loss.item(), np.log(2) / 2, rtol=1e-5)


@BOTH
def test_cross_entropy_mean_with_every_row_ignored_is_nan_like_pytorch(F):
    assert np.isnan(F.cross_entropy(Tensor(np.zeros((2, 3))), np.array([-1, -1])).item())


@BOTH
def test_cross_entropy_backward_twice_through_a_retained_graph(F, rng):
    # regression: the first backward turned the saved softmax into the gradient in place,
    # and the second one crashed on the freed buffer
    x = Tensor(rng.standard_normal((5, 4)), requires_grad=True)
    loss = F.cross_entropy(x, np.array([0, 1, -1, 3, 2]), label_smoothing=0.1)
    loss.backward(retain_graph=True)
    first = x.grad.copy()
    loss.backward()
    np.testing.assert_allclose(x.grad, 2 * first, rtol=1e-12)


@BOTH
def test_cross_entropy_keeps_float32(F, rng):
    x = Tensor(rng.standard_normal((3, 4)).astype(np.float32), requires_grad=True)
    loss = F.cross_entropy(x, np.array([0, 1, 2]))
    loss.backward()
    assert loss.dtype == np.float32 and x.grad.dtype == np.float32


@BOTH
def test_cross_entropy_errors_are_clear(F):
    z = Tensor(np.zeros((2, 3)))
    with pytest.raises(IndexError, match="target 3 is out of range for 3 classes"):
        F.cross_entropy(z, np.array([0, 3]))
    with pytest.raises(IndexError, match="target -2"):
        F.cross_entropy(z, np.array([0, -2]))
    with pytest.raises(ValueError, match="need targets of shape"):
        F.cross_entropy(z, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(z, np.array([0, 1]), reduction="avg")
    with pytest.raises(ValueError, match="label_smoothing"):
        F.cross_entropy(z, np.array([0, 1]), label_smoothing=1.5)
    with pytest.raises(TypeError, match="integer ids"):
        F.cross_entropy(z, np.array([0.0, 1.0]))


# ----------------------------------------------------------------- layer norm
@BOTH
def test_layer_norm_normalises_rows_and_honours_eps(F, rng):
    x = rng.standard_normal((4, 16)) * 5 + 3
    y = F.layer_norm(Tensor(x)).data
    np.testing.assert_allclose(y.mean(-1), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(-1), 1 / (1 + 1e-5 / x.var(-1)), rtol=1e-10)
    # a constant row normalises to 0 (not NaN) thanks to eps
    assert np.all(F.layer_norm(Tensor(np.full((1, 4), 7.0))).data == 0)
    big_eps = F.layer_norm(Tensor(x), eps=1e3).data
    np.testing.assert_allclose(big_eps, (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e3))


@BOTH
def test_layer_norm_does_not_modify_its_input(F, rng):
    x = rng.standard_normal((3, 8))
    keep = x.copy()
    F.layer_norm(Tensor(x, requires_grad=True), Tensor(np.ones(8))).backward(grad=np.ones((3, 8)))
    np.testing.assert_array_equal(x, keep)


@BOTH
def test_layer_norm_errors(F):
    with pytest.raises(ValueError, match="does not match the last dimension"):
        F.layer_norm(Tensor(np.zeros((2, 4))), Tensor(np.ones(3)))
    with pytest.raises(ValueError, match="bias without a weight"):
        F.layer_norm(Tensor(np.zeros((2, 4))), None, Tensor(np.zeros(4)))


# ----------------------------------------------------------------- attention
def attention_reference(q, k, v, causal=True, mask=None):
    """Attention in plain NumPy float64, one (batch, head, query) row at a time."""
    B, nh, T, hs = q.shape
    S = k.shape[2]
    out = np.zeros((B, nh, T, v.shape[-1]))
    for b in range(B):
        for h in range(nh):
            for i in range(T):
                s = k[b, h] @ q[b, h, i] / np.sqrt(hs)
                allowed = np.ones(S, dtype=bool)
                if causal:
                    allowed &= np.arange(S) <= i + S - T
                if mask is not None:
                    allowed &= np.broadcast_to(mask, (B, nh, T, S))[b, h, i]
                if not allowed.any():
                    continue  # a row with nothing to attend to gives zeros
                w = np.where(allowed, np.exp(s - s[allowed].max()), 0.0)
                out[b, h, i] = (w / w.sum()) @ v[b, h]
    return out


@BOTH
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("T,S", [(5, 5), (3, 5), (1, 4)])
def test_attention_matches_the_numpy_reference_and_gradchecks(F, rng, causal, T, S):
    q, k, v = rng.standard_normal((2, 3, T, 4)), rng.standard_normal((2, 3, S, 4)), rng.standard_normal((2, 3, S, 4))
    mask = rng.random((2, 1, T, S)) > 0.3
    mask[..., -1] = True
    gy = rng.standard_normal((2, 3, T, 4))
    for m in (None, mask):
        want = attention_reference(q, k, v, causal, m)
        tq, tk, tv = (Tensor(a, requires_grad=True) for a in (q, k, v))
        y = F.scaled_dot_product_attention(tq, tk, tv, causal=causal, mask=m)
        np.testing.assert_allclose(y.data, want, rtol=1e-12, atol=1e-12)
        assert check_gradients(lambda *a: F.scaled_dot_product_attention(*a, causal=causal, mask=m), tq, tk, tv)


@BOTH
def test_attention_custom_scale(F, rng):
    q, k, v = (Tensor(rng.standard_normal((1, 2, 3, 4))) for _ in range(3))
    a = F.scaled_dot_product_attention(q, k, v, scale=0.3).data
    b = F.scaled_dot_product_attention(Tensor(q.data * 0.3 * 2), k, v).data  # default scale 1/sqrt(4)
    np.testing.assert_allclose(a, b, rtol=1e-12)


@BOTH
def test_attention_fully_masked_row_gives_zero_output_and_finite_grads(F, rng):
    q, k, v = (Tensor(rng.standard_normal((1, 1, 3, 2)), requires_grad=True) for _ in range(3))
    mask = np.array([False, True, True])  # key 0 masked: query 0 (causal) sees nothing
    y = F.scaled_dot_product_attention(q, k, v, mask=mask)
    assert np.all(np.isfinite(y.data)) and np.all(y.data[0, 0, 0] == 0)
    y.backward(grad=np.ones(y.shape))
    for t in (q, k, v):
        assert np.all(np.isfinite(t.grad))
    assert np.all(q.grad[0, 0, 0] == 0)


@BOTH
def test_attention_causal_with_more_queries_than_keys_gives_zeros_not_nan(F, rng):
    # regression: causal alignment is bottom-right, so with T > S the first T - S queries see
    # no key; they got NaN (0/0) because the empty-row guard only ran when a mask was passed
    q = Tensor(rng.standard_normal((1, 2, 4, 3)), requires_grad=True)
    k, v = (Tensor(rng.standard_normal((1, 2, 2, 3)), requires_grad=True) for _ in range(2))
    with np.errstate(all="raise"):
        y = F.scaled_dot_product_attention(q, k, v, causal=True)
        y.backward(grad=np.ones(y.shape))
    assert np.all(y.data[:, :, :2] == 0)
    np.testing.assert_allclose(y.data, attention_reference(q.data, k.data, v.data), rtol=1e-12, atol=1e-15)
    assert all(np.all(np.isfinite(t.grad)) for t in (q, k, v))


@BOTH
def test_attention_dropout_scales_kept_weights(F, rng):
    q, k = Tensor(np.zeros((1, 1, 4, 2))), Tensor(np.zeros((1, 1, 4, 2)))
    v = Tensor(np.eye(4)[None, None])  # the output row is the (dropped-out) attention row itself
    a = F.scaled_dot_product_attention(q, k, v, causal=False, dropout_p=0.5, rng=np.random.default_rng(0)).data
    assert set(np.unique(a)) <= {0.0, 0.25 / 0.5}
    assert 0 < (a == 0).sum() < a.size


@BOTH
def test_attention_keeps_float32(F, rng):
    q, k, v = (Tensor(rng.standard_normal((1, 2, 3, 4)).astype(np.float32), requires_grad=True) for _ in range(3))
    y = F.scaled_dot_product_attention(q, k, v, mask=np.ones((1, 1, 1, 3), dtype=bool), dropout_p=0.1)
    y.backward(grad=np.ones(y.shape, dtype=np.float32))
    assert y.dtype == np.float32 and all(t.grad.dtype == np.float32 for t in (q, k, v))


@BOTH
def test_attention_shape_errors(F):
    with pytest.raises(ValueError, match="scaled_dot_product_attention"):
        F.scaled_dot_product_attention(Tensor(np.zeros((1, 1, 2, 4))), Tensor(np.zeros((1, 1, 2, 3))),
                                       Tensor(np.zeros((1, 1, 2, 3))))


# ----------------------------------------------------------------- linear, embedding, dropout, gelu
@BOTH
def test_linear_is_x_times_weight_transposed_plus_bias(F, rng):
    x, w, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((5, 4)), rng.standard_normal(5)
    np.testing.assert_allclose(F.linear(Tensor(x), Tensor(w), Tensor(b)).data, x @ w.T + b, rtol=1e-12)
    np.testing.assert_allclose(F.linear(Tensor(x), Tensor(w)).data, x @ w.T, rtol=1e-12)
    with pytest.raises(ValueError, match=r"\(out_features, in_features\)"):
        F.linear(Tensor(x), Tensor(w.T))


@BOTH
def test_linear_skips_grads_nobody_wants(F, rng):
    x = Tensor(rng.standard_normal((3, 4)))  # no grad wanted for the input
    w = Tensor(rng.standard_normal((2, 4)), requires_grad=True)
    F.linear(x, w).backward(grad=np.ones((3, 2)))
    np.testing.assert_allclose(w.grad, np.ones((2, 3)) @ x.data)
    assert x.grad is None


@BOTH
def test_embedding_backward_scatter_adds_repeated_ids(F, rng):
    w = Tensor(rng.standard_normal((5, 3)), requires_grad=True)
    ids = np.array([[1, 1, 4], [1, 0, 4]])
    y = F.embedding(ids, w)
    np.testing.assert_array_equal(y.data, w.data[ids])
    gy = rng.standard_normal((2, 3, 3))
    y.backward(grad=gy)
    want = np.zeros((5, 3))
    for (i, j), row in np.ndenumerate(ids):
        want[row] += gy[i, j]
    np.testing.assert_allclose(w.grad, want, rtol=1e-12)
    assert np.all(w.grad[[2, 3]] == 0)
    np.testing.assert_allclose(w.grad[1], gy[0, 0] + gy[0, 1] + gy[1, 0])


@BOTH
@settings(max_examples=30, deadline=None)
@given(shape=st.lists(st.integers(0, 6), min_size=1, max_size=3), V=st.integers(1, 40), seed=st.integers(0, 99))
def test_embedding_backward_equals_an_add_at_scatter(F, shape, V, seed):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, V, size=shape)
    w = Tensor(rng.standard_normal((V, 3)).astype(np.float32), requires_grad=True)
    gy = rng.standard_normal(tuple(shape) + (3,)).astype(np.float32)
    F.embedding(ids, w).backward(grad=gy)
    want = np.zeros((V, 3), np.float32)
    np.add.at(want, ids.reshape(-1), gy.reshape(-1, 3))
    assert w.grad.dtype == np.float32
    np.testing.assert_allclose(w.grad, want, rtol=1e-5, atol=1e-6)


@BOTH
def test_embedding_errors(F):
    w = Tensor(np.zeros((3, 2)))
    with pytest.raises(IndexError, match="id 3 is out of range"):
        F.embedding(np.array([0, 3]), w)
    with pytest.raises(IndexError, match="id -1"):
        F.embedding(np.array([-1]), w)
    with pytest.raises(TypeError, match="integer ids"):
        F.embedding(np.array([0.5]), w)


def test_dropout_is_inverted_and_identity_when_not_training(rng):
    x = Tensor(np.ones((200, 50)))
    y = F.dropout(x, 0.3, training=True).data
    assert set(np.unique(y)) == {0.0, 1 / 0.7}
    assert abs((y == 0).mean() - 0.3) < 0.02
    assert abs(y.mean() - 1) < 0.03  # the expectation is preserved
    assert F.dropout(x, 0.3, training=False) is x
    assert F.dropout(x, 0.0, training=True) is x
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\)"):
        F.dropout(x, 1.0)


def test_dropout_follows_the_global_seed():
    import tinygrad_lm
    x = Tensor(np.ones((4, 8), dtype=np.float32))
    tinygrad_lm.manual_seed(5)
    a = F.dropout(x, 0.5).data
    tinygrad_lm.manual_seed(5)
    np.testing.assert_array_equal(a, F.dropout(x, 0.5).data)
    assert a.dtype == np.float32


@BOTH
def test_gelu_is_the_tanh_approximation(F):
    x = np.linspace(-6, 6, 25)
    want = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
    np.testing.assert_allclose(F.gelu(Tensor(x)).data, want, rtol=1e-12, atol=1e-15)


@BOTH
@pytest.mark.parametrize("shape", [(3, 65536 + 7), (2, 3, 70001), (5,)])
def test_gelu_covers_every_element_of_large_and_ragged_arrays(F, shape):
    # the fast GELU works in 64 Ki-element blocks: arrays of several blocks with a ragged last one, and a
    # non-contiguous input, must give the closed form and its derivative everywhere
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape[::-1]).T * 3  # transposed: non-contiguous
    c = np.sqrt(2 / np.pi)
    t = np.tanh(c * (x + 0.044715 * x ** 3))
    want_y = 0.5 * x * (1 + t)
    want_d = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x)
    xt = Tensor(x, requires_grad=True)
    y = F.gelu(xt)
    gy = rng.standard_normal(y.shape)
    y.backward(gy)
    np.testing.assert_allclose(y.data, want_y, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(xt.grad, gy * want_d, rtol=1e-11, atol=1e-13)


def test_softmax_and_log_softmax_are_stable():
    x = Tensor(np.array([[1000.0, 1000.0, -1000.0]]))
    np.testing.assert_allclose(F.softmax(x).data, [[0.5, 0.5, 0.0]])
    np.testing.assert_allclose(F.log_softmax(x).data, [[-np.log(2), -np.log(2), -2000 - np.log(2)]])

"""The fast path is pinned to the reference path: every fused kernel gives the reference's
values and gradients in float64 (random shapes, random output gradients, compared by
`tinygrad_lm.testing.check_against`, the helper users get for their own twins), `fuse(model)` gives
the reference model's loss and gradients (dropout on, padding masks too), and fusing changes
no parameter, name or state-dict entry. Gradchecks of each kernel are in test_functional.py
(run on both paths); the thread split is pinned in test_parallel.py.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinygrad_lm import Tensor, fast, manual_seed, nn
from tinygrad_lm.engine import functional as F
from tinygrad_lm.fast import functional as FAST
from tinygrad_lm.models.gpt import GPT, GPTConfig
from tinygrad_lm.testing import check_against

SETTINGS = settings(max_examples=15, deadline=None)


def arr(rng, *shape, scale=1.0):
    return rng.standard_normal(shape) * scale


@SETTINGS
@given(lead=st.lists(st.integers(1, 3), min_size=0, max_size=2), C=st.integers(1, 6), out=st.integers(1, 5),
       bias=st.booleans(), seed=st.integers(0, 99))
def test_linear_kernel_equals_the_reference(lead, C, out, bias, seed):
    rng = np.random.default_rng(seed)
    arrays = [arr(rng, *lead, C), arr(rng, out, C)] + ([arr(rng, out)] if bias else [])
    check_against(FAST.linear, F.linear, *arrays, seed=seed)


@SETTINGS
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=2), V=st.integers(1, 6), seed=st.integers(0, 99))
def test_embedding_kernel_equals_the_reference_with_repeated_ids(shape, V, seed):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, V, size=shape)  # few rows, many ids: ids repeat
    check_against(lambda w: FAST.embedding(ids, w), lambda w: F.embedding(ids, w), arr(rng, V, 3), seed=seed)


@SETTINGS
@given(B=st.integers(1, 3), C=st.integers(1, 8), affine=st.sampled_from(["none", "weight", "both"]),
       eps=st.sampled_from([1e-5, 0.5]), seed=st.integers(0, 99))
def test_layer_norm_kernel_equals_the_reference(B, C, affine, eps, seed):
    rng = np.random.default_rng(seed)
    arrays = [arr(rng, B, 2, C, scale=3.0) + 1] + [arr(rng, C) for _ in range({"none": 0, "weight": 1, "both": 2}[affine])]
    check_against(lambda *a: FAST.layer_norm(*a, eps=eps), lambda *a: F.layer_norm(*a, eps=eps), *arrays, seed=seed,
                  rtol=1e-9)


@SETTINGS
@given(N=st.integers(1, 6), V=st.integers(2, 7), reduction=st.sampled_from(["mean", "sum", "none"]),
       smoothing=st.sampled_from([0.0, 0.1, 1.0]), seed=st.integers(0, 99))
def test_cross_entropy_kernel_equals_the_reference(N, V, reduction, smoothing, seed):
    rng = np.random.default_rng(seed)
    t = rng.integers(-1, V, size=(2, N))  # -1: ignored rows
    t[0, 0] = 0  # at least one counted row
    kw = dict(reduction=reduction, label_smoothing=smoothing)
    check_against(lambda z: FAST.cross_entropy(z, t, **kw), lambda z: F.cross_entropy(z, t, **kw),
                  arr(rng, 2, N, V, scale=3.0), seed=seed)


@SETTINGS
@given(B=st.integers(1, 2), nh=st.integers(1, 3), T=st.integers(1, 5), S_extra=st.integers(0, 2),
       causal=st.booleans(), masked=st.booleans(), p=st.sampled_from([0.0, 0.4]), seed=st.integers(0, 99))
def test_attention_kernel_equals_the_reference_with_masks_and_dropout(B, nh, T, S_extra, causal, masked, p, seed):
    rng = np.random.default_rng(seed)
    S = T + S_extra
    mask = None
    if masked:  # padding that keeps the last key, which every causal query sees
        mask = rng.random((B, 1, 1, S)) > 0.4
        mask[..., -1] = True

    def attend(impl):  # a fresh Generator per call: both sides draw the same dropout mask
        return lambda q, k, v: impl.scaled_dot_product_attention(q, k, v, causal=causal, mask=mask, dropout_p=p,
                                                                 rng=np.random.default_rng(seed))

    check_against(attend(FAST), attend(F), arr(rng, B, nh, T, 3), arr(rng, B, nh, S, 3), arr(rng, B, nh, S, 2),
                  seed=seed)


@pytest.mark.parametrize("shape", [(2, 3, 5), (70001,)])
def test_gelu_kernel_equals_the_reference(shape):
    rng = np.random.default_rng(0)
    check_against(FAST.gelu, F.gelu, arr(rng, *shape, scale=3.0), rtol=1e-11, atol=1e-13)


@SETTINGS
@given(B=st.integers(1, 3), T=st.integers(1, 5), nh=st.integers(1, 3), padded=st.booleans(), seed=st.integers(0, 99))
def test_fused_self_attention_equals_the_reference_module_in_train_mode(B, T, nh, padded, seed):
    manual_seed(seed)
    ref = nn.CausalSelfAttention(2 * nh, nh, dropout=0.3).to(dtype=np.float64)
    fused = fast.fuse(nn.CausalSelfAttention(2 * nh, nh, dropout=0.3))
    fused.load_state_dict(ref.state_dict())
    fused.to(dtype=np.float64)
    rng = np.random.default_rng(seed)
    mask = None
    if padded:  # right padding: every row keeps its first token
        lengths = rng.integers(1, T + 1, size=B)
        mask = np.arange(T)[None, :] < lengths[:, None]

    def run(module):
        def fn(x):  # the same dropout streams on both sides
            module.attn_dropout.generator = np.random.default_rng(seed)
            module.resid_dropout.generator = np.random.default_rng(seed + 1)
            return module(x, mask)
        return fn

    check_against(run(fused), run(ref), arr(rng, B, T, 2 * nh), seed=seed,
                  params=(dict(fused.named_parameters()), dict(ref.named_parameters())))


def gpt_grads(model, x, y, **kw):
    model.zero_grad()
    logits, loss = model(x, y, **kw)
    loss.backward()
    return loss.item(), {n: p.grad.copy() for n, p in model.named_parameters()}


@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_fused_gpt_equals_the_reference_gpt_loss_and_every_gradient(dropout):
    manual_seed(3)
    cfg = GPTConfig(vocab_size=11, block_size=6, n_layer=2, n_head=2, n_embd=8, dropout=dropout)
    model = GPT(cfg).to(dtype=np.float64)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 11, (3, 6)), rng.integers(0, 11, (3, 6))
    y[1, :2] = -1
    manual_seed(7)  # dropout masks come from the global generator: the same stream for both
    ref_loss, ref_grads = gpt_grads(model, x, y)
    fast.fuse(model)
    manual_seed(7)
    fused_loss, fused_grads = gpt_grads(model, x, y)
    assert fused_loss == pytest.approx(ref_loss, rel=1e-12)
    for name, g in ref_grads.items():
        np.testing.assert_allclose(fused_grads[name], g, rtol=1e-9, atol=1e-12, err_msg=name)


def test_fused_classifier_equals_the_reference_on_a_padded_batch():
    from tinygrad_lm.models.gpt_classifier import GPTForSequenceClassification

    manual_seed(4)
    cfg = GPTConfig(vocab_size=9, block_size=5, n_layer=1, n_head=2, n_embd=8)
    model = GPTForSequenceClassification(cfg, 3).to(dtype=np.float64)
    ids = np.array([[1, 2, 3, 0, 0], [4, 5, 6, 7, 8]])
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    labels = np.array([2, 0])
    ref = gpt_grads(model, ids, mask, labels=labels)
    fused = gpt_grads(fast.fuse(model), ids, mask, labels=labels)
    assert fused[0] == pytest.approx(ref[0], rel=1e-12)
    for name, g in ref[1].items():
        np.testing.assert_allclose(fused[1][name], g, rtol=1e-9, atol=1e-12, err_msg=name)


def test_fuse_swaps_classes_in_place_keeps_the_state_dict_and_unfuse_swaps_back():
    manual_seed(0)
    model = GPT(GPTConfig(vocab_size=7, block_size=4, n_layer=1, n_head=1, n_embd=4))
    before = {k: v.copy() for k, v in model.state_dict().items()}
    params = [id(p) for p in model.parameters()]
    assert fast.fuse(model) is model
    kinds = {type(m).__name__ for m in model.modules()}
    assert {"FusedLinear", "FusedEmbedding", "FusedLayerNorm", "FusedGELU", "FusedSelfAttention",
            "FusedCrossEntropyLoss"} <= kinds
    assert not kinds & {"Linear", "Embedding", "LayerNorm", "GELU", "CausalSelfAttention", "CrossEntropyLoss"}
    assert [id(p) for p in model.parameters()] == params  # the same Parameter objects
    after = model.state_dict()
    assert list(after) == list(before) and all(np.array_equal(after[k], before[k]) for k in before)
    assert model.lm_head.weight is model.transformer.wte.weight  # still tied
    fast.unfuse(model)
    assert not {type(m).__name__ for m in model.modules()} & {"FusedLinear", "FusedSelfAttention"}
    # and a fused class is a subclass of its reference: isinstance checks keep working
    assert all(issubclass(fused, reference) for reference, fused in fast.FUSED.items())


def test_check_against_catches_a_kernel_with_a_wrong_backward(monkeypatch):
    from tinygrad_lm.fast.layernorm import LayerNormKernel

    original = LayerNormKernel.backward
    monkeypatch.setattr(LayerNormKernel, "backward", lambda self, gy: tuple(
        g * 1.001 if g is not None else None for g in original(self, gy)))
    rng = np.random.default_rng(0)
    with pytest.raises(AssertionError, match=r"gradient of input 0 \(shape \(2, 5\)\) differs"):
        check_against(FAST.layer_norm, F.layer_norm, arr(rng, 2, 5), arr(rng, 5))


@pytest.mark.parametrize("decoupled", [False, True])
def test_fused_adam_update_equals_the_reference_over_several_steps(decoupled):
    from tinygrad_lm.fast.adamw import FusedAdam, FusedAdamW
    from tinygrad_lm.optim import Adam, AdamW

    rng = np.random.default_rng(0)
    init = [rng.standard_normal((4, 3)), rng.standard_normal(3)]
    grads = [[rng.standard_normal(a.shape) for a in init] for _ in range(5)]
    runs = []
    for cls in ((AdamW, FusedAdamW) if decoupled else (Adam, FusedAdam)):
        params = [Tensor(a.copy(), requires_grad=True) for a in init]
        opt = cls(params, lr=0.1, betas=(0.8, 0.95), weight_decay=0.1)
        for step_grads in grads:
            for p, g in zip(params, step_grads):
                p.grad = g
            opt.step()
        runs.append(([p.data for p in params], opt.state_dict()["state"]))
    (ref, ref_state), (fused, fused_state) = runs
    for a, b in zip(ref, fused):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14)
    for i in ref_state:
        assert fused_state[i]["step"] == ref_state[i]["step"] == 5
        np.testing.assert_allclose(fused_state[i]["exp_avg_sq"], ref_state[i]["exp_avg_sq"], rtol=1e-13)


def test_speed_up_gives_the_optimizer_the_fused_update_and_unfuse_takes_it_back():
    from tinygrad_lm.fast.adamw import FusedAdamW
    from tinygrad_lm.optim import AdamW

    model = GPT(GPTConfig(vocab_size=7, block_size=4, n_layer=1, n_head=1, n_embd=4))
    opt = AdamW(model.parameters())
    model2, opt2 = fast.speed_up(model, opt, threads=1)
    assert model2 is model and opt2 is opt and type(opt) is FusedAdamW
    assert type(fast.unfuse(opt)) is AdamW


@pytest.mark.parametrize("vecdot", [True, False])
def test_rowdot_sums_the_last_axis_of_the_product(monkeypatch, vecdot):
    """fast/rows.rowdot (NumPy 2's vecdot, or rowsum(a * b) without it) against a float64 sum, on
    contiguous and strided (transposed) inputs of 2 to 4 axes."""
    from tinygrad_lm.fast.rows import rowdot
    if not vecdot:
        monkeypatch.delattr(np, "vecdot", raising=False)
    rng = np.random.default_rng(5)
    for shape in [(7, 5), (3, 4, 6), (2, 3, 4, 8)]:
        a, b = rng.standard_normal(shape).astype(np.float32), rng.standard_normal(shape).astype(np.float32)
        want = (a.astype(np.float64) * b).sum(axis=-1, keepdims=True)
        got = rowdot(a, b)
        assert got.shape == shape[:-1] + (1,) and got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        at, bt = a.swapaxes(0, -1), b.swapaxes(0, -1)  # strided views: the sum runs over the old axis 0
        np.testing.assert_allclose(rowdot(at, bt), (at.astype(np.float64) * bt).sum(axis=-1, keepdims=True),
                                   rtol=1e-5, atol=1e-5)

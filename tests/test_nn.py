"""nn: Module bookkeeping (registration order, state dicts, modes, dtype moves) and every layer:
shapes, names, initialisation, and gradchecks in float64 over hypothesis-drawn sizes.

Attention-specific behaviour (causality, padding masks, dropout modes) is in test_attention.py;
PyTorch comparisons in test_torch_oracle_layers.py.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_lm
from tinygrad_lm import Tensor, fast, nn
from tinygrad_lm.testing import check_gradients

B_ = st.integers(1, 2)
T_ = st.integers(1, 4)
C_ = st.sampled_from([4, 8])


def f64(module, fused=False):
    """The module in float64 and eval mode, ready for a gradcheck; with its fast kernels if fused."""
    module = fast.fuse(module) if fused else module
    return module.to(dtype=np.float64).eval()


BOTH = pytest.mark.parametrize("fused", [False, True], ids=["reference", "fast"])


def check_module(module, *inputs):
    """gradcheck a float64 module with respect to its inputs and every parameter."""
    return check_gradients(lambda *a: module(*a), *inputs, params=dict(module.named_parameters()))


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.z = nn.Linear(2, 3)
        self.a = nn.Parameter(np.zeros(4))
        self.blocks = nn.ModuleList([nn.LayerNorm(3), nn.LayerNorm(3, bias=False)])
        self.m = nn.Parameter(np.ones((2, 2)))
        self.not_a_param = Tensor(np.ones(2))  # a plain Tensor attribute is not registered


TOY_NAMES = ["a", "m", "z.weight", "z.bias", "blocks.0.weight", "blocks.0.bias", "blocks.1.weight"]


# ----------------------------------------------------------------- Module
def test_parameters_are_registered_in_assignment_order():
    t = Toy()
    names = [n for n, _ in t.named_parameters()]
    # own parameters first, then each child's, children in assignment order
    assert names == TOY_NAMES
    assert [id(p) for p in t.parameters()] == [id(p) for _, p in t.named_parameters()]
    assert names == [n for n, _ in Toy().named_parameters()]  # the same in every instance
    assert list(t.state_dict()) == names
    assert t.num_params() == 4 + 4 + 6 + 3 + 3 + 3 + 3


def test_reassigning_an_attribute_replaces_its_registration():
    t = Toy()
    t.a = nn.Parameter(np.zeros(7))
    assert dict(t.named_parameters())["a"].shape == (7,)
    t.z = None  # no longer a module
    assert not any(n.startswith("z.") for n, _ in t.named_parameters())
    t.m = np.ones(2)  # a raw array is not a parameter
    assert "m" not in dict(t.named_parameters())


def test_module_without_super_init_says_so():
    class Bad(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(np.zeros(2))

    with pytest.raises(RuntimeError, match=r"must call super\(\).__init__\(\)"):
        Bad()


def test_shared_parameter_is_listed_once_but_saved_under_every_name():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(5, 3)
            self.head = nn.Linear(3, 5, bias=False)
            self.head.weight = self.wte.weight

    m = Tied()
    assert [n for n, _ in m.named_parameters()] == ["wte.weight"]
    assert [n for n, _ in m.named_parameters(remove_duplicate=False)] == ["wte.weight", "head.weight"]
    assert list(m.state_dict()) == ["wte.weight", "head.weight"]
    m.load_state_dict({"wte.weight": np.ones((5, 3)), "head.weight": np.ones((5, 3))})
    assert m.head.weight is m.wte.weight


def test_state_dict_is_name_to_independent_ndarray_copies():
    t = Toy()
    sd = t.state_dict()
    assert all(type(v) is np.ndarray for v in sd.values())
    sd["z.weight"][...] = 123.0
    assert not np.any(t.z.weight.data == 123.0)
    assert sd["z.weight"].shape == (3, 2) and sd["z.weight"].dtype == np.float32


def test_load_state_dict_round_trip_keeps_dtype_and_copies(rng):
    src, dst = Toy(), Toy().to(dtype=np.float64)
    state = {k: rng.standard_normal(v.shape).astype(np.float32) for k, v in src.state_dict().items()}
    ref_before = dst.z.weight
    assert dst.load_state_dict(state) == ([], [])
    assert dst.z.weight is ref_before  # loaded in place: optimizers keep valid references
    for name, p in dst.named_parameters():
        assert p.dtype == np.float64
        np.testing.assert_array_equal(p.data, state[name])
    state["a"][...] = 9.0
    assert not np.any(dst.a.data == 9.0)


def test_load_state_dict_strict_lists_every_problem_by_name():
    t = Toy()
    sd = t.state_dict()
    del sd["z.bias"], sd["blocks.1.weight"]
    sd["extra.weight"] = np.zeros(2)
    sd["z.weight"] = np.zeros((2, 3))  # transposed
    before = t.z.weight.data.copy()
    with pytest.raises(ValueError) as err:
        t.load_state_dict(sd)
    msg = str(err.value)
    for name in ("z.bias", "blocks.1.weight", "extra.weight", "z.weight"):
        assert name in msg
    assert "missing keys" in msg and "unexpected keys" in msg and "shape mismatches" in msg
    assert "(2, 3)" in msg and "(3, 2)" in msg
    np.testing.assert_array_equal(t.z.weight.data, before)  # nothing was half-loaded


def test_load_state_dict_non_strict_returns_missing_and_unexpected():
    t = Toy()
    sd = t.state_dict()
    sd["a"] = np.full(4, 2.0)
    del sd["m"]
    sd["junk"] = np.zeros(1)
    missing, unexpected = t.load_state_dict(sd, strict=False)
    assert missing == ["m"] and unexpected == ["junk"]
    np.testing.assert_array_equal(t.a.data, 2.0)
    sd["a"] = np.zeros(5)
    with pytest.raises(ValueError, match=r"a: checkpoint \(5,\) vs model \(4,\)"):
        t.load_state_dict(sd, strict=False)  # shape mismatches raise even when not strict


def test_train_and_eval_reach_every_submodule():
    b = nn.Block(8, 2, dropout=0.1)
    assert all(m.training for m in b.modules())
    assert b.eval() is b
    assert not any(m.training for m in b.modules())
    assert b.train() is b and all(m.training for m in b.modules())
    b.train(False)
    assert not b.attn.resid_dropout.training


def test_to_casts_in_place_and_drops_stale_grads():
    b = nn.Block(8, 2)
    refs = b.parameters()
    x = Tensor(np.ones((1, 2, 8), dtype=np.float32))
    b(x).sum().backward()
    assert all(p.grad is not None for p in refs)
    assert b.to(dtype=np.float64) is b
    assert [id(p) for p in b.parameters()] == [id(p) for p in refs]
    assert all(p.dtype == np.float64 and p.grad is None for p in refs)
    assert b(x.to(dtype=np.float64)).dtype == np.float64
    b.to(device="cpu")
    assert all(p.device == "cpu" and p.dtype == np.float64 for p in refs)
    b.to(dtype=np.float32)
    assert all(p.dtype == np.float32 for p in refs)
    with pytest.raises(ValueError, match="unknown device"):
        b.to(device="tpu")


@pytest.mark.skipif(tinygrad_lm.engine.backend.gpu_available, reason="this machine has a GPU")
def test_to_cuda_without_a_gpu_explains():
    with pytest.raises(RuntimeError, match="CuPy"):
        nn.Linear(2, 2).to(device="cuda")


def test_zero_grad_clears_every_grad():
    m = nn.MLP(4)
    m(Tensor(np.ones((2, 4), dtype=np.float32))).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_grads_accumulate_until_zero_grad():
    lin = nn.Linear(3, 2)
    x = Tensor(np.ones((1, 3), dtype=np.float32))
    lin(x).sum().backward()
    g = lin.weight.grad.copy()
    lin(x).sum().backward()
    np.testing.assert_allclose(lin.weight.grad, 2 * g)


def test_module_list_and_dict_names_and_access():
    ml = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2, bias=False)])
    ml.append(nn.LayerNorm(2))
    assert len(ml) == 3 and isinstance(ml[-1], nn.LayerNorm) and list(ml)[0] is ml[0]
    assert [n for n, _ in ml.named_parameters()] == ["0.weight", "0.bias", "1.weight", "2.weight", "2.bias"]
    md = nn.ModuleDict({"wte": nn.Embedding(3, 2), "h": ml})
    assert "wte" in md and md["h"] is ml and list(md.keys()) == ["wte", "h"]
    assert [n for n, _ in md.named_parameters()][:2] == ["wte.weight", "h.0.weight"]
    assert [n for n, _ in md.named_modules()][:3] == ["", "wte", "h"]


def test_repr_shows_the_tree():
    r = repr(nn.Block(8, 2))
    assert "ln_1" in r and "CausalSelfAttention(n_embd=8, n_head=2" in r and "Linear(8, 24, bias=True)" in r


def test_forward_must_be_implemented():
    with pytest.raises(NotImplementedError, match="Nothing must implement forward"):
        type("Nothing", (nn.Module,), {})()(1)


# ----------------------------------------------------------------- layers
def test_linear_stores_weight_out_by_in_with_pytorch_init():
    tinygrad_lm.manual_seed(0)
    lin = nn.Linear(64, 10)
    assert lin.weight.shape == (10, 64) and lin.bias.shape == (10,)
    bound = 1 / math.sqrt(64)
    assert np.abs(lin.weight.data).max() <= bound and np.abs(lin.weight.data).max() > 0.9 * bound
    assert lin.weight.dtype == np.float32 and lin.weight.requires_grad
    assert [n for n, _ in nn.Linear(3, 2, bias=False).named_parameters()] == ["weight"]
    x = np.ones((2, 5, 64), dtype=np.float32)
    np.testing.assert_allclose(lin(Tensor(x)).data, x @ lin.weight.data.T + lin.bias.data, rtol=1e-5)


def test_init_follows_the_global_seed():
    tinygrad_lm.manual_seed(3)
    a = nn.Block(8, 2).state_dict()
    tinygrad_lm.manual_seed(3)
    b = nn.Block(8, 2).state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_embedding_module_scatter_adds_repeated_ids():
    emb = nn.Embedding(4, 3)
    assert emb.weight.shape == (4, 3)
    ids = np.array([[2, 2, 2], [0, 2, 1]])
    emb(ids).sum().backward()
    np.testing.assert_array_equal(emb.weight.grad[:, 0], [1, 1, 4, 0])
    emb.zero_grad()
    emb(Tensor(ids)).sum().backward()  # ids as a Tensor work too
    np.testing.assert_array_equal(emb.weight.grad[:, 0], [1, 1, 4, 0])


def test_layernorm_module_parameters_and_eps():
    ln = nn.LayerNorm(6, eps=1e-3)
    assert [n for n, _ in ln.named_parameters()] == ["weight", "bias"]
    np.testing.assert_array_equal(ln.weight.data, 1)
    np.testing.assert_array_equal(ln.bias.data, 0)
    assert [n for n, _ in nn.LayerNorm(6, bias=False).named_parameters()] == ["weight"]
    x = np.random.default_rng(0).standard_normal((2, 6)) * 0.01
    want = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-3)
    np.testing.assert_allclose(f64(ln)(Tensor(x)).data, want, rtol=1e-10)


def test_dropout_module_train_and_eval():
    d = nn.Dropout(0.5)
    x = Tensor(np.ones((50, 40), dtype=np.float32))
    y = d(x).data
    assert (y == 0).any() and set(np.unique(y)) == {0.0, 2.0}
    assert d.eval()(x) is x
    assert list(d.parameters()) == []
    with pytest.raises(ValueError, match="Dropout"):
        nn.Dropout(1.0)


def test_gelu_module_matches_functional():
    x = Tensor(np.linspace(-3, 3, 7))
    np.testing.assert_array_equal(nn.GELU()(x).data, nn.functional.gelu(x).data)
    assert list(nn.GELU().parameters()) == []


def test_mlp_names_shapes_and_hidden_width():
    m = nn.MLP(8)
    assert [(n, p.shape) for n, p in m.named_parameters()] == [
        ("c_fc.weight", (32, 8)), ("c_fc.bias", (32,)), ("c_proj.weight", (8, 32)), ("c_proj.bias", (8,))]
    assert nn.MLP(8, hidden=5).c_fc.weight.shape == (5, 8)
    assert not any(n.endswith("bias") for n, _ in nn.MLP(8, bias=False).named_parameters())
    x = np.random.default_rng(0).standard_normal((2, 3, 8))
    f64(m)
    h = x @ m.c_fc.weight.data.T + m.c_fc.bias.data
    h = 0.5 * h * (1 + np.tanh(np.sqrt(2 / np.pi) * (h + 0.044715 * h ** 3)))
    np.testing.assert_allclose(m(Tensor(x)).data, h @ m.c_proj.weight.data.T + m.c_proj.bias.data, rtol=1e-12)


def test_sinusoidal_encoding_matches_the_formula_and_has_no_parameters():
    d, P = 16, 50
    pe = nn.SinusoidalPositionalEncoding(P, d)
    assert list(pe.parameters()) == [] and pe.state_dict() == {}
    out = pe(np.arange(P))
    assert isinstance(out, Tensor) and out.shape == (P, d) and not out.requires_grad
    for pos in (0, 1, 7, 49):
        for i in range(d // 2):
            angle = pos / 10000 ** (2 * i / d)
            assert out.data[pos, 2 * i] == pytest.approx(math.sin(angle), abs=1e-6)
            assert out.data[pos, 2 * i + 1] == pytest.approx(math.cos(angle), abs=1e-6)
    np.testing.assert_array_equal(pe(np.array([3, 1])).data, out.data[[3, 1]])
    np.testing.assert_array_equal(out.data, nn.sinusoidal_table(P, d))


def test_sinusoidal_encoding_odd_dim_dtype_and_gradient_flow():
    pe = nn.SinusoidalPositionalEncoding(4, 5)
    t = pe(np.arange(4)).data
    assert t.shape == (4, 5)
    assert t[2, 4] == pytest.approx(math.sin(2 / 10000 ** (4 / 5)), abs=1e-6)
    assert pe.to(dtype=np.float64)(np.arange(2)).dtype == np.float64
    x = Tensor(np.zeros((4, 5)), requires_grad=True)
    (x + pe(np.arange(4))).sum().backward()  # added to embeddings, it passes gradient through
    np.testing.assert_array_equal(x.grad, 1)


def test_learned_positional_embedding_is_a_trained_table():
    wpe = nn.LearnedPositionalEmbedding(6, 4)
    assert [(n, p.shape) for n, p in wpe.named_parameters()] == [("weight", (6, 4))]
    wpe(np.arange(3)).sum().backward()
    np.testing.assert_array_equal(wpe.weight.grad[:, 0], [1, 1, 1, 0, 0, 0])
    with pytest.raises(IndexError, match="out of range"):
        wpe(np.arange(7))


def test_block_parameter_names_follow_gpt2():
    names = [n for n, _ in nn.Block(8, 2).named_parameters()]
    assert names == ["ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight",
                     "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias",
                     "mlp.c_proj.weight", "mlp.c_proj.bias"]
    assert all(not n.endswith("bias") for n, _ in nn.Block(8, 2, bias=False).named_parameters())


def test_block_keeps_float32(rng):
    b = nn.Block(8, 2)
    x = Tensor(rng.standard_normal((2, 3, 8)).astype(np.float32), requires_grad=True)
    y = b(x)
    y.sum().backward()
    assert y.dtype == np.float32 and x.grad.dtype == np.float32
    assert all(p.grad.dtype == np.float32 for p in b.parameters())


# ----------------------------------------------------------------- gradchecks, hypothesis sizes
@BOTH
@settings(max_examples=15, deadline=None)
@given(B=B_, T=T_, C=C_, out=st.integers(1, 6), bias=st.booleans())
def test_linear_module_gradcheck(fused, B, T, C, out, bias):
    x = np.random.default_rng(C + out).standard_normal((B, T, C))
    assert check_module(f64(nn.Linear(C, out, bias=bias), fused), Tensor(x, requires_grad=True))


@BOTH
@settings(max_examples=15, deadline=None)
@given(B=B_, T=T_, C=C_, V=st.integers(1, 6))
def test_embedding_module_gradcheck(fused, B, T, C, V):
    ids = np.random.default_rng(V).integers(0, V, size=(B, T))
    assert check_module(f64(nn.Embedding(V, C), fused), ids)
    assert check_module(f64(nn.LearnedPositionalEmbedding(max(T, V), C), fused), np.arange(T))


@BOTH
@settings(max_examples=15, deadline=None)
@given(B=B_, T=T_, C=C_, bias=st.booleans())
def test_layernorm_module_gradcheck(fused, B, T, C, bias):
    ln = f64(nn.LayerNorm(C, bias=bias), fused)
    rng = np.random.default_rng(C)
    for p in ln.parameters():  # away from the 1/0 init so the scale and shift matter
        p.data = rng.standard_normal(p.shape)
    assert check_module(ln, Tensor(rng.standard_normal((B, T, C)), requires_grad=True))


@BOTH
@settings(max_examples=12, deadline=None)
@given(B=B_, T=T_, C=C_, hidden=st.integers(1, 8))
def test_mlp_and_gelu_module_gradcheck(fused, B, T, C, hidden):
    x = Tensor(np.random.default_rng(hidden).standard_normal((B, T, C)), requires_grad=True)
    assert check_module(f64(nn.MLP(C, hidden=hidden, dropout=0.5), fused), x)  # eval: dropout off
    assert check_module(f64(nn.GELU(), fused), x)


@BOTH
@settings(max_examples=12, deadline=None)
@given(B=B_, T=T_, C=C_, n_head=st.sampled_from([1, 2, 4]), masked=st.booleans())
def test_attention_module_gradcheck(fused, B, T, C, n_head, masked):
    attn = f64(nn.CausalSelfAttention(C, n_head, dropout=0.3), fused)
    rng = np.random.default_rng(B + T + C + n_head)
    x = Tensor(rng.standard_normal((B, T, C)), requires_grad=True)
    mask = rng.random((B, T)) > 0.3 if masked else None  # may mask a whole query row
    assert check_gradients(lambda a: attn(a, mask), x, params=dict(attn.named_parameters()))


@BOTH
@settings(max_examples=10, deadline=None)
@given(B=B_, T=T_, C=C_, n_head=st.sampled_from([1, 2, 4]), bias=st.booleans())
def test_block_gradcheck(fused, B, T, C, n_head, bias):
    block = f64(nn.Block(C, n_head, dropout=0.2, bias=bias), fused)
    rng = np.random.default_rng(B + T + C)
    for p in block.parameters():  # larger than the init so each path carries signal
        p.data = rng.standard_normal(p.shape) * 0.5
    assert check_module(block, Tensor(rng.standard_normal((B, T, C)), requires_grad=True))


def test_gradcheck_of_a_module_catches_a_wrong_backward(monkeypatch):
    # the layer gradchecks are only worth something if a broken backward fails them
    from tinygrad_lm.fast.layernorm import LayerNormKernel

    ln = f64(nn.LayerNorm(4), fused=True)
    ln.weight.data = np.arange(1.0, 5.0)
    orig = LayerNormKernel.backward
    monkeypatch.setattr(LayerNormKernel, "backward",
                        lambda self, gy: tuple(g * 1.01 if i == 1 else g for i, g in enumerate(orig(self, gy))))
    with pytest.raises(AssertionError, match="param weight"):
        check_module(ln, Tensor(np.random.default_rng(0).standard_normal((2, 4)), requires_grad=True))


@BOTH
@settings(max_examples=6, deadline=None)
@given(B=B_, T=st.integers(2, 4), n_head=st.sampled_from([1, 2]))
def test_block_gradcheck_in_train_mode_with_dropout(fused, B, T, n_head):
    # reseeding the global generator inside fn draws the same attention, residual and MLP
    # dropout masks on every evaluation, so the training-mode block is a fixed function
    block = f64(nn.Block(4, n_head, dropout=0.3), fused).train()
    x = Tensor(np.random.default_rng(T).standard_normal((B, T, 4)), requires_grad=True)

    def fn(a):
        tinygrad_lm.manual_seed(1)
        return block(a)

    assert check_gradients(fn, x, params=dict(block.named_parameters()))
    tinygrad_lm.manual_seed(1)
    with tinygrad_lm.no_grad():
        assert not np.allclose(block(x).data, block.eval()(x).data)  # dropout really was on

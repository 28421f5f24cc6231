"""PyTorch as the oracle for every layer and loss, in float64: values and gradients.

Skipped cleanly when torch is not installed; CI's oracle run (`-m oracle`) requires it. Optimizers are compared
with PyTorch in test_optim.py.
"""
import numpy as np
import pytest

from oracles import oracle  # tests/oracles.py

pytestmark = pytest.mark.oracle
torch = oracle("torch")
import torch.nn.functional as TF  # noqa: E402

from tinygrad_lm import Tensor, nn  # noqa: E402
from tinygrad_lm.engine import functional as F  # noqa: E402
from tinygrad_lm.fast import functional as FAST  # noqa: E402

RTOL, ATOL = 1e-10, 1e-12


def tt(a, grad=True):
    """A float64 torch leaf from a NumPy array."""
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def ours(a, grad=True):
    return Tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def close(a, b, rtol=RTOL, atol=ATOL):
    b = b.detach().numpy() if isinstance(b, torch.Tensor) else b
    a = a.data if isinstance(a, Tensor) else a
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


def load_into_torch(torch_module, our_module):
    """Copy our parameters into a torch module by name (strict: the names must agree)."""
    torch_module.load_state_dict({k: torch.from_numpy(v) for k, v in our_module.state_dict().items()})


def check_forward_backward(y, ty, gy, leaves=(), torch_leaves=()):
    """y against torch's ty, then backward gy through both and each leaf's grad against its twin."""
    close(y, ty)
    y.backward(grad=gy)
    ty.backward(torch.tensor(gy))
    for u, v in zip(leaves, torch_leaves, strict=True):
        close(u.grad, v.grad)


def compare_grads(our_module, torch_module):
    tgrads = {n: p.grad for n, p in torch_module.named_parameters()}
    assert set(tgrads) == {n for n, _ in our_module.named_parameters()}
    for name, p in our_module.named_parameters():
        close(p.grad, tgrads[name])


# ----------------------------------------------------------------- torch twins with GPT-2 names
class TorchAttention(torch.nn.Module):
    def __init__(self, C, n_head, bias=True):
        super().__init__()
        self.n_head = n_head
        self.c_attn = torch.nn.Linear(C, 3 * C, bias=bias)
        self.c_proj = torch.nn.Linear(C, C, bias=bias)

    def forward(self, x, key_mask=None):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (a.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for a in (q, k, v))
        if key_mask is None:
            y = TF.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            allowed = torch.ones(T, T, dtype=torch.bool).tril() & key_mask[:, None, None, :]
            y = TF.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C))


class TorchMLP(torch.nn.Module):
    def __init__(self, C, bias=True):
        super().__init__()
        self.c_fc = torch.nn.Linear(C, 4 * C, bias=bias)
        self.c_proj = torch.nn.Linear(4 * C, C, bias=bias)

    def forward(self, x):
        return self.c_proj(TF.gelu(self.c_fc(x), approximate="tanh"))


class TorchBlock(torch.nn.Module):
    def __init__(self, C, n_head, bias=True):
        super().__init__()
        self.ln_1 = torch.nn.LayerNorm(C, bias=bias)
        self.attn = TorchAttention(C, n_head, bias)
        self.ln_2 = torch.nn.LayerNorm(C, bias=bias)
        self.mlp = TorchMLP(C, bias)

    def forward(self, x, key_mask=None):
        x = x + self.attn(self.ln_1(x), key_mask)
        return x + self.mlp(self.ln_2(x))


# ----------------------------------------------------------------- layers
def test_linear_loads_a_torch_state_dict_and_gives_the_same_outputs(rng):
    torch.manual_seed(0)
    tlin = torch.nn.Linear(5, 3).double()
    lin = nn.Linear(5, 3).to(dtype=np.float64)
    lin.load_state_dict({k: v.numpy() for k, v in tlin.state_dict().items()})
    x = rng.standard_normal((2, 4, 5))
    close(lin(ours(x)), tlin(tt(x)))
    # raw torch tensors load too, and the other direction works unchanged
    lin.load_state_dict(tlin.state_dict())
    close(lin(ours(x)), tlin(tt(x)))
    tlin2 = torch.nn.Linear(5, 3, bias=False).double()
    lin2 = nn.Linear(5, 3, bias=False).to(dtype=np.float64)
    load_into_torch(tlin2, lin2)
    close(lin2(ours(x)), tlin2(tt(x)))


def test_linear_grads_match_torch(rng):
    lin, tlin = nn.Linear(4, 6).to(dtype=np.float64), torch.nn.Linear(4, 6).double()
    load_into_torch(tlin, lin)
    x, gy = rng.standard_normal((3, 2, 4)), rng.standard_normal((3, 2, 6))
    xa, xb = ours(x), tt(x)
    lin(xa).backward(grad=gy)
    tlin(xb).backward(torch.tensor(gy))
    close(xa.grad, xb.grad)
    compare_grads(lin, tlin)


def test_embedding_matches_torch_with_repeated_ids(rng):
    emb, temb = nn.Embedding(6, 4).to(dtype=np.float64), torch.nn.Embedding(6, 4).double()
    load_into_torch(temb, emb)
    ids = np.array([[0, 5, 5, 2], [5, 2, 1, 0]])
    gy = rng.standard_normal((2, 4, 4))
    check_forward_backward(emb(ids), temb(torch.tensor(ids)), gy)
    compare_grads(emb, temb)


@pytest.mark.parametrize("bias", [True, False])
def test_layernorm_module_matches_torch(rng, bias):
    ln, tln = nn.LayerNorm(8, eps=1e-4, bias=bias).to(dtype=np.float64), torch.nn.LayerNorm(8, eps=1e-4, bias=bias).double()
    with torch.no_grad():
        for p in tln.parameters():
            p.copy_(torch.randn_like(p))
    ln.load_state_dict(tln.state_dict())
    x, gy = rng.standard_normal((2, 3, 8)) * 4 + 2, rng.standard_normal((2, 3, 8))
    xa, xb = ours(x), tt(x)
    check_forward_backward(ln(xa), tln(xb), gy, [xa], [xb])
    compare_grads(ln, tln)


@pytest.mark.parametrize("fn", ["fast", "reference"])
def test_layer_norm_functional_matches_torch(rng, fn):
    f = FAST.layer_norm if fn == "fast" else F.layer_norm
    x, w, b, gy = rng.standard_normal((4, 6)), rng.standard_normal(6), rng.standard_normal(6), rng.standard_normal((4, 6))
    a = [ours(x), ours(w), ours(b)]
    t = [tt(x), tt(w), tt(b)]
    check_forward_backward(f(*a, eps=1e-5), TF.layer_norm(t[0], (6,), t[1], t[2], eps=1e-5), gy, a, t)


def test_gelu_softmax_log_softmax_match_torch(rng):
    x, gy = rng.standard_normal((3, 7)) * 3, rng.standard_normal((3, 7))
    for ours_fn, torch_fn in [(F.gelu, lambda t: TF.gelu(t, approximate="tanh")),
                              (nn.GELU(), lambda t: TF.gelu(t, approximate="tanh")),
                              (lambda t: F.softmax(t, axis=-1), lambda t: torch.softmax(t, -1)),
                              (lambda t: F.softmax(t, axis=0), lambda t: torch.softmax(t, 0)),
                              (lambda t: F.log_softmax(t, axis=-1), lambda t: torch.log_softmax(t, -1))]:
        a, b = ours(x), tt(x)
        check_forward_backward(ours_fn(a), torch_fn(b), gy, [a], [b])


def test_dropout_in_eval_is_identity_like_torch(rng):
    x = rng.standard_normal((3, 4))
    d, td = nn.Dropout(0.4).eval(), torch.nn.Dropout(0.4).eval()
    close(d(ours(x)), td(tt(x)), rtol=0, atol=0)


def test_mlp_matches_torch(rng):
    mlp, tmlp = nn.MLP(8).to(dtype=np.float64), TorchMLP(8).double()
    load_into_torch(tmlp, mlp)
    x, gy = rng.standard_normal((2, 3, 8)), rng.standard_normal((2, 3, 8))
    xa, xb = ours(x), tt(x)
    check_forward_backward(mlp(xa), tmlp(xb), gy, [xa], [xb])
    compare_grads(mlp, tmlp)


# ----------------------------------------------------------------- losses
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.7])
@pytest.mark.parametrize("fn", ["fast", "reference"])
def test_cross_entropy_matches_torch(rng, reduction, smoothing, fn):
    f = FAST.cross_entropy if fn == "fast" else F.cross_entropy
    z = rng.standard_normal((2, 5, 9)) * 3
    t = rng.integers(0, 9, size=(2, 5))
    t[0, 1] = t[1, 3] = t[1, 4] = -1
    a, b = ours(z), tt(z)
    loss = f(a, t, ignore_index=-1, reduction=reduction, label_smoothing=smoothing)
    tloss = TF.cross_entropy(b.reshape(-1, 9), torch.tensor(t).reshape(-1), ignore_index=-1,
                             reduction=reduction, label_smoothing=smoothing)
    if reduction == "none":
        tloss = tloss.reshape(2, 5)
    check_forward_backward(loss, tloss, rng.standard_normal(loss.shape), [a], [b])


# ----------------------------------------------------------------- attention
@pytest.mark.parametrize("fn", ["fast", "reference"])
@pytest.mark.parametrize("T", [1, 4, 7])
def test_sdpa_matches_torch_is_causal(rng, fn, T):
    f = FAST.scaled_dot_product_attention if fn == "fast" else F.scaled_dot_product_attention
    q, k, v, gy = (rng.standard_normal((2, 3, T, 4)) for _ in range(4))
    a, b = [ours(u) for u in (q, k, v)], [tt(u) for u in (q, k, v)]
    check_forward_backward(f(*a, causal=True), TF.scaled_dot_product_attention(*b, is_causal=True), gy, a, b)


def test_sdpa_with_bool_mask_and_more_keys_than_queries_matches_torch(rng):
    # causal with S > T aligns the diagonal bottom-right (query i sees keys <= i + S - T);
    # torch's is_causal aligns top-left, so spell the same mask out for torch explicitly
    T, S = 3, 5
    q, k, v = rng.standard_normal((2, 2, T, 4)), rng.standard_normal((2, 2, S, 4)), rng.standard_normal((2, 2, S, 4))
    pad = rng.random((2, 1, 1, S)) > 0.3
    pad[..., 0] = True
    allowed = np.tril(np.ones((T, S), dtype=bool), k=S - T) & pad
    gy = rng.standard_normal((2, 2, T, 4))
    a, b = [ours(u) for u in (q, k, v)], [tt(u) for u in (q, k, v)]
    y = F.scaled_dot_product_attention(*a, causal=True, mask=pad)
    ty = TF.scaled_dot_product_attention(*b, attn_mask=torch.tensor(allowed))
    check_forward_backward(y, ty, gy, a, b)


@pytest.mark.parametrize("masked", [False, True])
def test_causal_self_attention_matches_torch(rng, masked):
    attn, tattn = nn.CausalSelfAttention(8, 2).to(dtype=np.float64), TorchAttention(8, 2).double()
    load_into_torch(tattn, attn)
    x, gy = rng.standard_normal((2, 5, 8)), rng.standard_normal((2, 5, 8))
    mask = np.array([[1, 1, 1, 0, 0], [1, 0, 1, 1, 1]], dtype=bool) if masked else None
    xa, xb = ours(x), tt(x)
    y = attn(xa, mask)
    ty = tattn(xb, None if mask is None else torch.tensor(mask))
    check_forward_backward(y, ty, gy, [xa], [xb])
    compare_grads(attn, tattn)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("masked", [False, True])
def test_block_matches_torch_forward_and_every_grad(rng, bias, masked):
    block, tblock = nn.Block(16, 4, bias=bias).to(dtype=np.float64), TorchBlock(16, 4, bias=bias).double()
    for p in block.parameters():  # non-trivial LayerNorm weights and biases too
        p.data = rng.standard_normal(p.shape) * 0.3
    load_into_torch(tblock, block)
    assert [n for n, _ in tblock.named_parameters()] == [n for n, _ in block.named_parameters()]
    x, gy = rng.standard_normal((3, 6, 16)), rng.standard_normal((3, 6, 16))
    mask = rng.random((3, 6)) > 0.3 if masked else None
    if masked:
        mask[:, 0] = True  # torch gives NaN for a query with no key to attend to
    xa, xb = ours(x), tt(x)
    y = block(xa, mask)
    ty = tblock(xb, None if mask is None else torch.tensor(mask))
    check_forward_backward(y, ty, gy, [xa], [xb])
    compare_grads(block, tblock)
    # and back: a torch state dict loads into ours strictly, with the same result
    block2 = nn.Block(16, 4, bias=bias).to(dtype=np.float64)
    block2.load_state_dict({k: v.numpy() for k, v in tblock.state_dict().items()})
    close(block2(ours(x), mask), ty)

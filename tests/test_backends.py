"""The same ops, layers and training step on every backend: NumPy always, CuPy where a GPU is,
and the CPU stand-in for CuPy (`cupy_standin.py`, a test double) where no GPU is.

Where a GPU is present, every op, reference layer and fast kernel is gradchecked on it, results
must match the NumPy run, and one full GPT training step in float64 must agree with the CPU to
1e-10 relative. Without one (CI), the same tests run on the stand-in, which refuses what CuPy
refuses (host arrays in device ops, implicit conversion to NumPy), so dispatch bugs fail here
on every commit; the real GPU run (`scripts/gpu_check.py`) stays the authority.
`test_cuda_path.py` has the rest of the CuPy path (generate, fine-tuning, resume, syncs).
The CPU-only tests at the bottom check what a user without a GPU sees.
"""
import numpy as np
import pytest

import tinygrad_lm
from tinygrad_lm import Tensor
from tinygrad_lm.engine import backend
from tinygrad_lm.engine import functional as F
from tinygrad_lm.fast import functional as FAST
from tinygrad_lm.testing import check_gradients, devices
from tinygrad_lm.testing.backends import cuda_devices

BACKENDS = devices()  # numpy always; cupy on a GPU (skipped without one); cupy-standin where no GPU is

# (name, function of tensors, input shapes, positive inputs only)
OPS = [
    ("add", lambda a, b: a + b, [(2, 3), (3,)], False),
    ("sub", lambda a, b: a - b, [(2, 1), (2, 3)], False),
    ("mul", lambda a, b: a * b, [(2, 3), (2, 3)], False),
    ("div", lambda a, b: a / b, [(2, 3), (3,)], True),
    ("pow", lambda a: a ** 3, [(2, 3)], False),
    ("matmul", lambda a, b: a @ b, [(2, 3, 4), (4, 2)], False),
    ("sum", lambda a: a.sum(axis=1), [(2, 3)], False),
    ("mean", lambda a: a.mean(axis=0, keepdims=True), [(2, 3)], False),
    ("max", lambda a: a.max(axis=-1), [(2, 3)], False),
    ("var", lambda a: a.var(axis=1), [(2, 4)], False),
    ("exp", lambda a: a.exp(), [(2, 3)], False),
    ("log", lambda a: a.log(), [(2, 3)], True),
    ("sqrt", lambda a: a.sqrt(), [(2, 3)], True),
    ("tanh", lambda a: a.tanh(), [(2, 3)], False),
    ("sigmoid", lambda a: a.sigmoid(), [(2, 3)], False),
    ("gelu", lambda a: a.gelu(), [(2, 3)], False),
    ("reshape", lambda a: a.reshape(3, 2) * 1.5, [(2, 3)], False),
    ("permute", lambda a: a.permute(2, 0, 1), [(2, 3, 4)], False),
    ("getitem", lambda a: a[np.array([0, 0, 1])], [(2, 3)], False),
    ("concat", lambda a, b: tinygrad_lm.concat([a, b], axis=1), [(2, 3), (2, 2)], False),
    ("stack", lambda a, b: tinygrad_lm.stack([a, b], axis=0), [(2, 3), (2, 3)], False),
    ("split", lambda a: a.split([1, 2], axis=1)[1], [(2, 3)], False),
    ("softmax", lambda a: a.softmax(axis=-1), [(2, 3)], False),
    ("log_softmax", lambda a: a.log_softmax(axis=0), [(2, 3)], False),
    ("layer_norm", lambda a, w, b: F.layer_norm(a, w, b), [(2, 4), (4,), (4,)], False),
    ("linear", lambda a, w, b: F.linear(a, w, b), [(2, 3, 4), (5, 4), (5,)], False),
    ("cross_entropy", lambda a: F.cross_entropy(a, np.array([1, -1, 4]), label_smoothing=0.1), [(3, 5)], False),
    ("attention", lambda q, k, v: F.scaled_dot_product_attention(q, k, v), [(1, 2, 3, 4)] * 3, False),
    ("fast_layer_norm", lambda a, w, b: FAST.layer_norm(a, w, b), [(2, 4), (4,), (4,)], False),
    ("fast_linear", lambda a, w, b: FAST.linear(a, w, b), [(2, 3, 4), (5, 4), (5,)], False),
    ("fast_embedding", lambda w: FAST.embedding(np.array([[0, 2, 0]]), w), [(3, 4)], False),
    ("fast_cross_entropy", lambda a: FAST.cross_entropy(a, np.array([1, -1, 4]), label_smoothing=0.1), [(3, 5)], False),
    ("fast_attention", lambda q, k, v: FAST.scaled_dot_product_attention(q, k, v), [(1, 2, 3, 4)] * 3, False),
    ("fast_packed_attention", lambda qkv: FAST.packed_self_attention(qkv, 2), [(2, 3, 12)], False),
    ("fast_gelu", lambda a: FAST.gelu(a), [(2, 3)], False),
]


def _inputs(shapes, positive, device, seed=0):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s) for s in shapes]
    if positive:
        arrays = [np.abs(a) + 0.5 for a in arrays]
    return [Tensor(a, requires_grad=True, device=device) for a in arrays]


@pytest.mark.parametrize("device", BACKENDS)
@pytest.mark.parametrize("name,fn,shapes,positive", OPS, ids=[o[0] for o in OPS])
def test_op_gradcheck_and_agreement_with_numpy(device, name, fn, shapes, positive):
    inputs = _inputs(shapes, positive, device)
    assert check_gradients(fn, *inputs)
    out = fn(*inputs)
    assert out.device == device
    reference = fn(*_inputs(shapes, positive, "cpu"))
    np.testing.assert_allclose(out.numpy(), reference.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("fused", [False, True], ids=["reference", "fast"])
@pytest.mark.parametrize("device", BACKENDS)
def test_training_step_matches_the_cpu_in_float64(device, fused):
    from tinygrad_lm import fast
    from tinygrad_lm.models.gpt import GPT, GPTConfig
    from tinygrad_lm.optim import AdamW, clip_grad_norm_

    cfg = GPTConfig(vocab_size=13, block_size=8, n_layer=2, n_head=2, n_embd=16)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 13, (3, 8)), rng.integers(0, 13, (3, 8))

    def one_step(dev, fuse):
        tinygrad_lm.manual_seed(0)
        model = GPT(cfg).to(device=dev, dtype=np.float64)
        if fuse:  # the fast path on the device must match the reference on the CPU
            fast.fuse(model)
        opt = AdamW(model.parameters(), lr=1e-2)
        losses = []
        for _ in range(2):
            _, loss = model(backend.to_device(x, dev), backend.to_device(y, dev))
            opt.zero_grad()
            loss.backward()
            clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            losses.append(loss.item())
        return losses, model.state_dict()

    cpu_losses, cpu_state = one_step("cpu", False)
    dev_losses, dev_state = one_step(device, fused)
    np.testing.assert_allclose(dev_losses, cpu_losses, rtol=1e-10)
    for k in cpu_state:
        np.testing.assert_allclose(dev_state[k], cpu_state[k], rtol=1e-10, atol=1e-12, err_msg=k)


@pytest.mark.parametrize("device", cuda_devices())
def test_mixed_device_op_names_both_devices(device):
    a = Tensor(np.ones(3), device="cpu")
    b = Tensor(np.ones(3), device="cuda")
    with pytest.raises(RuntimeError, match=r"different devices \(cpu \(3,\), cuda \(3,\)\)"):
        a + b
    with pytest.raises(RuntimeError, match="different devices"):
        a @ b


# ------------------------------------------------------------------ what a CPU-only user sees
@pytest.mark.skipif(backend.gpu_available, reason="checks the error shown where there is no GPU")
def test_asking_for_cuda_without_a_gpu_says_how_to_install_cupy():
    with pytest.raises(RuntimeError, match=r"pip install -e \.\[gpu\].*cupy-cuda13x"):
        Tensor([1.0, 2.0], device="cuda")
    with pytest.raises(RuntimeError, match="cupy"):
        Tensor([1.0]).to("cuda")
    from tinygrad_lm.nn import Linear

    with pytest.raises(RuntimeError, match="CuPy"):
        Linear(2, 2).to(device="cuda")


def test_unknown_device_is_refused():
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        Tensor([1.0], device="tpu")


def test_array_module_comes_from_the_arrays():
    assert backend.get_array_module(np.ones(2)) is np
    assert backend.get_array_module(1.0, np.ones(2)) is np
    assert backend.device_of(np.ones(2)) == "cpu"
    t = Tensor([1.0, 2.0])
    assert t.device == "cpu" and t.to("cpu") is t

"""The fused CUDA kernels of `tinygrad_lm/fast/cuda/`: every source compiles, everywhere nvcc is;
each kernel matches its NumPy twin, where a GPU is.

Compiling needs no GPU: nvcc (or, without it, CuPy's NVRTC) builds each source for sm_80
(A100) and sm_90 (H100/H200), and a failure shows the compiler's message. The comparisons run
the fast layer on the GPU in float32 (the kernels' dtype) against the same layer on the CPU in
float64 (its NumPy code, pinned to the reference path by test_fast.py); they skip without a
GPU, and `scripts/gpu_check.py` runs them there. In CI the same comparisons run with the
kernels emulated in NumPy on the CuPy stand-in, which checks everything but the CUDA C.
"""
import shutil
import subprocess

import numpy as np
import pytest

import tinygrad_lm
from tinygrad_lm import Tensor
from tinygrad_lm.engine import backend
from tinygrad_lm.fast import cuda
from tinygrad_lm.fast import functional as FAST

ARCHS = ("sm_80", "sm_90")
NVCC = shutil.which("nvcc")


def _nvrtc():
    try:
        from cupy.cuda import compiler
    except ImportError:
        return None
    return compiler


@pytest.mark.skipif(NVCC is None and _nvrtc() is None, reason="neither nvcc nor CuPy's NVRTC is available")
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("name", sorted(cuda.SOURCES))
def test_kernel_source_compiles(name, arch, tmp_path):
    source = cuda.SOURCES[name]
    if NVCC is not None:
        path = tmp_path / f"{name}.cu"
        path.write_text(source, encoding="utf-8")
        run = subprocess.run([NVCC, f"-arch={arch}", "-ptx", str(path), "-o", str(tmp_path / "k.ptx")],
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, f"nvcc -arch={arch} failed on fast/cuda/{name}.py:\n{run.stderr}"
        assert ".entry" in (tmp_path / "k.ptx").read_text()  # the kernels are there, not compiled away
    else:
        _nvrtc().compile_using_nvrtc(source, arch=arch[3:])  # CuPy adds -arch=compute_XX; raises with the log


def test_kernels_stay_off_for_numpy_and_for_the_standin(monkeypatch):
    import cupy_standin

    assert not cuda.enabled(np.ones(3, dtype=np.float32))
    cupy_standin.install(monkeypatch)
    assert not cuda.enabled(cupy_standin.asarray(np.ones(3, dtype=np.float32)))  # no RawModule: array code


REAL_GPU = backend.gpu_available and hasattr(backend.cupy, "RawModule")
RTOL, ATOL = 2e-4, 2e-5  # float32 kernels against the float64 twin


@pytest.fixture(params=["gpu", "emulated"])
def kernels(request, monkeypatch):
    """The kernels on the real GPU (skipped without one), then emulated in NumPy on the CPU
    stand-in (`cuda_kernel_emulator.py`, a test double: it checks the launches and the Python
    around the kernels, not the CUDA C)."""
    if request.param == "gpu":
        if not REAL_GPU:
            pytest.skip("the kernels run only on a real GPU (CuPy with a device)")
    else:
        import cuda_kernel_emulator

        cuda_kernel_emulator.install(monkeypatch)
    return request.param


def _pair(*shapes, seed=0):
    r = np.random.default_rng(seed)
    arrays = [r.standard_normal(s) for s in shapes]
    gpu = [Tensor(a.astype(np.float32), device="cuda", requires_grad=True) for a in arrays]
    cpu = [Tensor(a, requires_grad=True) for a in arrays]
    return gpu, cpu


def _compare(fn, gpu, cpu, seed=1):
    out_gpu, out_cpu = fn(*gpu), fn(*cpu)
    assert cuda.enabled(gpu[0].data)
    np.testing.assert_allclose(out_gpu.numpy(), out_cpu.numpy(), rtol=RTOL, atol=ATOL)
    r = np.random.default_rng(seed).standard_normal(out_cpu.shape)
    out_gpu.backward(Tensor(r.astype(np.float32), device="cuda"))
    out_cpu.backward(Tensor(r))
    for i, (g, c) in enumerate(zip(gpu, cpu)):
        np.testing.assert_allclose(backend.to_device(g.grad, "cpu"), c.grad, rtol=RTOL, atol=ATOL, err_msg=f"input {i}")


def test_layernorm_kernels_match_the_numpy_twin(kernels):
    _compare(lambda x, w, b: FAST.layer_norm(x, w, b), *_pair((4, 7, 384), (384,), (384,)))


def test_gelu_kernels_match_the_numpy_twin(kernels):
    _compare(FAST.gelu, *_pair((4, 7, 96)))


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_kernels_match_the_numpy_twin(kernels, smoothing):
    targets = np.random.default_rng(2).integers(0, 65, (4, 9))
    targets[0, :3] = -1  # ignored rows
    _compare(lambda z: FAST.cross_entropy(z, targets, label_smoothing=smoothing), *_pair((4, 9, 65)))


@pytest.mark.parametrize("T", [5, 64])
def test_attention_kernels_match_the_numpy_twin(kernels, T):
    _compare(lambda qkv: FAST.packed_self_attention(qkv, 6), *_pair((2, T, 3 * 48)))


def test_attention_dropout_on_the_gpu_uses_the_numpy_paths_draw(kernels):
    gpu, _ = _pair((2, 8, 3 * 16))
    cpu = Tensor(gpu[0].numpy())  # float32 on both sides: the generator's draw depends on the dtype
    out_gpu = FAST.packed_self_attention(gpu[0], 2, dropout_p=0.3, rng=np.random.default_rng(5))
    out_cpu = FAST.packed_self_attention(cpu, 2, dropout_p=0.3, rng=np.random.default_rng(5))
    np.testing.assert_allclose(out_gpu.numpy(), out_cpu.numpy(), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("decoupled", [True, False], ids=["adamw", "adam"])
def test_multi_tensor_adamw_matches_the_per_parameter_update(kernels, decoupled):
    from tinygrad_lm import fast, optim

    r = np.random.default_rng(0)
    shapes = [(384, 1152), (384,), (7,), (65, 384)]
    weights = [r.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[r.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(3)]
    results = []
    for device in ("cuda", "cpu"):
        params = [Tensor(w, device=device, requires_grad=True) for w in weights]
        cls = optim.AdamW if decoupled else optim.Adam
        opt = fast.fuse(cls([{"params": params[:2], "weight_decay": 0.1}, {"params": params[2:], "weight_decay": 0.0}],
                            lr=1e-2, betas=(0.9, 0.99)))
        for step in grads:
            for p, g in zip(params, step):
                p.grad = backend.to_device(g, device)
            opt.step()
        results.append([p.numpy() for p in params])
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_a_fast_float32_training_step_on_the_gpu_matches_the_cpu(kernels):
    from tinygrad_lm import fast
    from tinygrad_lm.models.gpt import GPT, GPTConfig
    from tinygrad_lm.optim import AdamW

    cfg = GPTConfig(vocab_size=65, block_size=32, n_layer=2, n_head=4, n_embd=64)
    r = np.random.default_rng(0)
    x, y = r.integers(0, 65, (4, 32)), r.integers(0, 65, (4, 32))
    losses = []
    for device in ("cuda", "cpu"):
        tinygrad_lm.manual_seed(0)
        model = fast.fuse(GPT(cfg)).to(device=device)
        opt = fast.fuse(AdamW(model.parameters(), lr=1e-3))
        run = []
        for _ in range(3):
            _, loss = model(backend.to_device(x, device), backend.to_device(y, device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            run.append(loss.item())
        losses.append(run)
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-4)


def test_the_dropout_kernel_draws_the_array_codes_mask_bit_for_bit(kernels):
    from tinygrad_lm.engine import rng
    from tinygrad_lm.fast.cuda.dropout import dropout_mask

    xp = backend.cupy
    rng.manual_seed(7)
    gen = rng.get_rng(xp)
    gen.random((5,))  # start mid-stream
    state = dict(gen.state)
    mask = dropout_mask((3, 4, 50), 0.2, gen)
    assert gen.state["counter"] == state["counter"] + 600  # the stream advanced as the array code's would
    gen.state = state
    want = (gen.random((3, 4, 50), np.float32) >= 0.2) * np.float32(1 / 0.8)
    np.testing.assert_array_equal(backend.to_device(mask, "cpu"), backend.to_device(want, "cpu"))


def test_attention_dropout_from_the_global_generator_is_the_array_codes(kernels, monkeypatch):
    gpu, _ = _pair((2, 8, 3 * 16))
    outs = []
    for switch in ("1", "0"):  # the kernels, then the CuPy array code
        monkeypatch.setenv("TINYGRAD_LM_CUDA_KERNELS", switch)
        tinygrad_lm.manual_seed(11)
        outs.append(FAST.packed_self_attention(gpu[0], 2, dropout_p=0.3).numpy())
    np.testing.assert_allclose(outs[0], outs[1], rtol=RTOL, atol=ATOL)


def test_tf32_is_off_unless_asked_and_set_tf32_switches_cupys_float32_matmuls(monkeypatch):
    import types

    import cupy_standin
    from tinygrad_lm.fast.cuda.tf32 import set_tf32, tf32_enabled

    cupy_standin.install(monkeypatch)
    modes = {}  # a test double for cupy._core._routines_linalg: remembers each dtype's compute type
    linalg = types.SimpleNamespace(COMPUTE_TYPE_DEFAULT=0, COMPUTE_TYPE_TF32=4,
                                   set_compute_type=lambda dtype, mode: modes.__setitem__(np.dtype(dtype), mode),
                                   get_compute_type=lambda dtype: modes.get(np.dtype(dtype), 0))
    monkeypatch.setattr(cupy_standin, "_core", types.SimpleNamespace(_routines_linalg=linalg), raising=False)
    monkeypatch.delenv("CUPY_TF32", raising=False)
    assert not tf32_enabled()  # float32 by default
    assert set_tf32(True) and tf32_enabled()
    assert modes == {np.dtype(np.float32): 4, np.dtype(np.complex64): 4} and cuda_env() == "1"
    assert set_tf32(False) and not tf32_enabled() and cuda_env() == "0"


def cuda_env():
    import os

    return os.environ["CUPY_TF32"]


def test_fused_dropout_on_the_gpu_is_the_reference_bit_for_bit(kernels):
    from tinygrad_lm import fast, nn
    from tinygrad_lm.engine import rng

    x = Tensor(np.random.default_rng(0).standard_normal((4, 8, 16)).astype(np.float32), device="cuda",
               requires_grad=True)
    outs, states = [], []
    for fused in (False, True):
        layer = nn.Dropout(0.2)
        if fused:
            fast.fuse(layer)
        rng.manual_seed(5)
        y = layer(x)
        y.backward(Tensor(np.ones((4, 8, 16), dtype=np.float32), device="cuda"))
        outs.append((y.numpy(), backend.to_device(x.grad, "cpu")))
        states.append(rng.get_state())
        x.grad = None
    assert type(layer).__name__ == "FusedDropout"
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)
    assert states[0] == states[1] and states[0]["dropout"]["site"] == 1  # one site each: checkpoints do not depend on fusing


def test_the_dropout_kernel_on_a_slice_draws_those_rows_of_the_whole_batchs_mask(kernels):
    """The key and counter the kernel is given (rng.site_generator): a slice of rows inside
    rng.batch_rows gets exactly those rows of the whole batch's mask, as on the CPU."""
    from tinygrad_lm import fast, nn
    from tinygrad_lm.engine import rng

    x = Tensor(np.ones((6, 5, 7), dtype=np.float32), device="cuda")
    layer = nn.Dropout(0.3)
    fast.fuse(layer)
    rng.manual_seed(4)
    whole = layer(x).numpy()
    rng.manual_seed(4)
    blocks = [rng.batch_rows(0, 0), rng.batch_rows(1, 0), rng.batch_rows(4, 0)]
    parts = []
    for block, (r0, r1) in zip(blocks, [(0, 1), (1, 4), (4, 6)]):
        with block:
            parts.append(layer(Tensor(x.data[r0:r1])).numpy())
    rng.advance_sites(blocks)
    assert type(layer).__name__ == "FusedDropout" and rng.current_site() == 1
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    assert 0 < (whole == 0).sum() < whole.size

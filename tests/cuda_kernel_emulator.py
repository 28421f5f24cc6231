"""TEST DOUBLE for `cupy.RawModule`: the kernels of `tinygrad_lm/fast/cuda/` emulated in NumPy,
for the CPU stand-in for CuPy (`cupy_standin.py`).

It runs none of the CUDA code. It lets CI exercise everything around the kernels: the switch in
each fast layer, the launch arguments (order, dtypes, shapes, the pointer tables of the
multi-tensor AdamW) and the Python that assembles gradients from kernel outputs, against the
kernels' documented contracts, written here a second time in NumPy. Whether the CUDA C itself
computes those contracts is for a GPU to say (tests/test_cuda_kernels.py there, and
scripts/gpu_check.py). A launch whose argument count or types do not match the kernel's CUDA
signature fails here as it would in CuPy.
Leaves out: grid and block shapes (checked only to be tuples of positive ints).
"""
import re

import numpy as np

import cupy_standin

_addresses = {}  # fake device address -> the stand-in array it names


class _Memory:
    def __init__(self, array):
        self.ptr = id(array)
        _addresses[self.ptr] = array


def _data(self):  # `array.data.ptr`, as CuPy's device pointer
    return _Memory(self)


def _deref(ptr):
    return _addresses[int(ptr)]._a.reshape(-1)


def _raw(a):
    return a._a if isinstance(a, cupy_standin.ndarray) else a


_CTYPES = {"float": np.float32, "int": np.int32, "long long": np.int64, "unsigned long long": np.uint64}


class RawModule:
    """`cupy.RawModule(code=...)`: parses the kernels' signatures and runs their NumPy emulations."""

    def __init__(self, code, options=()):
        self.signatures = {m.group(1): [p for p in m.group(2).split(",") if p.strip()]
                           for m in re.finditer(r'extern "C" __global__ void (\w+)\(([^)]*)\)', code)}

    def get_function(self, name):
        params = self.signatures[name]

        def run(grid, block, args, shared_mem=0):
            assert isinstance(grid, tuple) and isinstance(block, tuple), (grid, block)
            assert all(isinstance(n, int) and n > 0 for n in grid + block), (grid, block)
            assert len(args) == len(params), f"{name}: {len(args)} arguments for {len(params)} parameters"
            for a, p in zip(args, params):
                pointer, ctype = "*" in p, p.replace("const", "").replace("*", " ").split()[:-1]
                want = _CTYPES[" ".join(ctype)]
                assert pointer == isinstance(a, cupy_standin.ndarray), f"{name}: {p.strip()} given {type(a)}"
                if pointer:
                    assert a.dtype == want and a.flags.c_contiguous, f"{name}: {p.strip()} given {a.dtype}"
                else:
                    assert isinstance(a, want), f"{name}: {p.strip()} given {type(a).__name__}"
            KERNELS[name](*[_raw(a) for a in args])
        return run


def _gelu_forward(x, y, dydx, n):
    c, a = np.float32(0.7978845608028654), np.float32(0.044715)
    t = np.tanh(c * (x + a * x ** 3))
    h = 0.5 * (1 + t)
    y[...] = x * h
    dydx[...] = h + y * (1 - t) * c * (1 + 3 * a * x * x)


def _layernorm_forward(x, w, b, y, mean, rstd, N, C, eps):
    mean[...] = x.mean(axis=1)
    rstd[...] = 1 / np.sqrt(((x - mean[:, None]) ** 2).mean(axis=1) + eps)
    y[...] = (x - mean[:, None]) * rstd[:, None] * w + b


def _layernorm_backward_x(gy, x, w, mean, rstd, gx, N, C):
    xhat = (x - mean[:, None]) * rstd[:, None]
    g = gy * w
    gx[...] = rstd[:, None] * (g - g.mean(axis=1, keepdims=True) - xhat * (g * xhat).mean(axis=1, keepdims=True))


def _layernorm_backward_params(gy, x, mean, rstd, partial_w, partial_b, N, C):
    partial_w[...], partial_b[...] = 0, 0  # the partial sums add up to the column sums
    partial_w[0] = (gy * (x - mean[:, None]) * rstd[:, None]).sum(axis=0)
    partial_b[0] = gy.sum(axis=0)


def _cross_entropy_forward(z, targets, loss, lse, V, s):
    m = z.max(axis=1)
    lse[...] = m + np.log(np.exp(z - m[:, None]).sum(axis=1))
    picked = z[np.arange(len(z)), targets]
    loss[...] = (1 - s) * (lse - picked) + s * (lse - z.mean(axis=1))


def _cross_entropy_backward(z, targets, lse, scale, gz, V, s):
    p = np.exp(z - lse[:, None]) - s / V
    p[np.arange(len(z)), targets] -= 1 - s
    gz[...] = p * scale[:, None]


def _causal_softmax_forward(S, P, rows, Tq, Tk, scale):
    S3, P3 = S.reshape(-1, Tq, Tk), P.reshape(-1, Tq, Tk)  # (rows / Tq, Tq, Tk)
    allowed = np.arange(Tk)[None, :] <= np.arange(Tq)[:, None] + (Tk - Tq)  # (Tq, Tk)
    z = np.where(allowed, scale * S3, -np.inf)
    m = z.max(axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    e = np.exp(z - m)
    total = e.sum(axis=-1, keepdims=True)
    P3[...] = e / np.where(total == 0, 1, total)


def _causal_softmax_backward(P, dP, dS, rows, Tk, scale):
    P2, dP2 = P.reshape(-1, Tk), dP.reshape(-1, Tk)  # (rows, Tk)
    dS.reshape(-1, Tk)[...] = scale * P2 * (dP2 - (P2 * dP2).sum(axis=1, keepdims=True))


def _adamw_multi_tensor(w_ptrs, g_ptrs, m_ptrs, v_ptrs, sizes, scalars, block_tensor, block_start, chunk):
    assert block_tensor.size == block_start.size
    for t in range(sizes.size):
        w, g, m, v = (_deref(p[t]) for p in (w_ptrs, g_ptrs, m_ptrs, v_ptrs))
        assert w.size == sizes[t] and sum(block_tensor == t) == -(-sizes[t] // chunk)  # every chunk has a block
        step, eps, decay, l2, beta1, beta2 = scalars.reshape(-1)[6 * t:6 * t + 6]
        gi = g + l2 * w
        w *= decay
        m[...] = beta1 * m + (1 - beta1) * gi
        v[...] = beta2 * v + (1 - beta2) * gi * gi
        w -= step * m / (np.sqrt(v) + eps)


def _dropout_mask(out, n, key, counter, p, scale):
    from tinygrad_lm.engine.rng import CounterGenerator

    gen = CounterGenerator(np)
    gen.reserve = lambda m: (key, int(counter))  # the contract: CounterGenerator's numbers from counter on
    out[...] = np.where(gen.random(out.shape, np.float32) >= p, scale, np.float32(0))


def _gelu_backward(gy, dydx, gx, n):
    gx[...] = gy * dydx


KERNELS = {"dropout_mask": _dropout_mask, "gelu_forward": _gelu_forward, "gelu_backward": _gelu_backward,
           "layernorm_forward": _layernorm_forward, "layernorm_backward_x": _layernorm_backward_x,
           "layernorm_backward_params": _layernorm_backward_params,
           "cross_entropy_forward": _cross_entropy_forward, "cross_entropy_backward": _cross_entropy_backward,
           "causal_softmax_forward": _causal_softmax_forward, "causal_softmax_backward": _causal_softmax_backward,
           "adamw_multi_tensor": _adamw_multi_tensor}


def install(monkeypatch):
    """The stand-in for CuPy with this RawModule: the fast layer's kernel path switches on."""
    from tinygrad_lm.fast import cuda

    cupy_standin.install(monkeypatch)
    monkeypatch.setattr(cupy_standin, "RawModule", RawModule, raising=False)
    monkeypatch.setattr(cupy_standin.ndarray, "data", property(_data), raising=False)
    monkeypatch.setattr(cuda, "_modules", {})
    _addresses.clear()  # the addresses of the previous test's arrays

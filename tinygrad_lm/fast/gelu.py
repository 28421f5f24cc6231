"""Fast twin of `ops.gelu` / `nn.GELU`: the tanh-approximation GELU in cache-sized blocks.

The reference evaluates the formula on whole arrays: each of its ~10 elementwise passes
streams the (B, T, 4C) activation through memory, and backward recomputes the derivative from
saved x and t. Here forward computes y and dy/dx together, a block of 64 Ki elements at a time
so the scratch arrays stay in a core's L2 cache, and backward is one multiply. Forward +
backward on (12, 64, 512): 1.7x faster than the reference (`python scripts/bench_kernels.py`).
The blocks themselves pay on some CPUs only: 1.4x against the same kernel on the whole array
on BENCHMARKS.md's Intel machine, 0.96x on its AMD one.
Leaves out: the exact erf GELU.
"""
import math

from ..engine.backend import get_array_module
from ..nn import GELU
from ..engine.tensor import Function
from . import cuda
from .cuda import gelu as cuda_gelu

_GELU_C = math.sqrt(2.0 / math.pi)
_GELU_A = 0.044715
# elements per block of the NumPy GELU: a block's five float32 scratch arrays (1.25 MiB) stay in
# a core's L2 cache while the formula makes its ~14 passes over them
_GELU_BLOCK = 1 << 16


class GELUKernel(Function):
    """GELU and its derivative computed together in forward, so backward is one multiply
    (the reference `ops.unary.GELU` saves x and tanh(u) and evaluates the derivative in backward).

    With u = c (x + a x^3), t = tanh(u), h = (1 + t) / 2:
        y     = x h
        dy/dx = h + x (1 - t^2)/2 * c (1 + 3 a x^2) = h + y (1 - t) c (1 + 3 a x^2)
    (using (1 - t^2)/2 = h (1 - t)). Forward saves dy/dx and nothing else; backward is
    gy * dy/dx. On NumPy the array is cut into blocks of 64 Ki elements whose scratch arrays
    stay in cache across the formula's passes, instead of streaming whole arrays through
    memory once per pass (`python scripts/bench_layers.py --profile` shows the share).
    """

    def forward(self, x):
        if cuda.enabled(x):  # one fused CUDA kernel (fast/cuda/gelu.py), checked against the code below
            y, self.dydx = cuda_gelu.forward(x)
            return y
        xp = get_array_module(x)
        x1 = xp.ascontiguousarray(x).reshape(-1)  # (n,): blocks are slices of the flat array
        y1, d1 = xp.empty_like(x1), xp.empty_like(x1)
        n = x1.shape[0]
        block = n if xp.__name__ != "numpy" else min(n, _GELU_BLOCK)
        x2, t, h = xp.empty_like(x1[:block]), xp.empty_like(x1[:block]), xp.empty_like(x1[:block])
        for s in range(0, n, max(block, 1)):
            xc, yc, dc = x1[s:s + block], y1[s:s + block], d1[s:s + block]
            m = xc.shape[0]
            x2m, tm, hm = x2[:m], t[:m], h[:m]
            xp.multiply(xc, xc, out=x2m)  # x^2
            xp.multiply(x2m, _GELU_C * _GELU_A, out=tm)
            tm += _GELU_C
            tm *= xc  # u = c (x + a x^3)
            xp.tanh(tm, out=tm)  # t
            xp.multiply(tm, 0.5, out=hm)
            hm += 0.5  # h = (1 + t) / 2
            xp.multiply(hm, xc, out=yc)  # y = x h
            x2m *= 3 * _GELU_A * _GELU_C
            x2m += _GELU_C  # c (1 + 3 a x^2)
            xp.subtract(1, tm, out=tm)  # 1 - t
            x2m *= tm
            x2m *= yc
            xp.add(x2m, hm, out=dc)  # dy/dx
        self.dydx = d1.reshape(x.shape)
        return y1.reshape(x.shape)

    def backward(self, gy):
        if cuda.enabled(gy, self.dydx):
            return cuda_gelu.backward(gy, self.dydx)
        return gy * self.dydx


def gelu(x):
    """`ops.gelu`, blocked: GELU, tanh approximation (as in GPT-2)."""
    return GELUKernel()(x)


class FusedGELU(GELU):
    """`nn.GELU` with the blocked kernel."""

    def forward(self, x):
        return gelu(x)

"""Fast twin of `ops.gelu` / `nn.GELU`: the tanh-approximation GELU in cache-sized blocks.

The reference evaluates the formula on whole arrays: each of its ~10 elementwise passes
streams the (B, T, 4C) activation through memory, and backward recomputes the derivative from
saved x and t. Here forward computes y and dy/dx together, a block of 64 Ki elements at a time
so the scratch arrays stay in a core's L2 cache, and backward is one multiply. Forward +
backward on (12, 64, 512): measured 1.7x faster than the reference (BENCHMARKS.md, "Each fast
kernel against its reference twin"; `python scripts/bench_kernels.py`). The blocks themselves
pay on some CPUs only: 1.4x against the same kernel on the whole array on BENCHMARKS.md's
Intel machine, 0.96x on its AMD one.

Forward, elementwise, with c = sqrt(2/pi) [_GELU_C] and a = 0.044715 [_GELU_A]:
    u = c (x + a x^3)
    t = tanh(u)
    h = (1 + t) / 2             (computed without tanh: below)
    y = x h                     (= 0.5 x (1 + tanh(u)), GPT-2's formula)

Derivative, step by step:
1. Product rule on y = x h:
       dy/dx = h + x dh/dx
2. h = (1 + tanh u) / 2 and tanh' = 1 - tanh^2:
       dh/dx = (1/2) (1 - t^2) du/dx
3. Power rule on u = c (x + a x^3):
       du/dx = c (1 + 3 a x^2)
4. Together, the formula the reference (`ops.unary.GELU`) evaluates in backward:
       dy/dx = h + (1/2) x (1 - t^2) c (1 + 3 a x^2)
5. (1 - t^2) / 2 = (1 + t) (1 - t) / 2 = h (1 - t), so (1/2) x (1 - t^2) = x h (1 - t) = y (1 - t):
       dy/dx = h + y (1 - t) c (1 + 3 a x^2)
   which reuses y and needs no t^2: the formula this kernel computes.
Backward is then the chain rule for an elementwise function, no sum: gx = gy * dy/dx.

Without tanh: tanh u = (1 - e^(-2u)) / (1 + e^(-2u)), so
    h = (1 + t) / 2 = 1 / (1 + e^(-2u))            (a logistic sigmoid of 2u)
    1 - t = 2 - 2 h
NumPy's float32 exp costs about 0.6 of its tanh on the AMD machine (`np.tanh` there runs a
scalar loop), so h costs one exp, one add and one reciprocal: GELU's forward on (6, 64, 512),
one thread's slice in the default command, measured 0.78 against 1.01 ms with tanh (median of
200 alternating calls). For x below about -10, e^(-2u) overflows float32 to inf and h = 0,
which is h's value there in float32 (the overflow warning is silenced).

The code's passes over each block, in order (x2, e, h are scratch arrays; y and dydx outputs):
    x2 = x * x;  e = exp((-2 c a x2 - 2 c) x);  h = 1 / (e + 1);  y = h x
    dydx = (6 a c x2 + 2 c) (1 - h) y + h
The factor 2 of 1 - t = 2 (1 - h) sits in the constants, so 1 - h is one pass (a subtraction)
where 2 - 2h took two; scaling by 2 is exact in binary floating point, so the values are the
same bit for bit: 13 elementwise passes and one exp a block instead of 14 and one. Forward on
(6, 64, 512), thread CPU time, 40 alternating rounds of 20 calls on the shared 2-core AMD machine:
median 1203 against 1233 us, new/old 0.966 (p25-p75 0.926-0.994); exp alone is about half of it.
On a GPU (float32 CuPy arrays) one CUDA kernel (`fast/cuda/gelu.py`) computes y and dy/dx per
element from step 5's formula with CUDA's own `tanhf` (tanh is cheap there, so it keeps the
tanh spelling); this file's NumPy code is its oracle, to float32 rounding.
Leaves out: the exact erf GELU, y = x Phi(x) with derivative Phi(x) + x phi(x) (BERT's): it
stays on the reference path (`engine/ops/erf.py`, which derives it); `fuse` swaps only `nn.GELU`,
which is the tanh form.
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
# a core's L2 cache while the formula makes its ~15 passes over them
_GELU_BLOCK = 1 << 16


class GELUKernel(Function):
    """GELU and its derivative computed together in forward, so backward is one multiply
    (the reference `ops.unary.GELU` saves x and tanh(u) and evaluates the derivative in
    backward). The derivation of dy/dx = h + y (1 - t) c (1 + 3 a x^2) is in the module
    docstring. Forward saves dy/dx and nothing else. On NumPy the array is cut into blocks of
    64 Ki elements whose scratch arrays stay in cache across the formula's passes, instead of
    streaming whole arrays through memory once per pass (`python scripts/bench_layers.py
    --profile` shows the share).
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
        x2, e, h = xp.empty_like(x1[:block]), xp.empty_like(x1[:block]), xp.empty_like(x1[:block])
        for s in range(0, n, max(block, 1)):
            xc, yc, dc = x1[s:s + block], y1[s:s + block], d1[s:s + block]
            m = xc.shape[0]
            x2m, em, hm = x2[:m], e[:m], h[:m]
            xp.multiply(xc, xc, out=x2m)  # x^2
            xp.multiply(x2m, -2 * _GELU_C * _GELU_A, out=em)
            em -= 2 * _GELU_C
            em *= xc  # -2u = -2c (x + a x^3)
            with xp.errstate(over="ignore"):  # exp(-2u) = inf for x below about -10: h = 0, as it should
                xp.exp(em, out=em)
            em += 1.0
            xp.divide(1.0, em, out=hm)  # h = 1 / (1 + exp(-2u)) = (1 + t) / 2
            xp.multiply(hm, xc, out=yc)  # y = x h
            x2m *= 6 * _GELU_A * _GELU_C
            x2m += 2 * _GELU_C  # 2 c (1 + 3 a x^2)
            xp.subtract(1.0, hm, out=em)  # 1 - h = (1 - t) / 2
            x2m *= em
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

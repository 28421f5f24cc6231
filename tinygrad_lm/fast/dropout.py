"""Fast twin of `F.dropout` / `nn.Dropout` for the GPU: the mask drawn and scaled by one CUDA
kernel (`fast/cuda/dropout.py`) instead of the counter generator's ~10 array passes.

The numbers are the same ones the reference asks rng.py for on a GPU (the CounterGenerator keyed
by seed and site, counting from the slice's first row: bit for bit), so the mask, the output and
the site counter after the call are those of the reference: fusing changes no result, only the
passes over memory (at the shakespeare config, 19 dropouts of (64, 256, 384) per step, ~10
uint64 passes each).
Everywhere else (NumPy, float64, a generator of the caller's) it is the reference op itself.
Backward: y = x m, with m (0 or 1/(1-p) per element) drawn in forward and then a constant
[self.scale], so dy/dx = m elementwise and gx = gy m: a dropped element passes no gradient,
a kept one passes it scaled by 1/(1-p), exactly as its value was.
Leaves out: a dropout fused into the neighbouring add or matmul.
"""
from ..engine.backend import get_array_module
from ..nn import Dropout
from ..engine.functional import dropout as reference_dropout
from ..engine.rng import site_generator
from ..engine.tensor import Function
from . import cuda
from .cuda import dropout as cuda_dropout


class DropoutKernel(Function):
    def __init__(self, p):
        self.p = p

    def forward(self, x):
        self.scale = cuda_dropout.dropout_mask(x.shape, self.p, site_generator(get_array_module(x), x.shape))
        return x * self.scale

    def backward(self, gy):
        return gy * self.scale


def dropout(x, p=0.5, training=True, rng=None):
    """`F.dropout`; on a GPU with the keyed numbers (no generator given), one kernel draws the mask."""
    if training and 0.0 < p < 1.0 and rng is None and cuda.enabled(x.data):
        return DropoutKernel(p)(x)
    return reference_dropout(x, p, training, rng)


class FusedDropout(Dropout):
    """`nn.Dropout` with the one-kernel mask on a GPU (same p, generator and results)."""

    def forward(self, x):
        return dropout(x, self.p, self.training, rng=self.generator)

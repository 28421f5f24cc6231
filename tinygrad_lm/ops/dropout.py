"""Inverted dropout: in training, zero each element with probability p and scale the rest by
1/(1-p), so evaluation (identity) needs no rescaling.

The mask comes from a seeded generator: the package's global one (`tinygrad_lm.manual_seed`)
unless a `numpy.random.Generator` (or CuPy's) is passed, so runs are reproducible.
Leaves out: structured dropout variants (DropPath, DropConnect).
"""
from ..backend import get_array_module
from ..rng import get_rng
from ..tensor import Function


class Dropout(Function):
    def __init__(self, p, rng):
        self.p, self.rng = p, rng

    def forward(self, x):
        xp = get_array_module(x)
        rng = self.rng if self.rng is not None else get_rng(xp)
        draw_dtype = x.dtype if x.dtype in (xp.float32, xp.float64) else xp.float32
        keep = rng.random(x.shape, dtype=draw_dtype) >= self.p
        self.scale = keep * x.dtype.type(1.0 / (1.0 - self.p))  # 0 or 1/(1-p), in x's dtype
        return x * self.scale

    def backward(self, gy):
        return gy * self.scale


def dropout(x, p=0.5, training=True, rng=None):
    """Inverted dropout. Args: x Tensor; p drop probability in [0, 1); training: identity when
    False; rng: optional Generator (default: the package's global one). Returns: Tensor."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    if not training or p == 0.0:
        return x
    return Dropout(p, rng)(x)

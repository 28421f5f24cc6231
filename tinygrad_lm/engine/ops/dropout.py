"""Inverted dropout: in training, zero each element with probability p and scale the rest by
1/(1-p), so evaluation (identity) needs no rescaling.

The mask comes from a seeded generator: the package's global one for the tensor's device
(`tinygrad_lm.manual_seed`; on a GPU the counter-based one of rng.py) unless a generator is
passed, so runs are reproducible. A `numpy.random.Generator` works for a CUDA tensor too: it
draws on the host and the mask is copied over (the CPU's mask, at the cost of a transfer).
Leaves out: structured dropout variants (DropPath, DropConnect).
"""
from ..backend import get_array_module
from ..rng import uniform
from ..tensor import Function


class Dropout(Function):
    def __init__(self, p, rng):
        self.p, self.rng = p, rng

    def forward(self, x):
        xp = get_array_module(x)
        draw_dtype = x.dtype if x.dtype in (xp.float32, xp.float64) else xp.float32
        keep = uniform(x.shape, draw_dtype, xp, self.rng) >= self.p
        self.scale = keep * x.dtype.type(1.0 / (1.0 - self.p))  # 0 or 1/(1-p), in x's dtype
        return x * self.scale

    def backward(self, gy):
        return gy * self.scale


def dropout(x, p=0.5, training=True, rng=None):
    """Inverted dropout. Args: x Tensor; p drop probability in [0, 1); training: identity when
    False; rng: optional generator (default: the package's global one for x's device; a NumPy
    Generator also serves a CUDA tensor, drawn on the host). Returns: Tensor."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    if not training or p == 0.0:
        return x
    return Dropout(p, rng)(x)

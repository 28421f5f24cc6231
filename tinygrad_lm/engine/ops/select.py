"""Selection by a boolean condition: masked_fill and where.

The condition is data, not a differentiable input: gradients flow to the selected values only.
`masked_fill(x, mask, value)` is the op causal attention uses (fill future positions with -inf).
Leaves out: gradients with respect to the fill value.
"""
from ..backend import get_array_module
from ..tensor import Function, Tensor, unbroadcast


def _raw(mask):
    """A condition given as a Tensor, as its array (conditions are data, not inputs)."""
    return mask.data if isinstance(mask, Tensor) else mask


class MaskedFill(Function):
    def __init__(self, mask, value):
        self.mask, self.value = _raw(mask), value

    def forward(self, x):
        xp = get_array_module(x)
        mask = xp.asarray(self.mask, dtype=bool)
        try:
            out = xp.where(mask, xp.asarray(self.value, dtype=x.dtype), x)
        except ValueError:
            raise ValueError(f"masked_fill: mask of shape {mask.shape} cannot be broadcast "
                             f"to tensor shape {x.shape}") from None
        if out.shape != x.shape:
            raise ValueError(f"masked_fill: mask of shape {mask.shape} would broadcast tensor shape "
                             f"{x.shape} to {out.shape}; the mask must broadcast to the tensor's shape")
        self.mask = mask
        return out

    def backward(self, gy):
        return gy * ~self.mask


Tensor.masked_fill = lambda self, mask, value: MaskedFill(mask, value)(self)  # value where mask is True


class Where(Function):
    def __init__(self, cond):
        self.cond = _raw(cond)

    def forward(self, a, b):
        xp = get_array_module(a, b)
        self.cond = xp.asarray(self.cond, dtype=bool)
        self.a_shape, self.b_shape = a.shape, b.shape
        try:
            return xp.where(self.cond, a, b)
        except ValueError:
            raise ValueError(f"where: condition {self.cond.shape}, a {a.shape} and b {b.shape} "
                             "cannot be broadcast together") from None

    def backward(self, gy):
        zero = gy.dtype.type(0)
        ga = unbroadcast(get_array_module(gy).where(self.cond, gy, zero), self.a_shape)
        gb = unbroadcast(get_array_module(gy).where(self.cond, zero, gy), self.b_shape)
        return ga, gb


def where(cond, a, b):
    """Elementwise `a if cond else b` (cond a bool array or Tensor; a, b Tensors or numbers)."""
    return Where(cond)(a, b)

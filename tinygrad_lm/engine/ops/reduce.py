"""Reductions over axes: sum, mean, max, var (each with `axis` and `keepdims`, NumPy style).

Backward broadcasts the output gradient back over the reduced axes. `max` sends the gradient
to the maximal elements, split evenly among ties (as `torch.amax`). `var` uses NumPy's `ddof`
(0 by default: the biased variance LayerNorm uses; pass ddof=1 for the unbiased estimate).
Leaves out: argmax/argmin (not differentiable; use `x.data.argmax`), min, prod, cumsum.
"""
import math

from ..backend import get_array_module
from ..tensor import Function, Tensor


def normalize_axes(axis, ndim):
    """Axis argument (None, int or tuple) as a sorted tuple of non-negative ints (a 0-d tensor
    accepts axis 0 or -1, as NumPy does, and reduces nothing)."""
    axes = range(ndim) if axis is None else (axis,) if isinstance(axis, int) else axis
    for a in axes:
        if not -max(ndim, 1) <= a < max(ndim, 1):
            raise ValueError(f"axis {a} is out of range for a tensor with {ndim} dimensions")
    return tuple(sorted(a % ndim for a in axes)) if ndim else ()


class _Reduce(Function):
    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def _setup(self, x):
        self.axes = normalize_axes(self.axis, x.ndim)
        self.x_shape = x.shape
        # the output's shape with the reduced axes kept as size 1
        self.kept = tuple(1 if i in self.axes else n for i, n in enumerate(x.shape))
        self.count = math.prod(x.shape[i] for i in self.axes)
        return self.axes

    def _expand(self, gy):
        """The output gradient broadcast back to the input's shape (a view, no copy)."""
        xp = get_array_module(gy)
        return xp.broadcast_to(gy.reshape(self.kept), self.x_shape)


class Sum(_Reduce):
    def forward(self, x):
        return x.sum(axis=self._setup(x), keepdims=self.keepdims)

    def backward(self, gy):
        return self._expand(gy)


Tensor.sum = lambda self, axis=None, keepdims=False: Sum(axis, keepdims)(self)


class Mean(_Reduce):
    def forward(self, x):
        return x.mean(axis=self._setup(x), keepdims=self.keepdims)

    def backward(self, gy):
        return self._expand(gy / self.count)


Tensor.mean = lambda self, axis=None, keepdims=False: Mean(axis, keepdims)(self)


class Max(_Reduce):
    def forward(self, x):
        axes = self._setup(x)
        if x.size == 0:
            raise ValueError(f"max of an empty tensor of shape {x.shape}")
        y = x.max(axis=axes, keepdims=True)
        self.mask = x == y
        return y if self.keepdims else y.reshape([n for i, n in enumerate(x.shape) if i not in axes])

    def backward(self, gy):
        ties = self.mask.sum(axis=self.axes, keepdims=True, dtype=gy.dtype)  # int64 counts would make gy float64
        return self.mask * (gy.reshape(self.kept) / ties)


Tensor.max = lambda self, axis=None, keepdims=False: Max(axis, keepdims)(self)  # gradient shared among ties


class Var(_Reduce):
    def __init__(self, axis=None, keepdims=False, ddof=0):
        super().__init__(axis, keepdims)
        self.ddof = ddof

    def forward(self, x):
        axes = self._setup(x)
        if self.count - self.ddof <= 0:
            raise ValueError(f"var: {self.count} elements with ddof={self.ddof} leaves no degrees of freedom")
        self.centered = x - x.mean(axis=axes, keepdims=True)
        sq = self.centered * self.centered
        return sq.sum(axis=axes, keepdims=self.keepdims) / (self.count - self.ddof)

    def backward(self, gy):
        return gy.reshape(self.kept) * (2.0 / (self.count - self.ddof)) * self.centered


Tensor.var = lambda self, axis=None, keepdims=False, ddof=0: Var(axis, keepdims, ddof)(self)  # / (n - ddof)

"""Arithmetic: add, sub, mul, div, neg, pow (scalar exponent) with broadcasting, and matmul.

Each op is one Function, forward and backward side by side, and the line under it attaches it
to Tensor (`a + b` is `Add()(a, b)`; Python numbers become tensors in `Function.__call__`).
Each binary op's backward passes its gradient through `unbroadcast`, so a broadcast operand
gets a gradient of its own shape.

matmul follows `numpy.matmul`: y = a @ b with a (..., n, k) and b (..., k, m) -> (..., n, m),
batch axes broadcast; backward ga = gy @ b^T and gb = a^T @ gy, transposing the last two axes
only (where DeZero's `.T` breaks on 3-D inputs), each summed back to its operand's shape (for
(B, T, C) @ (C, D), gb is B products (C, T) @ (T, D) summed over the batch). 1-D operands follow
NumPy (a vector is promoted to a row or column and the added axis removed). The faster one-GEMM
spelling of a linear layer is `tinygrad_lm/fast/linear.py`.
Leaves out: tensor exponents in pow (x ** y with y a Tensor), integer division, comparisons.
"""
import numpy as np

from ..tensor import Function, Tensor, unbroadcast


class Add(Function):
    def forward(self, a, b):
        self.a_shape, self.b_shape = a.shape, b.shape
        return a + b

    def backward(self, gy):
        return unbroadcast(gy, self.a_shape), unbroadcast(gy, self.b_shape)


Tensor.__add__ = Tensor.__radd__ = lambda self, other: Add()(self, other)


class Sub(Function):
    def forward(self, a, b):
        self.a_shape, self.b_shape = a.shape, b.shape
        return a - b

    def backward(self, gy):
        return unbroadcast(gy, self.a_shape), unbroadcast(-gy, self.b_shape)


Tensor.__sub__ = lambda self, other: Sub()(self, other)
Tensor.__rsub__ = lambda self, other: Sub()(other, self)


class Mul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, gy):
        ga = unbroadcast(gy * self.b, self.a.shape) if self.inputs[0].requires_grad else None
        gb = unbroadcast(gy * self.a, self.b.shape) if self.inputs[1].requires_grad else None
        return ga, gb


Tensor.__mul__ = Tensor.__rmul__ = lambda self, other: Mul()(self, other)


class Div(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, gy):
        ga = unbroadcast(gy / self.b, self.a.shape) if self.inputs[0].requires_grad else None
        gb = unbroadcast(-gy * self.a / (self.b * self.b), self.b.shape) if self.inputs[1].requires_grad else None
        return ga, gb


Tensor.__truediv__ = lambda self, other: Div()(self, other)
Tensor.__rtruediv__ = lambda self, other: Div()(other, self)


class Neg(Function):
    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy


Tensor.__neg__ = lambda self: Neg()(self)


class Pow(Function):
    """x ** c for a Python or NumPy scalar exponent c."""

    def __init__(self, exponent):
        if isinstance(exponent, Tensor):
            raise TypeError("pow: the exponent must be a scalar; tensor exponents are not supported "
                            "(write exp(y * log(x)) for x > 0)")
        # a NumPy float64 exponent would make float32 x ** c float64: keep it a Python number
        self.c = exponent.item() if isinstance(exponent, np.generic) else exponent

    def forward(self, x):
        self.x = x
        return x ** self.c

    def backward(self, gy):
        if self.c == 0:  # d/dx x**0 = 0, also at x = 0 (where 0 * x**-1 would give nan)
            return gy * 0
        return gy * self.c * self.x ** (self.c - 1)


Tensor.__pow__ = lambda self, exponent: Pow(exponent)(self)


class MatMul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(f"matmul: operands must have at least 1 dimension, got shapes {a.shape} and {b.shape}; "
                             "use * to multiply by a scalar")
        if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
            raise ValueError(f"matmul: shapes {a.shape} and {b.shape} are not aligned: "
                             f"{a.shape[-1]} (last dim of a) != {b.shape[-2 if b.ndim > 1 else 0]} "
                             f"({'second-to-last' if b.ndim > 1 else 'only'} dim of b)")
        try:
            return a @ b
        except ValueError:
            raise ValueError(f"matmul: batch dimensions of shapes {a.shape} and {b.shape} "
                             "cannot be broadcast together") from None

    def backward(self, gy):
        a, b = self.a, self.b
        if a.ndim == 1 or b.ndim == 1:  # NumPy promoted a vector to a matrix: undo that around the same rule
            a, b, gy = _as_matrices(a, b, gy)
        ga = gb = None
        if self.inputs[0].requires_grad:
            ga = unbroadcast(gy @ b.swapaxes(-1, -2), a.shape).reshape(self.a.shape)  # (..., n, m) @ (..., m, k)
        if self.inputs[1].requires_grad:
            gb = unbroadcast(a.swapaxes(-1, -2) @ gy, b.shape).reshape(self.b.shape)  # (..., k, n) @ (..., n, m)
        return ga, gb


def _as_matrices(a, b, gy):
    """matmul's 1-D operands as NumPy treats them: a vector a as a (1, k) row, a vector b as a
    (k, 1) column, and gy with the axes NumPy then removed put back."""
    if b.ndim == 1:  # first: for vector @ vector gy is 0-d and has no column axis to index
        b, gy = b[:, None], gy[..., None]  # (k, 1); the removed column axis restored
    if a.ndim == 1:
        a, gy = a[None, :], gy[..., None, :]  # (1, k); the removed row axis restored
    return a, b, gy


Tensor.__matmul__ = lambda self, other: MatMul()(self, other)
Tensor.__rmatmul__ = lambda self, other: MatMul()(other, self)

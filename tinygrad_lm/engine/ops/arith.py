"""Elementwise arithmetic with broadcasting: add, sub, mul, div, neg, pow (scalar exponent).

Each binary op's backward passes its gradient through `unbroadcast`, so a broadcast operand
gets a gradient of its own shape. Shape errors name the op and both shapes.
Leaves out: tensor exponents in pow (x ** y with y a Tensor), integer division, comparisons.
"""
import numpy as np

from ..tensor import Function
from ._util import binary_operands, check_same_device, unbroadcast


class Add(Function):
    name = "add"

    def forward(self, a, b):
        self.a_shape, self.b_shape = a.shape, b.shape
        return a + b

    def backward(self, gy):
        return unbroadcast(gy, self.a_shape), unbroadcast(gy, self.b_shape)


class Sub(Function):
    name = "sub"

    def forward(self, a, b):
        self.a_shape, self.b_shape = a.shape, b.shape
        return a - b

    def backward(self, gy):
        return unbroadcast(gy, self.a_shape), unbroadcast(-gy, self.b_shape)


class Mul(Function):
    name = "mul"

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, gy):
        ga = unbroadcast(gy * self.b, self.a.shape) if self.inputs[0].requires_grad else None
        gb = unbroadcast(gy * self.a, self.b.shape) if self.inputs[1].requires_grad else None
        return ga, gb


class Div(Function):
    name = "div"

    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, gy):
        ga = unbroadcast(gy / self.b, self.a.shape) if self.inputs[0].requires_grad else None
        gb = None
        if self.inputs[1].requires_grad:
            gb = unbroadcast(-gy * self.a / (self.b * self.b), self.b.shape)
        return ga, gb


class Neg(Function):
    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy


class Pow(Function):
    """x ** c for a Python/NumPy scalar exponent c."""

    def __init__(self, exponent):
        self.c = exponent

    def forward(self, x):
        self.x = x
        return x ** self.c

    def backward(self, gy):
        if self.c == 0:  # d/dx x**0 = 0, also at x = 0 (where 0 * x**-1 would give nan)
            return gy * 0
        return gy * self.c * self.x ** (self.c - 1)


def _binary(cls, a, b):
    """Promote scalars, then check devices and broadcasting with errors that name the op."""
    a, b = binary_operands(a, b)
    if a.device != b.device:
        check_same_device(cls.name, a, b)
    if a.shape != b.shape:
        try:
            np.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            raise ValueError(f"{cls.name}: shapes {a.shape} and {b.shape} cannot be broadcast "
                             "together (trailing dimensions must match or be 1)") from None
    return cls()(a, b)


def add(a, b):
    """a + b with broadcasting. Args: Tensors or scalars. Returns: Tensor."""
    return _binary(Add, a, b)


def sub(a, b):
    """a - b with broadcasting."""
    return _binary(Sub, a, b)


def mul(a, b):
    """a * b (elementwise) with broadcasting."""
    return _binary(Mul, a, b)


def div(a, b):
    """a / b (true division) with broadcasting."""
    return _binary(Div, a, b)


def neg(x):
    """-x."""
    return Neg()(x)


def pow(x, exponent):
    """x ** exponent, exponent a Python or NumPy scalar (not a Tensor)."""
    from ..tensor import Tensor

    if isinstance(exponent, Tensor):
        raise TypeError("pow: the exponent must be a scalar; tensor exponents are not supported "
                        "(write exp(y * log(x)) for x > 0)")
    if not isinstance(x, Tensor):
        raise TypeError("pow: the base must be a Tensor")
    if isinstance(exponent, np.generic):  # a NumPy float64 exponent would make float32 x ** c float64
        exponent = exponent.item()
    return Pow(exponent)(x)

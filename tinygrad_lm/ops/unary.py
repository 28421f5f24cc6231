"""Elementwise functions of one tensor: exp, log, sqrt, tanh, sigmoid, relu, gelu.

Each backward reuses what forward computed where that is cheaper (exp, sqrt, tanh and
sigmoid save their output; log and relu their input). GELU is the tanh approximation used by
GPT-2 (Hendrycks & Gimpel 2016): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
Leaves out: the exact erf GELU, in-place variants.
"""
import math

from ..backend import get_array_module
from ..parallel import parallel_rows
from ..tensor import Function


class Exp(Function):
    def forward(self, x):
        self.y = get_array_module(x).exp(x)
        return self.y

    def backward(self, gy):
        return gy * self.y


class Log(Function):
    def forward(self, x):
        self.x = x
        return get_array_module(x).log(x)

    def backward(self, gy):
        return gy / self.x


class Sqrt(Function):
    def forward(self, x):
        self.y = get_array_module(x).sqrt(x)
        return self.y

    def backward(self, gy):
        return gy / (2 * self.y)


class Tanh(Function):
    def forward(self, x):
        self.y = get_array_module(x).tanh(x)
        return self.y

    def backward(self, gy):
        return gy * (1 - self.y * self.y)


class Sigmoid(Function):
    def forward(self, x):
        # 0.5 (1 + tanh(x / 2)) equals 1 / (1 + e^-x) and never overflows
        self.y = 0.5 * (1 + get_array_module(x).tanh(0.5 * x))
        return self.y

    def backward(self, gy):
        return gy * self.y * (1 - self.y)


class ReLU(Function):
    def forward(self, x):
        self.mask = x > 0
        return x * self.mask

    def backward(self, gy):
        return gy * self.mask


_GELU_C = math.sqrt(2.0 / math.pi)


def _gelu_forward(x, y, t):
    """y = 0.5 x (1 + t), t = tanh(c (x + 0.044715 x^3)), in place on the blocks y and t."""
    xp = get_array_module(x)
    xp.multiply(x, x, out=t)
    t *= _GELU_C * 0.044715
    t += _GELU_C
    t *= x  # c (x + 0.044715 x^3)
    xp.tanh(t, out=t)
    xp.add(t, 1, out=y)
    y *= x
    y *= 0.5


def _gelu_backward(x, t, gy, gx, d):
    """gx = gy * [0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 * 0.044715 x^2)], d a scratch block."""
    xp = get_array_module(x)
    xp.multiply(x, x, out=d)
    d *= 3 * 0.044715 * _GELU_C
    d += _GELU_C  # c (1 + 3 * 0.044715 x^2)
    xp.multiply(t, t, out=gx)
    xp.subtract(1, gx, out=gx)  # 1 - t^2
    gx *= d
    gx *= x
    gx += 1
    gx += t
    gx *= 0.5
    gx *= gy


class GELU(Function):
    """In place on preallocated buffers, split over CPU threads (`parallel.py`): the formula
    touches each element about ten times, and fresh temporaries for each step would cost more
    than the math."""

    def forward(self, x):
        xp = get_array_module(x)
        flat = x.reshape(-1)  # (N,) view of a contiguous input
        y, t = xp.empty_like(flat), xp.empty_like(flat)
        parallel_rows(_gelu_forward, flat, y, t)
        self.x, self.t = flat, t
        return y.reshape(x.shape)

    def backward(self, gy):
        xp = get_array_module(gy)
        gx, scratch = xp.empty_like(self.x), xp.empty_like(self.x)
        parallel_rows(_gelu_backward, self.x, self.t, gy.reshape(-1), gx, scratch)
        return gx.reshape(gy.shape)


def exp(x):
    """e ** x, elementwise."""
    return Exp()(x)


def log(x):
    """Natural logarithm, elementwise."""
    return Log()(x)


def sqrt(x):
    """Square root, elementwise."""
    return Sqrt()(x)


def tanh(x):
    """Hyperbolic tangent, elementwise."""
    return Tanh()(x)


def sigmoid(x):
    """Logistic sigmoid 1 / (1 + e^-x), elementwise."""
    return Sigmoid()(x)


def relu(x):
    """max(x, 0), elementwise (gradient 0 at x == 0)."""
    return ReLU()(x)


def gelu(x):
    """GELU, tanh approximation (as in GPT-2)."""
    return GELU()(x)

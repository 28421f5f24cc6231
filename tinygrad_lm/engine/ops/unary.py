"""Elementwise functions of one tensor: exp, log, sqrt, tanh, sigmoid, relu, gelu.

Each backward reuses what forward computed where that is cheaper (exp, sqrt, tanh and
sigmoid save their output; log and relu their input). GELU is the tanh approximation used by
GPT-2 (Hendrycks & Gimpel 2016): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))); its fast
twin, computing the derivative in forward in cache-sized blocks, is `tinygrad_lm/fast/gelu.py`.
Leaves out: the exact erf GELU, in-place variants.
"""
import math

from ..backend import get_array_module
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
_GELU_A = 0.044715


class GELU(Function):
    """y = 0.5 x (1 + t) with t = tanh(u), u = c (x + a x^3), c = sqrt(2 / pi), a = 0.044715.

    dy/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 a x^2)   (chain rule through tanh)
    Forward saves x and t; backward evaluates dy/dx from them.
    """

    def forward(self, x):
        xp = get_array_module(x)
        self.x = x
        self.t = xp.tanh(_GELU_C * (x + _GELU_A * x * x * x))
        return 0.5 * x * (1 + self.t)

    def backward(self, gy):
        x, t = self.x, self.t
        dydx = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * _GELU_C * (1 + 3 * _GELU_A * x * x)
        return gy * dydx


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

"""Elementwise functions of one tensor: exp, log, sqrt, tanh, sigmoid, relu, gelu, and the
dropout mask.

Each backward reuses what forward computed where that is cheaper (exp, sqrt, tanh and
sigmoid save their output; log and relu their input). GELU is the tanh approximation used by
GPT-2 (Hendrycks & Gimpel 2016): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))); its fast
twin, computing the derivative in forward in cache-sized blocks, is `tinygrad_lm/fast/gelu.py`.
The exact GELU (through erf, BERT's) is in `erf.py`.
Dropout multiplies by a mask of 0 and 1/(1-p) (inverted dropout: evaluation needs no rescaling);
the op asks rng.py for the mask, which keys it by the seed, the draw and each row's place in
the batch (the same masks however the batch is split) unless a generator is passed;
`F.dropout` (functional.py) is the function to call.
Leaves out: in-place variants, structured dropout (DropPath, DropConnect).
"""
import math

from ..backend import get_array_module
from ..rng import dropout_mask
from ..tensor import Function, Tensor


class Exp(Function):
    def forward(self, x):
        self.y = get_array_module(x).exp(x)
        return self.y

    def backward(self, gy):
        return gy * self.y


Tensor.exp = lambda self: Exp()(self)


class Log(Function):
    def forward(self, x):
        self.x = x
        return get_array_module(x).log(x)

    def backward(self, gy):
        return gy / self.x


Tensor.log = lambda self: Log()(self)


class Sqrt(Function):
    def forward(self, x):
        self.y = get_array_module(x).sqrt(x)
        return self.y

    def backward(self, gy):
        return gy / (2 * self.y)


Tensor.sqrt = lambda self: Sqrt()(self)


class Tanh(Function):
    def forward(self, x):
        self.y = get_array_module(x).tanh(x)
        return self.y

    def backward(self, gy):
        return gy * (1 - self.y * self.y)


Tensor.tanh = lambda self: Tanh()(self)


class Sigmoid(Function):
    def forward(self, x):
        # 0.5 (1 + tanh(x / 2)) equals 1 / (1 + e^-x) and never overflows
        self.y = 0.5 * (1 + get_array_module(x).tanh(0.5 * x))
        return self.y

    def backward(self, gy):
        return gy * self.y * (1 - self.y)


Tensor.sigmoid = lambda self: Sigmoid()(self)  # 1 / (1 + e^-x)


class ReLU(Function):
    def forward(self, x):
        self.mask = x > 0
        return x * self.mask

    def backward(self, gy):
        return gy * self.mask


Tensor.relu = lambda self: ReLU()(self)  # max(x, 0), gradient 0 at 0


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


Tensor.gelu = lambda self: GELU()(self)  # the tanh approximation (GPT-2's)


class Dropout(Function):
    """x * mask, mask 0 with probability p and 1/(1-p) otherwise (`rng.dropout_mask`: the
    package's keyed numbers, or drawn from `rng` when given; a NumPy Generator also serves a
    CUDA tensor, drawn on the host)."""

    def __init__(self, p, rng=None):
        self.p, self.rng = p, rng

    def forward(self, x):
        self.scale = dropout_mask(x.shape, self.p, x.dtype, get_array_module(x), self.rng)  # 0 or 1/(1-p)
        return x * self.scale

    def backward(self, gy):
        return gy * self.scale

"""Every differentiable op, one concept per file; `Tensor` methods are wrappers around these.

`unbroadcast(grad, shape)` is exported too: the backward of a user's own broadcasting op needs it.
"""
from ._util import unbroadcast
from .arith import add, div, mul, neg, pow, sub
from .dropout import dropout
from .erf import erf, gelu_erf
from .matmul import matmul
from .reduce import max, mean, sum, var
from .select import masked_fill, where
from .shape import cast, cat, concat, getitem, permute, reshape, split, stack, transpose
from .softmax import log_softmax, softmax
from .unary import exp, gelu, log, relu, sigmoid, sqrt, tanh

__all__ = [
    "add", "sub", "mul", "div", "neg", "pow", "matmul", "sum", "mean", "max", "var",
    "exp", "log", "sqrt", "tanh", "sigmoid", "relu", "gelu", "erf", "gelu_erf", "reshape", "permute", "transpose",
    "getitem", "concat", "cat", "stack", "split", "cast", "masked_fill", "where", "softmax",
    "log_softmax", "dropout", "unbroadcast",
]

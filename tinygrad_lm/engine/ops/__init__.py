"""Every differentiable op: one `Function` subclass each, forward and backward side by side,
attached to `Tensor` by one line under the class (importing this package attaches them all).

    arith.py    + - * / neg ** and @ (matmul)       reduce.py   sum mean max var
    unary.py    exp log sqrt tanh sigmoid relu gelu, the dropout mask
    softmax.py  softmax log_softmax                 erf.py      erf and the exact GELU
    shape.py    reshape permute transpose [] cat stack split .to() masked_fill where, scatter-add

The functions below are the same ops called as functions (`ops.exp(x)` is `x.exp()`).
"""
from ..tensor import Tensor, unbroadcast
from . import arith, erf as _erf_module, reduce, shape, softmax, unary  # noqa: F401  (attach the ops)
from .erf import erf, gelu_erf
from .shape import cat, concat, stack, where

add, sub, mul, div, neg, pow, matmul = (Tensor.__add__, Tensor.__sub__, Tensor.__mul__, Tensor.__truediv__,
                                        Tensor.__neg__, Tensor.__pow__, Tensor.__matmul__)
sum, mean, max, var = Tensor.sum, Tensor.mean, Tensor.max, Tensor.var
exp, log, sqrt, tanh, sigmoid, relu, gelu = (Tensor.exp, Tensor.log, Tensor.sqrt, Tensor.tanh, Tensor.sigmoid,
                                             Tensor.relu, Tensor.gelu)
softmax, log_softmax = Tensor.softmax, Tensor.log_softmax
reshape, permute, transpose, getitem, split, cast = (Tensor.reshape, Tensor.permute, Tensor.transpose,
                                                     Tensor.__getitem__, Tensor.split, Tensor.to)
masked_fill = Tensor.masked_fill

__all__ = [
    "add", "sub", "mul", "div", "neg", "pow", "matmul", "sum", "mean", "max", "var",
    "exp", "log", "sqrt", "tanh", "sigmoid", "relu", "gelu", "erf", "gelu_erf", "reshape", "permute", "transpose",
    "getitem", "concat", "cat", "stack", "split", "cast", "masked_fill", "where", "softmax",
    "log_softmax", "unbroadcast",
]

"""tinygrad_lm: a small, complete, fast implementation of how large language models are trained.

    from tinygrad_lm import Tensor, no_grad
    x = Tensor([[1.0, 2.0]], requires_grad=True)
    (x * x).sum().backward()      # x.grad == 2 * x
"""
from .engine import backend, functional, ops, rng
from .engine.gradcheck import gradcheck
from .engine.ops import (cat, concat, exp, gelu, log, log_softmax, masked_fill, relu, sigmoid, softmax,
                         split, sqrt, stack, tanh, where)
from .engine.rng import manual_seed
from .engine.tensor import Function, Tensor, enable_grad, is_grad_enabled, no_grad, unbroadcast

from .version import __version__  # noqa: F401  (one place: version.py, which every file format quotes)

__all__ = [
    "Tensor", "Function", "unbroadcast", "no_grad", "enable_grad", "is_grad_enabled", "gradcheck", "manual_seed",
    "backend", "functional", "ops", "rng", "concat", "cat", "stack", "split", "where", "masked_fill", "softmax", "log_softmax",
    "exp", "log", "sqrt", "tanh", "sigmoid", "relu", "gelu",
]

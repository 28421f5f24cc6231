"""Softmax and log-softmax along any axis, numerically stable (the max is subtracted first).

Backward from the saved output y:
  softmax:      gx = y * (gy - sum(y * gy))            (the Jacobian diag(y) - y y^T applied to gy)
  log_softmax:  gx = gy - exp(y) * sum(gy)
so neither ever builds the (n, n) Jacobian.
Leaves out: the fused causal-masked attention softmax (in `tinygrad_lm/fast/attention.py`).
"""
from ..backend import get_array_module
from ..tensor import Function, Tensor


class Softmax(Function):
    def __init__(self, axis=-1):
        self.axis = axis

    def forward(self, x):
        xp = get_array_module(x)
        e = xp.exp(x - x.max(axis=self.axis, keepdims=True))
        e /= e.sum(axis=self.axis, keepdims=True)
        self.y = e
        return e

    def backward(self, gy):
        y = self.y
        return y * (gy - (y * gy).sum(axis=self.axis, keepdims=True))


Tensor.softmax = lambda self, axis=-1: Softmax(axis)(self)  # exp(x) / sum(exp(x)) along axis


class LogSoftmax(Function):
    def __init__(self, axis=-1):
        self.axis = axis

    def forward(self, x):
        xp = get_array_module(x)
        shifted = x - x.max(axis=self.axis, keepdims=True)
        self.y = shifted - xp.log(xp.exp(shifted).sum(axis=self.axis, keepdims=True))
        return self.y

    def backward(self, gy):
        xp = get_array_module(gy)
        return gy - xp.exp(self.y) * gy.sum(axis=self.axis, keepdims=True)


Tensor.log_softmax = lambda self, axis=-1: LogSoftmax(axis)(self)  # x - logsumexp(x) along axis

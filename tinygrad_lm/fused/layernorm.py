"""Layer normalisation over the last axis as one Function (Ba et al. 2016).

Forward, per row of C features:  mu = mean(x), rstd = 1/sqrt(var(x) + eps),
    xhat = (x - mu) rstd,  y = xhat * w + b
Backward (g = gy * w, means over the C features of each row):
    gx = rstd * (g - mean(g) - xhat * mean(g * xhat))
    gw = sum over rows of gy * xhat,   gb = sum over rows of gy
The composed version (mean, var, sqrt, ...) is `functional.layer_norm_composed`, kept as the
test twin of this one.
Leaves out: normalising over more than the last axis.
"""
from functools import partial

from ..backend import get_array_module
from ..parallel import parallel_rows
from ..tensor import Function
from .rows import colsum


def _normalise_rows(x, xhat, rstd, eps):
    """On a block of rows (n, C): xhat = (x - mean) * rstd, rstd = 1 / sqrt(var + eps)."""
    xp = get_array_module(x)
    inv_c = 1.0 / x.shape[-1]
    xp.subtract(x, x.sum(axis=-1, keepdims=True) * inv_c, out=xhat)  # x - mean
    var = (xhat * xhat).sum(axis=-1, keepdims=True) * inv_c
    xp.sqrt(var + eps, out=rstd)
    xp.divide(1.0, rstd, out=rstd)
    xhat *= rstd


def _normalise_rows_backward(g, xhat, rstd, gx):
    """On a block of rows: gx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = gy * w."""
    xp = get_array_module(g)
    inv_c = 1.0 / g.shape[-1]
    xp.multiply(g, xhat, out=gx)
    mean_gx = gx.sum(axis=-1, keepdims=True) * inv_c
    xp.multiply(xhat, mean_gx, out=gx)
    xp.subtract(g, gx, out=gx)
    gx -= g.sum(axis=-1, keepdims=True) * inv_c
    gx *= rstd


class LayerNorm(Function):
    """Rows are normalised in blocks on several threads (`parallel.py`); the weight and bias
    gradients are column sums handed to BLAS (`rows.colsum`)."""

    def __init__(self, eps):
        self.eps = eps

    def forward(self, x, weight=None, bias=None):
        xp = get_array_module(x)
        if weight is not None and weight.shape != x.shape[-1:]:
            raise ValueError(f"layer_norm: weight of shape {weight.shape} does not match the last "
                             f"dimension of input shape {x.shape}")
        C = x.shape[-1]
        rows = x.reshape(-1, C)  # (N, C)
        xhat = xp.empty(rows.shape, dtype=x.dtype)
        rstd = xp.empty((rows.shape[0], 1), dtype=x.dtype)
        parallel_rows(partial(_normalise_rows, eps=self.eps), rows, xhat, rstd)
        self.xhat, self.rstd, self.weight = xhat, rstd, weight
        xhat = xhat.reshape(x.shape)
        if weight is None:
            return xhat.copy() if bias is None else xhat + bias
        y = xhat * weight
        if bias is not None:
            y += bias
        return y

    def backward(self, gy):
        xhat, rstd, w = self.xhat, self.rstd, self.weight
        xp = get_array_module(gy)
        rows = gy.reshape(xhat.shape)  # (N, C)
        g = rows * w if w is not None else rows
        gx = xp.empty_like(xhat)
        parallel_rows(_normalise_rows_backward, g, xhat, rstd, gx)
        grads = [gx.reshape(gy.shape)]
        if len(self.inputs) > 1:
            grads.append(colsum(rows * xhat))
        if len(self.inputs) > 2:
            grads.append(colsum(rows))
        return tuple(grads)

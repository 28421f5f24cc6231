"""Scaled dot-product attention, softmax(q k^T / sqrt(d) + mask) v, as one Function.

Shapes: q (B, nh, T, hs), k and v (B, nh, S, hs), output (B, nh, T, hs); the attention
matrix A is (B, nh, T, S). With S_ = q k^T * scale and A = softmax(S_) (then dropout D):
    gv = A^T gy                        gA = gy v^T
    gS = A * (gA - sum_j A * gA)      (softmax backward, row-wise)
    gq = gS k * scale                 gk = gS^T q * scale
The causal mask is an additive (T, S) matrix of 0 and -inf, cached per size; an optional
boolean `mask` (broadcastable to (B, nh, T, S), True = may attend, PyTorch's convention)
handles padding. A query row with nothing to attend to gets zero output instead of NaN.
Leaves out: the memory-saving tiled (flash) formulation; A is materialised, which is fine at
the context lengths this package trains.
"""
import numpy as np

from ..backend import get_array_module
from ..tensor import Function
from .rows import rowsum

_causal_cache = {}


def causal_bias(T, S, xp, dtype):
    """(T, S) additive mask: 0 where key j <= query i + (S - T), -inf above that diagonal."""
    key = (T, S, xp.__name__, np.dtype(dtype).str)
    bias = _causal_cache.get(key)
    if bias is None:
        bias = xp.triu(xp.full((T, S), -np.inf, dtype=dtype), k=S - T + 1)
        _causal_cache[key] = bias
    return bias


class ScaledDotProductAttention(Function):
    def __init__(self, causal=True, mask=None, dropout_p=0.0, rng=None, scale=None):
        self.causal, self.mask, self.dropout_p, self.rng, self.scale = causal, mask, dropout_p, rng, scale

    def forward(self, q, k, v):
        xp = get_array_module(q)
        if q.shape[-1] != k.shape[-1] or k.shape[:-1] != v.shape[:-1] or q.ndim != k.ndim:
            raise ValueError(f"scaled_dot_product_attention: q {q.shape}, k {k.shape}, v {v.shape} must be "
                             "(..., T, hs), (..., S, hs), (..., S, hv)")
        T, S = q.shape[-2], k.shape[-2]
        scale = self.scale if self.scale is not None else 1.0 / np.sqrt(q.shape[-1])
        self.scale = q.dtype.type(scale)
        att = q @ k.swapaxes(-1, -2)  # (B, nh, T, hs) @ (B, nh, hs, S) -> (B, nh, T, S)
        att *= self.scale
        if self.causal:
            att += causal_bias(T, S, xp, att.dtype)
        if self.mask is not None:
            mask = xp.asarray(self.mask, dtype=bool)
            att = xp.where(mask, att, att.dtype.type(-np.inf))
        row_max = att.max(axis=-1, keepdims=True)
        if self.mask is not None:  # a fully masked row has max -inf: use 0 so exp gives zeros
            row_max[~xp.isfinite(row_max)] = 0
        att -= row_max
        xp.exp(att, out=att)
        denom = rowsum(att)
        if self.mask is not None:
            denom[denom == 0] = 1  # fully masked rows give zero output instead of 0/0
        att *= 1.0 / denom
        self.att = att
        if self.dropout_p > 0.0:
            from ..rng import get_rng

            rng = self.rng if self.rng is not None else get_rng(xp)
            keep = rng.random(att.shape, dtype=np.float32) >= self.dropout_p
            self.drop = keep * att.dtype.type(1.0 / (1.0 - self.dropout_p))
            att = att * self.drop
        else:
            self.drop = None
        self.q, self.k, self.v, self.att_used = q, k, v, att
        return att @ v  # (B, nh, T, S) @ (B, nh, S, hv) -> (B, nh, T, hv)

    def backward(self, gy):
        q, k, v, att = self.q, self.k, self.v, self.att
        gv = self.att_used.swapaxes(-1, -2) @ gy  # (B, nh, S, T) @ (B, nh, T, hv) -> (B, nh, S, hv)
        ga = gy @ v.swapaxes(-1, -2)  # (B, nh, T, hv) @ (B, nh, hv, S) -> (B, nh, T, S)
        if self.drop is not None:
            ga *= self.drop
        ga -= rowsum(ga * att)
        ga *= att
        ga *= self.scale  # now the gradient of the pre-softmax scores times the scale
        gq = ga @ k  # (B, nh, T, S) @ (B, nh, S, hs) -> (B, nh, T, hs)
        gk = ga.swapaxes(-1, -2) @ q  # (B, nh, S, T) @ (B, nh, T, hs) -> (B, nh, S, hs)
        return gq, gk, gv

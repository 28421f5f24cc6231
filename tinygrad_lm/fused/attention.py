"""Scaled dot-product attention, softmax(q k^T / sqrt(d) + mask) v, as one Function.

Shapes: q (B, nh, T, hs), k and v (B, nh, S, hs), output (B, nh, T, hs).

Layout choice: the attention matrix is kept TRANSPOSED, P^T of shape (B, nh, S, T), keys on
axis -2 and queries on axis -1. The softmax normalises over keys, and NumPy reduces over a
non-last axis with vectorised row operations, while a reduction over the short last axis runs
a scalar loop per row: `max` over axis -2 of a (12, 4, 64, 64) float32 array took 0.08 ms
against 0.28 ms over axis -1 on the 2-core CI machine. Every product below reads P^T as is or
as a transposed view, which BLAS takes without a copy.

With s = scale, S_^T = s k q^T and P^T = softmax over keys (then dropout mask D^T):
    y   = (P^T)^T v                              forward
    gv  = P^T gy                                 (S, T) @ (T, hv)
    gP^T = v gy^T                                (S, hv) @ (hv, T)
    gS^T = P^T * (gP^T - sum_keys(P^T * gP^T))   softmax backward, over axis -2
    gq  = (gS^T)^T k s                           gk = gS^T q s
The causal mask is an additive matrix of 0 and -inf, cached per size; an optional boolean
`mask` (broadcastable to (B, nh, T, S), True = may attend, PyTorch's convention) handles
padding. A query with nothing to attend to gets zero output instead of NaN.
Leaves out: the memory-saving tiled (flash) formulation; the attention matrix is
materialised, which is fine at the context lengths this package trains.
"""
import numpy as np

from ..backend import get_array_module
from ..tensor import Function

_causal_cache = {}


def causal_bias_t(T, S, xp, dtype):
    """(S, T) additive mask in the transposed layout: -inf where key j > query i + (S - T)."""
    key = (T, S, xp.__name__, np.dtype(dtype).str)
    bias = _causal_cache.get(key)
    if bias is None:
        bias = xp.ascontiguousarray(xp.triu(xp.full((T, S), -np.inf, dtype=dtype), k=S - T + 1).T)  # (S, T)
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
        pt = k @ q.swapaxes(-1, -2)  # (B, nh, S, hs) @ (B, nh, hs, T) -> (B, nh, S, T): scores, transposed
        pt *= self.scale
        if self.causal:
            pt += causal_bias_t(T, S, xp, pt.dtype)
        if self.mask is not None:
            mask = xp.asarray(self.mask, dtype=bool)
            mask = mask.reshape((1,) * max(0, 2 - mask.ndim) + mask.shape)  # at least (T or 1, S)
            mask_t = mask.swapaxes(-1, -2)  # (..., T, S) -> (..., S, T)
            pt = xp.where(mask_t, pt, pt.dtype.type(-np.inf))
        # a query can have no key at all: padding masks, or causal with more queries than keys
        maybe_empty = self.mask is not None or (self.causal and T > S)
        col_max = pt.max(axis=-2, keepdims=True)  # (B, nh, 1, T): max over keys per query
        if maybe_empty:  # a fully masked query has max -inf: use 0 so exp gives zeros
            col_max[~xp.isfinite(col_max)] = 0
        pt -= col_max
        xp.exp(pt, out=pt)
        denom = pt.sum(axis=-2, keepdims=True)
        if maybe_empty:
            denom[denom == 0] = 1  # fully masked queries give zero output instead of 0/0
        pt *= 1.0 / denom  # P^T: each column sums to 1 over the keys
        self.pt = pt
        if self.dropout_p > 0.0:
            from ..rng import get_rng

            rng = self.rng if self.rng is not None else get_rng(xp)
            keep = rng.random(pt.shape, dtype=np.float32) >= self.dropout_p
            self.drop = keep * pt.dtype.type(1.0 / (1.0 - self.dropout_p))
            pt = pt * self.drop
        else:
            self.drop = None
        self.q, self.k, self.v, self.pt_used = q, k, v, pt
        return pt.swapaxes(-1, -2) @ v  # (B, nh, T, S) @ (B, nh, S, hv) -> (B, nh, T, hv)

    def backward(self, gy):
        q, k, v, pt = self.q, self.k, self.v, self.pt
        gv = self.pt_used @ gy  # (B, nh, S, T) @ (B, nh, T, hv) -> (B, nh, S, hv)
        gpt = v @ gy.swapaxes(-1, -2)  # (B, nh, S, hv) @ (B, nh, hv, T) -> (B, nh, S, T)
        if self.drop is not None:
            gpt *= self.drop
        gpt -= (gpt * pt).sum(axis=-2, keepdims=True)
        gpt *= pt
        gpt *= self.scale  # gradient of the scaled scores, transposed
        gq = gpt.swapaxes(-1, -2) @ k  # (B, nh, T, S) @ (B, nh, S, hs) -> (B, nh, T, hs)
        gk = gpt @ q  # (B, nh, S, T) @ (B, nh, T, hs) -> (B, nh, S, hs)
        return gq, gk, gv

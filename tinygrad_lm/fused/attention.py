"""Scaled dot-product attention, softmax(q k^T / sqrt(d) + mask) v, as one Function.

Shapes: q (B, nh, T, hs), k and v (B, nh, S, hs), output (B, nh, T, hs).

Layout choice: the attention matrix is kept TRANSPOSED, P^T of shape (B, nh, S, T), keys on
axis -2 and queries on axis -1. The softmax normalises over keys, and NumPy reduces over a
non-last axis with vectorised row operations, while a reduction over the short last axis runs
a scalar loop per row: `max` over axis -2 is about 4x faster than over axis -1 at the recipe's
sizes (`python scripts/bench_kernels.py` times both). Every product below reads P^T as is or
as a transposed view, which BLAS takes without a copy.

With s = scale, S_^T = s k q^T and P^T = softmax over keys (then dropout mask D^T):
    y   = (P^T)^T v                              forward
    gv  = P^T gy                                 (S, T) @ (T, hv)
    gP^T = v gy^T                                (S, hv) @ (hv, T)
    gS^T = P^T * (gP^T - D^T)                    softmax backward, over axis -2
    gq  = (gS^T)^T k s                           gk = gS^T q s
where D, one number per query, is sum_keys(P^T * gP^T) = sum over hv of (gy * y) (expand gP^T
= v gy^T and use y = P^T^T v; it holds with dropout too): a pass over the (T, hv) output instead
of an elementwise product and a sum over the twice larger (S, T) matrix.
The causal mask is an additive matrix of 0 and -inf, cached per size; an optional boolean
`mask` (broadcastable to (B, nh, T, S), True = may attend, PyTorch's convention) handles
padding. A query with nothing to attend to gets zero output instead of NaN.
Leaves out: the memory-saving tiled (flash) formulation; the attention matrix is
materialised, which is fine at the context lengths this package trains.
"""
import numpy as np

from ..backend import get_array_module
from ..tensor import Function
from .rows import rowsum

_causal_cache = {}


def causal_bias_t(T, S, xp, dtype):
    """(S, T) additive mask in the transposed layout: -inf where key j > query i + (S - T)."""
    key = (T, S, xp.__name__, np.dtype(dtype).str)
    bias = _causal_cache.get(key)
    if bias is None:
        bias = xp.ascontiguousarray(xp.triu(xp.full((T, S), -np.inf, dtype=dtype), k=S - T + 1).T)  # (S, T)
        _causal_cache[key] = bias
    return bias


def _matmul(a, b, out=None):
    """a @ b, written into `out` (a possibly strided view) when given. NumPy hands the strided
    output straight to BLAS; other backends compute a fresh product and copy it in."""
    if out is None:
        return a @ b
    xp = get_array_module(a)
    if xp is np:
        return np.matmul(a, b, out=out)
    out[...] = a @ b
    return out


class ScaledDotProductAttention(Function):
    def __init__(self, causal=True, mask=None, dropout_p=0.0, rng=None, scale=None):
        self.causal, self.mask, self.dropout_p, self.rng, self.scale = causal, mask, dropout_p, rng, scale

    def forward(self, q, k, v):
        return self._attend(q, k, v)

    def backward(self, gy):
        return self._grads(gy)

    def _attend(self, q, k, v, out=None):
        """The forward math; `out` (a (B, nh, T, hv) view, possibly strided) receives y."""
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
        # (B, nh, T, S) @ (B, nh, S, hv) -> (B, nh, T, hv)
        self.y = _matmul(pt.swapaxes(-1, -2), v, out)
        return self.y

    def _grads(self, gy, gq=None, gk=None, gv=None, d=None):
        """The backward math; gq, gk, gv, when given, are (possibly strided) views to write into;
        d, when given, is D = sum over hv of gy * y, shape (B, nh, T, 1)."""
        q, k, v, pt = self.q, self.k, self.v, self.pt
        if d is None:
            d = rowsum(gy * self.y)  # (B, nh, T, 1): D, per query
        gv = _matmul(self.pt_used, gy, gv)  # (B, nh, S, T) @ (B, nh, T, hv) -> (B, nh, S, hv)
        gpt = v @ gy.swapaxes(-1, -2)  # (B, nh, S, hv) @ (B, nh, hv, T) -> (B, nh, S, T)
        if self.drop is not None:
            gpt *= self.drop
        gpt -= d.swapaxes(-1, -2)  # (B, nh, 1, T): D per query, broadcast over the keys
        gpt *= pt
        gpt *= self.scale  # gradient of the scaled scores, transposed
        gq = _matmul(gpt.swapaxes(-1, -2), k, gq)  # (B, nh, T, S) @ (B, nh, S, hs) -> (B, nh, T, hs)
        gk = _matmul(gpt, q, gk)  # (B, nh, S, T) @ (B, nh, T, hs) -> (B, nh, S, hs)
        return gq, gk, gv


class PackedSelfAttention(ScaledDotProductAttention):
    """Self-attention straight from c_attn's packed output: qkv (B, T, 3C) -> y (B, T, C).

    The same math as ScaledDotProductAttention, without the head split and merge as separate
    ops: q, k and v are strided views of qkv (no copies), the output is written by the last
    product straight into the merged (B, T, nh, hs) layout, and backward writes gq, gk and gv
    straight into one (B, T, 3C) gradient. The split-and-merge version (split, reshape,
    transpose, attention, transpose, reshape) costs a Function per step and a copy at each
    merge; this is its fused equivalent (tests check the two agree).
    """

    def __init__(self, n_head, causal=True, mask=None, dropout_p=0.0, rng=None, scale=None):
        super().__init__(causal, mask, dropout_p, rng, scale)
        self.n_head = n_head

    def _heads(self, a, n):
        """(B, T, n*C) -> n views of shape (B, nh, T, hs)."""
        B, T, width = a.shape
        hs = width // (n * self.n_head)
        a5 = a.reshape(B, T, n, self.n_head, hs)  # (B, T, n, nh, hs)
        return [a5[:, :, i].transpose(0, 2, 1, 3) for i in range(n)]  # n x (B, nh, T, hs)

    def forward(self, qkv):
        xp = get_array_module(qkv)
        if qkv.ndim != 3 or qkv.shape[-1] % (3 * self.n_head):
            raise ValueError(f"packed attention: qkv of shape {qkv.shape} must be (B, T, 3 * C) with C "
                             f"divisible by n_head={self.n_head}")
        qkv = xp.ascontiguousarray(qkv)
        q, k, v = self._heads(qkv, 3)
        y = xp.empty(qkv.shape[:2] + (qkv.shape[2] // 3,), dtype=qkv.dtype)  # (B, T, C)
        self._attend(q, k, v, out=self._heads(y, 1)[0])
        self.y_merged = y
        return y

    def backward(self, gy):
        xp = get_array_module(gy)
        g = xp.empty(gy.shape[:2] + (3 * gy.shape[2],), dtype=gy.dtype)  # (B, T, 3C)
        gq, gk, gv = self._heads(g, 3)
        B, T, C = gy.shape
        # D = sum over each head's hs features of gy * y, from the merged arrays: one BLAS mat-vec
        d = rowsum((gy * self.y_merged).reshape(B, T, self.n_head, C // self.n_head))  # (B, T, nh, 1)
        d = d.transpose(0, 2, 1, 3)  # (B, nh, T, 1)
        self._grads(self._heads(gy, 1)[0], gq, gk, gv, d)  # gy viewed as (B, nh, T, hs)
        return g

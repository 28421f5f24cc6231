"""Fast twin of `F.scaled_dot_product_attention` and of `nn.CausalSelfAttention`'s middle:
softmax(q k^T / sqrt(hs) + mask) v as one Function, and as one Function straight from c_attn's
packed output with the head split and merge folded in (`PackedAttentionKernel`).

The reference builds about a dozen Functions per layer (split, three reshapes and transposes,
matmul, scale, two masked_fills, softmax, dropout, matmul, transpose, reshape), each with its
own output copy; this file does the same math in a handful of in-place passes. Forward +
backward at the recipe's sizes: measured 1.6x faster than the reference (BENCHMARKS.md, "Each
fast kernel against its reference twin"; `python scripts/bench_kernels.py`).

Shapes: q (B, nh, T, hs), k (B, nh, S, hs), v (B, nh, S, hv), output y (B, nh, T, hv): T
queries, S keys (S > T with a key/value cache), hv = hs in a Transformer. Everything below is
per batch entry and head; products of two matrices are matrix products, `*` is elementwise.

Forward, with s the scale (1/sqrt(hs) unless given):
    A = s q k^T + M       (T, S) scores; M is 0 where query t may see key j and -inf where
                          not (causal: j > t + S - T; padding: the mask is False)
    P = softmax of A over the keys: P_tj = exp(A_tj) / sum_l exp(A_tl); a query with no
        key left gets a row of zeros (so a zero output), not the NaN of 0/0
    R = P * K             K: dropout's keep mask times 1/(1 - p), drawn in forward (K = 1 at p = 0)
    y = R v               (T, S) @ (S, hv)

Backward, from gy = dL/dy (T, hv), in five steps:
1. Through the product y = R v:
       gv = R^T gy                                     (S, T) @ (T, hv)
       gR = gy v^T                                     (T, hv) @ (hv, S)
2. Through R = P * K (K is a constant once drawn):
       gP = gR * K
3. Through the softmax, one query row t at a time: d P_tj / d A_tl = P_tj (delta_jl - P_tl), so
       gA_tl = sum_j gP_tj P_tj (delta_jl - P_tl) = P_tl (gP_tl - D_t)
       D_t   = sum_j P_tj gP_tj                        one number per query
   A masked entry has P = 0, so it gets no gradient (nor does a query with no key left).
4. D without touching the (T, S) matrix again: expand gP = (gy v^T) * K,
       D_t = sum_j P_tj K_tj sum_c gy_tc v_jc = sum_c gy_tc sum_j R_tj v_jc = sum_c gy_tc y_tc
   a sum over the (T, hv) output instead of a product and a sum over the larger (T, S)
   matrix; it holds with dropout on.
5. Through A = s q k^T + M (M is a constant):
       gq = s gA k                                     (T, S) @ (S, hs)
       gk = s gA^T q                                   (S, T) @ (T, hs)

The code keeps every (T, S) matrix TRANSPOSED, as (S, T) (why: the layout paragraph below).
Its names, and the lines of `_grads` in order:
    pt = P^T,  pt_used = R^T,  drop = K^T,  d = D as (B, nh, T, 1),  scale = s
    gv = pt_used @ gy                                  step 1: R^T gy
    g_scores_t = v @ gy^T                              step 1: gR^T
    g_scores_t *= drop                                 step 2: gP^T
    g_scores_t -= d^T;  g_scores_t *= pt               step 3: gA^T (D broadcast over keys)
    g_scores_t *= scale                                s gA^T, the gradient of q k^T
    gq = g_scores_t^T @ k;  gk = g_scores_t @ q        step 5
with d = rowsum(gy * y) (step 4) computed first. g_scores_t is one (S, T) buffer throughout.

Packed input (`PackedAttentionKernel`): qkv (B, T, 3C) is GPT-2's c_attn output, C = nh hs,
    q = qkv[..., 0:C],  k = qkv[..., C:2C],  v = qkv[..., 2C:3C],
and head h owns columns h hs .. (h + 1) hs - 1 of each: `_heads` views qkv as (B, T, 3, nh, hs)
and returns three (B, nh, T, hs) strided views, no copies. Splitting and reshaping only pick
elements, so their backward puts each gradient element back where its input came from:
`backward` writes gq, gk and gv through the same views into one (B, T, 3C) array; together
they cover every element of it (no zero fill). The merge y (B, nh, T, hs) -> (B, T, C) is a
transpose and a reshape, so its backward views gy (B, T, C) as (B, nh, T, hs) again; D is
summed per head straight from the merged gy and y.

Layout choice: the attention matrix is kept transposed, P^T of shape (B, nh, S, T), keys on
axis -2 and queries on axis -1. The softmax normalises over keys, and NumPy reduces over a
non-last axis with vectorised row operations, while a reduction over the short last axis runs
a scalar loop per row: `max` over axis -2 is 2-4x faster than over axis -1 at the recipe's
sizes (measured 3.8x and 2.2x on BENCHMARKS.md's two machines; `python
scripts/bench_kernels.py` times both). Every product above reads P^T as is or as a transposed
view, which BLAS takes without a copy.

The causal mask is an additive matrix of 0 and -inf, cached per size; an optional boolean
`mask` (broadcastable to (B, nh, T, S), True = may attend, PyTorch's convention) handles
padding. Dropout asks rng.py for its mask in the reference's (B, nh, T, S) layout (the same
keyed numbers, or the same generator), so fast and reference agree exactly with dropout on
too, and a slice of the batch gets the rows of the whole batch's mask (tested).
With a key/value cache (generation, `nn/kv_cache.py`) `FusedSelfAttention` splits the heads
as the reference does, appends k and v to the cache and calls `AttentionKernel` on T new
queries and S keys (the causal mask's bottom-right (T, S) corner): no graph is needed there.
On a GPU (float32 CuPy arrays, causal, no padding mask) `PackedAttentionKernel` takes the
plain (T, S) layout instead: cuBLAS products around the fused causal softmax of
`fast/cuda/attention.py`, whose backward kernel does step 3 with D as the row sum
sum_j P_tj gP_tj and folds in s; this file's code is that path's oracle (`scripts/gpu_check.py`).
Leaves out: the memory-saving tiled (flash) formulation; the attention matrix is
materialised, which is fine at the context lengths this package trains.
"""
import numpy as np

from ..engine.backend import get_array_module
from ..engine.functional import _mask, check_attention
from ..nn import CausalSelfAttention
from ..nn.attention import key_padding_mask
from ..engine.rng import dropout_mask, site_generator
from ..engine.tensor import Function, Tensor
from . import cuda
from .cuda import attention as cuda_attention
from .cuda import dropout as cuda_dropout
from .cache import DeviceCache
from .rows import rowdot, rowsum

_causal_cache = DeviceCache(16)  # generation asks for a new (T, S) every token: keep a few only


def causal_bias_t(T, S, xp, dtype):
    """(S, T) additive mask in the transposed layout: -inf where key j > query i + (S - T).
    Cached per size, dtype and device (each GPU keeps its own copy)."""
    return _causal_cache.get((T, S, np.dtype(dtype).str), xp, lambda: xp.ascontiguousarray(
        xp.triu(xp.full((T, S), -np.inf, dtype=dtype), k=S - T + 1).T))  # (T, S) -> (S, T)


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


class AttentionKernel(Function):
    def __init__(self, causal=True, mask=None, dropout_p=0.0, rng=None, scale=None):
        self.causal, self.mask, self.dropout_p, self.rng, self.scale = causal, mask, dropout_p, rng, scale

    def forward(self, q, k, v):
        return self._attend(q, k, v)

    def backward(self, gy):
        return self._grads(gy)

    def _attend(self, q, k, v, out=None):
        """The forward math; `out` (a (B, nh, T, hv) view, possibly strided) receives y."""
        xp = get_array_module(q)
        check_attention(q, k, v)
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
        if self.dropout_p > 0.0:  # the reference's mask: same numbers, dtype and (B, nh, T, S) layout
            mask = dropout_mask(pt.shape[:-2] + (T, S), self.dropout_p, pt.dtype, xp, self.rng)
            self.drop = xp.ascontiguousarray(mask.swapaxes(-1, -2))  # (B, nh, T, S) -> (B, nh, S, T)
            pt = pt * self.drop
        else:
            self.drop = None
        self.q, self.k, self.v, self.pt_used = q, k, v, pt
        # (B, nh, T, S) @ (B, nh, S, hv) -> (B, nh, T, hv)
        self.y = _matmul(pt.swapaxes(-1, -2), v, out)
        return self.y

    def weights(self):
        """(P, P * K) after forward, both (B, nh, T, S): the attention weights before and after dropout."""
        if getattr(self, "on_gpu", False):
            return self.gpu_saved[3], self.gpu_saved[4]
        return self.pt.swapaxes(-1, -2), self.pt_used.swapaxes(-1, -2)  # (B, nh, S, T) -> (B, nh, T, S)

    def _grads(self, gy, gq=None, gk=None, gv=None, d=None):
        """The backward math; gq, gk, gv, when given, are (possibly strided) views to write into;
        d, when given, is D = sum over hv of gy * y, shape (B, nh, T, 1)."""
        q, k, v, pt = self.q, self.k, self.v, self.pt
        xp = get_array_module(pt)
        if d is None:
            d = rowsum(gy * self.y)  # (B, nh, T, 1): D, per query
        gv = _matmul(self.pt_used, gy, gv)  # (B, nh, S, T) @ (B, nh, T, hv) -> (B, nh, S, hv)
        # one buffer, in place: gR^T, then gP^T, gA^T and s gA^T (steps 1-3 of the module docstring)
        g_scores_t = v @ gy.swapaxes(-1, -2)  # (B, nh, S, hv) @ (B, nh, hv, T) -> (B, nh, S, T): gR^T
        if self.drop is not None:
            g_scores_t *= self.drop  # gP^T = gR^T * K^T
        # (B, nh, 1, T): D per query, broadcast over the keys; made contiguous first (T numbers a head), as
        # NumPy broadcasts a strided row more slowly: 30 against 53 us a layer on one thread's (6, 4, 64, 64)
        g_scores_t -= xp.ascontiguousarray(d.swapaxes(-1, -2))
        g_scores_t *= pt  # gA^T = P^T * (gP^T - D)
        g_scores_t *= self.scale  # now s gA^T: the gradient of the raw scores q k^T, transposed
        gq = _matmul(g_scores_t.swapaxes(-1, -2), k, gq)  # (B, nh, T, S) @ (B, nh, S, hs) -> (B, nh, T, hs)
        gk = _matmul(g_scores_t, q, gk)  # (B, nh, S, T) @ (B, nh, T, hs) -> (B, nh, S, hs)
        return gq, gk, gv


class PackedAttentionKernel(AttentionKernel):
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
        self.on_gpu = self.causal and self.mask is None and cuda.enabled(qkv)
        if self.on_gpu:
            return self._forward_gpu(qkv)
        q, k, v = self._heads(qkv, 3)
        y = xp.empty(qkv.shape[:2] + (qkv.shape[2] // 3,), dtype=qkv.dtype)  # (B, T, C)
        self._attend(q, k, v, out=self._heads(y, 1)[0])
        self.y_merged = y
        return y

    def backward(self, gy):
        xp = get_array_module(gy)
        g = xp.empty(gy.shape[:2] + (3 * gy.shape[2],), dtype=gy.dtype)  # (B, T, 3C)
        if self.on_gpu:
            return self._backward_gpu(gy, g)
        gq, gk, gv = self._heads(g, 3)
        B, T, C = gy.shape
        # D = sum over each head's hs features of gy * y, from the merged arrays: one dot per head and position
        hs = C // self.n_head
        d = rowdot(gy.reshape(B, T, self.n_head, hs), self.y_merged.reshape(B, T, self.n_head, hs))  # (B, T, nh, 1)
        d = d.transpose(0, 2, 1, 3)  # (B, nh, T, 1)
        self._grads(self._heads(gy, 1)[0], gq, gk, gv, d)  # gy viewed as (B, nh, T, hs)
        return g


    # ---- on a GPU: the plain (T, S) layout, cuBLAS products and the fused causal softmax of
    # fast/cuda/attention.py (the transposed layout above only helps NumPy's reductions)
    def _forward_gpu(self, qkv):
        xp = get_array_module(qkv)
        B, T, C3 = qkv.shape
        q, k, v = (xp.ascontiguousarray(h) for h in self._heads(qkv, 3))  # 3 x (B, nh, T, hs)
        self.scale = self.scale if self.scale is not None else 1.0 / np.sqrt(q.shape[-1])
        p = cuda_attention.softmax_forward(q @ k.swapaxes(-1, -2), self.scale)  # (B, nh, T, T)
        self.drop = None
        if self.dropout_p > 0.0 and self.rng is None:  # the keyed mask of rng.py, in one kernel
            self.drop = cuda_dropout.dropout_mask(p.shape, self.dropout_p, site_generator(xp, p.shape))
        elif self.dropout_p > 0.0:  # the same draw as the NumPy path: (B, nh, T, S), same generator
            self.drop = dropout_mask(p.shape, self.dropout_p, p.dtype, xp, self.rng)
        p_used = p if self.drop is None else p * self.drop
        self.gpu_saved = q, k, v, p, p_used
        y = p_used @ v  # (B, nh, T, T) @ (B, nh, T, hs) -> (B, nh, T, hs)
        return y.transpose(0, 2, 1, 3).reshape(B, T, C3 // 3)  # (B, T, nh, hs) -> (B, T, C)

    def _backward_gpu(self, gy, g):
        q, k, v, p, p_used = self.gpu_saved
        B, T, C = gy.shape
        gy4 = gy.reshape(B, T, self.n_head, C // self.n_head).transpose(0, 2, 1, 3)  # (B, nh, T, hs)
        gv = p_used.swapaxes(-1, -2) @ gy4  # (B, nh, T, T) @ (B, nh, T, hs)
        dp = gy4 @ v.swapaxes(-1, -2)  # (B, nh, T, hs) @ (B, nh, hs, T) -> (B, nh, T, T)
        if self.drop is not None:
            dp *= self.drop
        ds = cuda_attention.softmax_backward(p, dp, self.scale)  # gradient of the raw scores q k^T
        gq, gk, gview = ds @ k, ds.swapaxes(-1, -2) @ q, self._heads(g, 3)  # (B, nh, T, hs) each
        for view, part in zip(gview, (gq, gk, gv)):
            view[...] = part  # into the packed (B, T, 3C) gradient
        self.gpu_saved = None
        return g


def report_weights(dropout, kernel):
    """Show the forward hooks on an attention layer's dropout module the weights the kernel
    computed inside itself: the reference path passes them through that module (its input the
    weights, its output the dropped ones), so hooks and `run_with_cache` see the same on both
    paths. Replacing them needs the reference path: a hook that returns a value is refused."""
    if not dropout._forward_hooks:
        return
    p, p_used = kernel.weights()
    for hook in tuple(dropout._forward_hooks.values()):
        if hook(dropout, (Tensor(p),), Tensor(p_used)) is not None:
            raise RuntimeError("a forward hook on an attention dropout module returned a replacement, but the fused "
                               "attention kernel computes its weights inside one Function and cannot take one; use "
                               "the reference layers (tinygrad_lm.fast.unfuse(model), or --reference) to replace them")


def scaled_dot_product_attention(q, k, v, causal=True, mask=None, dropout_p=0.0, rng=None, scale=None):
    """`F.scaled_dot_product_attention`, fused; a query with no key to attend to gets zeros."""
    return AttentionKernel(causal, _mask(mask, q), dropout_p, rng, scale)(q, k, v)


def packed_self_attention(qkv, n_head, causal=True, mask=None, dropout_p=0.0, rng=None, scale=None):
    """Multi-head self-attention from one packed projection, fused with the head split and merge.

    Equal to splitting qkv into q, k, v, reshaping each to (B, nh, T, hs), calling
    `scaled_dot_product_attention` and merging the heads back to (B, T, C), without the copies.

    Args:
        qkv: (B, T, 3C), q, k and v side by side (GPT-2's c_attn output); C divisible by n_head.
        n_head: number of heads nh (head size hs = C / nh).
        causal, mask, dropout_p, rng, scale: as in `scaled_dot_product_attention`.
    Returns:
        Tensor (B, T, C), heads merged.
    """
    return PackedAttentionKernel(n_head, causal, _mask(mask, qkv), dropout_p, rng, scale)(qkv)


class FusedSelfAttention(CausalSelfAttention):
    """`nn.CausalSelfAttention` with the packed kernel between c_attn and c_proj (same parameters;
    attention dropout reads `attn_dropout`'s p and generator, so the masks match the reference)."""

    def forward(self, x, attention_mask=None, kv_cache=None):
        if kv_cache is not None:
            return self.resid_dropout(self.c_proj(self._attend_cached(x, kv_cache)))
        padding = key_padding_mask(attention_mask, x)  # (B, 1, 1, T), True at padded keys
        p = self.attn_dropout.p if self.training else 0.0
        kernel = PackedAttentionKernel(self.n_head, causal=True, mask=None if padding is None else ~padding,
                                       dropout_p=p, rng=self.attn_dropout.generator)
        y = kernel(self.c_attn(x))  # (B, T, C)
        report_weights(self.attn_dropout, kernel)
        return self.resid_dropout(self.c_proj(y))

    def _attend_cached(self, x, kv_cache):
        """Generation: y (B, T, C) for T new positions, their k and v appended to `kv_cache`."""
        B, T, C = x.shape
        nh, hs = self.n_head, C // self.n_head
        qkv = self.c_attn(x).data.reshape(B, T, 3, nh, hs)  # (B, T, 3C) -> (B, T, 3, nh, hs)
        q, k, v = (Tensor(qkv[:, :, i].transpose(0, 2, 1, 3)) for i in range(3))  # 3 x (B, nh, T, hs)
        k, v = kv_cache.append(k, v)  # (B, nh, S, hs) each
        kernel = AttentionKernel(causal=True)
        y = kernel(q, k, v)  # (B, nh, T, hs)
        report_weights(self.attn_dropout, kernel)
        return Tensor(y.data.transpose(0, 2, 1, 3).reshape(B, T, C))  # (B, T, nh, hs) -> (B, T, C)

"""Causal attention on a GPU: cuBLAS products around a fused causal-softmax kernel.
NumPy twin: `fast/attention.py`'s PackedAttentionKernel (and through it the reference path),
whose docstring derives the backward step by step.

Forward, per head, with scores S = q k^T (cuBLAS, batched over B x nh):
    P_ij = exp(scale S_ij - max_j) / sum_j   for keys j <= i + (T_k - T_q), else 0
    y = (P * dropout mask) v                 (cuBLAS)
Backward, with dP = gy v^T:
    dS_ij = scale P_ij (dP'_ij - sum_k P_k dP'_k),  dP' = dP * mask
    gq = dS k, gk = dS^T q, gv = (P * mask)^T gy   (cuBLAS)
The kernel does the mask, the scale, the max, the exponentials, the normalisation (and, in
backward, the row dot product) in one read and one write of each row, where the twin makes
about six passes over the (T, T) matrix.
Launch shape: one warp per query row (32 lanes stride over its keys, coalesced), 8 rows per
256-thread block; rows are (B x nh x T_q) and the query index is row % T_q.
Leaves out: padding masks (the twin handles them: the switch sends masked calls there) and
the tiled flash formulation (the (T, T) matrix is materialised, 25 MB per layer at the
shakespeare config in float32).
"""
import numpy as np

SOURCE = r"""
#define NEG_INF (-__int_as_float(0x7f800000))  /* -infinity without math.h: NVRTC has no headers */
__device__ __forceinline__ float warp_max(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
}
__device__ __forceinline__ float warp_sum(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

/* P = causal softmax(scale * S) over the last axis; S and P are (rows, Tk); blockDim = (32, 8) */
extern "C" __global__ void causal_softmax_forward(const float* S, float* P, long long rows, int Tq, int Tk,
                                                  float scale) {
    long long row = (long long)blockIdx.x * blockDim.y + threadIdx.y;
    if (row >= rows) return;
    int last = (int)(row % Tq) + (Tk - Tq);       /* the last key this query may see */
    const float* s = S + row * Tk;
    float* p = P + row * Tk;
    float m = NEG_INF;
    for (int j = threadIdx.x; j <= last; j += 32) m = fmaxf(m, scale * s[j]);
    m = warp_max(m);
    float total = 0.0f;
    for (int j = threadIdx.x; j <= last; j += 32) total += expf(scale * s[j] - m);
    total = warp_sum(total);
    float inv = last >= 0 ? 1.0f / total : 0.0f;  /* a query with no key: zeros, not NaN */
    for (int j = threadIdx.x; j < Tk; j += 32) p[j] = j <= last ? expf(scale * s[j] - m) * inv : 0.0f;
}

/* dS = scale * P * (dP - sum_j P_j dP_j); P, dP, dS are (rows, Tk); blockDim = (32, 8) */
extern "C" __global__ void causal_softmax_backward(const float* P, const float* dP, float* dS, long long rows,
                                                   int Tk, float scale) {
    long long row = (long long)blockIdx.x * blockDim.y + threadIdx.y;
    if (row >= rows) return;
    const float* p = P + row * Tk;
    const float* dp = dP + row * Tk;
    float dot = 0.0f;
    for (int j = threadIdx.x; j < Tk; j += 32) dot += p[j] * dp[j];
    dot = warp_sum(dot);
    float* ds = dS + row * Tk;
    for (int j = threadIdx.x; j < Tk; j += 32) ds[j] = scale * p[j] * (dp[j] - dot);
}
"""

ROWS_PER_BLOCK = 8


def softmax_forward(scores, scale):
    """Causal softmax of float32 CuPy scores (..., Tq, Tk), scaled; a new array."""
    from . import blocks, launch
    from ...engine import backend

    xp = backend.cupy
    Tq, Tk = scores.shape[-2:]
    s = xp.ascontiguousarray(scores)
    p = xp.empty_like(s)
    rows = s.size // Tk
    launch("attention", "causal_softmax_forward", (blocks(rows, ROWS_PER_BLOCK),), (32, ROWS_PER_BLOCK),
           (s, p, np.int64(rows), np.int32(Tq), np.int32(Tk), np.float32(scale)))
    return p


def softmax_backward(p, dp, scale):
    """The gradient of the raw scores q k^T (the scale folded in) from P and dL/dP (both
    (..., Tq, Tk))."""
    from . import blocks, launch
    from ...engine import backend

    xp = backend.cupy
    Tk = p.shape[-1]
    dp = xp.ascontiguousarray(dp)
    ds = xp.empty_like(dp)
    rows = dp.size // Tk
    launch("attention", "causal_softmax_backward", (blocks(rows, ROWS_PER_BLOCK),), (32, ROWS_PER_BLOCK),
           (p, dp, ds, np.int64(rows), np.int32(Tk), np.float32(scale)))
    return ds

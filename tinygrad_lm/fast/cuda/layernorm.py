"""Layer norm as CUDA kernels; NumPy twin: `fast/layernorm.py`'s LayerNormKernel, whose
docstring derives the backward below step by step.

Forward, per row of C features: mean, rstd = 1 / sqrt(var + eps) (two passes over the row, the
second for the variance around the mean, as the twin), y = (x - mean) rstd w + b. It saves
mean and rstd per row (8 bytes a row) instead of the twin's whole xhat (4C bytes a row).
Backward, per row, with g = gy w and xhat = (x - mean) rstd recomputed:
    gx = rstd (g - mean(g) - xhat mean(g xhat))
and per column gw = sum over rows of gy xhat, gb = sum of gy.
Launch shapes:
  * forward and backward's gx: one warp (32 threads) per row, 8 rows per 256-thread block; a
    lane reads columns lane, lane + 32, ... (coalesced) and the row sums are warp shuffles.
  * gw and gb: blocks of 32 columns x 8 row-lanes over a slice of the rows, grid (C / 32,
    ROW_SLICES); each block writes one partial sum per column, and CuPy sums the ROW_SLICES
    partials. A fixed order everywhere: no atomics, the same bits on every run (llm.c's
    layernorm_backward uses atomics on shared memory for these; we trade that for determinism).
Leaves out: a weightless layer norm (the twin handles it; here weight and bias are required).
"""
import numpy as np

SOURCE = r"""
__device__ __forceinline__ float warp_sum(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

/* one warp per row; blockDim = (32, 8) */
extern "C" __global__ void layernorm_forward(const float* x, const float* w, const float* b, float* y,
                                             float* mean, float* rstd, int N, int C, float eps) {
    int row = blockIdx.x * blockDim.y + threadIdx.y;
    if (row >= N) return;
    const float* xr = x + (long long)row * C;
    float s = 0.0f;
    for (int c = threadIdx.x; c < C; c += 32) s += xr[c];
    float m = warp_sum(s) / C;
    float v = 0.0f;
    for (int c = threadIdx.x; c < C; c += 32) { float d = xr[c] - m; v += d * d; }
    float r = rsqrtf(warp_sum(v) / C + eps);
    float* yr = y + (long long)row * C;
    for (int c = threadIdx.x; c < C; c += 32) yr[c] = (xr[c] - m) * r * w[c] + b[c];
    if (threadIdx.x == 0) { mean[row] = m; rstd[row] = r; }
}

/* gx, one warp per row; blockDim = (32, 8) */
extern "C" __global__ void layernorm_backward_x(const float* gy, const float* x, const float* w,
                                                const float* mean, const float* rstd, float* gx, int N, int C) {
    int row = blockIdx.x * blockDim.y + threadIdx.y;
    if (row >= N) return;
    const float* gr = gy + (long long)row * C;
    const float* xr = x + (long long)row * C;
    float m = mean[row], r = rstd[row];
    float sg = 0.0f, sgx = 0.0f;
    for (int c = threadIdx.x; c < C; c += 32) {
        float g = gr[c] * w[c];
        sg += g;
        sgx += g * (xr[c] - m) * r;
    }
    float a = warp_sum(sg) / C, bb = warp_sum(sgx) / C;
    float* out = gx + (long long)row * C;
    for (int c = threadIdx.x; c < C; c += 32) out[c] = r * (gr[c] * w[c] - a - (xr[c] - m) * r * bb);
}

/* gw and gb partial sums: blockDim = (32, 8), grid = (ceil(C / 32), slices);
   partial_w/partial_b have shape (slices, C) */
extern "C" __global__ void layernorm_backward_params(const float* gy, const float* x, const float* mean,
                                                     const float* rstd, float* partial_w, float* partial_b,
                                                     int N, int C) {
    __shared__ float sw[8][32];
    __shared__ float sb[8][32];
    int c = blockIdx.x * 32 + threadIdx.x;
    float dw = 0.0f, db = 0.0f;
    if (c < C) {
        for (int row = blockIdx.y * 8 + threadIdx.y; row < N; row += 8 * gridDim.y) {
            float g = gy[(long long)row * C + c];
            dw += g * (x[(long long)row * C + c] - mean[row]) * rstd[row];
            db += g;
        }
    }
    sw[threadIdx.y][threadIdx.x] = dw;
    sb[threadIdx.y][threadIdx.x] = db;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        for (int k = 1; k < 8; k++) { dw += sw[k][threadIdx.x]; db += sb[k][threadIdx.x]; }
        partial_w[(long long)blockIdx.y * C + c] = dw;
        partial_b[(long long)blockIdx.y * C + c] = db;
    }
}
"""

ROWS_PER_BLOCK = 8  # warps per block, one row each
ROW_SLICES = 64  # row slices of the gw/gb pass: 64 partial sums per column


def forward(x, w, b, eps):
    """(y, mean, rstd) for float32 CuPy x (..., C), w and b (C,)."""
    from . import blocks, launch
    from ...engine import backend

    xp = backend.cupy
    C = x.shape[-1]
    x2 = xp.ascontiguousarray(x).reshape(-1, C)  # (N, C)
    N = x2.shape[0]
    y = xp.empty_like(x2)
    mean, rstd = xp.empty(N, dtype=xp.float32), xp.empty(N, dtype=xp.float32)
    launch("layernorm", "layernorm_forward", (blocks(N, ROWS_PER_BLOCK),), (32, ROWS_PER_BLOCK),
           (x2, w, b, y, mean, rstd, np.int32(N), np.int32(C), np.float32(eps)))
    return y.reshape(x.shape), mean, rstd


def backward(gy, x, w, mean, rstd):
    """(gx, gw, gb) from forward's saved mean and rstd."""
    from . import blocks, launch
    from ...engine import backend

    xp = backend.cupy
    C = x.shape[-1]
    g2, x2 = xp.ascontiguousarray(gy).reshape(-1, C), xp.ascontiguousarray(x).reshape(-1, C)  # (N, C)
    N = x2.shape[0]
    gx = xp.empty_like(x2)
    launch("layernorm", "layernorm_backward_x", (blocks(N, ROWS_PER_BLOCK),), (32, ROWS_PER_BLOCK),
           (g2, x2, w, mean, rstd, gx, np.int32(N), np.int32(C)))
    pw, pb = xp.empty((ROW_SLICES, C), dtype=xp.float32), xp.empty((ROW_SLICES, C), dtype=xp.float32)
    launch("layernorm", "layernorm_backward_params", (blocks(C, 32), ROW_SLICES), (32, 8),
           (g2, x2, mean, rstd, pw, pb, np.int32(N), np.int32(C)))
    return gx.reshape(x.shape), pw.sum(axis=0), pb.sum(axis=0)

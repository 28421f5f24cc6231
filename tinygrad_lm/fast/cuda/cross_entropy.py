"""Softmax cross-entropy as CUDA kernels; NumPy twin: `fast/cross_entropy.py`'s CrossEntropyKernel,
whose docstring derives the backward step by step.

Forward, per row i of V logits z with target t and smoothing s:
    lse_i  = max + log sum_j exp(z_j - max)
    loss_i = (1 - s) (lse_i - z_t) + s (lse_i - mean_j z_j)
It saves lse (4 bytes a row), not the (N, V) softmax the twin keeps.
Backward, with scale_i = gy keep_i / count (computed on the device by CuPy: no host sync):
    gz_ij = (exp(z_ij - lse_i) - (1 - s) [j == t_i] - s / V) scale_i
written straight into the gradient: no one-hot matrix, no scatter.
Launch shape: one block of 256 threads per row; each thread strides over the row's V logits
(coalesced), and the row's max and sum are block reductions (warp shuffles, then one value
per warp through shared memory). At V = 65 most threads idle, at V = 50,257 each handles ~200.
Leaves out: class weights and soft targets (the twin's list).
"""
import numpy as np

SOURCE = r"""
#define NEG_INF (-__int_as_float(0x7f800000))  /* -infinity without math.h: NVRTC has no headers */
/* reduce v over the whole block (blockDim.x a multiple of 32, at most 1024): sum, or max */
__device__ float block_reduce(float v, bool take_max, float* shared) {
    for (int offset = 16; offset > 0; offset >>= 1) {
        float other = __shfl_xor_sync(0xffffffffu, v, offset);
        v = take_max ? fmaxf(v, other) : v + other;
    }
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, n_warps = blockDim.x / 32;
    __syncthreads();                        /* shared may still be read by an earlier call */
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    v = lane < n_warps ? shared[lane] : (take_max ? NEG_INF : 0.0f);
    for (int offset = 16; offset > 0; offset >>= 1) {
        float other = __shfl_xor_sync(0xffffffffu, v, offset);
        v = take_max ? fmaxf(v, other) : v + other;
    }
    return v;                               /* every thread holds the block's result */
}

/* one block per row */
extern "C" __global__ void cross_entropy_forward(const float* z, const long long* targets, float* loss,
                                                 float* lse, int V, float smoothing) {
    __shared__ float shared[32];
    const float* zr = z + (long long)blockIdx.x * V;
    float m = NEG_INF;
    for (int j = threadIdx.x; j < V; j += blockDim.x) m = fmaxf(m, zr[j]);
    m = block_reduce(m, true, shared);
    float s = 0.0f, total = 0.0f;
    for (int j = threadIdx.x; j < V; j += blockDim.x) { s += expf(zr[j] - m); total += zr[j]; }
    s = block_reduce(s, false, shared);
    total = block_reduce(total, false, shared);
    if (threadIdx.x == 0) {
        float l = m + logf(s);
        lse[blockIdx.x] = l;
        loss[blockIdx.x] = (1.0f - smoothing) * (l - zr[targets[blockIdx.x]]) + smoothing * (l - total / V);
    }
}

/* one block per row: gz = (softmax - (1 - s) onehot - s / V) * scale */
extern "C" __global__ void cross_entropy_backward(const float* z, const long long* targets, const float* lse,
                                                  const float* scale, float* gz, int V, float smoothing) {
    long long row = blockIdx.x;
    const float* zr = z + row * V;
    float* gr = gz + row * V;
    float l = lse[row], k = scale[row], uniform = smoothing / V;
    long long t = targets[row];
    for (int j = threadIdx.x; j < V; j += blockDim.x) {
        float p = expf(zr[j] - l) - uniform - (j == t ? 1.0f - smoothing : 0.0f);
        gr[j] = p * k;
    }
}
"""

THREADS = 256


def forward(z, targets, smoothing):
    """(per-row loss, lse) for float32 CuPy logits z (N, V) and int64 targets (N,) in range."""
    from . import launch
    from ...engine import backend

    xp = backend.cupy
    N, V = z.shape
    z = xp.ascontiguousarray(z)
    loss, lse = xp.empty(N, dtype=xp.float32), xp.empty(N, dtype=xp.float32)
    if N == 0:  # no rows: no blocks to launch
        return loss, lse
    launch("cross_entropy", "cross_entropy_forward", (N,), (THREADS,),
           (z, targets.astype(xp.int64), loss, lse, np.int32(V), np.float32(smoothing)))
    return loss, lse


def backward(z, targets, lse, scale, smoothing):
    """The (N, V) gradient of sum_i scale_i loss_i."""
    from . import launch
    from ...engine import backend

    xp = backend.cupy
    N, V = z.shape
    gz = xp.empty((N, V), dtype=xp.float32)
    if N == 0:
        return gz
    launch("cross_entropy", "cross_entropy_backward", (N,), (THREADS,),
           (xp.ascontiguousarray(z), targets.astype(xp.int64), lse, scale.astype(xp.float32), gz, np.int32(V),
            np.float32(smoothing)))
    return gz

"""A dropout mask drawn and scaled in one CUDA kernel; NumPy twin: `rng.CounterGenerator.random`
followed by `keep = u >= p; keep * 1/(1-p)` (engine/ops/unary.py's Dropout, fast/attention.py).

The GPU's dropout numbers are counter-based (rng.py): for one mask (a "site"), the generator is
keyed by hash(seed, site) and its counter starts at the slice's first row times the row length,
so number i of the mask is splitmix64(key + (counter + i + 1) * golden), its top 24 bits a
float32 in [0, 1), and a slice of rows gets exactly those rows of the whole batch's mask.
This kernel computes exactly those numbers (unsigned 64-bit arithmetic wraps the same on both sides) and
writes 1/(1-p) or 0 straight away, bit for bit the mask the array code builds, in one pass
instead of about ten (the array code stores uint64 intermediates: 8 bytes an element a pass,
~1 ms per layer for the (64, 6, 256, 256) attention matrix of the shakespeare config). The
generator passed in (rng.site_generator's, used for one mask) advances by the same n.
Launch shape: one thread per element, 256 per block, grid-stride loop (grid <= 65,535 blocks).
Leaves out: masks from a generator passed by the caller (they take the array code).
"""
import numpy as np

SOURCE = r"""
__device__ __forceinline__ unsigned long long splitmix64(unsigned long long x) {
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

/* out[i] = scale if uniform_i >= p else 0, uniform_i the generator's number counter + i + 1 */
extern "C" __global__ void dropout_mask(float* out, long long n, unsigned long long key,
                                        unsigned long long counter, float p, float scale) {
    long long stride = (long long)blockDim.x * gridDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        unsigned long long bits = splitmix64((counter + (unsigned long long)i + 1ULL) * 0x9E3779B97F4A7C15ULL + key);
        float u = (float)(bits >> 40) * 5.9604644775390625e-08f;   /* 2^-24: exact */
        out[i] = u >= p ? scale : 0.0f;
    }
}
"""

THREADS = 256


def dropout_mask(shape, p, generator):
    """A float32 CuPy array of `shape` holding 1/(1-p) where kept and 0 where dropped, drawn from
    a CounterGenerator (`rng.site_generator(xp, shape)` for the keyed mask; advanced by the size)."""
    from . import launch
    from ...engine import backend

    out = backend.cupy.empty(shape, dtype=np.float32)
    key, counter = generator.reserve(out.size)
    grid = (min(65535, max(1, (out.size + THREADS - 1) // THREADS)),)
    launch("dropout", "dropout_mask", grid, (THREADS,),
           (out, np.int64(out.size), np.uint64(key), np.uint64(counter), np.float32(p), np.float32(1.0 / (1.0 - p))))
    return out

"""Adam/AdamW over every parameter in one kernel launch (multi-tensor, PyTorch's "foreach" /
"fused" idea); NumPy twin: `fast/adamw.py`'s fused_adam_update, applied per parameter.

Per element, with the bias corrections folded into two per-tensor scalars as the twin does
(step = lr sqrt(1 - beta2^t) / (1 - beta1^t), eps' = eps sqrt(1 - beta2^t)):
    g = grad + l2 w                         (Adam's L2 term; l2 = 0 for AdamW)
    w = w decay                             (AdamW: decay = 1 - lr wd; 1 for Adam)
    m = beta1 m + (1 - beta1) g,   v = beta2 v + (1 - beta2) g^2
    w = w - step m / (sqrt(v) + eps')
Launch shape: every tensor is cut into chunks of CHUNK elements and each chunk gets one block
of 256 threads (each thread then updates CHUNK / 256 elements, strided for coalescing). Two
small tables say, per block, which tensor and where in it; four tables hold the tensors'
addresses (w, grad, m, v) and one their (step, eps', decay, l2, beta1, beta2). The tables of
w, m and v are built once per set of parameters; the gradients' addresses (new arrays every
step) and the scalars are copied to the GPU each step (host-to-device copies of a few KB,
which never wait for the GPU). One launch replaces ~10 CuPy launches per
parameter (about 1,500 launches a step at the shakespeare config's 150 tensors).
Leaves out: a fused gradient-norm clip (clip_grad_norm_ stays the one sync of a step) and
mixed precision master weights.
"""
import math

import numpy as np

SOURCE = r"""
extern "C" __global__ void adamw_multi_tensor(const unsigned long long* w_ptrs, const unsigned long long* g_ptrs,
                                              const unsigned long long* m_ptrs, const unsigned long long* v_ptrs,
                                              const long long* sizes, const float* scalars,
                                              const int* block_tensor, const long long* block_start, int chunk) {
    int t = block_tensor[blockIdx.x];
    long long start = block_start[blockIdx.x];
    long long end = start + chunk < sizes[t] ? start + chunk : sizes[t];
    float* w = (float*)w_ptrs[t];
    const float* g = (const float*)g_ptrs[t];
    float* m = (float*)m_ptrs[t];
    float* v = (float*)v_ptrs[t];
    const float* k = scalars + 6 * t;       /* step, eps', decay, l2, beta1, beta2 */
    float step = k[0], eps = k[1], decay = k[2], l2 = k[3], beta1 = k[4], beta2 = k[5];
    for (long long i = start + threadIdx.x; i < end; i += blockDim.x) {
        float wi = w[i];
        float gi = g[i] + l2 * wi;
        wi *= decay;
        float mi = beta1 * m[i] + (1.0f - beta1) * gi;
        float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        w[i] = wi - step * mi / (sqrtf(vi) + eps);
    }
}
"""

CHUNK = 4096  # elements per block: 16 per thread
THREADS = 256


class MultiTensorAdamW:
    """The launch tables for one list of parameters ws with moments ms, vs (float32 CuPy arrays)."""

    def __init__(self, ws, ms, vs):
        from ...engine import backend

        xp = backend.cupy
        self.key = key(ws, ms, vs)
        sizes = [w.size for w in ws]
        tensor_of_block, start_of_block = [], []
        for t, n in enumerate(sizes):
            starts = range(0, n, CHUNK)
            tensor_of_block += [t] * len(starts)
            start_of_block += list(starts)
        self.w, self.m, self.v = (_pointers(arrays) for arrays in (ws, ms, vs))
        self.sizes = xp.asarray(np.array(sizes, dtype=np.int64))
        self.block_tensor = xp.asarray(np.array(tensor_of_block, dtype=np.int32))
        self.block_start = xp.asarray(np.array(start_of_block, dtype=np.int64))
        self.n_blocks = len(tensor_of_block)

    def step(self, grads, scalars):
        """One update of every tensor; grads in the order of ws, scalars an (n_tensors, 6) array
        of (step, eps', decay, l2, beta1, beta2) rows (`scalars_for`)."""
        from . import launch
        from ...engine import backend

        table = backend.cupy.asarray(np.ascontiguousarray(scalars, dtype=np.float32))
        if self.n_blocks:
            launch("adamw", "adamw_multi_tensor", (self.n_blocks,), (THREADS,),
                   (self.w, _pointers(grads), self.m, self.v, self.sizes, table, self.block_tensor,
                    self.block_start, np.int32(CHUNK)))


def _pointers(arrays):
    from ...engine import backend

    return backend.cupy.asarray(np.array([a.data.ptr for a in arrays], dtype=np.uint64))


def key(*lists):
    """What identifies a set of tables: every array's address and size."""
    return tuple((a.data.ptr, a.size) for arrays in lists for a in arrays)


def scalars_for(lr, eps, wd, beta1, beta2, t, decoupled):
    """(step, eps', decay, l2, beta1, beta2) of one tensor's update at step t (1-based), with the
    bias corrections folded as the twin folds them."""
    bias1, root2 = 1.0 - beta1 ** t, math.sqrt(1.0 - beta2 ** t)
    decay, l2 = (1.0 - lr * wd, 0.0) if decoupled else (1.0, wd)
    return (lr * root2 / bias1, eps * root2, decay, l2, beta1, beta2)

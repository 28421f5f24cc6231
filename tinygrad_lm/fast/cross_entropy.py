"""Fast twin of `F.cross_entropy` / `nn.CrossEntropyLoss`: log-softmax and the negative
log-likelihood as one Function. The reference builds log_softmax, an indexing op, a mean,
a mask multiply and a sum, and its backward scatters into a zero (N, V) matrix; here the
softmax buffer of forward becomes the gradient in place. Forward + backward on (768, 65)
logits: measured 1.6x faster than the reference (BENCHMARKS.md, "Each fast kernel against its
reference twin"; `python scripts/bench_kernels.py`).

Forward, per row i of the N rows (leading axes folded) with logits z (V classes), target t,
smoothing s and m = max_j z_j (the code's names in brackets):
    zs     = z - m                                 [p, before the exp]
    lse    = log sum_j exp(zs_j)                   [lse, from sum_exp]
    logp_j = zs_j - lse                            log-softmax (m cancels out)
    loss_i = -(1 - s) logp_t - (s / V) sum_j logp_j
           = (1 - s) (lse - zs_t) + s (lse - mean_j zs_j)     [loss, from picked and mean_shift]
    p      = softmax(z) = exp(zs) / sum_j exp(zs_j)          [p after p /= sum_exp; kept]
The output reduces the per-row losses; call r_i = d(output)/d(loss_i) times the incoming
gradient gy, the row's weight in backward [r = self._row_scale(gy)]:
    "sum":  sum_i keep_i loss_i              r_i = gy keep_i
    "mean": (1/n) sum_i keep_i loss_i        r_i = gy keep_i / n,  n = number of kept rows
    "none": keep_i loss_i for each row       r_i = gy_i keep_i
keep_i is 0 for a row whose target is `ignore_index` (as PyTorch and nanoGPT) and 1 otherwise;
such a row's t is replaced by 0 [tk], so indexing works and keep_i removes its loss.

Backward, derived in three steps (delta_jk is 1 if j = k, else 0):
1. Log-softmax: logp_j = z_j - log sum_l exp(z_l), so
       d logp_j / d z_k = delta_jk - p_k
2. One row's loss, using sum_j delta_jk = 1 and sum_j p_k = V p_k:
       d loss_i / d z_k = -(1 - s) (delta_tk - p_k) - (s / V) sum_j (delta_jk - p_k)
                        = -(1 - s) delta_tk + (1 - s) p_k - s / V + s p_k
                        = p_k - (1 - s) delta_tk - s / V
   (with s = 0: softmax minus one-hot).
3. Chain rule through the reduction, row by row:
       dL/dz_ik = r_i (p_ik - (1 - s) delta_(t_i)k - s / V)
   e.g. "mean" without smoothing: (softmax - onehot) / n on kept rows, 0 on ignored ones.
The code builds no one-hot matrix; it overwrites the saved softmax:
    g = p;  g[rows, tk] -= 1 - s;  g -= s / V;  g *= r[:, None]
A second backward through a retained graph recomputes p from the saved logits first.
"mean" with no row kept gives a NaN loss, as PyTorch; on NumPy its gradient is 0 (r uses gy
undivided, times keep = 0), on a GPU 0/0 makes it NaN.

On a GPU (float32 CuPy arrays) the same formulas run as CUDA kernels
(`fast/cuda/cross_entropy.py`), which save lse per row instead of the (N, V) softmax and write
step 3 straight into the gradient; this file's NumPy code is their oracle.
Leaves out: class weights and probability (soft) targets.
"""
from ..engine.backend import get_array_module
from ..engine.functional import _ids, check_cross_entropy
from ..nn import CrossEntropyLoss
from ..engine.tensor import Function
from . import cuda
from .cuda import cross_entropy as cuda_cross_entropy


class CrossEntropyKernel(Function):
    def __init__(self, targets, ignore_index=-1, reduction="mean", label_smoothing=0.0):
        self.targets, self.ignore_index = targets, ignore_index
        self.reduction, self.smoothing = reduction, label_smoothing

    def forward(self, logits):
        xp = get_array_module(logits)
        V = logits.shape[-1]
        z = logits.reshape(-1, V)  # (N, V)
        _, keep, tk = check_cross_entropy(logits, self.targets, self.ignore_index, self.reduction, self.smoothing)
        self.on_gpu = cuda.enabled(logits)
        if self.on_gpu:  # fused CUDA kernels (fast/cuda/cross_entropy.py), checked against the code below
            loss, self.lse = cuda_cross_entropy.forward(z, tk, self.smoothing)
            loss *= keep
            self.z, self.tk, self.keep, self.shape = z, tk, keep, logits.shape
            self.count = keep.sum().astype(logits.dtype)  # on the device: no sync
            return self._reduce(loss)
        rows = xp.arange(z.shape[0])
        p = z - z.max(axis=1, keepdims=True)  # shifted logits, (N, V)
        picked = p[rows, tk]
        mean_shift = p.mean(axis=1) if self.smoothing else None
        xp.exp(p, out=p)
        sum_exp = p.sum(axis=1)
        lse = xp.log(sum_exp)
        loss = (1.0 - self.smoothing) * (lse - picked)
        if self.smoothing:
            loss += self.smoothing * (lse - mean_shift)
        loss *= keep
        p /= sum_exp[:, None]  # softmax, kept for backward
        self.p, self.rows, self.tk, self.keep = p, rows, tk, keep
        self.shape, self.logits = logits.shape, logits  # logits: only for a retained-graph re-run
        # rows kept: a host int on NumPy; on a GPU a device scalar, so that no step waits for it
        self.count = int(keep.sum()) if xp.__name__ == "numpy" else keep.sum().astype(logits.dtype)
        return self._reduce(loss)

    def _reduce(self, loss):
        """The per-row losses (N,) reduced as asked."""
        if self.reduction == "none":
            return loss.reshape(self.targets.shape)
        total = loss.sum()
        if self.reduction == "sum":
            return total
        if isinstance(self.count, int) and not self.count:
            return total * float("nan")  # nothing counted: NaN, as PyTorch (a GPU's 0/0 gives it too)
        return total / self.count

    def _row_scale(self, gy):
        """d(output)/d(loss_i) per row, (N,): gy, masked, divided by the count for "mean"."""
        if self.reduction == "none":
            return gy.reshape(-1) * self.keep
        counted = not isinstance(self.count, int) or self.count  # a GPU's 0 rows: NaN gradients
        return self.keep * (gy / self.count if self.reduction == "mean" and counted else gy)

    def backward(self, gy):
        if self.on_gpu:
            g = cuda_cross_entropy.backward(self.z, self.tk, self.lse, self._row_scale(gy), self.smoothing)
            return g.reshape(self.shape)
        g = self.p  # the softmax buffer becomes the gradient, in place
        if g is None:  # a second backward through a retained graph: the first one consumed it
            xp = get_array_module(gy)
            z = self.logits.reshape(-1, self.shape[-1])  # (N, V)
            g = xp.exp(z - z.max(axis=1, keepdims=True))
            g /= g.sum(axis=1, keepdims=True)
        g[self.rows, self.tk] -= 1.0 - self.smoothing
        if self.smoothing:
            g -= self.smoothing / g.shape[1]
        g *= self._row_scale(gy).astype(g.dtype)[:, None]
        self.p = None
        return g.reshape(self.shape)


def cross_entropy(logits, targets, ignore_index=-1, reduction="mean", label_smoothing=0.0):
    """`F.cross_entropy`, fused."""
    return CrossEntropyKernel(_ids(targets, logits, "cross_entropy targets"), ignore_index, reduction,
                              label_smoothing)(logits)


class FusedCrossEntropyLoss(CrossEntropyLoss):
    """`nn.CrossEntropyLoss` with the fused kernel."""

    def forward(self, logits, targets):
        return cross_entropy(logits, targets, self.ignore_index, self.reduction, self.label_smoothing)

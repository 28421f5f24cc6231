"""Fast twin of `F.cross_entropy` / `nn.CrossEntropyLoss`: log-softmax and the negative
log-likelihood as one Function. The reference builds log_softmax, an indexing op, a mean,
a mask multiply and a sum, and its backward scatters into a zero (N, V) matrix; here the
softmax buffer of forward becomes the gradient in place. Forward + backward on (768, 65)
logits: 1.6x faster than the reference (`python scripts/bench_kernels.py`).

Forward, per row i with logits z (V classes), target t_i and smoothing s:
    logp = z - logsumexp(z)
    loss_i = -(1 - s) logp[t_i] - (s / V) sum_j logp[j]
Backward never builds a one-hot matrix:
    dloss_i/dz = softmax(z) - (1 - s) onehot(t_i) - s / V
computed as p = softmax(z), p[i, t_i] -= 1 - s, p -= s / V. Rows whose target equals
`ignore_index` contribute no loss and no gradient; "mean" divides by the number of rows kept
(as PyTorch and nanoGPT do).
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
    return CrossEntropyKernel(_ids(targets, logits), ignore_index, reduction, label_smoothing)(logits)


class FusedCrossEntropyLoss(CrossEntropyLoss):
    """`nn.CrossEntropyLoss` with the fused kernel."""

    def forward(self, logits, targets):
        return cross_entropy(logits, targets, self.ignore_index, self.reduction, self.label_smoothing)

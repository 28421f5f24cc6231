"""Cross-entropy of logits against integer targets as one fused log-softmax + NLL Function.

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
from ..backend import get_array_module
from ..tensor import Function


class CrossEntropy(Function):
    def __init__(self, targets, ignore_index=-1, reduction="mean", label_smoothing=0.0):
        self.targets, self.ignore_index = targets, ignore_index
        self.reduction, self.smoothing = reduction, label_smoothing

    def forward(self, logits):
        xp = get_array_module(logits)
        V = logits.shape[-1]
        z = logits.reshape(-1, V)  # (N, V)
        t = self.targets.reshape(-1)  # (N,)
        if t.shape[0] != z.shape[0]:
            raise ValueError(f"cross_entropy: logits of shape {logits.shape} need targets of shape "
                             f"{logits.shape[:-1]}, got {self.targets.shape}")
        keep = t != self.ignore_index
        tk = xp.where(keep, t, 0)
        if t.size and (int(tk.min()) < 0 or int(tk.max()) >= V):
            bad = int(tk.min()) if int(tk.min()) < 0 else int(tk.max())
            raise IndexError(f"cross_entropy: target {bad} is out of range for {V} classes "
                             f"(valid targets are 0..{V - 1}, or ignore_index={self.ignore_index})")
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
        self.count = int(keep.sum())
        if self.reduction == "none":
            return loss.reshape(self.targets.shape)
        total = loss.sum()
        if self.reduction == "sum":
            return total
        return total / self.count if self.count else total * float("nan")

    def backward(self, gy):
        g = self.p  # the softmax buffer becomes the gradient, in place
        if g is None:  # a second backward through a retained graph: the first one consumed it
            xp = get_array_module(gy)
            z = self.logits.reshape(-1, self.shape[-1])  # (N, V)
            g = xp.exp(z - z.max(axis=1, keepdims=True))
            g /= g.sum(axis=1, keepdims=True)
        g[self.rows, self.tk] -= 1.0 - self.smoothing
        if self.smoothing:
            g -= self.smoothing / g.shape[1]
        if self.reduction == "none":
            scale = gy.reshape(-1) * self.keep
        else:
            scale = self.keep * (gy / self.count if self.reduction == "mean" and self.count else gy)
        g *= scale.astype(g.dtype)[:, None]
        self.p = None
        return g.reshape(self.shape)

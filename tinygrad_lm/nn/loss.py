"""`CrossEntropyLoss`: the language-model (and classifier) loss as a Module, PyTorch's name.

A thin Module around `F.cross_entropy`, holding its options (ignore_index, reduction,
label_smoothing). The models call their loss through one such module, so the fast path
(`tinygrad_lm.fast.fuse`) can swap in the fused kernel at that one place.
Leaves out: class weights and soft (probability) targets.
"""
from ..engine import functional as F
from .module import Module


class CrossEntropyLoss(Module):
    """Softmax cross-entropy of logits (..., V) against integer targets (...)."""

    def __init__(self, ignore_index=-1, reduction="mean", label_smoothing=0.0):
        super().__init__()
        self.ignore_index, self.reduction, self.label_smoothing = ignore_index, reduction, label_smoothing

    def forward(self, logits, targets):
        return F.cross_entropy(logits, targets, self.ignore_index, self.reduction, self.label_smoothing)

    def extra_repr(self):
        return f"ignore_index={self.ignore_index}, reduction={self.reduction!r}"

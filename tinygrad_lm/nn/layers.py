"""The basic layers: Linear, Embedding, LayerNorm, Dropout, GELU, the Transformer MLP, and
CrossEntropyLoss (the loss as a module, so the fast path can swap in its fused kernel there).

Each is a thin Module around a function of `engine/functional.py` (GELU: the op itself), holding its Parameters with
PyTorch's names and shapes (Linear.weight is (out_features, in_features)). These are the
reference layers; `tinygrad_lm.fast.fuse(model)` swaps in fused twins with the same parameters.
Leaves out: layers a GPT does not use (convolutions, recurrent cells, batch norm).
"""
import math

import numpy as np

from ..engine import functional as F
from . import init
from .module import Module, Parameter


def _check_sizes(layer, **sizes):
    """Raise ValueError naming the layer, the argument and its value unless each size is a
    positive integer (a float or a 0 would fail later, deep inside NumPy, or build an empty layer)."""
    for name, value in sizes.items():
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{type(layer).__name__}: {name} must be a positive integer, got {value!r}")


class Linear(Module):
    """y = x W^T + b, W of shape (out_features, in_features). PyTorch's default init."""

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        _check_sizes(self, in_features=in_features, out_features=out_features)
        self.in_features, self.out_features = in_features, out_features
        bound = 1.0 / math.sqrt(in_features)
        self.weight = Parameter(init.uniform((out_features, in_features), bound))
        self.bias = Parameter(init.uniform((out_features,), bound)) if bias else None

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


class Embedding(Module):
    """A (num_embeddings, embedding_dim) table of learned vectors, looked up by integer id."""

    def __init__(self, num_embeddings, embedding_dim):
        super().__init__()
        _check_sizes(self, num_embeddings=num_embeddings, embedding_dim=embedding_dim)
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.weight = Parameter(init.normal((num_embeddings, embedding_dim), std=1.0))

    def forward(self, ids):
        return F.embedding(ids, self.weight)

    def extra_repr(self):
        return f"{self.num_embeddings}, {self.embedding_dim}"


class LayerNorm(Module):
    """Normalise the last axis to zero mean and unit variance, then scale (and shift)."""

    def __init__(self, dim, eps=1e-5, bias=True):
        super().__init__()
        _check_sizes(self, dim=dim)
        self.dim, self.eps = dim, eps
        self.weight = Parameter(np.ones(dim, dtype=np.float32))
        self.bias = Parameter(np.zeros(dim, dtype=np.float32)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.dim}, eps={self.eps}, bias={self.bias is not None}"


class Dropout(Module):
    """Inverted dropout with probability p, active only in training mode.

    The mask is drawn from `self.generator` when one is set (a `numpy.random.Generator`: its
    stream, which a batch split over threads or ranks cannot share, so the split refuses it),
    else it is the package's keyed mask (engine/rng.py, seeded by `tinygrad_lm.manual_seed`):
    the same masks however the batch is split.
    """

    def __init__(self, p=0.5):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = p
        self.generator = None

    def forward(self, x):
        return F.dropout(x, self.p, self.training, rng=self.generator)

    def extra_repr(self):
        return f"p={self.p}"


class GELU(Module):
    """GELU activation, tanh approximation (as GPT-2)."""

    def forward(self, x):
        return x.gelu()  # the tanh approximation: F.gelu(x) with its default


class MLP(Module):
    """The Transformer feed-forward block: Linear(C, 4C) -> GELU -> Linear(4C, C) -> Dropout.

    Parameter names follow GPT-2: `c_fc`, `c_proj`.
    """

    def __init__(self, n_embd, hidden=None, dropout=0.0, bias=True):
        super().__init__()
        hidden = hidden or 4 * n_embd
        self.c_fc = Linear(n_embd, hidden, bias=bias)
        self.gelu = GELU()
        self.c_proj = Linear(hidden, n_embd, bias=bias)
        self.dropout = Dropout(dropout)

    def forward(self, x):
        x = self.c_fc(x)  # (B, T, 4C)
        x = self.gelu(x)
        x = self.c_proj(x)  # (B, T, C)
        return self.dropout(x)


class CrossEntropyLoss(Module):
    """Softmax cross-entropy of logits (..., V) against integer targets (...)."""

    def __init__(self, ignore_index=-1, reduction="mean", label_smoothing=0.0):
        super().__init__()
        if reduction not in F._REDUCTIONS:  # checked again by each call (F.cross_entropy): here, when it is built
            raise ValueError(f"CrossEntropyLoss: reduction must be one of {F._REDUCTIONS}, got {reduction!r}")
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"CrossEntropyLoss: label_smoothing must be in [0, 1], got {label_smoothing!r}")
        self.ignore_index, self.reduction, self.label_smoothing = ignore_index, reduction, label_smoothing

    def forward(self, logits, targets):
        return F.cross_entropy(logits, targets, self.ignore_index, self.reduction, self.label_smoothing)

    def extra_repr(self):
        return f"ignore_index={self.ignore_index}, reduction={self.reduction!r}"

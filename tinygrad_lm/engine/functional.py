"""Stateless layer functions, imported as `F` (`from tinygrad_lm import functional as F`),
named and shaped like `torch.nn.functional`.

Every function here is the textbook formula written with primitive ops (`ops/`), so autograd
derives its backward: this is the reference path a reader follows. The fused single-Function
kernels with hand-derived backwards live in `tinygrad_lm/fast/` (`fast.functional` has the
same names and arguments) and are tested against these.
Leaves out: convolution, pooling and everything else a GPT does not use.
"""
import numpy as np

from .backend import check_later, get_array_module, to_device
from .ops import erf, gelu_erf, log_softmax, relu, softmax  # noqa: F401  (re-exported)
from .ops.unary import GELU, Dropout
from .tensor import Tensor

_REDUCTIONS = ("mean", "sum", "none")


def _ids(x, like=None, what="embedding ids"):
    """Integer ids (array, list or Tensor) as a raw integer array, on `like`'s device if given;
    `what` names them in the error for another dtype."""
    data = x.data if isinstance(x, Tensor) else get_array_module(x).asarray(x)
    if not np.issubdtype(data.dtype, np.integer):
        raise TypeError(f"{what}: expected integer ids, got dtype {data.dtype}; convert them with .astype(np.int64)")
    return data if like is None else to_device(data, like.device)


def _mask(mask, like):
    """A boolean mask (array, list or Tensor) as a raw array on `like`'s device, or None."""
    if mask is None:
        return None
    data = mask.data if isinstance(mask, Tensor) else mask
    return to_device(get_array_module(data).asarray(data, dtype=bool), like.device)


def gelu(x, approximate="tanh"):
    """GELU, x Phi(x) (Hendrycks & Gimpel 2016), with PyTorch's `approximate` argument.

    Args:
        approximate: "tanh" (the default here, GPT-2's 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))))
            or "none" (exact, through erf: BERT's). PyTorch's own default is "none"; the package
            keeps "tanh" because its GPT was built on it.
    """
    if approximate == "tanh":
        return GELU()(x)
    if approximate == "none":
        return gelu_erf(x)
    raise ValueError(f"gelu: approximate must be 'tanh' or 'none', got {approximate!r}")


def dropout(x, p=0.5, training=True, rng=None):
    """Inverted dropout: zero each element with probability p, scale the rest by 1/(1-p).

    Args: p in [0, 1); training: the identity when False (or p == 0); rng: a generator for the
    mask (default: the package's keyed numbers, rng.py, the same masks however the batch is split).
    Returns: Tensor.
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    return Dropout(p, rng)(x) if training and p > 0.0 else x


def check_linear(x, weight):
    if x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input of shape {x.shape} has {x.shape[-1]} features but the weight "
                         f"{weight.shape} expects {weight.shape[1]} (weight is (out_features, in_features))")


def linear(x, weight, bias=None):
    """x @ weight.T + bias. Args: x (..., in), weight (out, in), bias (out,) or None."""
    check_linear(x, weight)
    y = x @ weight.transpose(0, 1)  # (..., in) @ (in, out) -> (..., out)
    return y if bias is None else y + bias


def check_ids(ids, n_rows, what="embedding", noun="id", ignore_index=None):
    """Raise IndexError naming an id outside 0..n_rows-1 (the smallest if below 0, else the largest);
    with the `ignore_index` of a loss, a negative target's error says how to skip positions.

    NumPy ids are checked now. GPU ids are checked without stopping the GPU: the flag waits
    on the device and the error is raised at the next host read (`backend.check_later`).
    """
    if get_array_module(ids) is not np:
        return check_later(((ids < 0) | (ids >= n_rows)).any(),
                           lambda: _ids_error(to_device(ids, "cpu"), n_rows, what, noun, ignore_index))
    if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= n_rows):
        raise _ids_error(ids, n_rows, what, noun, ignore_index)


def _ids_error(ids, n_rows, what, noun, ignore_index=None):
    """The IndexError for NumPy `ids`, some of them out of range. A negative target of a loss is
    most often a position meant to be skipped with another ignore_index (PyTorch's is -100)."""
    lo, hi = int(ids.min()), int(ids.max())
    bad = lo if lo < 0 else hi
    message = (f"{what}: {noun} {bad} is out of range for {n_rows} "
               f"{'rows' if what == 'embedding' else 'classes'} (valid {noun}s are 0..{n_rows - 1})")
    if bad < 0 and ignore_index is not None and bad == -100:
        message += (f"; -100 is PyTorch's default ignore_index, but here ignore_index is {ignore_index}: give the "
                    f"positions to skip the target {ignore_index}, or pass ignore_index=-100")
    elif bad < 0 and ignore_index is not None:
        message += (f"; to skip positions, give them the target {ignore_index} (ignore_index), or pass "
                    f"ignore_index={bad}")
    return IndexError(message)


def embedding(ids, weight):
    """Rows of `weight` (V, C) picked by integer `ids` (any shape) -> (*ids.shape, C)."""
    ids = _ids(ids, weight)
    check_ids(ids, weight.shape[0])
    return weight[ids]  # gradient: each row's occurrences summed (scatter-add)


def check_layer_norm(x, weight, bias):
    if weight is None and bias is not None:
        raise ValueError("layer_norm: a bias without a weight is not supported")
    if weight is not None and weight.shape != x.shape[-1:]:
        raise ValueError(f"layer_norm: weight of shape {weight.shape} does not match the last "
                         f"dimension of input shape {x.shape}")


def layer_norm(x, weight=None, bias=None, eps=1e-5):
    """Normalise over the last axis to zero mean and unit variance, then scale and shift."""
    check_layer_norm(x, weight, bias)
    xc = x - x.mean(axis=-1, keepdims=True)  # (..., C): centred
    var = (xc * xc).mean(axis=-1, keepdims=True)  # (..., 1): biased variance (divides by C)
    xhat = xc / (var + eps).sqrt()
    if weight is not None:
        xhat = xhat * weight
    if bias is not None:
        xhat = xhat + bias
    return xhat


def check_cross_entropy(logits, targets, ignore_index, reduction, label_smoothing):
    """Validate the arguments; returns (flat targets, keep mask, targets with ignored rows at 0)."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"cross_entropy: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    if tuple(targets.shape) != tuple(logits.shape[:-1]):
        raise ValueError(f"cross_entropy: logits of shape {logits.shape} need targets of shape "
                         f"{logits.shape[:-1]}, got {targets.shape}")
    xp = get_array_module(targets)
    t = targets.reshape(-1)  # (N,)
    keep = t != ignore_index
    tk = xp.where(keep, t, 0)
    check_ids(tk, logits.shape[-1], "cross_entropy", "target", ignore_index)
    return t, keep, tk


def cross_entropy(logits, targets, ignore_index=-1, reduction="mean", label_smoothing=0.0):
    """Softmax cross-entropy of `logits` (..., V) against integer `targets` (...).

    loss_i = -(1 - s) log p_i[t_i] - (s / V) sum_j log p_i[j],  p_i = softmax(logits_i)
    Args:
        ignore_index: rows whose target equals it add no loss or gradient (nanoGPT uses -1).
        reduction: "mean" over kept rows, "sum", or "none" (per-row losses, shape of targets).
        label_smoothing: s in [0, 1]: the target distribution is (1 - s) onehot + s / V.
    Returns:
        Tensor loss (0-d unless reduction="none").
    """
    targets = _ids(targets, logits, "cross_entropy targets")
    t, keep, tk = check_cross_entropy(logits, targets, ignore_index, reduction, label_smoothing)
    xp = get_array_module(t)
    V = logits.shape[-1]
    logp = log_softmax(logits.reshape(-1, V), axis=-1)  # (N, V)
    loss = -logp[xp.arange(t.shape[0]), tk]  # (N,): minus the log-probability of each target
    if label_smoothing:
        loss = (1.0 - label_smoothing) * loss - label_smoothing * logp.mean(axis=-1)
    loss = loss * keep.astype(logits.dtype)  # ignored rows: no loss, no gradient
    if reduction == "none":
        return loss.reshape(targets.shape)
    if reduction == "sum":
        return loss.sum()
    count = keep.sum()  # a device scalar on a GPU: dividing by it needs no host sync
    if xp is np and count == 0:
        return loss.sum() * float("nan")  # nothing counted: NaN, as PyTorch (a GPU's 0/0 gives it too)
    return loss.sum() / count


def masked_softmax(att, blocked):
    """softmax over the last axis (the keys) with the `blocked` positions (a bool array that
    broadcasts to att) at -inf; a row whose keys are all blocked (a query left with nothing to
    attend to: left padding) gets zero weights, not the NaN of a softmax of nothing."""
    empty = blocked.all(axis=-1, keepdims=True)  # rows with no key left
    return softmax(att.masked_fill(blocked & ~empty, -np.inf), axis=-1).masked_fill(empty, 0.0)


def check_attention(q, k, v):
    if q.ndim != k.ndim or q.shape[-1] != k.shape[-1] or k.shape[:-1] != v.shape[:-1]:
        raise ValueError(f"scaled_dot_product_attention: q {q.shape}, k {k.shape}, v {v.shape} must be "
                         "(..., T, hs), (..., S, hs), (..., S, hv)")


def scaled_dot_product_attention(q, k, v, causal=True, mask=None, dropout_p=0.0, rng=None, scale=None):
    """softmax(q k^T / sqrt(hs) [+ causal mask] [masked]) v, with dropout on the weights.

    Args:
        q: (B, nh, T, hs); k, v: (B, nh, S, hs).
        causal: query i attends to keys j <= i (+ S - T).
        mask: optional bool array/Tensor broadcastable to (B, nh, T, S); True = may attend.
        dropout_p: dropout on the attention weights (training only; pass 0 in eval).
        rng: Generator for the dropout mask (default: the package's keyed numbers, as `dropout`).
    Returns:
        Tensor (B, nh, T, hv). A query with no key to attend to gets zero weights (so a zero
        output), not the NaN of a softmax of nothing.
    """
    check_attention(q, k, v)
    T, S, hs = q.shape[-2], k.shape[-2], q.shape[-1]
    xp = get_array_module(q.data)
    att = (q @ k.transpose(-2, -1)) * (scale if scale is not None else 1.0 / np.sqrt(hs))  # (B, nh, T, S)
    blocked = xp.triu(xp.ones((T, S), dtype=bool), k=S - T + 1) if causal else xp.zeros((T, S), dtype=bool)
    if mask is not None:
        blocked = blocked | ~_mask(mask, q)  # broadcast to (..., T, S)
    att = dropout(masked_softmax(att, blocked), dropout_p, training=dropout_p > 0, rng=rng)
    return att @ v  # (B, nh, T, S) @ (B, nh, S, hv) -> (B, nh, T, hv)

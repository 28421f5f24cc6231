"""Stateless layer functions, imported as `F` (`from tinygrad_lm import functional as F`),
named and shaped like `torch.nn.functional`.

The fused ones (linear, embedding, layer_norm, cross_entropy, scaled_dot_product_attention,
packed_self_attention)
are single Functions from `fused/`; `layer_norm_composed` and `cross_entropy_composed` build
the same math from primitive ops and stay here as the fused versions' test twins.
Leaves out: convolution, pooling and everything else a GPT does not use.
"""
import numpy as np

from . import fused, ops
from .backend import get_array_module, to_device
from .ops import dropout, gelu, log_softmax, relu, softmax  # noqa: F401  (re-exported)
from .tensor import Tensor

_REDUCTIONS = ("mean", "sum", "none")


def _ids(x, like=None):
    """Integer ids (array, list or Tensor) as a raw integer array, on `like`'s device if given."""
    data = x.data if isinstance(x, Tensor) else x
    xp = get_array_module(data)
    data = xp.asarray(data)
    if not np.issubdtype(data.dtype, np.integer):
        raise TypeError(f"expected integer ids, got dtype {data.dtype}")
    return data if like is None else to_device(data, like.device)


def linear(x, weight, bias=None):
    """x @ weight.T + bias. Args: x (..., in), weight (out, in), bias (out,) or None."""
    return fused.Linear()(x, weight) if bias is None else fused.Linear()(x, weight, bias)


def embedding(ids, weight):
    """Rows of `weight` (V, C) picked by integer `ids` (any shape) -> (*ids.shape, C)."""
    return fused.Embedding(_ids(ids, weight))(weight)


def layer_norm(x, weight=None, bias=None, eps=1e-5):
    """Normalise over the last axis, then scale by `weight` and shift by `bias` (fused)."""
    if weight is None and bias is not None:
        raise ValueError("layer_norm: a bias without a weight is not supported")
    args = [t for t in (x, weight, bias) if t is not None]
    return fused.LayerNorm(eps)(*args)


def layer_norm_composed(x, weight=None, bias=None, eps=1e-5):
    """The same as `layer_norm`, composed from primitive ops (the fused version's test twin)."""
    mu = x.mean(axis=-1, keepdims=True)
    xhat = (x - mu) / (x.var(axis=-1, keepdims=True) + eps).sqrt()
    if weight is not None:
        xhat = xhat * weight
    if bias is not None:
        xhat = xhat + bias
    return xhat


def cross_entropy(logits, targets, ignore_index=-1, reduction="mean", label_smoothing=0.0):
    """Softmax cross-entropy of `logits` (..., V) against integer `targets` (...).

    Args:
        ignore_index: rows whose target equals it add no loss or gradient (nanoGPT uses -1).
        reduction: "mean" over kept rows, "sum", or "none" (per-row losses, shape of targets).
        label_smoothing: s in [0, 1]: the target distribution is (1 - s) onehot + s / V.
    Returns:
        Tensor loss (0-d unless reduction="none").
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(f"cross_entropy: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    return fused.CrossEntropy(_ids(targets, logits), ignore_index, reduction, label_smoothing)(logits)


def cross_entropy_composed(logits, targets, ignore_index=-1, reduction="mean", label_smoothing=0.0):
    """`cross_entropy` composed from log_softmax, indexing and sums (the fused op's test twin)."""
    t = _ids(targets).reshape(-1)
    V = logits.shape[-1]
    logp = log_softmax(logits.reshape(-1, V), axis=-1)  # (N, V)
    keep = (t != ignore_index)
    nll = -logp[np.arange(t.shape[0]), np.where(keep, t, 0)]
    loss = (1.0 - label_smoothing) * nll - label_smoothing * logp.mean(axis=-1)
    loss = loss * keep.astype(logits.dtype)
    if reduction == "none":
        return loss.reshape(_ids(targets).shape)
    return loss.sum() if reduction == "sum" else loss.sum() / float(keep.sum())


def scaled_dot_product_attention(q, k, v, causal=True, mask=None, dropout_p=0.0, rng=None, scale=None):
    """softmax(q k^T / sqrt(hs) [+ causal mask] [masked]) v, fused.

    Args:
        q: (B, nh, T, hs); k, v: (B, nh, S, hs).
        causal: query i attends to keys j <= i (+ S - T).
        mask: optional bool array/Tensor broadcastable to (B, nh, T, S); True = may attend.
        dropout_p: dropout on the attention weights (training only; pass 0 in eval).
    Returns:
        Tensor (B, nh, T, hs).
    """
    if mask is not None:
        mask = to_device(mask.data if isinstance(mask, Tensor) else np.asarray(mask) if isinstance(mask, list) else mask,
                         q.device)
    return fused.ScaledDotProductAttention(causal, mask, dropout_p, rng, scale)(q, k, v)


def packed_self_attention(qkv, n_head, causal=True, mask=None, dropout_p=0.0, rng=None, scale=None):
    """Multi-head self-attention from one packed projection, fused with the head split and merge.

    Equal to splitting qkv into q, k, v, reshaping each to (B, nh, T, hs), calling
    `scaled_dot_product_attention` and merging the heads back to (B, T, C), without the copies.

    Args:
        qkv: (B, T, 3C), q, k and v side by side (GPT-2's c_attn output); C divisible by n_head.
        n_head: number of heads nh (head size hs = C / nh).
        causal, mask, dropout_p, rng, scale: as in `scaled_dot_product_attention`.
    Returns:
        Tensor (B, T, C), heads merged.
    """
    if mask is not None:
        mask = to_device(mask.data if isinstance(mask, Tensor) else np.asarray(mask) if isinstance(mask, list) else mask,
                         qkv.device)
    return fused.PackedSelfAttention(n_head, causal, mask, dropout_p, rng, scale)(qkv)


def scaled_dot_product_attention_composed(q, k, v, causal=True, mask=None, scale=None):
    """The same attention from primitive ops (matmul, masked_fill, softmax): the test twin."""
    T, S, hs = q.shape[-2], k.shape[-2], q.shape[-1]
    att = (q @ k.transpose(-2, -1)) * (scale if scale is not None else 1.0 / np.sqrt(hs))  # (B, nh, T, S)
    if causal:
        att = att.masked_fill(np.triu(np.ones((T, S), dtype=bool), k=S - T + 1), -np.inf)
    if mask is not None:
        att = att.masked_fill(~np.asarray(mask.data if isinstance(mask, Tensor) else mask, dtype=bool), -np.inf)
    return ops.softmax(att, axis=-1) @ v  # (B, nh, T, S) @ (B, nh, S, hs) -> (B, nh, T, hs)

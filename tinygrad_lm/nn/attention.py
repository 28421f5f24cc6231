"""Multi-head self-attention: causal as GPT-2 (`CausalSelfAttention`), bidirectional as BERT (`SelfAttention`),
and GPT-2's pre-LN Transformer `Block` around it: x + attn(ln_1(x)), then x + mlp(ln_2(x)).
Normalising before each sublayer (not after, as in the original Transformer) keeps the residual
stream an identity path, which is what makes deep stacks train without warm tricks.

`CausalSelfAttention` is laid out as GPT-2 (one c_attn for q, k, v; one c_proj).

Written out from primitive ops, as nanoGPT's model.py does:
    x (B, T, C) -> c_attn -> q, k, v, each split into nh heads (B, nh, T, hs), hs = C / nh
    att = q k^T / sqrt(hs)                      (B, nh, T, T): how much query i looks at key j
    future keys (j > i) masked to -inf, softmax over keys, dropout on the weights
    y = att v                                   (B, nh, T, hs), heads merged back to (B, T, C)
    -> c_proj -> residual dropout
An optional `attention_mask` (B, T) (True/1 = real token, False/0 = padding, the Hugging Face
convention) also masks padded keys, for padded fine-tuning batches; a query left with no key
at all (left padding) gets zero attention weights rather than the NaN of a softmax of nothing.
With a `kv_cache` (generation, `kv_cache.py`), k and v of the T new positions are appended to
the S - T cached ones and the T queries attend to all S keys: query i sits at position
S - T + i, so the causal mask is the bottom-right (T, S) corner of the full one.
The fused twin (`tinygrad_lm/fast/attention.py`) computes the same y in one Function.
`SelfAttention` is BERT's (Devlin et al. 2018; Hugging Face's `BertSelfAttention` names):
separate `query`, `key`, `value` Linear layers, every query attends to every real key (no
causal mask; padded keys masked by `attention_mask`), dropout on the weights, and no output
projection: BERT's `attention.output.dense` belongs to the residual sublayer around it.
Leaves out: grouped-query attention, a padding mask together with a cache, relative positions.
"""
import math

import numpy as np

from ..engine import functional as F
from ..engine.backend import get_array_module
from ..engine.tensor import Tensor
from .layers import MLP, Dropout, LayerNorm, Linear
from .module import Module


class CausalSelfAttention(Module):
    def __init__(self, n_embd, n_head, dropout=0.0, bias=True):
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"CausalSelfAttention: n_embd={n_embd} is not divisible by n_head={n_head}")
        self.n_embd, self.n_head, self.dropout = n_embd, n_head, dropout
        self.c_attn = Linear(n_embd, 3 * n_embd, bias=bias)  # q, k, v in that order
        self.c_proj = Linear(n_embd, n_embd, bias=bias)
        self.attn_dropout = Dropout(dropout)
        self.resid_dropout = Dropout(dropout)

    def forward(self, x, attention_mask=None, kv_cache=None):
        B, T, C = x.shape
        nh, hs = self.n_head, C // self.n_head
        qkv = self.c_attn(x)  # (B, T, 3C): queries, keys and values side by side
        q, k, v = qkv[:, :, :C], qkv[:, :, C:2 * C], qkv[:, :, 2 * C:]  # 3 x (B, T, C)
        q = q.reshape(B, T, nh, hs).transpose(1, 2)  # (B, T, nh, hs) -> (B, nh, T, hs)
        k = k.reshape(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        v = v.reshape(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        if kv_cache is not None:  # generation: the earlier positions' keys and values come from the cache
            k, v = kv_cache.append(k, v)  # (B, nh, S, hs) each, S = cached + T
        S = k.shape[2]  # keys: S = T without a cache
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))  # (B, nh, T, hs) @ (B, nh, hs, S) -> (B, nh, T, S)
        xp = get_array_module(x.data)
        blocked = xp.triu(xp.ones((T, S), dtype=bool), k=S - T + 1)  # (T, S): True where key j is after query i
        if attention_mask is None:
            att = att.masked_fill(blocked, -np.inf).softmax(axis=-1)  # each query's weights sum to 1
        else:  # padded batches: padded keys are blocked too
            att = F.masked_softmax(att, blocked | key_padding_mask(attention_mask, x))  # (B, 1, T, S) blocked
        att = self.attn_dropout(att)
        y = att @ v  # (B, nh, T, S) @ (B, nh, S, hs) -> (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, nh, hs) -> (B, T, C): heads side by side
        return self.resid_dropout(self.c_proj(y))

    def extra_repr(self):
        return f"n_embd={self.n_embd}, n_head={self.n_head}, dropout={self.dropout}"


class SelfAttention(Module):
    """Bidirectional multi-head self-attention (BERT's): (B, T, C) -> (B, T, C), heads merged.

    att = softmax(q k^T / sqrt(hs)) over keys, padded keys (attention_mask 0) at -inf first;
    a query whose keys are all padding gets zero weights (a zero output), not NaN.
    """

    def __init__(self, hidden_size, num_heads, dropout=0.0, bias=True):
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"SelfAttention: hidden_size={hidden_size} is not divisible by num_heads={num_heads}")
        self.hidden_size, self.num_heads, self.dropout_p = hidden_size, num_heads, dropout
        self.query = Linear(hidden_size, hidden_size, bias=bias)
        self.key = Linear(hidden_size, hidden_size, bias=bias)
        self.value = Linear(hidden_size, hidden_size, bias=bias)
        self.dropout = Dropout(dropout)

    def forward(self, x, attention_mask=None):
        B, T, C = x.shape
        nh, hs = self.num_heads, C // self.num_heads
        q = self.query(x).reshape(B, T, nh, hs).transpose(1, 2)  # (B, T, nh, hs) -> (B, nh, T, hs)
        k = self.key(x).reshape(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        v = self.value(x).reshape(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))  # (B, nh, T, hs) @ (B, nh, hs, T) -> (B, nh, T, T)
        blocked = key_padding_mask(attention_mask, x)  # (B, 1, 1, T): True at padded keys, or None
        if blocked is None:
            att = att.softmax(axis=-1)
        else:
            att = F.masked_softmax(att, blocked)  # a row of padding only: zero weights, not NaN
        att = self.dropout(att)
        y = att @ v  # (B, nh, T, T) @ (B, nh, T, hs) -> (B, nh, T, hs)
        return y.transpose(1, 2).reshape(B, T, C)  # (B, T, nh, hs) -> (B, T, C): heads side by side

    def extra_repr(self):
        return f"hidden_size={self.hidden_size}, num_heads={self.num_heads}, dropout={self.dropout_p}"


def key_padding_mask(attention_mask, x):
    """(B, 1, 1, T) bool array, True at padded keys, from a (B, T) mask (1 = real); or None.

    Raises ValueError when the mask's shape is not x's (B, T).
    """
    if attention_mask is None:
        return None
    B, T = x.shape[0], x.shape[1]
    am = attention_mask.data if isinstance(attention_mask, Tensor) else attention_mask
    am = get_array_module(x.data).asarray(am)
    if am.shape != (B, T):
        raise ValueError(f"attention_mask must have shape (B, T) = {(B, T)}, got {am.shape}")
    return ~am.astype(bool)[:, None, None, :]  # (B, 1, 1, T): broadcast over heads and queries


# ---------------------------------------------------------------- the Transformer block around attention
class Block(Module):
    def __init__(self, n_embd, n_head, dropout=0.0, bias=True):
        super().__init__()
        self.ln_1 = LayerNorm(n_embd, bias=bias)
        self.attn = CausalSelfAttention(n_embd, n_head, dropout, bias)
        self.ln_2 = LayerNorm(n_embd, bias=bias)
        self.mlp = MLP(n_embd, dropout=dropout, bias=bias)

    def forward(self, x, attention_mask=None, kv_cache=None):
        x = x + self.attn(self.ln_1(x), attention_mask, kv_cache)
        return x + self.mlp(self.ln_2(x))

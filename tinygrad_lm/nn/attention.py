"""Multi-head causal self-attention, laid out as GPT-2 (one c_attn for q, k, v; one c_proj).

    x (B, T, C) -> c_attn -> q, k, v each (B, nh, T, hs)   with hs = C / nh
    y = softmax(q k^T / sqrt(hs), causal) v                 (fused, functional.py)
    merge heads -> (B, T, C) -> c_proj -> residual dropout
The split, attention and merge run as one Function (`F.packed_self_attention`), which reads
q, k, v as views of c_attn's output and writes the merged heads directly.
An optional `attention_mask` (B, T) (True/1 = real token, False/0 = padding, the Hugging Face
convention) stops every query from attending to padded keys, for padded fine-tuning batches.
Leaves out: a key/value cache for generation (generate recomputes the cropped context),
grouped-query attention.
"""
from .. import functional as F
from ..backend import get_array_module
from ..tensor import Tensor
from .layers import Dropout, Linear
from .module import Module


class CausalSelfAttention(Module):
    def __init__(self, n_embd, n_head, dropout=0.0, bias=True):
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"CausalSelfAttention: n_embd={n_embd} is not divisible by n_head={n_head}")
        self.n_embd, self.n_head, self.dropout = n_embd, n_head, dropout
        self.c_attn = Linear(n_embd, 3 * n_embd, bias=bias)  # q, k, v in that order
        self.c_proj = Linear(n_embd, n_embd, bias=bias)
        self.resid_dropout = Dropout(dropout)

    def forward(self, x, attention_mask=None):
        B, T, C = x.shape
        nh = self.n_head
        qkv = self.c_attn(x)  # (B, T, 3C): q, k, v side by side
        mask = None
        if attention_mask is not None:
            am = attention_mask.data if isinstance(attention_mask, Tensor) else attention_mask
            xp = get_array_module(x.data)
            am = xp.asarray(am)
            if am.shape != (B, T):
                raise ValueError(f"attention_mask must have shape (B, T) = {(B, T)}, got {am.shape}")
            mask = am.astype(bool)[:, None, None, :]  # (B, 1, 1, T): keys that may be attended
        p = self.dropout if self.training else 0.0
        # split into heads (B, nh, T, hs), attend, merge back to (B, T, C): one fused Function
        y = F.packed_self_attention(qkv, nh, causal=True, mask=mask, dropout_p=p)  # (B, T, C)
        return self.resid_dropout(self.c_proj(y))

    def extra_repr(self):
        return f"n_embd={self.n_embd}, n_head={self.n_head}, dropout={self.dropout}"


"""Position information for a Transformer: fixed sinusoids or a learned table.

Sinusoidal (Vaswani et al. 2017, section 3.5), for position pos and feature pair i:
    PE(pos, 2i) = sin(pos / 10000^(2i/d)),   PE(pos, 2i+1) = cos(pos / 10000^(2i/d))
kept as a buffer (moves with `.to()`, never trained, not in the state dict).
Learned: an Embedding of block_size rows (GPT-2's `wpe`).
Both map positions (T,) -> (T, C), to be added to the token embeddings.
Leaves out: rotary (RoPE) and ALiBi.
"""
import numpy as np

from ..engine.backend import get_array_module
from ..engine.tensor import Tensor
from .layers import Embedding
from .module import Module


def sinusoidal_table(n_positions, dim, dtype=np.float32):
    """(n_positions, dim) table of the sinusoidal encodings (dim may be odd)."""
    pos = np.arange(n_positions, dtype=np.float64)[:, None]  # (P, 1)
    freq = 10000.0 ** (-np.arange(0, dim, 2, dtype=np.float64) / dim)  # (ceil(dim/2),)
    table = np.zeros((n_positions, dim))
    table[:, 0::2] = np.sin(pos * freq)
    table[:, 1::2] = np.cos(pos * freq[: dim // 2])
    return table.astype(dtype)


class SinusoidalPositionalEncoding(Module):
    """Fixed sinusoidal position encodings for up to `max_len` positions."""

    def __init__(self, max_len, dim):
        super().__init__()
        self.max_len, self.dim = max_len, dim
        self.register_buffer("table", sinusoidal_table(max_len, dim))

    def forward(self, pos):
        pos = pos.data if isinstance(pos, Tensor) else pos
        xp = get_array_module(self.table)
        return Tensor(xp.take(self.table, xp.asarray(pos), axis=0))  # (T, C), no grad

    def extra_repr(self):
        return f"{self.max_len}, {self.dim}"


class LearnedPositionalEmbedding(Embedding):
    """A learned (max_len, dim) table of position vectors (GPT-2's `wpe`)."""

    def __init__(self, max_len, dim):
        super().__init__(max_len, dim)

"""The GPT: a causal decoder-only Transformer language model (Radford et al. 2019).

    idx (B, T) token ids
      -> wte(idx) + wpe(positions)          token + position embeddings   (B, T, C)
      -> dropout -> n_layer pre-LN Blocks    attention + MLP, residual      (B, T, C)
      -> ln_f -> lm_head                     logits over the vocabulary    (B, T, V)

Parameter names and shapes follow GPT-2's layout (`transformer.wte.weight`,
`transformer.h.{i}.attn.c_attn.weight`, ... `lm_head.weight`, Linear weights stored
(out_features, in_features)), so weights move to and from PyTorch code without renaming.
Initialisation is GPT-2's: N(0, 0.02) for weights and embeddings, zero biases, and the
residual output projections (`attn.c_proj`, `mlp.c_proj`) scaled by 1/sqrt(2 n_layer) so the
residual stream's variance does not grow with depth.
Leaves out: loading OpenAI's GPT-2 checkpoints (their Conv1D weights are transposed), a KV
cache, and mixed precision.
"""
import math
from dataclasses import asdict, dataclass

import numpy as np

from . import functional as F
from .backend import get_array_module, to_device
from .nn import (Block, Dropout, Embedding, LayerNorm, Linear, Module, ModuleDict, ModuleList, Parameter,
                 SinusoidalPositionalEncoding)
from .nn import init
from .tensor import Tensor, no_grad


@dataclass
class GPTConfig:
    vocab_size: int = 65
    block_size: int = 64
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True
    pos_encoding: str = "learned"  # "learned" (GPT-2's wpe) or "sinusoidal" (Vaswani et al.)
    tie_weights: bool = True  # lm_head.weight is transformer.wte.weight

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"GPTConfig.{name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"GPTConfig: n_embd={self.n_embd} must be divisible by n_head={self.n_head}")
        if self.pos_encoding not in ("learned", "sinusoidal"):
            raise ValueError(f"GPTConfig.pos_encoding must be 'learned' or 'sinusoidal', got {self.pos_encoding!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig.dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self):
        return asdict(self)


class GPT(Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        c = config
        wpe = (Embedding(c.block_size, c.n_embd) if c.pos_encoding == "learned"
               else SinusoidalPositionalEncoding(c.block_size, c.n_embd))
        self.transformer = ModuleDict(dict(
            wte=Embedding(c.vocab_size, c.n_embd),
            wpe=wpe,
            drop=Dropout(c.dropout),
            h=ModuleList(Block(c.n_embd, c.n_head, c.dropout, c.bias) for _ in range(c.n_layer)),
            ln_f=LayerNorm(c.n_embd, bias=c.bias),
        ))
        self.lm_head = Linear(c.n_embd, c.vocab_size, bias=False)
        if c.tie_weights:
            self.lm_head.weight = self.transformer["wte"].weight  # one Parameter, two names
        self._init_weights()

    def _init_weights(self):
        std_resid = 0.02 / math.sqrt(2 * self.config.n_layer)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                p.data = init.normal(p.shape, std_resid)
            elif name.endswith(".bias"):
                p.data = np.zeros(p.shape, dtype=np.float32)
            elif name.startswith("transformer.ln_") or ".ln_" in name:
                continue  # LayerNorm weights stay 1
            else:
                p.data = init.normal(p.shape, 0.02)

    def num_params(self, non_embedding=False):
        """Number of parameters (a tied matrix counted once); without position embeddings if asked."""
        n = sum(p.size for p in self.parameters())
        if non_embedding and self.config.pos_encoding == "learned":
            n -= self.transformer["wpe"].weight.size
        return n

    def _check_idx(self, idx):
        data = idx.data if isinstance(idx, Tensor) else idx
        data = to_device(data if get_array_module(data) is not np else np.asarray(data), self.device)
        if data.ndim != 2 or not np.issubdtype(data.dtype, np.integer):
            raise ValueError(f"GPT expects integer token ids of shape (B, T), got shape {tuple(data.shape)} "
                             f"and dtype {data.dtype}")
        if data.shape[1] > self.config.block_size:
            raise ValueError(f"GPT: sequence length {data.shape[1]} exceeds block_size {self.config.block_size}; "
                             "crop the input to the last block_size tokens")
        if data.shape[1] == 0:
            raise ValueError("GPT: the input sequence is empty (T = 0)")
        return data

    @property
    def device(self):
        return self.transformer["wte"].weight.device

    def hidden_states(self, idx, attention_mask=None):
        """The final (after ln_f) hidden states (B, T, C) for token ids idx (B, T)."""
        idx = self._check_idx(idx)
        T = idx.shape[1]
        xp = get_array_module(idx)
        x = self.transformer["wte"](idx) + self.transformer["wpe"](xp.arange(T))  # (B, T, C) + (T, C)
        x = self.transformer["drop"](x)
        for block in self.transformer["h"]:
            x = block(x, attention_mask)
        return self.transformer["ln_f"](x)

    def forward(self, idx, targets=None, attention_mask=None):
        """Logits (B, T, V) and, when `targets` (B, T) are given, the mean cross-entropy loss.

        Targets equal to -1 are ignored (no loss). Without targets, only the last position's
        logits are computed (B, 1, V), which is all that sampling needs; loss is None.
        """
        x = self.hidden_states(idx, attention_mask)
        if targets is None:
            return self.lm_head(x[:, -1:, :]), None  # (B, 1, V)
        t = targets.data if isinstance(targets, Tensor) else targets
        if tuple(t.shape) != tuple(x.shape[:2]):
            raise ValueError(f"GPT: targets of shape {tuple(t.shape)} must match idx shape {tuple(x.shape[:2])}")
        logits = self.lm_head(x)  # (B, T, V)
        return logits, F.cross_entropy(logits, t, ignore_index=-1)

    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, seed=None):
        """Append `max_new_tokens` sampled tokens to idx (B, T); returns a NumPy (B, T + n) array.

        The context is cropped to the last block_size tokens before each step. temperature=0
        picks the most likely token (greedy); top_k keeps only the k most likely. A seed makes
        the samples reproducible (otherwise the package's global generator is used). Runs in
        eval mode without recording a graph, and restores the previous mode.
        """
        from .rng import get_rng

        if temperature < 0:
            raise ValueError(f"generate: temperature must be >= 0, got {temperature}")
        if top_k is not None and top_k <= 0:
            raise ValueError(f"generate: top_k must be a positive integer, got {top_k}")
        rng = np.random.default_rng(seed) if seed is not None else get_rng(np)
        out = np.array(to_device(idx.data if isinstance(idx, Tensor) else np.asarray(idx), "cpu"), dtype=np.int64)
        if out.ndim == 1:
            out = out[None, :]
        was_training = self.training
        self.eval()
        try:
            with no_grad():
                for _ in range(max_new_tokens):
                    context = out[:, -self.config.block_size:]
                    logits, _ = self(context)
                    logits = to_device(logits.data[:, -1, :], "cpu").astype(np.float64)  # (B, V)
                    out = np.concatenate([out, _sample(logits, temperature, top_k, rng)[:, None]], axis=1)
        finally:
            self.train(was_training)
        return out


def _sample(logits, temperature, top_k, rng):
    """One token id per row of logits (B, V): greedy, or from softmax(logits / temperature)."""
    if temperature == 0:
        return logits.argmax(axis=-1)
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = np.partition(logits, -top_k, axis=-1)[:, -top_k][:, None]  # (B, 1)
        logits = np.where(logits < kth, -np.inf, logits)
    p = np.exp(logits - logits.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    u = rng.random((p.shape[0], 1))
    return np.minimum((np.cumsum(p, axis=-1) < u).sum(axis=-1), p.shape[-1] - 1)


__all__ = ["GPT", "GPTConfig", "Parameter"]

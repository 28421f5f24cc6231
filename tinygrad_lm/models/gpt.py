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
`Transformer` is the body (GPT-2's `transformer`: embeddings, blocks, final LayerNorm); `GPT`
puts the language-model head on it, and the classifier (`gpt_classifier.py`) a class head.
`sample_text` samples a continuation of a prompt (run/checkpoint.py's `load_model` reads a checkpoint back).
`generate` keeps each layer's keys and values in a `KVCache` (nn/kv_cache.py), so each new
token costs one position's work; with `eos_id` it stops once every row has produced that token
(prompt -> completion fine-tuning's end-of-completion token, run/completions.py).
`resize_token_embeddings(n)` grows the vocabulary (Hugging Face's method of that name, with its
`mean_resizing` idea reduced to the mean): each new row of `wte` (and of an untied `lm_head`) is
the mean of the old rows, so a new token starts as an average token rather than a random one.
`GPT.from_pretrained` / `save_pretrained` read and write Hugging Face GPT-2 folders (the name and
layout mapping is in hf/gpt2.py).
Leaves out: mixed precision.
"""
import math
from dataclasses import asdict, dataclass, replace

import numpy as np

from ..engine.backend import device_of, get_array_module, to_device
from ..nn import (Block, CrossEntropyLoss, Dropout, Embedding, LayerNorm, Linear, Module, ModuleList,
                  Parameter, SinusoidalPositionalEncoding)
from ..nn import init
from ..nn.hooks import run_with_cache
from ..nn.kv_cache import KVCache
from ..engine.tensor import Tensor, no_grad


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


class Transformer(Module):
    """The GPT body: token and position embeddings, n_layer pre-LN blocks, a final LayerNorm.

    Maps token ids (B, T) to hidden states (B, T, C); GPT-2's names (`wte`, `wpe`, `h.{i}`, `ln_f`).
    """

    def __init__(self, config):
        super().__init__()
        c = self.config = config
        self.wte = Embedding(c.vocab_size, c.n_embd)
        self.wpe = (Embedding(c.block_size, c.n_embd) if c.pos_encoding == "learned"
                    else SinusoidalPositionalEncoding(c.block_size, c.n_embd))
        self.drop = Dropout(c.dropout)
        self.h = ModuleList(Block(c.n_embd, c.n_head, c.dropout, c.bias) for _ in range(c.n_layer))
        self.ln_f = LayerNorm(c.n_embd, bias=c.bias)

    def forward(self, idx, attention_mask=None, kv_cache=None):
        """Hidden states (B, T, C) for token ids idx (B, T); attention_mask (B, T) marks real tokens.

        With a `KVCache` (generation), idx holds the positions after the len(kv_cache) cached ones.
        """
        start = 0 if kv_cache is None else len(kv_cache)  # positions already in the cache
        idx = self.check_idx(idx, start)
        if kv_cache is not None and attention_mask is not None:
            raise ValueError("GPT: attention_mask and kv_cache cannot be combined; generate without padding")
        pos = get_array_module(idx).arange(start, start + idx.shape[1])  # (T,) positions start..start+T-1
        x = self.wte(idx) + self.wpe(pos)  # (B, T, C) + (T, C): token plus position
        x = self.drop(x)
        for i, block in enumerate(self.h):
            x = block(x, attention_mask, None if kv_cache is None else kv_cache[i])
        return self.ln_f(x)

    def check_idx(self, idx, start=0):
        """idx as a raw integer (B, T) array on the model's device; a clear error otherwise
        (start: the positions before idx, from a key/value cache)."""
        data = idx.data if isinstance(idx, Tensor) else idx
        data = to_device(data if get_array_module(data) is not np else np.asarray(data), self.wte.weight.device)
        if data.ndim != 2 or not np.issubdtype(data.dtype, np.integer):
            raise ValueError(f"GPT expects integer token ids of shape (B, T), got shape {tuple(data.shape)} "
                             f"and dtype {data.dtype}")
        if start + data.shape[1] > self.config.block_size:
            cached = f" after {start} cached positions" if start else ""
            raise ValueError(f"GPT: sequence length {data.shape[1]}{cached} exceeds block_size "
                             f"{self.config.block_size}; crop the input to the last block_size tokens")
        if data.shape[1] == 0:
            raise ValueError("GPT: the input sequence is empty (T = 0)")
        return data


def init_gpt2_(model, n_layer):
    """GPT-2's initialisation, in place: N(0, 0.02) weights, zero biases, LayerNorm weights 1,
    and the residual projections (`c_proj`) at 0.02 / sqrt(2 n_layer)."""
    std_resid = 0.02 / math.sqrt(2 * n_layer)
    for name, p in model.named_parameters():
        if name.endswith("c_proj.weight"):
            value = init.normal(p.shape, std_resid)
        elif name.endswith(".bias"):
            value = np.zeros(p.shape, dtype=np.float32)
        elif ".ln_" in name:
            continue  # LayerNorm weights stay 1
        else:
            value = init.normal(p.shape, 0.02)
        p.data = to_device(value.astype(p.dtype), p.device)  # drawn on the host, put where p lives


class GPT(Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.transformer = Transformer(config)
        self.lm_head = Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_weights:
            self.lm_head.weight = self.transformer.wte.weight  # one Parameter, two names
        self.loss_fn = CrossEntropyLoss(ignore_index=-1)
        init_gpt2_(self, config.n_layer)

    def num_params(self, non_embedding=False):
        """Number of parameters (a tied matrix counted once); without position embeddings if asked."""
        n = sum(p.size for p in self.parameters())
        if non_embedding and self.config.pos_encoding == "learned":
            n -= self.transformer.wpe.weight.size
        return n

    @property
    def device(self):
        return self.transformer.wte.weight.device

    def resize_token_embeddings(self, n):
        """Grow the vocabulary to `n` tokens, in place; returns self.

        The rows of `transformer.wte.weight` (and of `lm_head.weight` when it is not tied) for ids
        vocab_size..n-1 are the mean of the existing rows; the old rows are unchanged and a tied
        head stays one Parameter with the embedding. Call it before building the optimizer (its
        state is per parameter) and before `fast.speed_up`. Shrinking is refused (it would drop
        ids a tokenizer may still produce).
        """
        old = self.config.vocab_size
        if not isinstance(n, (int, np.integer)) or n < old:
            raise ValueError(f"resize_token_embeddings: n={n!r} must be an integer >= the current vocab_size {old}")
        if n == old:
            return self

        def grown(weight):  # (old, C) -> (n, C), the new rows the mean of the old ones
            xp = get_array_module(weight.data)
            mean = weight.data.mean(axis=0, keepdims=True)  # (1, C)
            return Parameter(xp.concatenate([weight.data, xp.repeat(mean, n - old, axis=0)]).astype(weight.dtype))

        wte = self.transformer.wte
        wte.weight, wte.num_embeddings = grown(wte.weight), n
        self.lm_head.weight = wte.weight if self.config.tie_weights else grown(self.lm_head.weight)
        self.lm_head.out_features = n
        self.config = self.transformer.config = replace(self.config, vocab_size=n)
        return self

    @classmethod
    def from_pretrained(cls, path, dtype=np.float32):
        """A GPT with the weights of a Hugging Face GPT-2 folder (config.json + model.safetensors),
        in eval mode; needs `pip install safetensors`. Mapping and errors: hf/gpt2.py.

        Args:
            path: the folder, e.g. from `hf download gpt2 --local-dir gpt2`.
            dtype: the parameters' dtype; the file's values are cast to it once (a float64
                file read as float64 is bit for bit).
        """
        from ..hf import gpt2  # the file format, read only when asked for (hf/ imports no model)

        model = cls(gpt2.read_config(path, GPTConfig)).to(dtype=np.dtype(dtype))  # refused sizes name config.json
        model.load_state_dict(gpt2.read_state(path, model.config))  # file dtype -> model dtype, never via float32
        return model.eval()

    def save_pretrained(self, path, tokenizer=None):
        """Write a folder that `transformers.GPT2LMHeadModel.from_pretrained(path)` loads (and
        `GPT.from_pretrained`); with a tokenizer (byte-level BPE with GPT-2's split pattern),
        its vocab.json + merges.txt too."""
        from ..hf import gpt2

        gpt2.save_pretrained(self, path, tokenizer)

    def forward(self, idx, targets=None, attention_mask=None, kv_cache=None):
        """Logits (B, T, V) and, when `targets` (B, T) are given, the mean cross-entropy loss.

        Targets equal to -1 are ignored (no loss). Without targets, only the last position's
        logits are computed (B, 1, V), which is all that sampling needs; loss is None.
        A `KVCache` (nn/kv_cache.py) keeps each layer's keys and values for the next call.
        """
        x = self.transformer(idx, attention_mask, kv_cache)  # (B, T, C)
        if targets is None:
            return self.lm_head(x[:, -1:, :]), None  # (B, 1, V)
        logits = self.lm_head(x)  # (B, T, V)
        return logits, self.loss_fn(logits, targets)

    def run_with_cache(self, idx, attention_mask=None):
        """(logits (B, T, V) at every position, cache): cache maps each submodule's dotted name
        (`transformer.h.1.ln_1`, ...) to its output and `transformer.h.{i}.attn.weights` to layer
        i's attention weights (B, nh, T, T), before attention dropout; detached copies (nn/hooks.py).
        attention_mask (B, T) as forward takes it (padded keys get weight 0)."""
        return run_with_cache(self, lambda: self.lm_head(self.transformer(idx, attention_mask)))

    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, seed=None, use_cache=True, eos_id=None):
        """Append `max_new_tokens` sampled tokens to idx (B, T); returns a (B, T + n) integer array
        on idx's device (NumPy for lists and NumPy arrays, CuPy for a CuPy idx or a CUDA Tensor).
        With `eos_id`, a row that has produced that token gets only eos_id after it, and
        generation stops early once every row has produced it (n may then be < max_new_tokens).

        With use_cache (the default) the prompt runs once and each later step feeds only the
        new token, the earlier keys and values coming from a `KVCache`; once the context would
        pass block_size, the window slides and every position moves, so the cache restarts
        from the cropped context (each step then costs what it costs without a cache).
        Without it, every step runs the context cropped to its last block_size tokens. Both
        give the same logits and tokens. temperature=0 picks the most likely token (greedy);
        top_k keeps only the k most likely. A seed makes the samples reproducible (otherwise
        the package's global generator is used). Runs in eval mode without recording a graph,
        and restores the previous mode.
        """
        from ..engine.rng import get_rng

        if not temperature >= 0:  # NaN too: it would turn every probability into NaN, and token 0 out
            raise ValueError(f"generate: temperature must be a number >= 0, got {temperature}")
        if top_k is not None and top_k <= 0:
            raise ValueError(f"generate: top_k must be a positive integer, got {top_k}")
        rng = np.random.default_rng(seed) if seed is not None else get_rng(np)
        idx = idx.data if isinstance(idx, Tensor) else idx
        out = np.array(to_device(idx, "cpu"), dtype=np.int64)  # sampling runs on the host; a CuPy idx is copied
        if out.ndim == 1:
            out = out[None, :]
        was_training = self.training
        self.eval()
        try:
            with no_grad():
                cache = KVCache(self.config.n_layer) if use_cache else None
                done = np.zeros(len(out), dtype=bool)  # rows that have produced eos_id
                for _ in range(max_new_tokens):
                    if cache is not None and 0 < len(cache) < self.config.block_size:
                        context = out[:, -1:]  # only the new token: the others' keys and values are cached
                    else:
                        context = out[:, -self.config.block_size:]  # the whole context, cropped
                        if cache is not None:
                            cache.clear()  # the window slid: every cached position moved
                    logits, _ = self(context, kv_cache=cache)
                    logits = to_device(logits.data[:, -1, :], "cpu").astype(np.float64)  # (B, V)
                    token = _sample(logits, temperature, top_k, rng)  # (B,)
                    if eos_id is not None:
                        token = np.where(done, eos_id, token)
                        done |= token == eos_id
                    out = np.concatenate([out, token[:, None]], axis=1)
                    if done.all():
                        break
        finally:
            self.train(was_training)
        return to_device(out, device_of(idx))  # on the device idx came from


def _sample(logits, temperature, top_k, rng):
    """One token id per row of logits (B, V): greedy, or from softmax(logits / temperature)."""
    if not np.isfinite(logits).all():  # NaN weights: argmax and the cumulative sum would both say token 0
        raise ValueError("generate: the model's logits are NaN or infinite (are its weights NaN? a run that "
                         "diverged); nothing sensible can be sampled")
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


def sample_text(model, tokenizer, prompt="", max_new_tokens=200, temperature=0.8, top_k=None, seed=None,
                use_cache=True, eos_id=None):
    """Continue `prompt` with sampled tokens and return the decoded text (prompt included).
    With `eos_id`, sampling stops at that token, which is not part of the text returned."""
    ids = tokenizer.encode(prompt) if prompt else tokenizer.encode("\n")[:1] or [0]
    out = model.generate(np.asarray([ids], dtype=np.int64), max_new_tokens, temperature, top_k, seed, use_cache,
                         eos_id)[0].tolist()
    if eos_id is not None and eos_id in out[len(ids):]:
        out = out[:out.index(eos_id, len(ids))]
    return tokenizer.decode(out)


__all__ = ["GPT", "GPTConfig", "Transformer", "Parameter", "sample_text"]

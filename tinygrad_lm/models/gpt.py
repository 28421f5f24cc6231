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
import numbers
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
            below = max(h for h in range(1, self.n_head) if self.n_embd % h == 0)
            above = [h for h in range(self.n_head + 1, self.n_embd + 1) if self.n_embd % h == 0][:1]
            raise ValueError(f"GPTConfig: n_embd={self.n_embd} must be divisible by n_head={self.n_head} (each head "
                             f"gets n_embd / n_head channels); try n_head {' or '.join(map(str, [below] + above))}")
        if self.pos_encoding not in ("learned", "sinusoidal"):
            raise ValueError(f"GPTConfig.pos_encoding must be 'learned' or 'sinusoidal', got {self.pos_encoding!r}")
        if not isinstance(self.dropout, numbers.Real) or isinstance(self.dropout, bool) or not 0 <= self.dropout < 1:
            raise ValueError(f"GPTConfig.dropout must be a number in [0, 1) (0 disables it), got {self.dropout!r}")
        for name in ("bias", "tie_weights"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"GPTConfig.{name} must be True or False, got {getattr(self, name)!r}")

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

        _check_generate(max_new_tokens, temperature, top_k, seed)
        rng = np.random.default_rng(seed) if seed is not None else get_rng(np)
        idx = idx.data if isinstance(idx, Tensor) else idx
        out = np.asarray(to_device(idx, "cpu"))  # sampling runs on the host; a CuPy idx is copied
        if out.size and not np.issubdtype(out.dtype, np.integer):  # casting would cut 1.7 to token 1
            raise TypeError(f"generate: idx must be integer token ids, got dtype {out.dtype}; convert them with "
                            ".astype(np.int64)")
        out = out.astype(np.int64)
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


def _check_generate(max_new_tokens, temperature, top_k, seed):
    """generate's numbers, each refused by name: a NaN or infinite temperature would make every
    probability NaN (and token 0 the pick), a float top_k fails inside np.partition."""
    if not _is_int(max_new_tokens) or max_new_tokens < 0:
        raise ValueError(f"generate: max_new_tokens must be an integer >= 0, got {max_new_tokens!r}")
    if not (isinstance(temperature, numbers.Real) and not isinstance(temperature, bool)
            and 0 <= temperature < math.inf):
        raise ValueError(f"generate: temperature must be a number >= 0, got {temperature!r}: a finite one (0 is "
                         "greedy, a large one near uniform)")
    if top_k is not None and (not _is_int(top_k) or top_k < 1):
        raise ValueError(f"generate: top_k must be a positive integer or None (all tokens), got {top_k!r}")
    if seed is not None and (not _is_int(seed) or seed < 0):
        raise ValueError(f"generate: seed must be an integer >= 0 or None, got {seed!r}")


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _sample(logits, temperature, top_k, rng):
    """One token id per row of logits (B, V): greedy, or from softmax(logits / temperature).

    Exact at the edges: temperature 0 and top_k 1 are the argmax (the first of tied maxima);
    the logits are shifted by their maximum before the division, so a tiny temperature gives
    the most likely token weight exp(0) = 1 and the others exp(-huge) = 0 (greedy, never
    inf - inf = NaN), and a huge one weights every token about 1 (uniform). A logit of -inf
    (a token ruled out) has weight 0 and is never drawn: the draw u is scaled to the weights'
    own total, and the pick is the first token whose cumulative weight exceeds u. top_k keeps
    the k largest logits (and any tied with the k-th, as nanoGPT's).
    """
    if np.isnan(logits).any() or np.isposinf(logits).any():  # NaN weights: a run that diverged
        raise ValueError("generate: the model's logits are NaN or infinite (NaN or +inf; are its weights NaN? a run "
                         "that diverged); nothing sensible can be sampled")
    if np.isneginf(logits).all(axis=-1).any():
        raise ValueError("generate: every token's logit is -inf in some row: no token can be sampled")
    if temperature == 0 or top_k == 1:
        return logits.argmax(axis=-1)
    with np.errstate(over="ignore"):  # (logits - max) / tiny temperature: -inf for every token but the likeliest
        z = (logits - logits.max(axis=-1, keepdims=True)) / temperature  # (B, V), <= 0, the maximum 0
    if top_k is not None and top_k < z.shape[-1]:
        kth = np.partition(z, -top_k, axis=-1)[:, -top_k][:, None]  # (B, 1)
        z = np.where(z < kth, -np.inf, z)
    cumulative = np.cumsum(np.exp(z), axis=-1)  # (B, V); the last column >= 1 (the maximum's weight)
    u = rng.random((z.shape[0], 1)) * cumulative[:, -1:]  # in [0, total)
    return (cumulative <= u).sum(axis=-1)


def sample_text(model, tokenizer, prompt="", max_new_tokens=200, temperature=0.8, top_k=None, seed=None,
                use_cache=True, eos_id=None):
    """Continue `prompt` with sampled tokens and return the decoded text (prompt included).
    With `eos_id`, sampling stops at that token, which is not part of the text returned."""
    ids = tokenizer.encode(prompt) if prompt else _newline_or_first(tokenizer)
    out = model.generate(np.asarray([ids], dtype=np.int64), max_new_tokens, temperature, top_k, seed, use_cache,
                         eos_id)[0].tolist()
    if eos_id is not None and eos_id in out[len(ids):]:
        out = out[:out.index(eos_id, len(ids))]
    return tokenizer.decode(out)


def _newline_or_first(tokenizer):
    """The ids an empty prompt starts from: a newline's, else (a vocabulary without one) token 0."""
    try:
        return tokenizer.encode("\n")[:1] or [0]
    except ValueError:  # a char-level vocabulary that never saw a newline
        return [0]


__all__ = ["GPT", "GPTConfig", "Transformer", "Parameter", "sample_text"]

"""GPT-2 in Hugging Face's format: `transformers.GPT2LMHeadModel` folders <-> our `GPT`.

Our parameter names are already GPT-2's (`transformer.h.0.attn.c_attn.weight`, ...); what
differs is the layout and the config:

  * GPT-2's four projections per block (`attn.c_attn`, `attn.c_proj`, `mlp.c_fc`,
    `mlp.c_proj`) are `Conv1D` layers whose weight is stored (in_features, out_features), the
    transpose of a Linear's (out, in), which is ours: they are transposed on the way in and out.
  * config.json names: `n_positions` is our block_size, `n_embd`/`n_layer`/`n_head`/
    `vocab_size` are ours, `resid_pdrop` (= `embd_pdrop` = `attn_pdrop`) our one dropout,
    `tie_word_embeddings` our tie_weights; `activation_function` "gelu_new" is our tanh GELU,
    `layer_norm_epsilon` must be our LayerNorm's 1e-5, `n_inner` 4 * n_embd or null.
  * With tied embeddings the file has no `lm_head.weight` (it is `transformer.wte.weight`).
    The Hub's own `gpt2` file names tensors without the `transformer.` prefix and carries the
    causal-mask buffers `h.{i}.attn.bias` / `masked_bias`, which are ignored.

Anything we cannot run the same way (another model_type or activation, cross-attention,
scaled-by-layer attention, a missing or mis-shaped tensor) is a ValueError naming the file and
the key. `GPT.from_pretrained` and `GPT.save_pretrained` call `read_config`, `read_state` and
`save_pretrained` here; the file handling is in safetensors_io.py.
Leaves out: GPT-2's other heads (double heads, classification), and fp16/bf16 storage (we
write float32). Reading keeps the file's dtype until the model's cast: a float64 file loaded with
`dtype=np.float64` is bit for bit, float16 or float32 files are upcast exactly.
It follows transformers' modeling_gpt2.py and nanoGPT's `from_pretrained` in what it maps.
"""
import math
from types import SimpleNamespace

import numpy as np

from . import safetensors_io as io

CONV1D = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")  # stored (in, out) in GPT-2's files
GELU_TANH = ("gelu_new", "gelu_pytorch_tanh")  # both are 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
LAYER_NORM_EPS = 1e-5  # nn.LayerNorm's default, which GPT uses
TOKENIZER_FILES = (("vocab.json", "merges.txt"), ("encoder.json", "vocab.bpe"))  # Hugging Face's, OpenAI's


def config_from_hf(hf, where="config.json"):
    """Our GPTConfig's values, a plain dict, from a GPT-2 config.json dict; a ValueError naming
    `where` and the key for anything our GPT does not compute the same way."""
    def get(key, kind, default=None):
        return io.config_value(hf, key, kind, where, default)

    if hf.get("model_type") != "gpt2":
        raise ValueError(f"{where}: model_type is {hf.get('model_type')!r}; only 'gpt2' (GPT2LMHeadModel) loads here")
    unsupported = {"activation_function": (get("activation_function", str, "gelu_new"), GELU_TANH),
                   "scale_attn_weights": (get("scale_attn_weights", bool, True), (True,)),
                   "scale_attn_by_inverse_layer_idx": (hf.get("scale_attn_by_inverse_layer_idx", False), (False,)),
                   "add_cross_attention": (hf.get("add_cross_attention", False), (False,))}
    for key, (value, allowed) in unsupported.items():
        if value not in allowed:
            raise ValueError(f"{where}: {key}={value!r} is not supported; tinygrad_lm's GPT computes {allowed[0]!r}")
    eps = get("layer_norm_epsilon", float, LAYER_NORM_EPS)
    if not math.isclose(eps, LAYER_NORM_EPS, rel_tol=1e-6):
        raise ValueError(f"{where}: layer_norm_epsilon={eps} is not supported; our LayerNorm uses {LAYER_NORM_EPS}")
    n_embd = get("n_embd", int)
    if hf.get("n_inner") not in (None, 4 * n_embd):
        raise ValueError(f"{where}: n_inner={hf['n_inner']} is not supported; our MLP is 4 * n_embd = {4 * n_embd} wide")
    drops = {key: get(key, float, 0.1) for key in ("resid_pdrop", "embd_pdrop", "attn_pdrop")}
    if len(set(drops.values())) != 1:
        raise ValueError(f"{where}: dropouts {drops} differ; our GPT has one dropout probability for all three")
    sizes = dict(vocab_size=get("vocab_size", int), block_size=get("n_positions", int, hf.get("n_ctx")),
                 n_layer=get("n_layer", int), n_head=get("n_head", int), n_embd=n_embd)
    return dict(**sizes, dropout=drops["resid_pdrop"], bias=True, pos_encoding="learned",
                tie_weights=get("tie_word_embeddings", bool, True))


def config_to_hf(config):
    """The config.json dict of a GPT2LMHeadModel equal to our GPTConfig (ValueError when none is)."""
    if not config.bias or config.pos_encoding != "learned":
        raise ValueError(f"GPT-2 has biases and learned positions; this model has bias={config.bias}, "
                         f"pos_encoding={config.pos_encoding!r}, which a GPT-2 checkpoint cannot hold")
    return {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": config.vocab_size,
            "n_positions": config.block_size, "n_embd": config.n_embd, "n_layer": config.n_layer,
            "n_head": config.n_head, "n_inner": None, "activation_function": "gelu_new",
            "resid_pdrop": config.dropout, "embd_pdrop": config.dropout, "attn_pdrop": config.dropout,
            "layer_norm_epsilon": LAYER_NORM_EPS, "initializer_range": 0.02, "scale_attn_weights": True,
            "tie_word_embeddings": config.tie_weights, "use_cache": True}


def hf_shapes(config):
    """{name: shape} of the tensors a GPT2LMHeadModel file holds for `config` (a GPTConfig or its
    values), in GPT-2's layout (Conv1D weights (in, out)); `lm_head.weight` only when untied."""
    config = _fields(config)
    C, V = config.n_embd, config.vocab_size
    shapes = {"transformer.wte.weight": (V, C), "transformer.wpe.weight": (config.block_size, C)}
    for i in range(config.n_layer):
        h = f"transformer.h.{i}."
        for ln in ("ln_1", "ln_2"):
            shapes.update({h + ln + ".weight": (C,), h + ln + ".bias": (C,)})
        for name, (n_in, n_out) in zip(CONV1D, [(C, 3 * C), (C, C), (C, 4 * C), (4 * C, C)]):
            shapes.update({h + name + ".weight": (n_in, n_out), h + name + ".bias": (n_out,)})
    shapes.update({"transformer.ln_f.weight": (C,), "transformer.ln_f.bias": (C,)})
    if not config.tie_weights:
        shapes["lm_head.weight"] = (V, C)
    return shapes


def _fields(config):
    """A config given as plain values (what `config_from_hf` returns) read like a GPTConfig."""
    return SimpleNamespace(**config) if isinstance(config, dict) else config


def _is_conv1d(name):
    return name.endswith(".weight") and name.rsplit(".", 1)[0].split(".", 3)[-1] in CONV1D


def state_from_hf(tensors, config, where="model.safetensors"):
    """Our state dict (GPT-2 names, Linear layout (out, in), the file's dtype) from a GPT-2 file's tensors.

    Args:
        tensors: {name: array} as read from the file; names with or without `transformer.`.
        config: our GPTConfig, or its values (from `config_from_hf`).
        where: the file, for error messages.
    Returns:
        {name: array} for `GPT.load_state_dict` (with `lm_head.weight` when tied: the same array).
    Raises:
        ValueError: naming `where` and every missing, unexpected or mis-shaped tensor.
    """
    config = _fields(config)
    named = {}
    for name, array in tensors.items():
        if name.endswith((".attn.bias", ".attn.masked_bias")):
            continue  # GPT-2's causal-mask buffers, not parameters
        full = name if name.startswith(("transformer.", "lm_head.")) else "transformer." + name
        named[full] = array
    shapes = hf_shapes(config)
    if config.tie_weights:
        named.pop("lm_head.weight", None)  # transformers ignores a tied head's copy too
    missing = [k for k in shapes if k not in named]
    unexpected = [k for k in named if k not in shapes]
    wrong = [f"{k}: {tuple(named[k].shape)}, expected {shapes[k]}" for k in shapes
             if k in named and tuple(named[k].shape) != shapes[k]]
    if missing or unexpected or wrong:
        raise ValueError(f"{where}: does not match config.json's GPT-2 (n_layer={config.n_layer}, n_embd="
                         f"{config.n_embd}, vocab_size={config.vocab_size}, n_positions={config.block_size}): "
                         f"missing {missing[:4]}, unexpected {unexpected[:4]}, mis-shaped {wrong[:4]}")
    state = {}
    for name, array in named.items():
        array = np.asarray(array)  # as stored: load_state_dict casts once, to the model's dtype (float64 stays exact)
        state[name] = array.T if _is_conv1d(name) else array  # Conv1D (in, out) -> Linear (out, in)
    if config.tie_weights:
        state["lm_head.weight"] = state["transformer.wte.weight"]
    return state


def state_to_hf(state, config):
    """A GPT2LMHeadModel file's tensors from our state dict: Conv1D weights transposed back to
    (in, out), float32, contiguous; no `lm_head.weight` when it is tied to the embeddings."""
    out = {}
    for name in hf_shapes(config):
        array = np.asarray(state[name], dtype=np.float32)
        out[name] = np.ascontiguousarray(array.T if _is_conv1d(name) else array)  # (out, in) -> (in, out)
    return out


def read_config(path, config_class=dict):
    """Our config from the config.json of a Hugging Face GPT-2 folder, built by `config_class`
    (the model passes its own; the default, dict, gives the plain values): the first half of
    `from_pretrained`, which refuses a config before any tensor is read."""
    return io.make_config(path, config_class, config_from_hf)


def read_state(path, config):
    """Our state dict from the model.safetensors of a Hugging Face GPT-2 folder, checked against
    `config` (the second half of `GPT.from_pretrained`)."""
    return state_from_hf(io.read_tensors(path), config, str(io.model_folder(path) / io.WEIGHTS_FILE))


def fits_gpt2_files(tokenizer):
    """Whether vocab.json + merges.txt hold all of `tokenizer`: a BPETokenizer with GPT-2's split
    pattern (the files store none; transformers splits with GPT-2's) and '<|...|>' special tokens."""
    from ..tokenizer import GPT2_SPLIT_PATTERN, BPETokenizer

    return (isinstance(tokenizer, BPETokenizer) and tokenizer.pattern == GPT2_SPLIT_PATTERN
            and all(s.startswith("<|") and s.endswith("|>") for s in tokenizer.special_tokens))


def save_pretrained(model, path, tokenizer=None, extra_files=None, remove=()):
    """Write `model` as a folder `transformers.GPT2LMHeadModel.from_pretrained(path)` loads, whole
    or not at all (safetensors_io.write_folder: a failed or killed write leaves the old folder, or
    one without config.json that nothing loads).

    Args:
        model: a GPT with learned positions and biases (GPT-2's architecture).
        path: the folder to write (created; config.json and model.safetensors are replaced).
        tokenizer: optional BPETokenizer with GPT-2's split pattern (`fits_gpt2_files`); written
            as vocab.json + merges.txt (GPT-2's format).
        extra_files: {name: bytes, str or write(path)} written with them (`export`'s own tokenizer file).
        remove: names of files in the folder to delete (an earlier export's other tokenizer files).
    Raises:
        ValueError: before writing anything, when GPT-2's format cannot hold the model or the tokenizer.
    """
    hf_config = config_to_hf(model.config)  # fails before anything is written when GPT-2 cannot hold the model
    if tokenizer is not None and not fits_gpt2_files(tokenizer):
        raise ValueError(f"GPT-2's vocab.json + merges.txt cannot hold {tokenizer!r}: they need byte-level BPE with "
                         "GPT-2's split pattern and '<|...|>' special tokens; save it with tokenizer.save instead")
    eot = getattr(tokenizer, "special_tokens", {}).get("<|endoftext|>")
    if eot is not None:  # transformers' generate stops there, as GPT-2's own config says
        hf_config.update(bos_token_id=eot, eos_token_id=eot)
    files = {io.WEIGHTS_FILE: io.tensors_writer(state_to_hf(model.state_dict(), model.config)),
             io.CONFIG_FILE: io.config_text(hf_config)}
    if tokenizer is not None:
        from ..tokenizer.gpt2_files import gpt2_vocab_texts
        files["vocab.json"], files["merges.txt"] = gpt2_vocab_texts(tokenizer)
    io.write_folder(path, {**files, **(extra_files or {})}, remove)


def load_tokenizer(path):
    """The BPETokenizer of a GPT-2 folder (vocab.json + merges.txt, or encoder.json + vocab.bpe),
    or None when the folder has neither pair."""
    from ..tokenizer import BPETokenizer

    folder = io.model_folder(path)
    for encoder, merges in TOKENIZER_FILES:
        if (folder / encoder).is_file() and (folder / merges).is_file():
            return BPETokenizer.from_gpt2(folder / encoder, folder / merges)
    return None

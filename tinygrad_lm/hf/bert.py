"""BERT in Hugging Face's format: `transformers.BertForMaskedLM` folders <-> our `BertForMaskedLM`.

Our parameter names and layouts are already transformers' (bert.py: Linear weights
(out_features, in_features) in both), so the tensors move as they are; what is mapped:

  * config.json: `vocab_size`, `hidden_size`, `num_hidden_layers`, `num_attention_heads`,
    `intermediate_size`, `max_position_embeddings`, `type_vocab_size`, `layer_norm_eps`,
    `hidden_dropout_prob`, `attention_probs_dropout_prob`, `initializer_range`, `pad_token_id`
    are BertConfig's fields of the same names. model_type must be "bert", `hidden_act` "gelu"
    (the exact erf GELU, ours), `position_embedding_type` "absolute", and the model an encoder
    (`is_decoder` and `add_cross_attention` false) with its decoder tied to the word embeddings
    (`tie_word_embeddings` true, the default); anything else is a ValueError naming the
    file and the key, since our encoder would compute something different.
  * Tied tensors: the file holds `bert.embeddings.word_embeddings.weight` and
    `cls.predictions.bias` once; `cls.predictions.decoder.weight` / `.decoder.bias` are the
    same Parameters (transformers writes them only when untied; a copy in the file is ignored).
  * The pooler: transformers' BertForMaskedLM has none (`add_pooling_layer=False`), ours has one
    for fine-tuning on [CLS]. We write `bert.pooler.dense.*` (transformers' BertForMaskedLM skips
    them on load; BertModel and BertForSequenceClassification load them); a file without them
    (any BertForMaskedLM's) leaves our pooler at its fresh initialisation, as transformers does
    when it builds a classifier from an MLM checkpoint.
  * Older checkpoints (bert-base-uncased's BertForPreTraining file): LayerNorm `gamma` / `beta`
    are read as `weight` / `bias`; the next-sentence head (`cls.seq_relationship.*`) and the
    `bert.embeddings.position_ids` buffer are ignored.

Errors (another model_type or activation, a missing or mis-shaped tensor) name the file and
the key. The file handling is shared with GPT-2 (safetensors_io.py).
Leaves out: the tokenizer files (vocab.txt, WordPiece), other BERT heads and fp16/bf16 storage
(we write float32; float16 files load as float32).
It follows transformers' modeling_bert.py and configuration_bert.py in what it maps.
"""
from types import SimpleNamespace

import numpy as np

from . import safetensors_io as io

SIZE_KEYS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
             "max_position_embeddings", "type_vocab_size")
FLOAT_KEYS = {"layer_norm_eps": 1e-12, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
              "initializer_range": 0.02}  # transformers' BertConfig defaults, used when a key is absent
TIED = ("cls.predictions.decoder.weight", "cls.predictions.decoder.bias")  # the same Parameters as below
POOLER = ("bert.pooler.dense.weight", "bert.pooler.dense.bias")
IGNORED_PREFIXES = ("cls.seq_relationship.", "bert.embeddings.position_ids")


def config_from_hf(hf, where="config.json"):
    """Our BertConfig's values, a plain dict, from a BERT config.json dict; a ValueError naming
    `where` and the key for anything our encoder does not compute the same way."""
    def get(key, kind, default=None):
        return io.config_value(hf, key, kind, where, default)

    if hf.get("model_type") != "bert":
        raise ValueError(f"{where}: model_type is {hf.get('model_type')!r}; only 'bert' (BertForMaskedLM) loads here")
    unsupported = {"hidden_act": (hf.get("hidden_act", "gelu"), "gelu"),
                   "position_embedding_type": (hf.get("position_embedding_type", "absolute"), "absolute"),
                   "is_decoder": (hf.get("is_decoder", False), False),
                   "add_cross_attention": (hf.get("add_cross_attention", False), False),
                   "tie_word_embeddings": (hf.get("tie_word_embeddings", True), True)}
    for key, (value, allowed) in unsupported.items():
        if value != allowed:
            raise ValueError(f"{where}: {key}={value!r} is not supported; tinygrad_lm's BERT computes {allowed!r}")
    sizes = {key: get(key, int) for key in SIZE_KEYS}
    floats = {key: get(key, float, default) for key, default in FLOAT_KEYS.items()}
    pad = hf.get("pad_token_id")
    pad = 0 if pad is None else get("pad_token_id", int)
    return dict(**sizes, **floats, pad_token_id=pad)


def config_to_hf(config):
    """The config.json dict of a transformers BertForMaskedLM equal to our BertConfig."""
    hf = {"model_type": "bert", "architectures": ["BertForMaskedLM"], "hidden_act": "gelu",
          "position_embedding_type": "absolute", "is_decoder": False, "add_cross_attention": False,
          "tie_word_embeddings": True, "classifier_dropout": None, "use_cache": True}
    hf.update(config.to_dict())
    return hf


def _fields(config):
    """A config given as plain values (what `config_from_hf` returns) read like a BertConfig."""
    return SimpleNamespace(**config) if isinstance(config, dict) else config


def hf_shapes(config, pooler=True):
    """{name: shape} of the tensors a BertForMaskedLM file holds for `config` (each tied tensor
    once); with the pooler's when `pooler`. `config`: a BertConfig or its values."""
    config = _fields(config)
    C, V, I = config.hidden_size, config.vocab_size, config.intermediate_size
    e = "bert.embeddings."
    shapes = {e + "word_embeddings.weight": (V, C),
              e + "position_embeddings.weight": (config.max_position_embeddings, C),
              e + "token_type_embeddings.weight": (config.type_vocab_size, C),
              e + "LayerNorm.weight": (C,), e + "LayerNorm.bias": (C,)}
    for i in range(config.num_hidden_layers):
        h = f"bert.encoder.layer.{i}."
        linears = {"attention.self.query": (C, C), "attention.self.key": (C, C), "attention.self.value": (C, C),
                   "attention.output.dense": (C, C), "intermediate.dense": (I, C), "output.dense": (C, I)}
        for name, (n_out, n_in) in linears.items():
            shapes.update({h + name + ".weight": (n_out, n_in), h + name + ".bias": (n_out,)})
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            shapes.update({h + ln + ".weight": (C,), h + ln + ".bias": (C,)})
    if pooler:
        shapes.update({POOLER[0]: (C, C), POOLER[1]: (C,)})
    t = "cls.predictions."
    shapes.update({t + "bias": (V,), t + "transform.dense.weight": (C, C), t + "transform.dense.bias": (C,),
                   t + "transform.LayerNorm.weight": (C,), t + "transform.LayerNorm.bias": (C,)})
    return shapes


def _our_name(name):
    """A file's tensor name in today's spelling: LayerNorm gamma/beta -> weight/bias."""
    if ".LayerNorm." in name or name.startswith("LayerNorm."):
        name = name.replace(".gamma", ".weight").replace(".beta", ".bias")
    return name


def state_from_hf(tensors, config, where="model.safetensors"):
    """Our state dict (the file's dtype, tied names filled in) from a BERT file's tensors.

    Args:
        tensors: {name: array} as read from the file.
        config: our BertConfig, or its values (from `config_from_hf`).
        where: the file, for error messages.
    Returns:
        ({name: array} for `BertForMaskedLM.load_state_dict(strict=False)`, whether the file had the pooler).
    Raises:
        ValueError: naming `where` and every missing, unexpected or mis-shaped tensor.
    """
    config = _fields(config)
    named = {_our_name(k): v for k, v in tensors.items()
             if not k.startswith(IGNORED_PREFIXES) and k not in TIED}
    has_pooler = any(k in named for k in POOLER)
    shapes = hf_shapes(config, pooler=has_pooler)
    missing = [k for k in shapes if k not in named]
    unexpected = [k for k in named if k not in shapes]
    wrong = [f"{k}: {tuple(named[k].shape)}, expected {shapes[k]}" for k in shapes
             if k in named and tuple(named[k].shape) != shapes[k]]
    if missing or unexpected or wrong:
        raise ValueError(f"{where}: does not match config.json's BERT (num_hidden_layers={config.num_hidden_layers}, "
                         f"hidden_size={config.hidden_size}, vocab_size={config.vocab_size}): missing {missing[:4]}, "
                         f"unexpected {unexpected[:4]}, mis-shaped {wrong[:4]}")
    state = {k: np.asarray(v) for k, v in named.items()}  # as stored: the model's load_state_dict casts once
    state[TIED[0]] = state["bert.embeddings.word_embeddings.weight"]
    state[TIED[1]] = state["cls.predictions.bias"]
    return state, has_pooler


def state_to_hf(state, config):
    """A BertForMaskedLM file's tensors from our state dict: float32, contiguous, each tied tensor
    once (under transformers' primary name), the pooler included."""
    return {name: np.ascontiguousarray(np.asarray(state[name], dtype=np.float32)) for name in hf_shapes(config)}


def read_config(path, config_class=dict):
    """Our config from the config.json of a Hugging Face BERT folder, built by `config_class`
    (the model passes its own; the default, dict, gives the plain values): the first half of
    `from_pretrained`, which refuses a config before any tensor is read."""
    return io.make_config(path, config_class, config_from_hf)


def read_state(path, config):
    """(our state dict, whether the file has the pooler) from the model.safetensors of a Hugging
    Face BERT folder, checked against `config` (the second half of `from_pretrained`)."""
    return state_from_hf(io.read_tensors(path), config, str(io.model_folder(path) / io.WEIGHTS_FILE))


def save_pretrained(model, path):
    """Write `model` as a folder that `transformers.BertForMaskedLM.from_pretrained(path)` loads
    (config.json + model.safetensors, float32), creating it; existing files are replaced, whole
    or not at all (safetensors_io.write_folder)."""
    tensors = state_to_hf(model.state_dict(), model.config)
    io.write_folder(path, {io.WEIGHTS_FILE: io.tensors_writer(tensors), io.CONFIG_FILE: io.config_text(
        config_to_hf(model.config))})

"""Reading and writing a Hugging Face model folder: `config.json` and `model.safetensors`.

A folder written by `transformers`' `save_pretrained` holds the model's hyperparameters as a
JSON object in `config.json` and its tensors in `model.safetensors`: a little-endian u64
header length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {...}}, then
the raw bytes. The `safetensors` package reads and writes it as NumPy arrays
(`safetensors.numpy.load_file` / `save_file`), so no torch is needed. This file is generic:
the mapping of one model's names and layouts lives beside it (gpt2.py, bert.py), which share
these functions.

Errors a user can fix name the file (and the key): a missing folder or file, a config that
is not a JSON object, a key missing or of the wrong type, a tensor file safetensors cannot
read; a missing safetensors package is one ImportError saying how to install it.
Leaves out: sharded checkpoints (`model.safetensors.index.json`), PyTorch `.bin` pickles
(they need torch to unpickle), and bfloat16 tensors (NumPy has no bfloat16).
It follows the safetensors format description (huggingface/safetensors README).
"""
import json
from pathlib import Path

import numpy as np

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
INSTALL_HINT = "pip install -e .[hf]  (or: pip install safetensors)"


def _safetensors_numpy():
    """The `safetensors.numpy` module, or an ImportError with the install command."""
    try:
        import safetensors.numpy
    except ImportError:
        raise ImportError(f"reading and writing Hugging Face checkpoints needs the safetensors package: "
                          f"{INSTALL_HINT}") from None
    return safetensors.numpy


def model_folder(path, must_exist=True):
    """`path` as a Path to a folder; FileNotFoundError / NotADirectoryError naming it otherwise."""
    folder = Path(path)
    if must_exist and not folder.exists():
        raise FileNotFoundError(f"{folder}: no such folder; expected a Hugging Face model folder with "
                                f"{CONFIG_FILE} and {WEIGHTS_FILE}")
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{folder} is a file; expected a Hugging Face model folder with "
                                 f"{CONFIG_FILE} and {WEIGHTS_FILE}")
    return folder


def make_config(config_class, values, where):
    """`config_class(**values)`, a refusal (sizes it cannot build) said with the file it came from."""
    try:
        return config_class(**values)
    except ValueError as e:  # e.g. a hidden size not divisible by the number of heads
        raise ValueError(f"{where}: {e}") from None


def read_config(path):
    """The dict of `path/config.json`.

    Raises:
        FileNotFoundError: the folder or its config.json is missing.
        ValueError: config.json is not a JSON object (naming the file and the JSON error).
    """
    file = model_folder(path) / CONFIG_FILE
    if not file.is_file():
        raise FileNotFoundError(f"{file}: missing; a Hugging Face model folder holds {CONFIG_FILE} and {WEIGHTS_FILE}")
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{file}: not valid JSON ({e})") from None
    if not isinstance(config, dict):
        raise ValueError(f"{file}: expected a JSON object of settings, got {type(config).__name__}")
    return config


def config_value(config, key, kind, where, default=None):
    """config[key] checked to be of type `kind`; `default` when the key is absent and a
    default is given, else a ValueError naming `where` (the file) and the key."""
    if key not in config:
        if default is not None:
            return default
        raise ValueError(f"{where}: missing key {key!r}")
    value = config[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"{where}: key {key!r} must be {kind.__name__}, got {value!r}")
    return value


def write_config(path, config):
    """Write `config` (a JSON-serialisable dict) as `path/config.json`, creating the folder."""
    folder = model_folder(path, must_exist=False)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_tensors(path):
    """{name: NumPy array} of `path/model.safetensors`.

    Raises:
        ImportError: safetensors is not installed (with the install command).
        FileNotFoundError: no model.safetensors in the folder (naming what is there instead).
        ValueError: the file is not a safetensors file, or holds a dtype NumPy cannot represent.
    """
    st = _safetensors_numpy()
    file = model_folder(path) / WEIGHTS_FILE
    if not file.is_file():
        others = sorted(p.name for p in file.parent.glob("*.bin")) + sorted(
            p.name for p in file.parent.glob("*.safetensors.index.json"))
        hint = f" (found {', '.join(others)}: only an unsharded {WEIGHTS_FILE} is read)" if others else ""
        raise FileNotFoundError(f"{file}: missing{hint}")
    try:
        return st.load_file(str(file))
    except Exception as e:  # safetensors raises its own error types (header, dtype) from Rust
        raise ValueError(f"{file}: cannot read it as a safetensors file of NumPy arrays: {e}") from None


def write_tensors(path, tensors):
    """Write {name: array} as `path/model.safetensors` (metadata format "pt", which
    transformers expects), creating the folder."""
    st = _safetensors_numpy()
    folder = model_folder(path, must_exist=False)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {name: np.ascontiguousarray(a) for name, a in tensors.items()}
    st.save_file(arrays, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})

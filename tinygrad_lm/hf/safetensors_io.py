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
Writing a folder is one transaction (`write_folder`): every file is written into a temporary
folder beside it first, so a full disk or a kill leaves the old folder as it was; then the files
are moved in with config.json last, after the old config.json was removed first: a kill while
they move leaves a folder without config.json, which every loader refuses (the message says an
export did not finish), never the new weights with the old config or tokenizer.
Leaves out: sharded checkpoints (`model.safetensors.index.json`), PyTorch `.bin` pickles
(they need torch to unpickle), and bfloat16 tensors (NumPy has no bfloat16).
It follows the safetensors format description (huggingface/safetensors README).
"""
import errno
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np

from ..files import (atomic_write, make_folder, os_error, remove_stale_temporaries, sync_folder, temporary_name,
                     write_error)

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


def make_config(path, config_class, from_hf):
    """Our config from `path/config.json`: `config_class(**from_hf(its dict, where))`, where names
    the file; a refusal (sizes `config_class` cannot build) is said with the file it came from."""
    where = str(model_folder(path) / CONFIG_FILE)
    values = from_hf(read_config(path), where)
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
        unfinished = (f" (its {WEIGHTS_FILE} is there: an export that did not finish? write it again)"
                      if (file.parent / WEIGHTS_FILE).is_file() else "")
        raise FileNotFoundError(f"{file}: missing; a Hugging Face model folder holds {CONFIG_FILE} and "
                                f"{WEIGHTS_FILE}{unfinished}")
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        empty = " (the file is empty)" if not file.read_bytes().strip() else ""
        raise ValueError(f"{file}: not valid JSON{empty} ({e})") from None
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


def config_text(config):
    """The text of a config.json holding `config` (a JSON-serialisable dict)."""
    return json.dumps(config, indent=2, sort_keys=True) + "\n"


def write_config(path, config):
    """Write `config` (a JSON-serialisable dict) as `path/config.json` alone, whole or not at all,
    creating the folder (a whole model folder: `write_folder`)."""
    atomic_write(model_folder(path, must_exist=False) / CONFIG_FILE, config_text(config), what="the model's config")


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


def tensors_writer(tensors):
    """write(path): writes {name: array} as a safetensors file at `path` (metadata format "pt",
    which transformers expects); for `write_folder`. A failed write is an OSError (safetensors
    raises its own error type, from Rust, whose message carries the OS's error number)."""
    st = _safetensors_numpy()
    arrays = {name: np.ascontiguousarray(a) for name, a in tensors.items()}

    def write(path):
        try:
            st.save_file(arrays, str(path), metadata={"format": "pt"})
        except Exception as e:  # SafetensorError: "Error while serializing: I/O error: ... (os error 28)"
            code = re.search(r"os error (\d+)", str(e))
            reason = os.strerror(int(code.group(1))) if code else str(e)
            raise OSError(int(code.group(1)) if code else errno.EIO, reason) from None
    return write


def write_folder(path, files, remove=()):
    """Write a model folder whole, or leave the old one (see the module's docstring).

    Args:
        path: the folder (created, with its parents, when missing).
        files: {file name: bytes, str (UTF-8), or write(path) that writes the file at `path`};
            config.json among them, which is what makes the folder load.
        remove: names of files to delete from the folder, if there (what an earlier write left that
            the new files must not be read with: another kind of tokenizer).
    Raises:
        NotADirectoryError: `path` is a file. OSError naming the file and the reason when one cannot
        be written: the folder is then unchanged.
    """
    folder = model_folder(path, must_exist=False)
    make_folder(folder.parent, folder, "the model folder")
    remove_stale_temporaries(folder.parent, folder.name)  # a staging folder a killed write left
    staging = temporary_name(folder)
    try:
        staging.mkdir()
        for name, content in files.items():
            try:
                _write_synced(staging / name, content)
            except OSError as e:  # a full disk: the staging folder goes, the folder is untouched
                raise write_error(folder / name, e, "it", kept=f"the folder {folder} is unchanged") from None
        _move_in(staging, folder, list(files), remove)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _write_synced(file, content):
    if callable(content):
        content(file)
    else:
        file.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    with open(file, "r+b") as f:
        os.fsync(f.fileno())


def _move_in(staging, folder, names, remove):
    """Put the staged files in place: the whole staging folder when there is no folder yet, else
    file by file, config.json removed first and put back last."""
    if not folder.exists():
        try:
            os.rename(staging, folder)
            sync_folder(folder.parent)
            return
        except OSError:  # the folder appeared meanwhile (another writer): move the files in one by one
            pass
    try:
        (folder / CONFIG_FILE).unlink(missing_ok=True)  # from here until the end the folder does not load
        sync_folder(folder)
        for name in names:
            if name != CONFIG_FILE:
                os.replace(staging / name, folder / name)
        for name in remove:
            if name not in names:
                (folder / name).unlink(missing_ok=True)
        if CONFIG_FILE in names:
            os.replace(staging / CONFIG_FILE, folder / CONFIG_FILE)
        sync_folder(folder)
    except OSError as e:  # a rename in one folder needs no space: this is rare (the folder's permissions changed)
        raise os_error(e.errno, f"{folder}: could not move the new files in ({e.strerror or e}); the folder has no "
                                f"{CONFIG_FILE} until it is written again, so nothing loads it") from None

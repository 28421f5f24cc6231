"""Checkpoints: one `.npz` file holding everything needed to sample from or resume a run.

Layout (a NumPy zip archive; `numpy.load(path)` opens it anywhere):
    meta               a JSON string: format name and version, the writer's `tinygrad_lm_version`,
                       model config, training config, tokenizer, step, best validation loss, RNG
                       states, optimizer hyperparameters and the scalar parts of its state
    model/<name>       one array per parameter, GPT-2 names (`transformer.h.0.attn.c_attn.weight`)
    optim/<i>/<key>    the optimizer's per-parameter arrays (AdamW's exp_avg, exp_avg_sq, ...)
Writing is atomic (files.py `atomic_write`): the archive goes to a temporary file in the same
folder, then `os.replace` puts it in place, so an interrupted write never leaves a half
checkpoint. A write that fails (a full disk) removes its temporary file and raises one OSError
naming the file and the reason; a write killed outright (kill -9) leaves `.NAME.tmpPID`, which
`remove_stale_temporaries` (files.py, re-exported here) clears once that process is gone.
Reading trusts nothing: a truncated, corrupted or foreign file, or metadata lacking a key the
reader asks for, is a ValueError naming the file; so is a checkpoint of a newer format than
VERSION ("written by a newer tinygrad_lm ...: upgrade", version.py).
Leaves out: sharded checkpoints and safetensors.
"""
import json
from pathlib import Path

import numpy as np

from .files import atomic_write, remove_stale_temporaries  # noqa: F401  (remove_...: importable from here too)
from .version import __version__, is_newer, newer_format

FORMAT = "tinygrad_lm-checkpoint"
VERSION = 1


def _split_state(tree, prefix, arrays):
    """Replace arrays inside a nested dict/list by placeholders, collecting them in `arrays`."""
    if isinstance(tree, dict):
        return {str(k): _split_state(v, f"{prefix}/{k}", arrays) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_split_state(v, f"{prefix}/{i}", arrays) for i, v in enumerate(tree)]
    if hasattr(tree, "shape") and hasattr(tree, "dtype") and not isinstance(tree, np.generic):
        arrays[prefix] = np.asarray(tree)  # any NumPy array, 0-d included (CuPy arrays arrive as NumPy copies)
        return {"__array__": prefix}
    if isinstance(tree, np.generic):
        return tree.item()
    return tree


def _join_state(tree, arrays):
    if isinstance(tree, dict):
        if set(tree) == {"__array__"}:
            return arrays[tree["__array__"]]
        return {k: _join_state(v, arrays) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_join_state(v, arrays) for v in tree]
    return tree


def save(path, model_state, optimizer_state=None, meta=None):
    """Write a checkpoint atomically.

    Args:
        path: destination file (".npz" recommended).
        model_state: name -> array (`model.state_dict()`).
        optimizer_state: `optimizer.state_dict()` or None.
        meta: JSON-serialisable dict (configs, tokenizer, step, RNG states, ...).
    Raises:
        OSError naming the file and the reason when it cannot be written (a full disk, a read-only
        folder); the previous file at `path`, if any, is then unchanged.
    """
    arrays = {f"model/{k}": np.asarray(v) for k, v in model_state.items()}
    optim_tree = _split_state(optimizer_state, "optim", arrays) if optimizer_state is not None else None
    header = {"format": FORMAT, "version": VERSION, "optimizer": optim_tree, **(meta or {}),
              "tinygrad_lm_version": __version__}  # this writer, even where `meta` came from an older file
    arrays["meta"] = np.array(json.dumps(header))
    atomic_write(path, lambda f: np.savez(f, **arrays), what="the checkpoint")


class Meta(dict):
    """A checkpoint's metadata: a dict whose missing keys are a ValueError naming the file."""

    def __init__(self, values, path):
        super().__init__(values)
        self.path = path

    def __missing__(self, key):
        writer = self.get("tinygrad_lm_version")
        by = (f"written by tinygrad_lm {writer}, this is {__version__}" if writer and writer != __version__
              else "written by another version of tinygrad_lm")
        raise ValueError(f"{self.path}: the checkpoint's metadata has no {key!r} entry ({by}, or damaged)")


CHECKPOINT_NAMES = ("best.npz", "ckpt.npz")  # what a run folder holds


def _checkpoints_hint(folder, lead="; pass "):
    """'; pass runs/x/best.npz or runs/x/ckpt.npz' when `folder` holds checkpoints, else ''."""
    found = [str(Path(folder) / n) for n in CHECKPOINT_NAMES if (Path(folder) / n).is_file()]
    return lead + " or ".join(found) if found else ""


def load(path):
    """Read a checkpoint written by `save`.

    Returns:
        (meta dict, model_state dict, optimizer_state or None).
    Raises:
        FileNotFoundError / ValueError naming the path when the file is missing, truncated,
        corrupted, or not a tinygrad_lm checkpoint.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such checkpoint file{_checkpoints_hint(path.parent)}")
    if path.is_dir():
        found = [path / name for name in CHECKPOINT_NAMES if (path / name).is_file()]
        if not found:
            names = " or ".join(CHECKPOINT_NAMES)
            raise IsADirectoryError(f"{path} is a folder with no checkpoint in it (no {names}); "
                                    "pass the checkpoint file of a run, e.g. runs/NAME/best.npz")
        raise IsADirectoryError(f"{path} is a folder; pass the checkpoint file in it: "
                                + " or ".join(str(f) for f in found))
    with open(path, "rb") as f:
        magic = f.read(4)
    if len(magic) == 4 and not magic.startswith(b"PK"):  # not a zip archive: some other file, not damage
        raise ValueError(f"{path} is not a checkpoint (a .npz archive written by train or finetune), but some other "
                         f"file{' (the run log)' if path.suffix == '.jsonl' else ''}; pass a checkpoint"
                         f"{_checkpoints_hint(path.parent, ' such as ') or ' file: ckpt.npz or best.npz of a run'}")
    try:
        with np.load(path, allow_pickle=False) as z:
            files = {k: z[k] for k in z.files}
    except Exception as e:  # zip, .npy header (even a SyntaxError from a flipped bit), EOF: all "corrupt"
        raise ValueError(f"{path} is not a readable checkpoint (truncated or corrupted?): "
                         f"{type(e).__name__}: {e}") from None
    if "meta" not in files:
        raise ValueError(f"{path} is not a tinygrad_lm checkpoint (no 'meta' entry)")
    try:
        meta = json.loads(str(files.pop("meta")))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: the checkpoint's metadata is corrupted: {e}") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: the checkpoint's metadata is corrupted (not a JSON object)")
    meta = Meta(meta, path)
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not a tinygrad_lm checkpoint (format {meta.get('format')!r})")
    version = meta.get("version")
    if is_newer(version, VERSION):
        raise newer_format(path, "checkpoint", version, VERSION, meta.get("tinygrad_lm_version"))
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= VERSION:
        raise ValueError(f"{path}: the checkpoint's format version is {version!r}, not a number from 1 to {VERSION} "
                         "(damaged metadata?)")
    model_state = {k[len("model/"):]: v for k, v in files.items() if k.startswith("model/")}
    optim_tree = meta.pop("optimizer", None)
    try:
        optim_state = _join_state(optim_tree, files) if optim_tree is not None else None
    except KeyError as e:
        raise ValueError(f"{path}: the optimizer state names array {e} that the file does not hold (damaged?)") from None
    return meta, model_state, optim_state

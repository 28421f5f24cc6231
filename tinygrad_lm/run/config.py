"""Run configuration: the settings both loops share, and one way to turn flat names into configs.

A run's config is a tree of dataclasses. `train.TrainConfig` nests the model's `GPTConfig`,
and both it and `finetune.FinetuneConfig` nest the two shared ones defined here:

    OptimConfig   how the weights move: batch size, steps, learning-rate schedule, AdamW, clipping
    RunConfig     how the run is carried out: evaluation and log cadence, run folder, seed,
                  device, the fast path (threads: "auto", every core, by default) or the reference
                  path, MPI ranks, quiet

Every setting is checked where a config is made (`__post_init__`, so `from_flat`, the command
line, TOML files and resumed checkpoints alike): numbers that must be finite, positive or in a
range (`--lr` > 0, `--min-lr` <= `--lr` for the cosine schedule, betas in [0, 1), ...), switches
that must be True or False, and paths, which may be `str` or `pathlib.Path` and are kept as `str`.
Each error names the setting, its value and the fix. `--warmup-iters` above `--max-iters` is
allowed: the warmup is capped at the run's length (loop.learning_rate).

Users never see the tree: every leaf field is one flat flag (`n_layer` -> `--n-layer`), so
`from_flat(TrainConfig, n_layer=2, lr=3e-3)` and the command line name settings the same way.
`add_flags` builds the argparse flags of either command from its dataclass, with one help
table (`HELP`) and each default shown; `describe` prints a config as the flags that, pasted
after the subcommand, give it back (`--reference`, `--no-bias`, paths quoted for the shell);
`from_dict(cls, asdict(cfg))` rebuilds a config from the plain dict that checkpoints store, and
`resumed` is the config a `--resume` continues with (the saved run's, plus the flags given with
it that are safe to change; a saved config this version's checks refuse is said to be so, and one
with min_lr above lr, which older versions ran flat at lr, resumes with min_lr = lr).

Config files: `--config run.toml` (added by `add_flags`, so both commands have it) reads any
setting from a TOML file, keyed by its flat name (`n_layer = 4` or `n-layer = 4`), at the top
level or inside a section table (`[model]`, `[optim]`, `[run]`); flags typed on the command
line win over the file, whatever their order. A key that is no setting, a value of the wrong
type, or a key in the wrong table is an error naming the key and the file. Paths in it are
relative to the current folder, as on the command line (not to the file). Settings read from
the file count as given (`given_flags`), exactly as if typed, so `--resume` checks them too.
TOML is read with the standard library's `tomllib` (Python 3.11+) or its backport `tomli`.
Leaves out: nanoGPT's `exec`-a-Python-file configurator, and several config files at once.
"""
import argparse
import math
import numbers
import os
import shlex
import sys
from dataclasses import dataclass, fields, is_dataclass, replace
from functools import reduce

from . import cores as _cores


@dataclass
class OptimConfig:
    batch_size: int = 12
    grad_accum: int = 1  # micro-batches of batch_size rows per optimizer step (nanoGPT's gradient_accumulation_steps)
    max_iters: int = 2000
    lr: float = 1e-3
    min_lr: float = 1e-4
    schedule: str = "cosine"  # "cosine" (warmup, then cosine to min_lr) or "constant" (warmup, then lr)
    warmup_iters: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0

    def __post_init__(self):
        _check_positive(self, "batch_size", "grad_accum", "max_iters")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        _check_real(self, "lr", "a finite number > 0", lambda v: 0 < v < math.inf,
                    "it is the peak learning rate: try --lr 1e-3")
        _check_real(self, "min_lr", "a finite number >= 0", lambda v: 0 <= v < math.inf,
                    "it is where the cosine schedule ends: try --min-lr 0, or a tenth of --lr")
        if not _is_int(self.warmup_iters) or self.warmup_iters < 0:
            raise ValueError(f"warmup_iters must be an integer >= 0, got {self.warmup_iters!r} (0: no warmup)")
        _check_real(self, "weight_decay", "a finite number >= 0", lambda v: 0 <= v < math.inf, "0: no decay")
        _check_real(self, "beta1", "a number in [0, 1)", lambda v: 0 <= v < 1, "AdamW's usual is --beta1 0.9")
        _check_real(self, "beta2", "a number in [0, 1)", lambda v: 0 <= v < 1,
                    "AdamW's usual is --beta2 0.99 (0.95 for large models)")
        _check_real(self, "grad_clip", ">= 0 (0 disables clipping) and finite", lambda v: 0 <= v < math.inf,
                    "try --grad-clip 1")
        if self.schedule == "cosine" and self.min_lr > self.lr:
            raise ValueError(f"min_lr {self.min_lr!r} is above lr {self.lr!r}: the cosine schedule would rise from "
                             f"--lr to --min-lr; pass --min-lr {self.lr / 10:g} (a tenth of --lr) or less, or "
                             "--schedule constant")


@dataclass
class RunConfig:
    eval_interval: int = 250
    log_interval: int = 10
    out_dir: str = "runs/default"
    seed: int = 1337
    device: str = "cpu"
    threads: object = "auto"  # the fast path: split each batch over this many CPU threads; "auto": every core (cores.py)
    reference: bool = False  # the textbook path: no fused kernels, no threads
    dist: str = None  # "mpi": data parallel over the ranks of `mpiexec -n N` (distributed.py)
    all_ranks_print: bool = False  # over MPI, every rank prints its progress (rank 0 alone by default)
    tf32: bool = False  # CUDA float32 matmuls on TF32 tensor cores (fast/cuda/tf32.py)
    diagnostics: bool = False  # log gradient norms, update/data ratios and block activations (run/diagnostics.py)
    quiet: bool = False

    def __post_init__(self):
        _check_positive(self, "eval_interval", "log_interval")
        check_paths(self, "out_dir", required=("out_dir",))
        check_switches(self)
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {self.device!r}")
        if not _is_int(self.seed) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0 (NumPy's generators take no negative seeds), "
                             f"got {self.seed!r}")
        if not _cores.valid(self.threads):
            raise ValueError(f"threads={self.threads!r}: --threads takes {_cores.ACCEPTED} (N splits each batch "
                             "over N CPU threads; auto, the default, over every core this process may use)")
        split = self.threads != _cores.AUTO and self.threads > 1  # "auto" means 1 where threads cannot be used
        if split and self.reference:
            raise ValueError(f"--reference runs the plain textbook step on one thread; drop --threads "
                             f"{self.threads}, or drop --reference to split batches over threads")
        if self.tf32 and self.device != "cuda":
            raise ValueError("--tf32 makes CUDA matmuls use TF32 tensor cores; it needs --device cuda")
        if self.dist not in (None, "mpi"):
            raise ValueError(f"dist={self.dist!r}: the only distributed backend is 'mpi' (launch with mpiexec -n N)")
        if split and self.device != "cpu":
            raise ValueError(f"threads={self.threads} splits batches across CPU threads; on {self.device} use "
                             "--threads 1 (the GPU already runs each op in parallel)")



# what may change when a run is resumed: where and how it runs, never what it computes
RUN_SETTINGS = ("out_dir", "device", "threads", "reference", "dist", "all_ranks_print", "tf32", "quiet")
# what a resumed run may change too, when asked: where it stops (the cosine schedule then ends at
# the new max_iters, and its floor is min_lr), how often it evaluates, logs and samples, and whether it
# logs diagnostics (a resumed run keeps the saved setting unless --diagnostics or --no-diagnostics is given)
RESUMABLE = ("max_iters", "min_lr", "eval_interval", "log_interval", "eval_iters", "eval_batch_size", "sample_tokens",
             "diagnostics", "max_new_tokens")


def resumed(saved, current, where="checkpoint", given=None, step=0):
    """The config a resumed run continues with, and notes on what changed.

    The saved run's config (`saved`, the dict a checkpoint holds), with the RUN_SETTINGS (where
    and how it runs) taken from `current`. Of the other settings, those named in `given` (the
    flags the user typed; None: every setting of `current`) that differ from the saved run's
    are applied when they are RESUMABLE, and refused by name otherwise: a resumed run must
    compute what the saved run would have.

    Args:
        saved: the nested dict of the saved config.
        current: the config asked for now (its class is the result's).
        where: the file and key `saved` came from, for errors.
        given: flat names given explicitly, or None.
        step: the step the run resumes at (max_iters may not go below it).
    Returns:
        (config, notes): notes are lines such as "--max-iters 2000 -> 4000 ...".
    """
    _check_keys(type(current)(), saved, where)
    saved, notes = _legacy(type(current), saved)
    try:
        cfg = _build(type(current)(), saved)
    except ValueError as e:  # a value an older version accepted and this one refuses (an lr of 0)
        raise ValueError(f"{where}: the saved run's settings are refused by this version of tinygrad_lm ({e}); "
                         "such a run cannot be resumed: start a new run (another --out-dir, or --overwrite)") from None
    old, new = flat_dict(cfg), flat_dict(current)
    names = sorted(new) if given is None else [name for name in given if name in new]
    changes = {name: new[name] for name in names if name not in RUN_SETTINGS and new[name] != old[name]}
    refused = [name for name in changes if name not in RESUMABLE]
    if refused:
        shown = ", ".join(f"{_flag(n)} {new[n]!r} (the run has {old[n]!r})" for n in refused)
        allowed = ", ".join(_flag(n) for n in RESUMABLE if n in new)  # this command's flags only
        raise ValueError(f"--resume continues the saved run as it was, but {shown} would change what it computes; "
                         f"a resumed run may change only {allowed} and where it runs. To train differently, start "
                         "a new run (another --out-dir, or --overwrite)")
    if changes.get("max_iters", step) < step:
        raise ValueError(f"--max-iters {changes['max_iters']} is below step {step}, where the saved run stands")
    notes += [f"{_flag(n)} {old[n]!r} -> {changes[n]!r}"
              + (" (the learning-rate schedule now ends there)" if n == "max_iters" else "") for n in changes]
    return with_flat(cfg, **{name: new[name] for name in (*RUN_SETTINGS, *changes)}), notes


def _legacy(cls, saved):
    """(saved, notes): a saved config whose min_lr is above its lr (accepted before min_lr <= lr
    was checked) with min_lr set to lr: the same schedule, since learning_rate floors min_lr at
    lr. Other saved configs come back unchanged."""
    optim = saved.get("optim") if "min_lr" in {name for name, *_ in flat_fields(cls)} else None
    if not (isinstance(optim, dict) and optim.get("schedule", "cosine") == "cosine"):
        return saved, []
    lr, min_lr = optim.get("lr"), optim.get("min_lr")
    if not (isinstance(lr, numbers.Real) and isinstance(min_lr, numbers.Real) and min_lr > lr):
        return saved, []
    note = f"--min-lr {min_lr!r} -> {lr!r} (saved above --lr, which the schedule floored it at: the same schedule)"
    return {**saved, "optim": {**optim, "min_lr": lr}}, [note]


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _flag(name):
    """The command-line flag of a flat name: n_layer -> --n-layer."""
    return "--" + name.replace("_", "-")


def _check_positive(cfg, *names):
    for name in names:
        value = getattr(cfg, name)
        if not _is_int(value) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}; pass {_flag(name)} 1 or more")


def _check_real(cfg, name, what, ok, fix):
    """Raise ValueError naming the setting, its value and `fix` unless it is a real number (not a
    bool, not a string) for which `ok` holds (NaN fails every comparison, so `ok` refuses it)."""
    value = getattr(cfg, name)
    if not (isinstance(value, numbers.Real) and not isinstance(value, bool) and ok(value)):
        raise ValueError(f"{name} must be {what}, got {value!r}; {fix}")


def check_paths(cfg, *names, required=()):
    """The path settings `names` of `cfg` as `str`: a `pathlib.Path` (any os.PathLike) is turned
    into its string, so configs given either kind are equal and checkpoints can store them as
    JSON. None is no path, unless the setting is `required`; an empty string (which would mean
    the current folder) and any other type are refused by name."""
    for name in names:
        value = getattr(cfg, name)
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
            setattr(cfg, name, value)
        if value is None and name not in required:
            continue
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a path (str or pathlib.Path), got {value!r}")
        if not value:
            raise ValueError(f"{name} is an empty path; give {_flag(name)} a file or folder name, or leave it out")


def check_switches(cfg):
    """Every bool field of the dataclass `cfg` (its own, not its sections') must hold True or False:
    a string such as "no" would count as true."""
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if f.type is bool and not isinstance(value, bool):
            raise ValueError(f"{f.name} must be True or False, got {value!r}; on the command line, "
                             f"{_flag(f.name)} or --no-{f.name.replace('_', '-')}")


def from_dict(cls, values, where="config"):
    """The config `cls` from a nested dict such as `dataclasses.asdict(cfg)` (checkpoints store that).

    Missing fields keep the defaults `cls()` gives them. A missing section (the flat dicts of
    checkpoints written before the configs were nested) or an unknown key is a ValueError
    naming `where`.
    """
    _check_keys(cls(), values, where)
    return _build(cls(), values)


def _check_keys(default, values, where):
    subs = _sections(default)
    unknown = sorted(set(values) - {f.name for f in fields(default)})
    missing = [name for name in subs if name not in values]
    if missing or unknown:
        old = (" (a checkpoint written by an older tinygrad_lm, whose configs were flat, cannot be resumed: "
               "start a new run; its weights still load with load_model)") if missing else ""
        raise ValueError(f"{where}: not a {type(default).__name__}: missing sections {missing}, unknown keys "
                         f"{unknown}{old}")
    for name in subs:
        _check_keys(getattr(default, name), values[name], f"{where}.{name}")


def _build(default, tree):
    """The config instance `default` with the values of the nested dict `tree` put in (validated)."""
    subs = _sections(default)
    return replace(default, **{name: _build(getattr(default, name), value) if name in subs else value
                               for name, value in tree.items()})


def _sections(cfg):
    """The names of the fields of `cfg` that are configs themselves (model, optim, run)."""
    return [f.name for f in fields(cfg) if is_dataclass(getattr(cfg, f.name))]


def flat_fields(cls):
    """[(name, path, default, section class)] of every leaf field of `cls`, sections walked in order.

    `path` is the tuple of attribute names from the top config to the field and `name` the
    leaf's own name: the flat name users type. Paths in the class attribute `NOT_FLAGS` are left
    out (TrainConfig's model vocab_size, which the tokenizer decides).
    """
    out = []

    def walk(instance, path):
        for f in fields(instance):
            value = getattr(instance, f.name)
            if is_dataclass(value):
                walk(value, path + (f.name,))
            elif path + (f.name,) not in getattr(cls, "NOT_FLAGS", ()):
                out.append((f.name, path + (f.name,), value, type(instance)))

    walk(cls(), ())
    names = [name for name, *_ in out]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise TypeError(f"{cls.__name__}: two settings share a flat name: {twice}")
    return out


def from_flat(cls, **values):
    """The config `cls` with leaf fields set by their flat names: `from_flat(TrainConfig, n_layer=2)`.

    The names are the command line's (`--n-layer` is n_layer). An unknown name is a TypeError,
    as a dataclass gives; the other fields keep their defaults (each section's own defaults).
    """
    return with_flat(cls(), **values)


def with_flat(cfg, **values):
    """A copy of the config `cfg` with the leaf fields named (by flat name) in `values` replaced,
    validated as `from_flat` validates; every other field keeps `cfg`'s value."""
    paths = {name: path for name, path, _, _ in flat_fields(type(cfg))}
    unknown = sorted(set(values) - set(paths))
    if unknown:
        raise TypeError(f"{type(cfg).__name__} has no setting(s) {unknown}")
    tree = {}
    for name, value in values.items():
        node = tree
        for key in paths[name][:-1]:
            node = node.setdefault(key, {})
        node[name] = value
    return _build(cfg, tree)


def flat_dict(cfg):
    """{flat name: value} of a config: the inverse of `from_flat`."""
    return {name: reduce(getattr, path, cfg) for name, path, _, _ in flat_fields(type(cfg))}


# ---- flags: one table of help texts for both commands
HELP = {
    # pretraining data
    "data": {"train": "UTF-8 text file to train on (default: the built-in corpus of Python's own docstrings)",
             "finetune": "training JSONL file, one {\"text\": ..., \"label\": ...} object per line "
                         "(--task generate: {\"prompt\": ..., \"completion\": ...})"},
    "tokenizer": "char (one token per character) or bpe (byte-level BPE, GPT-4 split pattern)",
    "vocab_size": "BPE vocabulary size (ignored for char)",
    "tokenizer_file": "a tokenizer saved by `tokenize --save` (BPE or char) to use instead of training one; "
                      "--tokenizer and --vocab-size are then ignored (default: train one)",
    "tokens": "a token file written by `tokenize --encode-to` (or encode_file) to train on instead of --data; "
              "needs the --tokenizer-file that wrote it (default: tokenize the text of --data)",
    "objective": "clm (causal LM: a GPT predicts the next token) or mlm (masked LM: a BERT encoder of the same "
                 "size predicts 15% of the tokens, masked; the tokenizer gains [CLS] [SEP] [MASK] [PAD])",
    "init_from": "a Hugging Face GPT-2 folder (config.json, model.safetensors, vocab.json, merges.txt) to fine-tune: "
                 "its size, weights and tokenizer are used; --block-size crops its context, --dropout applies "
                 "(default: random weights)",
    # the model (GPTConfig)
    "block_size": "context length T in tokens",
    "n_layer": "number of Transformer blocks",
    "n_head": "attention heads per block",
    "n_embd": "embedding width C",
    "dropout": {"train": "dropout probability (0 disables)",
                "finetune": "dropout probability (default: the checkpoint's)"},
    "bias": "use biases in Linear and LayerNorm layers",
    "pos_encoding": "learned (GPT-2) or sinusoidal (Vaswani et al.) position encodings",
    "tie_weights": "share the token embedding with the output layer",
    # fine-tuning data and starting point
    "task": "classify (a classifier head on {\"text\", \"label\"} lines) or generate (the language model learns "
            "{\"prompt\", \"completion\"} lines, with loss on the completion only, and is scored by exact match, "
            "BLEU and chrF of its greedy completions)",
    "truncate": "--task generate: cut a prompt that does not fit the context from the left (its first tokens); "
                "without it such an example is an error naming its line",
    "max_new_tokens": "--task generate: tokens decoded per validation prompt (default: the longest completion + 10)",
    "ckpt": "pretrained checkpoint (best.npz or ckpt.npz of a `train` run, GPT or --objective mlm); its tokenizer "
            "and size are used",
    "val": "validation JSONL file (default: hold out --val-fraction of --data)",
    "test": "test JSONL file, evaluated once at the end with the best-validation weights (default: none)",
    "val_fraction": "share of --data held out for validation when --val is not given",
    "init": "pretrained (load the checkpoint's body) or scratch (same size and tokenizer, random weights)",
    "freeze_body": "train only the classifier head (a linear probe of the pretrained features)",
    "unknown_chars": "char tokenizers: error on a character the checkpoint never saw, or drop it",
    "pooling": "GPT checkpoints: last (the last real token's hidden state, as GPT-2) or mean (average over real "
               "tokens); MLM checkpoints: cls ([CLS] through the pooler, as BERT) (default: last for GPT, cls for MLM)",
    # optimisation (OptimConfig)
    "batch_size": {"train": "sequences per step B", "finetune": "examples per step (right-padded to the longest)"},
    "grad_accum": "micro-batches of --batch-size rows per optimisation step (gradient accumulation): the "
                  "update of one batch grad_accum times larger, in the memory of one micro-batch",
    "max_iters": "optimisation steps",
    "lr": "peak learning rate (after warmup)",
    "min_lr": "final learning rate of the cosine schedule",
    "schedule": "cosine (warmup, then cosine to --min-lr) or constant (warmup, then --lr)",
    "warmup_iters": "linear warmup steps (capped at max_iters)",
    "weight_decay": "AdamW decoupled weight decay on matrices",
    "beta1": "AdamW beta1",
    "beta2": "AdamW beta2",
    "grad_clip": "clip the global gradient norm to this (0 disables)",
    # evaluation, logging, checkpoints (RunConfig and the loops' own)
    "eval_interval": "evaluate and checkpoint every N steps",
    "eval_iters": "batches per split in each evaluation",
    "eval_batch_size": "examples per evaluation batch",
    "log_interval": "print a progress line every N steps",
    "out_dir": "run folder for ckpt.npz, best.npz and log.jsonl",
    "seed": {"train": "random seed (init, dropout, batches)", "finetune": "random seed (head init, dropout, "
                                                                          "batch order)"},
    "device": "cpu or cuda (cuda needs CuPy: pip install -e .[gpu])",
    "dtype": "float32 or float64",
    "threads": "CPU threads each batch is split over (the same gradients, up to float rounding): N, or auto for "
               "every core this process may run on, at most one per row of a micro-batch, shared by the MPI ranks "
               "on this host; 1 with --reference or --device cuda (run/cores.py)",
    "reference": "run the plain textbook layers (the code to read) instead of the fused fast path; same "
                 "losses within float32 noise, slower",
    "dist": "mpi: data parallel over the processes of `mpiexec -n N` (pip install -e .[dist]); each rank takes "
            "its rows of every batch, --batch-size stays the global batch (default: one process)",
    "all_ranks_print": "with --dist mpi, every rank prints its progress lines, prefixed with its rank (by default "
                       "rank 0 alone prints)",
    "tf32": "CUDA only: float32 matmuls on TF32 tensor cores (Ampere and later): faster, about 1e-3 relative error "
            "per product instead of 1e-7; off by default",
    "sample_tokens": "tokens to sample after training (0 skips)",
    "diagnostics": "at every logged step also log each parameter's gradient norm (after clipping) and update/data "
                   "ratio ||dw||/||w||, and each block's output mean/std and GELU saturation, to log.jsonl; "
                   "draw them with `plot RUN --diagnostics`",
    "quiet": "print nothing but errors",
}
CHOICES = {"tokenizer": ["char", "bpe"], "pos_encoding": ["learned", "sinusoidal"], "dtype": ["float32", "float64"],
           "device": ["cpu", "cuda"], "init": ["pretrained", "scratch"], "pooling": ["last", "mean", "cls"],
           "schedule": ["cosine", "constant"], "unknown_chars": ["error", "drop"], "dist": ["mpi"], "objective": ["clm", "mlm"],
           "task": ["classify", "generate"]}
# fields whose default (None) does not show their type
TYPES = {"dropout": float, "val_fraction": float, "pooling": str, "max_new_tokens": int}
# fields whose values are not of one type: their argparse type, which also reads their TOML values
PARSERS = {"threads": _cores.parse}
SECTIONS = {"GPTConfig": "model", "OptimConfig": "optimisation", "RunConfig": "evaluation, checkpoints and the run"}


def _kind(name, default):
    """The type a setting's values have: its default's (str where that is None), or TYPES'."""
    return TYPES.get(name) or (str if default is None else type(default))


def add_flags(parser, cls, command, required=()):
    """Add one flag per flat setting of the config `cls` (`--n-layer` for n_layer), plus --config,
    --resume and --overwrite.

    Args:
        parser: an argparse parser (a subcommand's).
        cls: the config dataclass; its (nested) defaults are the flags' defaults, and each
            nested section (model, optimisation, run) is one group in `--help`.
        command: "train" or "finetune", to pick the help text where the two differ.
        required: flat names the user must give (on the command line or in the --config file).
    """
    groups = {title: parser.add_argument_group(title) for title in SECTIONS.values()}  # --help skips empty ones
    for name, _, default, section in flat_fields(cls):
        target = groups.get(SECTIONS.get(section.__name__), parser)
        text = HELP.get(name, name)
        text = text[command] if isinstance(text, dict) else text
        if name in required:
            text += " (required)"
        elif default is not None:  # a None default is a missing value: the help text says what that means
            text += f" (default: {default})"
        help_text = text.replace("%", "%%")
        if isinstance(default, bool):
            target.add_argument(_flag(name), action=_given(argparse.BooleanOptionalAction), default=default,
                                help=help_text)
        else:
            target.add_argument(_flag(name), action=_given(argparse._StoreAction),
                                type=PARSERS.get(name) or _kind(name, default),
                                default=default, choices=CHOICES.get(name), help=help_text)
    parser.add_argument("--config", metavar="FILE.toml", action=_ConfigFile, cls=cls,
                        help="read settings from a TOML file: any flag as a key (n_layer = 4), at the top level or "
                             "in [model], [optim], [run] tables; flags on the command line override it")
    parser.add_argument("--resume", action="store_true",
                        help="continue bit-for-bit from OUT_DIR/ckpt.npz (with more --max-iters to extend it)")
    parser.add_argument("--overwrite", action="store_true",
                        help="start over in an OUT_DIR that holds a run (its ckpt.npz, best.npz, log.jsonl are deleted)")
    parser.set_defaults(required_settings=tuple(required))


def read_toml(path):
    """The dict of a TOML file (tomllib, or the tomli backport before Python 3.11); errors name the file."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise ImportError("reading --config files on Python 3.10 needs the tomli backport: pip install tomli") \
                from None
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such config file; pass the path of a TOML file") from None
    except IsADirectoryError:
        raise IsADirectoryError(f"{path} is a folder; pass the path of a TOML file") from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path} is not valid TOML: {e}") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8") from None


def settings_from_toml(cls, path):
    """{flat name: value} of the TOML file at `path` for the config `cls`.

    Keys are flat names with underscores or dashes, at the top level or inside a table named
    after the section holding them (`[model]`, `[optim]`, `[run]`; the command's own settings,
    such as eval_iters, in any table). Values keep TOML's types: an
    int setting takes an integer, a float setting a number, a str setting a string, a switch
    true or false. Raises ValueError naming the key and the file for anything else.
    """
    table = read_toml(path)
    fields_ = {name: (p, default) for name, p, default, _ in flat_fields(cls)}
    sections = {p[0] for p, _ in fields_.values() if len(p) > 1}
    out = {}

    def put(key, value, section=None):
        name = key.replace("-", "_")
        where = f"{path}: " + (f"[{section}] " if section else "") + f"key {key!r}"
        if name not in fields_:
            close = [n for n in fields_ if n.startswith(name[:4])][:3]
            raise ValueError(f"{where} is not a setting" + (f" (did you mean {', '.join(close)}?)" if close else "")
                             + "; the keys are the flags' names, as `--help` lists them")
        setting_path, default = fields_[name]
        if section is not None and len(setting_path) > 1 and setting_path[0] != section:
            raise ValueError(f"{where} belongs in [{setting_path[0]}], not in [{section}]")
        if name in out:
            raise ValueError(f"{where} is set twice")
        out[name] = _toml_value(name, default, value, where)

    for key, value in table.items():
        if isinstance(value, dict) and key in sections:
            for sub_key, sub_value in value.items():
                put(sub_key, sub_value, key)
        else:
            put(key, value)
    return out


def _toml_value(name, default, value, where):
    """`value` checked against the setting's type (and choices); floats accept TOML integers."""
    if name in PARSERS:
        try:
            return PARSERS[name](value)
        except argparse.ArgumentTypeError as e:
            raise ValueError(f"{where}: {e}") from None
    kind = _kind(name, default)
    if kind is float and _is_int(value):
        value = float(value)
    if not (_is_int(value) if kind is int else isinstance(value, kind)):  # a bool is no int here, nor a float
        raise ValueError(f"{where}: {value!r} is not a{'n' if kind is int else ''} {kind.__name__}"
                         + (" (true or false)" if kind is bool else ""))
    if name in CHOICES and value not in CHOICES[name]:
        raise ValueError(f"{where}: {value!r} is not one of {CHOICES[name]}")
    return value


class _ConfigFile(argparse.Action):
    """`--config FILE`: put the file's settings into the namespace, except those typed on the
    command line (before or after --config); they count as given, as typed flags do."""

    def __init__(self, option_strings, dest, cls=None, **kwargs):
        self.cls = cls
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        if getattr(namespace, "config_settings", None) is not None:
            raise argparse.ArgumentError(self, "give one --config file")
        try:
            settings = settings_from_toml(self.cls, values)
        except (OSError, ValueError, ImportError) as e:
            raise argparse.ArgumentError(self, str(e)) from None
        typed = getattr(namespace, "given", set())
        for name, value in settings.items():
            if name not in typed:
                setattr(namespace, name, value)
        namespace.config_settings = settings
        setattr(namespace, self.dest, values)


def _given(action):
    """`action` that also records its setting's name in `namespace.given`: the flags the user
    typed, which `--resume` compares with the saved run (a default is not a request)."""
    class Given(action):
        def __call__(self, parser, namespace, values, option_string=None):
            namespace.given = getattr(namespace, "given", set()) | {self.dest}
            super().__call__(parser, namespace, values, option_string)
    return Given


def given_flags(args):
    """The flat names of the settings given on the command line or in its --config file."""
    return set(getattr(args, "given", set())) | set(getattr(args, "config_settings", None) or ())


def from_args(cls, args):
    """The config `cls` from parsed flags (the settings `add_flags` added, and its --config file's).

    A required setting (add_flags' `required`) given neither way is a ValueError naming the flag.
    """
    missing = [n for n in getattr(args, "required_settings", ()) if getattr(args, n, None) is None]
    if missing:
        raise ValueError(f"{', '.join(map(_flag, missing))} must be given (on the command "
                         "line, or as a key of the --config file)")
    return from_flat(cls, **{name: getattr(args, name) for name, *_ in flat_fields(cls)})


def describe(cfg, defaults=None):
    """One line of the settings of `cfg` that differ from `defaults` (those of `type(cfg)()`),
    as flags: what a run's start prints, so that its effective config is on record.

    What follows "config:" is shell words: pasted after the subcommand, they give the same
    config (a switch as `--reference` or `--no-bias`, a value quoted where the shell would split
    it), and the note after them is a shell comment.
    """
    now, base = flat_dict(cfg), flat_dict(defaults if defaults is not None else type(cfg)())
    changed = [_as_flag(n, now[n]) for n in now if now[n] != base[n]]
    return "config: " + " ".join(changed) + ("  # every other setting at its default" if changed else
                                             " # every setting at its default")


def _as_flag(name, value):
    """The command-line words setting `name` to `value`: --reference, --no-bias, --data 'my file.txt'."""
    if isinstance(value, bool):
        return _flag(name) if value else "--no-" + name.replace("_", "-")
    return f"{_flag(name)} {shlex.quote(str(value))}"


__all__ = ["OptimConfig", "RunConfig", "RUN_SETTINGS", "check_paths", "check_switches", "resumed", "from_dict",
           "from_flat", "flat_dict", "flat_fields", "add_flags", "from_args", "given_flags", "describe", "read_toml",
           "settings_from_toml", "HELP"]

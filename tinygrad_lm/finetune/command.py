"""The `finetune` subcommand of `python -m tinygrad_lm`: its flags and what it runs.

Every flag maps one-to-one onto a field of `FinetuneConfig` (`--max-iters` sets `max_iters`),
so the dataclass holds the defaults and `--help` lists them all; `cli.py` only registers the
subcommand. Errors a user can fix (bad JSONL line, unknown label, missing checkpoint) are
ValueError/FileNotFoundError, which `cli.main` prints as one line with exit status 2.
Leaves out: a `classify` command for new texts (use `load_classifier` and `predict`).
"""
import argparse
from dataclasses import MISSING, fields

from .loop import FinetuneConfig

HELP = {
    "ckpt": "pretrained GPT checkpoint (best.npz or ckpt.npz of a `train` run); its tokenizer and size are used",
    "data": "training JSONL file, one {\"text\": ..., \"label\": ...} object per line",
    "val": "validation JSONL file (default: hold out --val-fraction of --data)",
    "test": "test JSONL file, evaluated once at the end with the best-validation weights",
    "val_fraction": "share of --data held out for validation when --val is not given",
    "init": "pretrained (load the checkpoint's body) or scratch (same size and tokenizer, random weights)",
    "freeze_body": "train only the classifier head (a linear probe of the pretrained features)",
    "unknown_chars": "char tokenizers: error on a character the checkpoint never saw, or drop it",
    "dropout": "dropout probability (default: the checkpoint's)",
    "pooling": "last (the last real token's hidden state, as GPT-2) or mean (average over real tokens)",
    "batch_size": "examples per step (right-padded to the longest)",
    "max_iters": "optimisation steps",
    "lr": "peak learning rate (after warmup)",
    "min_lr": "final learning rate of the cosine schedule",
    "schedule": "cosine (warmup, then cosine to --min-lr) or constant (warmup, then --lr)",
    "warmup_iters": "linear warmup steps",
    "weight_decay": "AdamW decoupled weight decay on matrices",
    "beta1": "AdamW beta1",
    "beta2": "AdamW beta2",
    "grad_clip": "clip the global gradient norm to this (0 disables)",
    "eval_interval": "evaluate on the validation set and checkpoint every N steps",
    "eval_batch_size": "examples per evaluation batch",
    "log_interval": "print a progress line every N steps",
    "out_dir": "run folder for ckpt.npz, best.npz and log.jsonl",
    "seed": "random seed (head init, dropout, batch order)",
    "device": "cpu or cuda (cuda needs CuPy)",
    "threads": "CPU threads: >1 splits each batch across threads (the same gradients, faster on a multi-core CPU)",
    "quiet": "print nothing but errors",
}
CHOICES = {"init": ["pretrained", "scratch"], "pooling": ["last", "mean"], "schedule": ["cosine", "constant"],
           "unknown_chars": ["error", "drop"], "device": ["cpu", "cuda"]}
TYPES = {"dropout": float}  # fields whose default (None) does not show their type


def add_arguments(parser):
    """Add one flag per FinetuneConfig field, plus --resume, to an argparse parser."""
    for f in fields(FinetuneConfig):
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not MISSING else None
        help_text = f"{HELP[f.name]} (default: {default})"
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_text)
        else:
            kind = TYPES.get(f.name) or {int: int, float: float}.get(type(default), str)
            parser.add_argument(flag, type=kind, default=default, choices=CHOICES.get(f.name),
                                required=f.name in ("ckpt", "data"), help=help_text)
    parser.add_argument("--resume", action="store_true", help="continue bit-for-bit from OUT_DIR/ckpt.npz")


def run(args):
    """Build the FinetuneConfig from parsed flags and run `finetune`."""
    from .loop import finetune

    cfg = FinetuneConfig(**{f.name: getattr(args, f.name) for f in fields(FinetuneConfig)})
    result = finetune(cfg, resume=args.resume)
    if not result["interrupted"]:
        print(f"fine-tuned classifier in {result['out_dir']}/best.npz (load it with "
              "tinygrad_lm.finetune.load_classifier)")
    return result

"""The `finetune` subcommand of `python -m tinygrad_lm`: its flags and what it runs.

Every flag is one setting of `FinetuneConfig` under its flat name (`--max-iters` sets
`optim.max_iters`), built by `config.add_flags` as the `train` command's are, so the dataclasses
hold the defaults and `--help` lists them all; `cli.py` only registers the subcommand. Errors a
user can fix (bad JSONL line, unknown label, missing checkpoint) are ValueError/FileNotFoundError,
which `cli.main` prints as one line with exit status 2.
Leaves out: a `classify` command for new texts (use `load_classifier` and `predict`).
"""
from .config import add_flags, from_args, given_flags
from .finetune import FinetuneConfig


def add_arguments(parser):
    """Add one flag per FinetuneConfig setting, plus --resume, to an argparse parser."""
    add_flags(parser, FinetuneConfig, "finetune", required=("ckpt", "data"))


def run(args):
    """Build the FinetuneConfig from parsed flags and run `finetune`."""
    from .finetune import finetune

    if args.dist:  # join the MPI job first, so that even a bad flag ends every rank with one message
        from .. import distributed

        distributed.init(args.device)
    result = finetune(from_args(FinetuneConfig, args), resume=args.resume, overwrite=args.overwrite,
                      given=given_flags(args))
    if not result["interrupted"] and result["writer"]:
        print(f"fine-tuned classifier in {result['out_dir']}/best.npz (load it with "
              "tinygrad_lm.finetune.load_classifier)")
    return result

"""The command line: `python -m tinygrad_lm {train,sample,tokenize,finetune,evaluate,data,export,plot,attention,
bench} ...` (also installed as the `tinygrad-lm` console script).

Every `train` flag is one setting of the nested `train.TrainConfig` under its flat name
(`--n-layer` sets `model.n_layer`, `--lr` sets `optim.lr`), and every `finetune` flag one of
`finetune.FinetuneConfig`, both built by `config.add_flags`, so the dataclasses are the single
source of defaults and `--help` lists them all. `--reference` runs the textbook layers instead
of the fast path. `--threads auto` (the default of train and finetune) splits each batch over every
core this process may run on (run/cores.py); `bench --threads` means the same (its BLAS threads are
`--blas-threads`).
`finetune --task generate` fine-tunes a GPT on {"prompt", "completion"} lines (finetune_generate.py);
`sample --ckpt` on its checkpoint stops at the end-of-completion token.
`train --objective mlm` pretrains a BERT encoder instead of a GPT (mlm.py, bert.py); `sample` and
`export` refuse its checkpoints with a message (run/train.py load_model: an encoder does not generate;
`finetune` takes them).
Hugging Face GPT-2 folders: `sample --hf FOLDER` samples from one, `train --init-from FOLDER`
fine-tunes one, `export --ckpt CKPT --hf-dir FOLDER` writes a checkpoint as one (hf/gpt2.py).
`train --config run.toml` and `finetune --config run.toml` read settings from a TOML file
(config.py); flags on the command line override it.
`tokenize --save tok.model --encode-to train.bin` writes what `train --tokenizer-file tok.model
--tokens train.bin` reads. `sample --start FILE` takes the prompt from a file, `--unknown-chars
drop` drops prompt characters a char-level vocabulary lacks, `--num-samples N` prints N samples.
`attention --ckpt CKPT --text "..." --out attn.png` draws a GPT's or BERT's attention maps and
prints its head patterns (attention_maps.py, viz/attention.py).
`evaluate --ckpt CKPT --data FILE` scores a checkpoint without training: sliding-window perplexity
of a text (GPT, or `--hf FOLDER`), masked-token loss and accuracy (BERT), or accuracy, macro-F1
and the confusion matrix on labelled JSONL (classifier) (evaluate.py).
Errors a user can fix (missing file, bad UTF-8, too-short corpus, bad checkpoint, out of memory)
print one line naming the problem and exit with status 2, never a traceback. Flags are taken
exactly as typed (no abbreviations), and a mistyped one gets the subcommand's usage and the
nearest valid flag (run/flags.py). Numbers are checked at the door: here (argparse types) and in
the configs' __post_init__ (config.py), before any data is read.
Over MPI (`mpiexec -n N ... --dist mpi`), an error on any rank ends every rank with one message.
`train` and `finetune` go on when stdout or stderr is closed (`train ... | head -3`, a terminal
that went away): the printing stops (streams.py), the run, its log.jsonl and checkpoints do not.
Leaves out: several config files at once, interactive sampling, and a `classify` command for new
texts (use `run/finetune.py`'s `load_classifier` and `predict`).
"""
import argparse
import math
import os
import sys
from pathlib import Path


def build_parser():
    from . import cores
    from .config import add_flags
    from .finetune import FinetuneConfig
    from .flags import Parser  # exact flags only; a typo's error names the nearest flag
    from .train import TrainConfig

    parser = Parser(prog="tinygrad-lm", description="Pretrain, sample from and fine-tune small GPTs.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="pretrain a GPT (default: built-in corpus, a few minutes on a laptop CPU), or "
                                     "a BERT encoder with --objective mlm",
                       description="Pretrain a GPT, evaluate it, checkpoint it and print a sample; with --objective "
                                   "mlm, a BERT encoder on masked tokens (no sample: fine-tune it instead).")
    add_flags(p, TrainConfig, "train")  # every setting as a flat flag, plus --resume

    p = sub.add_parser("sample", help="sample text from a checkpoint or a Hugging Face GPT-2 folder",
                       description="Generate text from a checkpoint or a Hugging Face GPT-2 folder.")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--ckpt", help="checkpoint file (ckpt.npz or best.npz of a run)")
    source.add_argument("--hf", metavar="FOLDER", help="Hugging Face GPT-2 folder: config.json, model.safetensors "
                        "and the tokenizer's vocab.json + merges.txt (needs pip install safetensors)")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--prompt", default="", help="text to continue (default: a newline)")
    start.add_argument("--start", metavar="FILE", default=None,
                       help="read the text to continue from this UTF-8 file (nanoGPT's --start=FILE:...)")
    p.add_argument("--unknown-chars", choices=["error", "drop"], default="error",
                   help="char-level checkpoints: a prompt character outside the vocabulary is an error, or is "
                        "dropped (the count dropped is reported) (default: error)")
    p.add_argument("--max-new-tokens", type=_count(0), default=300, help="tokens to generate (default: 300)")
    p.add_argument("--temperature", type=_finite(0), default=0.8, help="softmax temperature; 0 is greedy (default: "
                   "0.8)")
    p.add_argument("--top-k", type=_count(1), default=None, help="sample among the k most likely tokens only "
                   "(default: all tokens)")
    p.add_argument("--num-samples", type=_count(1), default=1, help="independent samples to print, each under a "
                   "header line (default: 1)")
    p.add_argument("--seed", type=_count(0), default=None, help="seed for reproducible samples")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="cpu or cuda (default: cpu)")
    p.add_argument("--no-kv-cache", dest="kv_cache", action="store_false",
                   help="recompute the whole context for every token (slower; the same tokens)")
    p.add_argument("--reference", action="store_true",
                   help="sample with the textbook layers instead of the fused fast path (slower)")

    p = sub.add_parser("tokenize", help="train a tokenizer, or encode a text file with one",
                       description="Train a BPE/char tokenizer on a text (--vocab-size, --save), and/or encode "
                                   "a text file into a binary token file (--encode-to).")
    p.add_argument("--data", default=None, help="UTF-8 text file (default: the built-in corpus)")
    p.add_argument("--tokenizer", default="bpe", choices=["bpe", "char"], help="kind to train (default: bpe)")
    p.add_argument("--vocab-size", type=_count(1), default=1024, help="BPE vocabulary size (default: 1024)")
    p.add_argument("--pattern", default="gpt4", help="split pattern: gpt4, gpt2 or a regex (default: gpt4)")
    p.add_argument("--load", default=None, help="use a saved tokenizer file instead of training one")
    p.add_argument("--save", default=None, help="write the trained tokenizer here (train --tokenizer-file reads it)")
    p.add_argument("--save-tiktoken", default=None, help="also write tiktoken's .tiktoken rank file here")
    p.add_argument("--encode-to", default=None, help="encode --data into this token file (raw uint16/uint32 ids, "
                   "and FILE.json beside it naming the tokenizer; train --tokens reads it, with the tokenizer as "
                   "--tokenizer-file)")

    p = sub.add_parser("finetune", help="fine-tune a pretrained checkpoint as a text classifier (JSONL labels), "
                                        "or on prompt -> completion pairs (--task generate)",
                       description="Fine-tune a pretrained checkpoint (a GPT, or a BERT of --objective mlm, pooled "
                                   "on [CLS]) on {\"text\", \"label\"} JSONL lines; reports accuracy, macro-F1 and "
                                   "the confusion matrix. With --task generate, a GPT learns {\"prompt\", "
                                   "\"completion\"} lines (loss on the completion only) and is scored by exact "
                                   "match, BLEU and chrF of its greedy completions.")
    add_flags(p, FinetuneConfig, "finetune", required=("ckpt", "data"))

    p = sub.add_parser("evaluate", help="score a checkpoint without training: perplexity of a text (GPT), masked-"
                       "token accuracy (BERT), or accuracy and macro-F1 on labelled JSONL (classifier)",
                       description="Evaluate a GPT (sliding-window perplexity and bits per byte of a UTF-8 text), "
                                   "a BERT (masked-token loss and accuracy) or a fine-tuned classifier (accuracy, "
                                   "macro-F1 and the confusion matrix of a labelled JSONL file).")
    from .evaluate import add_arguments as add_evaluate_arguments
    add_evaluate_arguments(p)

    p = sub.add_parser("data", help="fetch a text corpus, checked (shakespeare: Tiny Shakespeare into input.txt)",
                       description="Download a known corpus (or check and copy a local copy, --from) into a file.")
    from .datasets import add_arguments as add_data_arguments
    add_data_arguments(p)

    p = sub.add_parser("export", help="write a checkpoint as a Hugging Face GPT-2 folder (transformers loads it)",
                       description="Write a checkpoint as config.json + model.safetensors (+ its tokenizer), a "
                                   "folder transformers.GPT2LMHeadModel.from_pretrained loads.")
    p.add_argument("--ckpt", required=True, help="checkpoint file (ckpt.npz or best.npz of a run)")
    p.add_argument("--hf-dir", required=True, help="folder to write (created)")

    p = sub.add_parser("plot", help="draw the loss and learning-rate curves of runs into a PNG (needs matplotlib)",
                       description="Draw train/val loss and the learning rate against steps from each run folder's "
                                   "log.jsonl, several runs overlaid; with --diagnostics, one run's diagnostics "
                                   "(train/finetune --diagnostics).")
    from .plot import add_arguments as add_plot_arguments
    add_plot_arguments(p)

    p = sub.add_parser("attention", help="draw a checkpoint's attention maps over a text, every layer x head, and "
                       "name the heads that attend to the previous, first or own token (needs matplotlib)",
                       description="Run a text through a GPT or BERT checkpoint and draw its attention weights "
                                   "(rows: query tokens, columns: key tokens) and print the head patterns.")
    from .attention_maps import add_arguments as add_attention_arguments
    add_attention_arguments(p)

    p = sub.add_parser("bench", help="time training steps of the default model against PyTorch (if installed)",
                       description="Run scripts/bench_train.py's step-time measurement on this machine.")
    p.add_argument("--steps", type=_count(1), default=30, help="timed steps (default: 30)")
    p.add_argument("--threads", type=cores.parse, default=cores.AUTO,
                   help="train's --threads for the split side: each batch split over N threads, or auto (every "
                        "core this process may run on) (default: auto)")
    p.add_argument("--blas-threads", type=_count(1), default=None,
                   help="threads of the BLAS library inside each matrix product, and PyTorch's (default: "
                        "scripts/bench_train.py's)")
    return parser


def _count(least):
    """An argparse type: an integer >= `least`, else one error line naming the value."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"{value} is too small: use {least} or more")
        return value
    parse.__name__ = "integer"
    return parse


def _finite(least):
    """An argparse type: a finite number >= `least` (nan and inf refused), else one error line."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not least <= value < math.inf:
            raise argparse.ArgumentTypeError(f"{text!r}: use a finite number >= {least:g}")
        return value
    parse.__name__ = "number"
    return parse


def _cmd_train(args):
    from .config import from_args, given_flags
    from ..models.gpt import sample_text
    from .train import TrainConfig, train

    cfg = from_args(TrainConfig, args)
    result = train(cfg, resume=args.resume, overwrite=args.overwrite, given=given_flags(args))
    if result["config"].objective == "mlm":  # an encoder does not generate: say what to do with it instead
        if not result["interrupted"] and result["writer"] and not cfg.run.quiet:
            print(f"checkpoints in {result['out_dir']}; fine-tune the encoder with: python -m tinygrad_lm finetune "
                  f"--ckpt {result['out_dir']}/best.npz --data LABELLED.jsonl")
    elif cfg.sample_tokens > 0 and not result["interrupted"] and result["writer"]:
        print("\n---- sample ----")
        print(sample_text(result["model"], result["tokenizer"], _start(result["tokenizer"]),
                          max_new_tokens=cfg.sample_tokens, seed=cfg.run.seed))
        print("---- end of sample ----")
        print(f"checkpoints in {result['out_dir']}; sample again with: "
              f"python -m tinygrad_lm sample --ckpt {result['out_dir']}/best.npz --prompt \"The \"")
    return result["exit_code"]


def _start(tokenizer, prompt=""):
    """The text sampling starts from: the prompt; else a newline; else (a char-level vocabulary
    without one) the vocabulary's first token."""
    if prompt:
        return prompt
    try:
        tokenizer.encode("\n")
        return "\n"
    except ValueError:
        return tokenizer.decode([0])


def _cmd_sample(args):
    from .. import fast
    from .train import load_model
    from ..models.gpt import sample_text

    if args.hf:
        model, tokenizer = _load_hf(args.hf)
        model.to(device=args.device)
    else:
        model, tokenizer, meta = load_model(args.ckpt, device=args.device)
    if not args.reference:
        fast.fuse(model)  # the fused layers: about 1.2x the tokens/s of the reference (BENCHMARKS.md)
    eos_id = None if args.hf else meta.get("end_id")  # `finetune --task generate`: stop at the end of the completion
    prompt = args.prompt
    if args.start is not None:
        from .data import read_text

        prompt = read_text(args.start, "--start", "--start takes a UTF-8 file holding the prompt; to give the "
                           "prompt itself, use --prompt (or neither, to start from a newline)")
    prompt = _known_chars(tokenizer, prompt, args.unknown_chars, "--start " + args.start if args.start else "--prompt")
    for i in range(args.num_samples):
        seed = None if args.seed is None else args.seed + i
        if args.num_samples > 1:
            print(f"---- sample {i + 1}/{args.num_samples} ----")
        print(sample_text(model, tokenizer, _start(tokenizer, prompt), args.max_new_tokens, args.temperature,
                          args.top_k, seed, use_cache=args.kv_cache, eos_id=eos_id))


def _known_chars(tokenizer, prompt, unknown, where, what="prompt"):
    """The prompt for a char-level tokenizer: its characters outside the vocabulary dropped
    (`unknown="drop"`, reported on stderr) or named in an error ("error"). Other tokenizers
    encode any text: the prompt is returned unchanged. `what` names the text in the messages."""
    if not hasattr(tokenizer, "chars"):
        return prompt
    vocab = set(tokenizer.chars)
    missing = sorted(set(prompt) - vocab)
    if not missing:
        return prompt
    shown = " ".join(repr(c) for c in missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
    if unknown == "error":
        raise ValueError(f"{where}: {len(missing)} character(s) are not in this char-level vocabulary: {shown}; "
                         f"drop them with --unknown-chars drop, or change the {what}")
    kept = "".join(c for c in prompt if c in vocab)
    print(f"dropped {len(prompt) - len(kept)} {what} character(s) outside the vocabulary: {shown}", file=sys.stderr)
    return kept


def _cmd_tokenize(args):
    from .data import load_corpus, warn_short_vocab
    from ..tokenizer import BPETokenizer, CharTokenizer, load_tokenizer

    if args.encode_to and args.data is None:  # said before training a tokenizer, which takes minutes
        raise ValueError("--encode-to needs --data (the text file to encode)")
    for flag, path in (("--save", args.save), ("--save-tiktoken", args.save_tiktoken), ("--encode-to", args.encode_to)):
        if path:
            _check_output_file(flag, path)
    if args.load and not Path(args.load).is_file():
        raise FileNotFoundError(f"--load {args.load}: no such file; --load takes a tokenizer file written by "
                                "`tokenize --save`")
    if args.load:
        tok = load_tokenizer(args.load)
        text = None
    else:
        text, name = load_corpus(args.data)
        if args.tokenizer == "char":
            tok = CharTokenizer(text)
        else:
            tok = BPETokenizer(args.pattern)
            tok.train(text, args.vocab_size, verbose=True)
            warn_short_vocab(tok, args.vocab_size, name, len(text.encode("utf-8")))
        print(f"trained a {args.tokenizer} tokenizer with {tok.vocab_size} tokens on {name}")
    if args.save:
        tok.save(args.save)
        print(f"saved tokenizer to {args.save}")
    if args.save_tiktoken:
        if not hasattr(tok, "save_tiktoken"):
            raise ValueError("--save-tiktoken needs a BPE tokenizer")
        tok.save_tiktoken(args.save_tiktoken)
        print(f"saved tiktoken rank file to {args.save_tiktoken}")
    if args.encode_to:
        n, dtype = tok.encode_file(args.data, args.encode_to, tokenizer_name=args.save or args.load)
        print(f"wrote {n:,} tokens ({dtype}) to {args.encode_to}")


def _check_output_file(flag, path):
    """Refuse, before any work, a file to write whose folder is missing, or that is a folder."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{flag} {path} is a folder; give the name of a file to write in it")
    if not path.parent.is_dir():
        what = "is a file, not a folder" if path.parent.exists() else "does not exist; create it first"
        raise FileNotFoundError(f"{flag} {path}: the folder {path.parent} {what}")


def _load_hf(folder):
    """(model, tokenizer) of a Hugging Face GPT-2 folder: GPT-2's tokenizer files, or the file
    `export` writes for tokenizers GPT-2's format cannot hold."""
    from ..hf.gpt2 import TOKENIZER_FILES, load_tokenizer
    from ..models.gpt import GPT
    from ..tokenizer import load_tokenizer as load_own_tokenizer

    model = GPT.from_pretrained(folder)
    tokenizer = load_tokenizer(folder)
    if tokenizer is None and (Path(folder) / OWN_TOKENIZER).is_file():
        tokenizer = load_own_tokenizer(Path(folder) / OWN_TOKENIZER)
    if tokenizer is None:
        raise FileNotFoundError(f"{folder}: no tokenizer files ({' or '.join(' + '.join(f) for f in TOKENIZER_FILES)});"
                                f" for GPT-2 itself: hf download gpt2 vocab.json merges.txt --local-dir {folder}")
    return model, tokenizer


OWN_TOKENIZER = "tinygrad_lm_tokenizer.txt"  # export's file for a tokenizer GPT-2's files cannot hold


def _cmd_export(args):
    from ..hf.gpt2 import TOKENIZER_FILES, fits_gpt2_files, save_pretrained
    from .train import load_model

    if Path(args.hf_dir).exists() and not Path(args.hf_dir).is_dir():
        raise FileExistsError(f"--hf-dir {args.hf_dir} is a file; export writes a folder (config.json, "
                              "model.safetensors, the tokenizer): choose another --hf-dir")
    model, tokenizer, _ = load_model(args.ckpt)
    gpt2_like = fits_gpt2_files(tokenizer)
    # one folder, written whole (hf/safetensors_io.write_folder), without the other kind's tokenizer files
    # that an earlier export may have left there (GPT-2's would be read first)
    own = {} if gpt2_like else {OWN_TOKENIZER: tokenizer.save}
    stale = [OWN_TOKENIZER] if gpt2_like else [name for pair in TOKENIZER_FILES for name in pair]
    save_pretrained(model, args.hf_dir, tokenizer if gpt2_like else None, own, stale)
    if gpt2_like:
        print(f"wrote {args.hf_dir}: config.json, model.safetensors, vocab.json, merges.txt")
    else:  # a char tokenizer, or BPE with GPT-4's split pattern, which GPT2Tokenizer would split differently
        print(f"wrote {args.hf_dir}: config.json, model.safetensors, and {OWN_TOKENIZER} (this tokenizer has no "
              f"GPT-2 file form; `sample --hf {args.hf_dir}` reads it, transformers ignores it)")
    print(f"load it with: transformers.GPT2LMHeadModel.from_pretrained({str(args.hf_dir)!r})")


def _cmd_bench(args):
    import runpy

    script = Path(__file__).resolve().parents[2] / "scripts" / "bench_train.py"  # run/cli.py -> the checkout
    if not script.exists():
        raise FileNotFoundError(f"{script}: the benchmark script ships with the source tree, not the wheel")
    sys.argv = [str(script), "--speed-only", "--steps", str(args.steps), "--threads", str(args.threads)] + (
        ["--blas-threads", str(args.blas_threads)] if args.blas_threads else [])
    runpy.run_path(str(script), run_name="__main__")


def _cmd_finetune(args):
    from .config import from_args, given_flags
    from .finetune import FinetuneConfig, finetune

    result = finetune(from_args(FinetuneConfig, args), resume=args.resume, overwrite=args.overwrite,
                      given=given_flags(args))
    if not result["interrupted"] and result["writer"] and result["config"].task == "generate":
        print(f"fine-tuned language model in {result['out_dir']}/best.npz; complete a prompt with: python -m "
              f"tinygrad_lm sample --ckpt {result['out_dir']}/best.npz --temperature 0 --prompt PROMPT")
    elif not result["interrupted"] and result["writer"]:
        print(f"fine-tuned classifier in {result['out_dir']}/best.npz (load it with "
              "tinygrad_lm.run.finetune.load_classifier)")
    return result["exit_code"]


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in ("train", "sample", "finetune", "evaluate"):  # BLAS on one thread unless asked, also
        # when --threads resolves to 1 (--reference): its spinning idle workers slow a busy machine down, and
        # this model's products are too small to gain from them (measured: fast/blas.py). The cores go to the
        # batch split instead (--threads auto, run/cores.py)
        from ..fast.blas import default_blas_threads

        default_blas_threads()
    from . import attention_maps, datasets, evaluate, plot  # build_parser imported them already (their flags)

    commands = {"train": _cmd_train, "sample": _cmd_sample, "tokenize": _cmd_tokenize, "bench": _cmd_bench,
                "finetune": _cmd_finetune, "export": _cmd_export, "plot": plot.run, "data": datasets.run,
                "attention": attention_maps.run, "evaluate": evaluate.run}
    try:
        if getattr(args, "dist", None):  # train, finetune: join the MPI job first, so that a bad flag ends every rank
            from .. import distributed  # with one message

            distributed.init(args.device)
        if args.command in ("train", "finetune"):  # a closed stdout or stderr (| head) stops the printing, not the run
            from .streams import guarded_streams

            with guarded_streams():
                return commands[args.command](args) or 0  # 130 / 143 / 129 when stopped by SIGINT / SIGTERM / SIGHUP
        return commands[args.command](args) or 0
    except (OSError, ValueError, RuntimeError, ImportError) as e:  # OSError: missing files, a full disk, ...
        if os.environ.get("TINYGRAD_LM_DEBUG"):
            raise
        _end_every_rank(e, 2, f"tinygrad-lm {args.command}: error")
        print(f"tinygrad-lm {args.command}: error: {e}", file=sys.stderr)
        print("(set TINYGRAD_LM_DEBUG=1 to see the traceback)", file=sys.stderr)
        return 2
    except MemoryError as e:  # a batch or model too big for this machine (CuPy's OutOfMemoryError is one too)
        _end_every_rank(e, 2, f"tinygrad-lm {args.command}: error")
        print(f"tinygrad-lm {args.command}: error: out of memory ({e}); {SMALLER.get(args.command, SMALLER[None])}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # Ctrl-C outside a training loop's steps (loading, sampling): nothing to save
        _end_every_rank(e, 130, f"tinygrad-lm {args.command}: stopped")
        print(f"\ntinygrad-lm {args.command}: interrupted", file=sys.stderr)
        return 130
    except BaseException as e:  # anything else (a bug, memory): over MPI, end every rank too
        if not isinstance(e, SystemExit):
            _end_every_rank(e, 1, f"tinygrad-lm {args.command}: stopped")
        raise


SMALLER = {  # what to shrink when a command runs out of memory
    "train": "use a smaller --batch-size or --block-size (or --grad-accum K with a K times smaller --batch-size), "
             "or a smaller model (--n-layer, --n-embd)",
    "finetune": "use a smaller --batch-size or --eval-batch-size (or --grad-accum K with a K times smaller "
                "--batch-size)",
    None: "this machine cannot hold the model and its working arrays",
}


def _end_every_rank(error, code, what):
    """Over MPI, a rank that exits alone leaves the others waiting in a collective forever:
    report the error once and abort the whole job instead (distributed.Group.fail)."""
    dist = sys.modules.get("tinygrad_lm.distributed")
    group = dist.current() if dist else None
    if group is not None and group.size > 1:
        group.fail(error, code, what)


if __name__ == "__main__":
    sys.exit(main())

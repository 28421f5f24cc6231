"""The `evaluate` command: score a checkpoint on a text or a test set, without training.

    python -m tinygrad_lm evaluate --ckpt runs/default/best.npz --data input.txt --stride 32
    python -m tinygrad_lm evaluate --hf gpt2-folder --data wiki.txt            (a Hugging Face GPT-2 folder)
    python -m tinygrad_lm evaluate --ckpt runs/mlm/best.npz --data input.txt   (train --objective mlm)
    python -m tinygrad_lm evaluate --ckpt runs/finetune/best.npz --data test.jsonl --plot cm.png

What it reports, by the kind of checkpoint (read from the checkpoint itself):

    GPT (train, --hf)    sliding-window perplexity of any UTF-8 text (perplexity.py: Hugging Face's
                         strided loop; --stride, default half the window; --block-size, default the
                         model's context): tokens scored, loss in nats per token, perplexity, bits
                         per token and bits per byte of the scored tokens
    BERT (--objective mlm)  masked-token loss and accuracy over the text, cut into [CLS] piece [SEP]
                         and masked as in pretraining, seeded by --seed
    classifier (finetune)   accuracy, macro-F1 and the confusion matrix on a labelled JSONL file
                         ({"text", "label"} lines, the labels the classifier was trained on), the
                         evaluation finetune.py runs; --plot OUT.png draws the matrix

The text must hold at least one window (block_size tokens; a BERT's block_size - 2 between [CLS]
and [SEP]): a shorter one is refused with its token count and the --block-size that would fit it.
Every other mistake is one line naming the file, line or flag and the fix (cli.main prints it):
a missing, empty or non-UTF-8 file (with the byte offset), a stride outside 1..block_size-1,
characters a char-level vocabulary lacks (or --unknown-chars drop), a JSONL file given to a
language model, a plain text given to a classifier, a flag that does not apply to the checkpoint,
an unwritable --plot path or a missing matplotlib (both checked before the model runs). Nothing
is written but the --plot image (atomically). A progress bar goes to stderr on long texts
(progress.py); --quiet hides it.
Leaves out: MPI, several files at once, per-document scores, and generation metrics (BLEU, chrF,
exact match of a prompt -> completion checkpoint).
"""
import json
import sys
from pathlib import Path

from .. import fast
from ..engine.backend import check_device


def add_arguments(parser):
    """The `evaluate` subcommand's arguments."""
    from .cli import _count

    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--ckpt", help="checkpoint file: a GPT (train), a BERT (train --objective mlm) or a "
                        "classifier (finetune)")
    source.add_argument("--hf", metavar="FOLDER", help="Hugging Face GPT-2 folder: config.json, model.safetensors "
                        "and its tokenizer files (needs pip install safetensors)")
    parser.add_argument("--data", required=True, help="UTF-8 text (GPT, BERT) or labelled JSONL (classifier)")
    parser.add_argument("--stride", type=_count(1), default=None, help="GPT: a window starts every STRIDE tokens; "
                        "each token past the first window is read with at least block_size - STRIDE tokens of "
                        "context (1..block_size-1; default: block_size // 2, as Hugging Face's perplexity guide)")
    parser.add_argument("--block-size", type=_count(2), default=None, help="window length in tokens, at most the "
                        "model's context (default: the model's context)")
    parser.add_argument("--batch-size", type=_count(1), default=8, help="windows (or examples) per forward "
                        "(default: 8)")
    parser.add_argument("--seed", type=int, default=None, help="BERT: the seed of the masked positions (default: 0)")
    parser.add_argument("--plot", metavar="OUT.png", default=None, help="classifier: draw the confusion matrix "
                        "into this PNG (needs matplotlib)")
    parser.add_argument("--unknown-chars", choices=["error", "drop"], default="error",
                        help="char-level checkpoints: a character outside the vocabulary is an error, or is dropped "
                             "(the count is reported) (default: error)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="cpu or cuda (default: cpu)")
    parser.add_argument("--reference", action="store_true", help="the textbook layers instead of the fused ones")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def load(args):
    """(kind, model, tokenizer, context): kind "gpt", "mlm" or "classifier"; context the model's
    positions (block_size, or BERT's max_position_embeddings). On args.device, eval mode."""
    from .attention_maps import load_any
    from .cli import _load_hf

    if args.hf:
        model, tokenizer = _load_hf(args.hf)
        kind, context = "gpt", model.config.block_size
    else:
        loaded = load_any(args.ckpt)
        model, tokenizer, context = loaded.model, loaded.tokenizer, loaded.context
        kind = "classifier" if hasattr(model, "label_names") else ("mlm" if loaded.kind == "bert" else "gpt")
    if not args.reference:
        fast.fuse(model)  # the fused layers: the same numbers within float32 rounding, faster
    return kind, model.to(device=args.device).eval(), tokenizer, context


def check_flags(args, kind):
    """Refuse the flags that do not apply to this kind of checkpoint, naming them."""
    source = f"--hf {args.hf}" if args.hf else f"--ckpt {args.ckpt}"
    what = {"gpt": "a GPT", "mlm": "a masked-language-model (BERT) checkpoint",
            "classifier": "a fine-tuned classifier"}[kind]
    given = {"--stride": args.stride is not None and kind != "gpt",
             "--block-size": args.block_size is not None and kind == "classifier",
             "--seed": args.seed is not None and kind != "mlm",
             "--plot": args.plot is not None and kind != "classifier"}
    wrong = [flag for flag, bad in given.items() if bad]
    if wrong:
        uses = {"--stride": "a GPT's sliding windows", "--block-size": "the windows of a GPT or a BERT",
                "--seed": "a BERT's masked positions", "--plot": "a classifier's confusion matrix"}
        raise ValueError(f"{source} is {what}: {', '.join(f'{f} (for {uses[f]})' for f in wrong)} does not apply; "
                         "drop it")


def read_text_file(path):
    """The UTF-8 text of `path`, with one-line errors: missing, a folder, empty, not UTF-8 (byte offset)."""
    from .data import read_text

    path = Path(path)
    if path.is_file() and path.stat().st_size == 0:
        raise ValueError(f"--data {path}: the file is empty; evaluate needs some UTF-8 text to score")
    return read_text(path)


def first_json_object(text):
    """The 1-based line number of the first non-blank line when it parses as a JSON object, else None."""
    for n, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            try:
                return n if isinstance(json.loads(line), dict) else None
            except json.JSONDecodeError:
                return None
    return None


def window_size(kind, context, block_size, n_tokens, path):
    """The window length (tokens per window: block_size; a BERT's block_size - 2 between [CLS] and
    [SEP]) after checking --block-size against the model and the text's length against one window."""
    least = 3 if kind == "mlm" else 2
    B = context if block_size is None else block_size
    if not least <= B <= context:
        raise ValueError(f"--block-size {B}: this model reads at most {context} tokens and a window needs at least "
                         f"{least}; use {least}..{context}")
    room = B - 2 if kind == "mlm" else B
    if n_tokens < room:
        special = " between [CLS] and [SEP]" if kind == "mlm" else ""
        fits = n_tokens + 2 if kind == "mlm" else n_tokens
        fix = (f"pass --block-size {fits} or less for smaller windows, or evaluate a longer text"
               if fits >= least else "evaluate a longer text")
        raise ValueError(f"--data {path}: the text is {n_tokens} token(s), shorter than one window of {room} "
                         f"tokens{special} (the model's context{'' if block_size is None else ' asked for'}); {fix}")
    return B


def encode(tokenizer, text, path, unknown):
    """The text's token ids: characters a char-level vocabulary lacks refused or dropped first."""
    import numpy as np

    from .cli import _known_chars

    text = _known_chars(tokenizer, text, unknown, f"--data {path}", what="text")
    try:
        return np.asarray(tokenizer.encode(text), dtype=np.int64)
    except ValueError as e:
        raise ValueError(f"--data {path}: {e}") from None


def run(args):
    """The `evaluate` command (module docstring); returns 0. Errors are ValueError/OSError/ImportError."""
    from .progress import Progress

    check_device(args.device)
    if args.plot is not None:  # a bad path or no matplotlib: say so before loading anything
        from .plot_confusion import check_plot_path, pyplot

        check_plot_path(args.plot)
        pyplot()
    text = read_text_file(args.data)  # a missing, empty or non-UTF-8 file: said before the model loads
    kind, model, tokenizer, context = load(args)
    check_flags(args, kind)
    source = args.hf or args.ckpt
    if kind == "classifier":
        return _classifier(args, model, tokenizer, context, text)
    line = first_json_object(text)
    if line is not None or Path(args.data).suffix.lower() == ".jsonl":
        where = f", line {line} is a JSON object" if line is not None else " is a .jsonl file"
        raise ValueError(f"--data {args.data}{where}, but {source} is a language model, which evaluate scores on "
                         "plain UTF-8 text: pass a text file (labelled JSONL goes with a classifier from `finetune`)")
    ids = encode(tokenizer, text, args.data, args.unknown_chars)
    B = window_size(kind, context, args.block_size, len(ids), args.data)
    progress = Progress("scoring windows" if kind == "gpt" else "scoring pieces", sys.stderr, not args.quiet)
    try:
        if kind == "mlm":
            from .perplexity import masked_lm_score

            seed = 0 if args.seed is None else args.seed
            result = masked_lm_score(model, tokenizer, ids, B, seed, args.batch_size, progress)
        else:
            from .perplexity import check_stride, score_text

            stride = max(1, B // 2) if args.stride is None else args.stride
            check_stride(stride, B)
            result = score_text(model, ids, B, stride, args.batch_size, tokenizer, progress)
    finally:
        progress.close()
    print(f"{source} on {args.data}: {len(ids):,} tokens, {len(text.encode('utf-8')):,} bytes")
    if kind == "mlm":
        print(f"{result['pieces']} pieces of up to {B - 2} tokens as [CLS] piece [SEP]; masked {result['picked']:,} "
              f"tokens (15%, as in pretraining; --seed {seed})")
        print(f"masked-token loss {result['loss']:.4f} nats | accuracy {result['accuracy']:.4f} | masked perplexity "
              f"{result['perplexity']:.2f}")
        return 0
    print(f"windows: {result['windows']:,} of {B} tokens, one every {_tokens(stride)} (--stride); past the first "
          f"window each token is read with at least {_tokens(B - stride)} of context")
    print(f"scored: {_tokens(result['tokens'])} (all but the first), {result['bytes']:,} bytes")
    print(f"loss {result['loss']:.4f} nats/token | perplexity {result['perplexity']:.3f} | "
          f"{result['bits_per_token']:.4f} bits/token | {result['bits_per_byte']:.4f} bits/byte")
    return 0


def _tokens(n):
    return f"{n:,} token{'' if n == 1 else 's'}"


def _classifier(args, model, tokenizer, context, text):
    """Accuracy, macro-F1 and the confusion matrix of a classifier on the labelled JSONL file `text` came from."""
    from .finetune import evaluate, format_report
    from .labeled import load_labeled
    from .mlm import SpecialIds

    if first_json_object(text) is None:
        n = next((n for n, line in enumerate(text.split("\n"), start=1) if line.strip()), 1)
        raise ValueError(f"--data {args.data}, line {n}: not a JSON object; {args.ckpt} is a fine-tuned classifier, "
                         'evaluated on labelled JSONL lines {"text": ..., "label": ...} (perplexity of a text '
                         "needs the pretrained checkpoint it was fine-tuned from)")
    specials = SpecialIds.of(tokenizer) if model.model_type == "bert" else None
    data = load_labeled(args.data, tokenizer, context, model.label_names, unknown=args.unknown_chars,
                        specials=specials)
    metrics = evaluate(model, data, args.batch_size)
    print(data.summary())
    print(format_report(Path(args.data).name, metrics, model.label_names))
    if args.plot is not None:
        from .plot_confusion import plot_confusion

        title = (f"{args.ckpt} on {args.data}: accuracy {metrics['accuracy']:.3f}, macro-F1 "
                 f"{metrics['macro_f1']:.3f} ({len(data)} examples)")
        print(f"wrote {plot_confusion(metrics['confusion'], model.label_names, args.plot, title)}")
    return 0


__all__ = ["add_arguments", "run", "load", "window_size", "read_text_file"]

"""The `attention` command: a checkpoint's attention maps over a text, and its head patterns.

    python -m tinygrad_lm attention --ckpt runs/default/best.npz --text "The cat sat." --out attn.png
    python -m tinygrad_lm attention --ckpt CKPT --text-file poem.txt --head 1.2 --out head.png

Loads a GPT (`train`), a BERT encoder (`train --objective mlm`) or a fine-tuned classifier of
either (`finetune`), runs the text through it once with `run_with_cache` (nn/hooks.py), on the
CPU, with the textbook layers, in eval mode, and draws viz/attention.py's picture: every layer x
head (or `--head L.H` alone, large), the tokens on both axes as the tokenizer split them. It
prints the table of head patterns (which heads attend mostly to the previous token, the first
token or themselves: more than `--threshold` of their weight, 0.5 by default; viz/attention.py
says over which rows) and where the image went. `--text-file FILE` reads the text from a file.
A BERT sees the text as its pretraining did: [CLS] text [SEP].
A text longer than the context is refused with its token count, unless `--crop`: a GPT then
keeps the last block_size tokens (what it sees when it predicts the next one, as `generate`
crops), a BERT the first max_position_embeddings - 2 (as its pretraining cut its sequences);
the command says how many it dropped. Everything a user can get wrong (the --out folder, --head,
an empty text, characters a char-level vocabulary lacks, matplotlib missing) is checked before
the model runs, and the image is written to a temporary file that is renamed into place.
Leaves out: GPUs (a single forward of one text), several texts at once, Hugging Face folders.
"""
import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import checkpoint
from ..engine.tensor import no_grad
from ..viz import attention as viz


def _head(text):
    """An argparse type: 'L.H' -> (L, H), two integers >= 0."""
    parts = text.split(".")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not LAYER.HEAD, e.g. 0.1 for layer 0, head 1 (both from 0)")
    return int(parts[0]), int(parts[1])


def _share(text):
    """An argparse type: a number strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{value} is not between 0 and 1 (a share of the attention weight)")
    return value


def add_arguments(parser):
    """The `attention` subcommand's arguments."""
    parser.add_argument("--ckpt", required=True, help="checkpoint file (best.npz or ckpt.npz) of train, train "
                        "--objective mlm, or finetune")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", help="the text whose attention to draw")
    source.add_argument("--text-file", metavar="FILE", help="read the text from this UTF-8 file")
    parser.add_argument("--out", required=True, help="image to write (.png, .svg or .pdf); its folder must exist")
    parser.add_argument("--head", type=_head, default=None, metavar="L.H",
                        help="draw only layer L's head H, large (both counted from 0; default: every layer x head)")
    parser.add_argument("--crop", action="store_true", help="a text longer than the context: keep the last "
                        "block_size tokens (GPT) or the first (BERT) instead of refusing it")
    parser.add_argument("--threshold", type=_share, default=0.5, metavar="SHARE", help="the mean weight share a head must put on "
                        "the previous, first or own token to be named for it in the table (default: 0.5, more than "
                        "half)")
    parser.add_argument("--unknown-chars", choices=["error", "drop"], default="error",
                        help="char-level checkpoints: a text character outside the vocabulary is an error, or is "
                             "dropped (default: error)")


def check_out(out):
    """Refuse an image path that cannot be written, before any work: a ValueError/OSError naming it."""
    out = Path(out)
    if out.suffix[1:].lower() not in viz.IMAGE_FORMATS:
        raise ValueError(f"--out {out}: the image must end in {', '.join('.' + f for f in viz.IMAGE_FORMATS)}")
    folder = out.parent
    if not folder.is_dir():
        raise FileNotFoundError(f"--out {out}: the folder {folder} does not exist; create it (mkdir -p {folder}) "
                                "or write somewhere else")
    if out.is_dir():
        raise IsADirectoryError(f"--out {out} is a folder; give a file name such as {out / 'attention.png'}")
    if not os.access(folder, os.W_OK | os.X_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise PermissionError(f"--out {out}: not writable (no permission to write in {folder}); write somewhere else")


@dataclass
class Loaded:
    """A checkpoint's model (in eval mode) and tokenizer, with what the command needs to know."""
    model: object
    tokenizer: object
    kind: str  # "gpt" or "bert"
    context: int  # block_size, or BERT's max_position_embeddings
    n_layer: int
    n_head: int


def load_any(path):
    """Loaded of any checkpoint this package writes: a GPT, a BERT encoder (objective mlm), or a
    classifier fine-tuned from either."""
    from ..models.bert import BertConfig, BertForMaskedLM
    from ..tokenizer import tokenizer_from_dict
    from .finetune import KIND, load_classifier
    from .train import load_model

    meta, state, _ = checkpoint.load(path)
    if meta.get("kind") == KIND:  # `finetune`'s: the loader reads it again (a small cost, said once here)
        model, tokenizer, _ = load_classifier(path)
        bert = model.model_type == "bert"
    elif meta.get("objective") == "mlm":
        try:
            model = BertForMaskedLM(BertConfig.from_dict(dict(meta["model_config"])))
            model.load_state_dict(state)
        except (TypeError, KeyError, ValueError) as e:
            raise ValueError(f"{path}: not a usable BERT checkpoint: {e}") from None
        tokenizer, bert = tokenizer_from_dict(meta["tokenizer"]), True
    else:
        model, tokenizer, _ = load_model(path)
        bert = False
    c = model.config
    if bert:
        return Loaded(model.eval(), tokenizer, "bert", c.max_position_embeddings, c.num_hidden_layers,
                      c.num_attention_heads)
    return Loaded(model.eval(), tokenizer, "gpt", c.block_size, c.n_layer, c.n_head)


def encode(text, tokenizer, kind, context, crop):
    """(ids (1, T) int64, note or None): the text's tokens as the model reads them ([CLS] text
    [SEP] for BERT), refused when longer than the context unless `crop` (the note says what went)."""
    from .mlm import SpecialIds

    ids = tokenizer.encode_ordinary(text) if hasattr(tokenizer, "encode_ordinary") else tokenizer.encode(text)
    if not ids:
        raise ValueError("the text is empty: give --text some words (or a --text-file that holds some)")
    room = context - 2 if kind == "bert" else context  # BERT's [CLS] and [SEP] take two places
    note = None
    if len(ids) > room:
        where = f"{'BERT' if kind == 'bert' else 'GPT'} context of {context} tokens" + (
            " ([CLS] and [SEP] take 2)" if kind == "bert" else "")
        if not crop:
            raise ValueError(f"the text is {len(ids)} tokens, longer than this {where}; shorten it, or pass --crop to "
                             f"keep the {'first' if kind == 'bert' else 'last'} {room}")
        note = (f"cropped the text from {len(ids)} to {room} tokens (kept the {'first' if kind == 'bert' else 'last'} "
                f"{room}: the {where})")
        ids = ids[:room] if kind == "bert" else ids[-room:]
    if kind == "bert":
        special = SpecialIds.of(tokenizer)
        ids = [special.cls] + list(ids) + [special.sep]
    return np.asarray([ids], dtype=np.int64), note  # (1, T)


def attention_of(model, ids):
    """The weights (L, nh, T, T) of one forward of `ids` (1, T), from `model.run_with_cache`."""
    with no_grad():
        _, cache = model.run_with_cache(ids)
    return viz.stack_attention(cache)


def _title(ckpt, tokenizer, ids, kind, cropped):
    """The figure's title: the checkpoint and the text drawn (after any crop), shortened to 60 characters."""
    text = tokenizer.decode(ids[1:-1] if kind == "bert" else ids)  # without [CLS] and [SEP]
    shown = text if len(text) <= 60 else text[:57] + "..."
    return f"attention of {ckpt} on {shown!r} ({_tokens(len(ids))}{', cropped' if cropped else ''})"


def _tokens(n):
    return f"{n} token{'' if n == 1 else 's'}"


def run(args):
    """The `attention` command; errors a user can fix are ValueError/OSError/ImportError, which
    cli.main prints as one line."""
    from .cli import _known_chars
    from .data import read_text

    check_out(args.out)
    viz._pyplot()  # matplotlib missing: say how to install it before loading anything
    text = (read_text(args.text_file, "--text-file", "--text-file takes a UTF-8 file holding the text; to give "
                      "the text itself, use --text") if args.text_file is not None else args.text)
    loaded = load_any(args.ckpt)
    n_layer, n_head, tokenizer = loaded.n_layer, loaded.n_head, loaded.tokenizer
    if args.head is not None and not (args.head[0] < n_layer and args.head[1] < n_head):
        raise ValueError(f"--head {args.head[0]}.{args.head[1]}: this model has layers 0..{n_layer - 1} and heads "
                         f"0..{n_head - 1}; pick one of those (e.g. --head {n_layer - 1}.{n_head - 1})")
    text = _known_chars(tokenizer, text, args.unknown_chars, "--text-file " + args.text_file if args.text_file
                        else "--text")
    ids, note = encode(text, tokenizer, loaded.kind, loaded.context, args.crop)
    if note:
        print(note)
    weights = attention_of(loaded.model, ids)
    tokens = viz.token_labels(tokenizer, ids[0])
    if ids.shape[1] >= 3:
        print(viz.format_patterns(viz.head_patterns(weights, args.threshold)))
    else:
        print(f"(no head pattern table: it needs at least 3 tokens, the text has {ids.shape[1]})", file=sys.stderr)
    title = _title(args.ckpt, tokenizer, ids[0].tolist(), loaded.kind, note is not None)
    out = viz.plot_attention(weights, tokens, args.out, head=args.head, title=title)
    what = f"layer {args.head[0]}, head {args.head[1]}" if args.head else f"{n_layer} layers x {n_head} heads"
    print(f"wrote {out} ({what}, {_tokens(ids.shape[1])})")
    return 0

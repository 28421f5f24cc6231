"""Tokenizers: characters (``CharTokenizer``) and byte-level BPE (``BPETokenizer``).

What this package implements:
  * ``base.py``: the pure BPE helpers ``get_stats``/``merge`` with worked examples, UTF-8 file
    reading with clear errors, and ``encode_file`` (text file -> raw uint16/uint32 token file);
  * ``char.py``: ``CharTokenizer``, one id per character of a text;
  * ``bpe.py``: ``BPETokenizer``, GPT-2/GPT-4 style byte-level BPE with fast incremental
    training and tiktoken-compatible encoding, special tokens and a versioned model file;
  * ``patterns.py``: the GPT-2 and GPT-4 split regexes;
  * ``tiktoken_io.py``: tiktoken ``.tiktoken`` rank files.
  * ``tokenizer_from_dict(d)`` (here): rebuild either tokenizer from its ``to_dict()``, as stored
    in model checkpoints.

What it leaves out: SentencePiece/unigram models, normalisers, and the GPT-4o (o200k) pattern.

    >>> tok = BPETokenizer("gpt4")
    >>> tok.train("aaabdaaabac", vocab_size=259)
    >>> tokenizer_from_dict(tok.to_dict()).encode("aaabdaaabac")
    [258, 100, 258, 97, 99]
"""
from __future__ import annotations

from .base import Tokenizer, get_stats, merge, read_text, render_token
from .bpe import BPETokenizer
from .char import CharTokenizer
from .patterns import GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN
from .tiktoken_io import load_tiktoken_ranks, save_tiktoken_ranks


def tokenizer_from_dict(d: dict) -> Tokenizer:
    """Rebuild a tokenizer from ``tok.to_dict()`` (``{"type": "char" | "bpe", ...}``)."""
    kinds = {"char": CharTokenizer, "bpe": BPETokenizer}
    kind = d.get("type") if isinstance(d, dict) else None
    if kind not in kinds:
        raise ValueError(f"unknown tokenizer type {kind!r}; expected one of {sorted(kinds)}")
    return kinds[kind].from_dict(d)


__all__ = ["Tokenizer", "CharTokenizer", "BPETokenizer", "tokenizer_from_dict", "get_stats",
           "merge", "read_text", "render_token", "GPT2_SPLIT_PATTERN", "GPT4_SPLIT_PATTERN",
           "load_tiktoken_ranks", "save_tiktoken_ranks"]

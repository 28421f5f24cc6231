"""Tokenizers: characters (``CharTokenizer``) and byte-level BPE (``BPETokenizer``).

Where to start reading: ``train_reference.py``, BPE training on one screen (minbpe-style: count
pairs with ``get_stats``, take the most frequent, ``merge`` it, repeat), then ``bpe.py``, the
tokenizer that encodes with the learned merges. ``train_fast.py`` is the same training made fast
(the default), pinned to the reference by the tests.

What this package implements:
  * ``train_reference.py``: the pure BPE helpers ``get_stats``/``merge`` with worked examples, and
    ``train_bpe_reference``, the readable trainer built from them (``trainer="reference"``);
  * ``train_fast.py``: ``train_bpe_fast``, the same merges with incremental pair counts and a heap
    (``BPETokenizer.train``'s default trainer);
  * ``bpe.py``: ``BPETokenizer``, GPT-2/GPT-4 style byte-level BPE with tiktoken-compatible
    encoding, special tokens and a versioned model file; it trains with either trainer;
  * ``encode_fast.py``: ``ChunkEncoder``, the encoding of ``bpe.py``'s per-chunk loop done for
    all new chunks of a text at once in NumPy (longer texts take it), pinned to the loop by the
    tests;
  * ``encode_pieces.py``: ``PieceEncoder``, a cache of the pieces between the spaces where the
    GPT-2/GPT-4 patterns always cut, in front of ``ChunkEncoder``: a long text seen before needs
    one lookup a piece, not the regex split and a lookup a chunk;
  * ``base.py``: the ``Tokenizer`` base class, UTF-8 file reading with clear errors, and
    ``encode_file`` (text file -> raw uint16/uint32 token file);
  * ``token_file.py``: token files on disk: the raw ids written whole or not at all, and the
    ``NAME.json`` sidecar recording the tokenizer that wrote them, checked when they are read;
  * ``char.py``: ``CharTokenizer``, one id per character of a text;
  * ``patterns.py``: the GPT-2 and GPT-4 split regexes, and their faster stdlib-``re`` spellings
    for ASCII and BMP text;
  * ``split_gpt2.py``: ``split_gpt2``, GPT-2's split of a long text done by NumPy passes over
    the characters' classes (the regex's chunks, up to 2x faster), pinned to the regex by the tests;
  * ``tiktoken_io.py``: tiktoken ``.tiktoken`` rank files;
  * ``gpt2_files.py``: GPT-2's published ``encoder.json`` + ``vocab.bpe`` (Hugging Face's
    ``vocab.json`` + ``merges.txt``), read by ``BPETokenizer.from_gpt2`` and written back.
  * ``tokenizer_from_dict(d)`` (here): rebuild either tokenizer from its ``to_dict()``, as stored
    in model checkpoints; ``load_tokenizer(path)``: read a file written by either ``save``.

Every file a tokenizer saves is written whole or not at all (``tinygrad_lm/files.py``, the one
module of the package this one imports): a failed or killed save leaves the old file.

What it leaves out: SentencePiece/unigram models, normalisers, and the GPT-4o (o200k) pattern.

    >>> tok = BPETokenizer("gpt4")
    >>> tok.train("aaabdaaabac", vocab_size=259)
    >>> tokenizer_from_dict(tok.to_dict()).encode("aaabdaaabac")
    [258, 100, 258, 97, 99]
    >>> train_bpe_reference("aaabdaaabac", 259) == train_bpe_fast("aaabdaaabac", 259) == tok.merges
    True
"""
from __future__ import annotations

import os

from .base import Tokenizer, read_text, render_token
from .bpe import BPETokenizer
from .char import CharTokenizer
from .patterns import GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN
from .tiktoken_io import load_tiktoken_ranks, save_tiktoken_ranks
from .train_fast import train_bpe_fast
from .train_reference import get_stats, merge, train_bpe_reference


def tokenizer_from_dict(d: dict) -> Tokenizer:
    """Rebuild a tokenizer from ``tok.to_dict()`` (``{"type": "char" | "bpe", ...}``)."""
    kinds = {"char": CharTokenizer, "bpe": BPETokenizer}
    kind = d.get("type") if isinstance(d, dict) else None
    if kind not in kinds:
        raise ValueError(f"unknown tokenizer type {kind!r}; expected one of {sorted(kinds)}")
    return kinds[kind].from_dict(d)


def load_tokenizer(path: str | os.PathLike) -> Tokenizer:
    """Read a file written by ``BPETokenizer.save`` or ``CharTokenizer.save``, whichever it is.

    Raises:
        FileNotFoundError: naming the path and how to write one, when there is no such file.
        ValueError: naming the path when the file is neither (a ``.tiktoken`` rank file holds no
            split pattern: read it with ``BPETokenizer.load_tiktoken(path, pattern=...)``), is
            empty, or is one of them cut short or damaged.
    """
    from .bpe import FORMAT_HEADER
    from .char import FORMAT as CHAR_FORMAT, PREFIX as CHAR_PREFIX

    if not os.path.isfile(path):
        what = "is a folder, not a file" if os.path.isdir(path) else "does not exist"
        raise FileNotFoundError(f"tokenizer file {path} {what}: check the path, or write one with "
                                f"`python -m tinygrad_lm tokenize --data TEXT --vocab-size N --save {path}` "
                                f"(or tok.save(path) in Python)")
    head = read_text(path)[:200]
    if not head:
        raise ValueError(f"{path} is empty (a save that did not finish?); save the tokenizer again")
    # "tinygrad_lm bpe v": any version (a newer one is refused by load), or a file cut inside the header
    if head.startswith(FORMAT_HEADER[:-1]) or FORMAT_HEADER.startswith(head):
        return BPETokenizer.load(path)
    if CHAR_FORMAT[:-1] in head or CHAR_PREFIX.startswith(head):
        return CharTokenizer.load(path)
    raise ValueError(f"{path} is not a tokenizer file written by BPETokenizer.save "
                     f"('{FORMAT_HEADER}') or CharTokenizer.save ('{CHAR_FORMAT}'); for a "
                     f".tiktoken rank file use BPETokenizer.load_tiktoken(path, pattern=...)")


__all__ = ["Tokenizer", "CharTokenizer", "BPETokenizer", "tokenizer_from_dict", "load_tokenizer",
           "get_stats", "merge", "train_bpe_reference", "train_bpe_fast", "read_text", "render_token",
           "GPT2_SPLIT_PATTERN", "GPT4_SPLIT_PATTERN", "load_tiktoken_ranks", "save_tiktoken_ranks"]

"""Character-level tokenizer: one id per distinct character of a text.

What this file implements: ``CharTokenizer(text)``, whose vocabulary is the sorted set of the
characters of ``text`` (id = position in that sorted list), as used for char-level runs such as
nanoGPT's shakespeare_char. It has ``encode``/``decode``, ``to_dict``/``from_dict`` for model
checkpoints, ``save``/``load`` (a small JSON file) and ``encode_file`` (from ``base.py``).
``add_special_tokens`` appends extra ids after the characters (masked-language-model pretraining
adds ``[CLS] [SEP] [MASK] [PAD]``): they are written by id, decode to their string, and are kept
by ``to_dict``/``save``; ``encode`` never produces them (the text ``"[CLS]"`` is five characters).
A tokenizer without special tokens writes exactly the dict and file it always did.

What it leaves out: unknown-character handling (an unseen character is an error, never mapped
to an "unk" id), normalisation, and merges of any kind (see ``bpe.py``).

    >>> tok = CharTokenizer("hello")
    >>> tok.chars, tok.vocab_size
    ('ehlo', 4)
    >>> tok.encode("hole"), tok.decode([1, 0, 2, 2, 3])
    ([1, 3, 2, 0], 'hello')
"""
from __future__ import annotations

import json
import os
import re
from typing import Iterable

from ..files import atomic_write
from ..version import is_newer, newer_format
from .base import Tokenizer, check_integer_ids, read_text

FORMAT = "tinygrad_lm char v1"  # a file of a later version ("... v2") is refused as newer (version.py)
PREFIX = json.dumps({"format": FORMAT})[:-1]  # how every file `save` writes begins: '{"format": "tinygrad_lm char v1"'


class CharTokenizer(Tokenizer):
    """One token per character of the training text, ids in sorted character order.

    Args:
        text: the text whose characters form the vocabulary (must be non-empty).
    """

    def __init__(self, text: str):
        if not text:
            raise ValueError("cannot build a CharTokenizer from an empty text")
        self.chars = "".join(sorted(set(text)))
        self._stoi = {c: i for i, c in enumerate(self.chars)}
        self.vocab_size = len(self.chars)
        self.special_tokens: dict[str, int] = {}  # str -> id, after the characters (add_special_tokens)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "CharTokenizer":
        """Build from a UTF-8 file (clear error with the byte offset if it is not UTF-8)."""
        return cls(read_text(path))

    def encode(self, text: str) -> list[int]:
        """Characters to ids. Raises ValueError naming the first character not in the
        training text."""
        stoi = self._stoi
        try:
            return [stoi[c] for c in text]
        except KeyError as e:
            c = e.args[0]
            raise ValueError(f"character {c!r} (U+{ord(c):04X}, at position {text.index(c)}) was "
                             f"not in the training text of this CharTokenizer") from None

    def decode(self, ids: Iterable[int]) -> str:
        """Ids to text. Raises ValueError for an id outside 0..vocab_size-1."""
        ids = list(ids)
        # ids in order: characters, then specials
        table = list(self.chars) + list(self.special_tokens) if self.special_tokens else self.chars
        try:
            if ids and (min(ids) < 0 or max(ids) >= self.vocab_size):
                raise IndexError
            return "".join([table[i] for i in ids])
        except (IndexError, TypeError):  # the checks of a bad input, off the common path
            check_integer_ids(ids)
            bad = [i for i in ids if not 0 <= i < self.vocab_size]
            raise ValueError(f"unknown token id(s) {bad[:5]} for vocab_size {self.vocab_size}") from None

    def to_dict(self) -> dict:
        """A JSON-serialisable dict (for model checkpoints)."""
        d = {"type": "char", "version": 1, "chars": self.chars}
        if self.special_tokens:
            d["special_tokens"] = dict(self.special_tokens)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "CharTokenizer":
        if d.get("type") == "char" and is_newer(d.get("version"), 1):
            raise newer_format("the tokenizer", "char tokenizer dict", d["version"], 1)
        if d.get("type") != "char" or d.get("version", 1) != 1:
            raise ValueError(f"not a char tokenizer dict of version 1: version={d.get('version')!r}, "
                             f"type={d.get('type')!r}")
        return cls._with_specials(d["chars"], d.get("special_tokens", {}), "char tokenizer dict")

    @classmethod
    def _with_specials(cls, chars, specials, where):
        tok = cls(chars)
        want = list(range(tok.vocab_size, tok.vocab_size + len(specials)))
        if not isinstance(specials, dict) or sorted(specials.values()) != want:
            raise ValueError(f"{where}: special token ids {specials} must be {want}, the ids after the "
                             f"{tok.vocab_size} characters")
        tok.add_special_tokens(sorted(specials, key=specials.get))
        return tok

    def save(self, path: str | os.PathLike) -> None:
        """Write ``{"format": "tinygrad_lm char v1", "chars": ...}`` as UTF-8 JSON, whole or not at
        all (``files.atomic_write``: a failed or killed save leaves the old file)."""
        d = {"format": FORMAT, "chars": self.chars}
        if self.special_tokens:
            d["special_tokens"] = self.special_tokens
        atomic_write(path, json.dumps(d, ensure_ascii=False) + "\n", what="the tokenizer")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "CharTokenizer":
        """Read a file written by ``save``; raises ValueError naming the path otherwise (a file cut
        short or damaged says so)."""
        text = read_text(path)
        if not text:
            raise ValueError(f"{path} is empty (a save that did not finish?); save the tokenizer again")
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            if text.startswith(PREFIX) or PREFIX.startswith(text):
                raise ValueError(f"{path}: a char tokenizer file cut short or damaged (not valid JSON: {e}); "
                                 "save the tokenizer again") from None
            d = None
        try:
            later = re.fullmatch(r"tinygrad_lm char v(\d+)", str(d.get("format")))
            if later and is_newer(int(later[1]), 1):
                raise newer_format(path, "char tokenizer file", int(later[1]), 1)
            assert d["format"] == FORMAT and isinstance(d["chars"], str) and d["chars"]
        except (KeyError, TypeError, AttributeError, AssertionError, json.JSONDecodeError):
            raise ValueError(f"{path} is not a '{FORMAT}' file written by CharTokenizer.save") \
                from None
        return cls._with_specials(d["chars"], d.get("special_tokens", {}), str(path))

    def __repr__(self):
        specials = f", specials={list(self.special_tokens)}" if self.special_tokens else ""
        return f"CharTokenizer(vocab_size={self.vocab_size}{specials})"

"""Shared pieces of the tokenizers: the base class, printing tokens, and the file plumbing.

What this file implements:
  * ``get_stats(ids)`` and ``merge(ids, pair, idx)``, re-exported: the two pure functions that
    byte-pair encoding is built from now live in ``train_reference.py``, beside the training
    loop built from them.
  * ``render_token(b)``: a printable form of a token's bytes, used in the model file and in logs.
  * ``read_text(path)``: read a whole UTF-8 file, and ``iter_text_pieces(path, ...)``: read one
    in pieces; both raise a clear error naming the path and the byte offset of the first byte
    that is not UTF-8.
  * ``Tokenizer``: the base class with what every tokenizer shares: ``vocab_size``,
    ``encode_file`` (stream a large text into a raw uint16/uint32 token file, with a sidecar that
    records the tokenizer: ``token_file.py``), ``fingerprint`` and the dtype rule.

What it leaves out: BPE training (``train_reference.py``, ``train_fast.py``) and encoding
(``bpe.py``), the character tokenizer (``char.py``), the split patterns (``patterns.py``) and
tiktoken rank files (``tiktoken_io.py``).
The layout follows minbpe's base.py (a versioned model file, tokens rendered for it); the code is
our own.
"""
from __future__ import annotations

import hashlib
import json
import os
import unicodedata
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from .token_file import write_token_file
# the two pure helpers of byte-pair encoding live beside the training loop built from them;
# they stay importable from here, where they used to be
from .train_reference import get_stats, merge  # noqa: F401


# ----------------------------------------------------------------------------------------------
# printing a token

def render_token(b: bytes) -> str:
    """A printable, one-line form of a token's bytes.

    Valid UTF-8 is shown as text with control characters escaped (``\\n`` -> ``\\u000a``);
    bytes that are not UTF-8 on their own (half of a multi-byte character) are shown as
    ``\\xNN``.

        >>> render_token(b"hi\\n"), render_token(b"\\xe2\\x82")
        ('hi\\\\u000a', '\\\\xe2\\\\x82')
    """
    s = b.decode("utf-8", errors="backslashreplace")
    return "".join(f"\\u{ord(c):04x}" if unicodedata.category(c)[0] == "C" else c for c in s)


# ----------------------------------------------------------------------------------------------
# reading UTF-8 files with errors that say where the problem is

def _not_utf8(path, err: UnicodeDecodeError, offset: int) -> ValueError:
    bad = err.object[err.start:err.start + 1]
    return ValueError(
        f"{path} is not valid UTF-8: {err.reason} 0x{bad.hex()} at byte offset {offset + err.start}; "
        f"re-save it as UTF-8")


def read_text(path: str | os.PathLike) -> str:
    """Read a whole UTF-8 text file.

    Raises:
        ValueError: naming the path and the byte offset of the first invalid byte, e.g.
            ``/x/y.txt is not valid UTF-8: invalid start byte 0xff at byte offset 1234; ...``.
    """
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _not_utf8(path, e, 0) from None


def iter_text_pieces(path: str | os.PathLike, piece_bytes: int = 4 << 20) -> Iterator[str]:
    """Yield the text of a UTF-8 file in pieces of about ``piece_bytes`` bytes.

    A multi-byte character cut by a piece boundary is carried into the next piece, so the
    concatenation of the pieces is exactly the file's text. Raises the same ValueError as
    ``read_text`` (path and absolute byte offset) on the first invalid byte.
    """
    offset = 0          # file offset of data[0]
    carry = b""
    with open(path, "rb") as f:
        while True:
            block = f.read(piece_bytes)
            data = carry + block
            if not data:
                return
            try:
                text = data.decode("utf-8")
                carry = b""
            except UnicodeDecodeError as e:
                # an incomplete character at the very end of a piece is fine: finish it next time
                if block and e.end == len(data) and e.reason == "unexpected end of data":
                    text = data[:e.start].decode("utf-8")
                    carry = data[e.start:]
                else:
                    raise _not_utf8(path, e, offset) from None
            offset += len(data) - len(carry)
            if text:
                yield text
            if not block:
                return


# ----------------------------------------------------------------------------------------------
def check_integer_ids(ids) -> None:
    """Raise TypeError naming the first id that is no integer (1.5, "3"): decode takes integer ids."""
    for i in ids:
        if not isinstance(i, (int, np.integer)) or isinstance(i, bool):
            raise TypeError(f"decode: token ids must be integers, got {i!r} ({type(i).__name__}); convert them "
                            "with int() or .astype(np.int64)")


def check_specials(specials: list[str]) -> None:
    """Special tokens must be distinct, non-empty strings: a ValueError naming the offenders."""
    for s in specials:
        if not isinstance(s, str) or not s:
            raise ValueError(f"special tokens must be non-empty strings, got {s!r}")
    dup = sorted({s for s in specials if specials.count(s) > 1})
    if dup:
        raise ValueError(f"special tokens must be distinct; repeated: {dup}")


# the base class

class Tokenizer:
    """What every tokenizer here offers: ``vocab_size``, ``encode``, ``decode``, ``encode_file``.

    Subclasses implement ``encode``/``decode``/``to_dict`` and may override ``_safe_cut`` (where
    a piece of a streamed file may end without changing the encoding).
    """

    vocab_size: int

    def encode(self, text: str) -> list[int]:  # pragma: no cover - abstract
        raise NotImplementedError

    def decode(self, ids: Iterable[int]) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def add_special_tokens(self, tokens: Iterable[str]) -> int:
        """Give each of ``tokens`` not yet special the next id after the current vocabulary, in
        order (Hugging Face's ``add_special_tokens``: every existing id stays as it is); returns
        how many were added. Masked-language-model pretraining adds ``[CLS] [SEP] [MASK] [PAD]``
        this way (``tinygrad_lm/run/mlm.py``). Subclasses keep ``special_tokens`` (str -> id) and
        recompute what depends on it in ``_specials_changed``.
        """
        tokens = list(tokens)
        check_specials(tokens)
        new = [t for t in tokens if t not in self.special_tokens]
        for t in new:
            self.special_tokens[t] = self.vocab_size
            self.vocab_size += 1
        self._specials_changed()
        return len(new)

    def _specials_changed(self) -> None:
        """Called after ``add_special_tokens``; nothing depends on the specials by default."""

    def token_dtype(self) -> np.dtype:
        """uint16 when every id fits (vocab_size <= 65536, ids 0..65535), else uint32."""
        return np.dtype(np.uint16 if self.vocab_size <= 1 << 16 else np.uint32)

    def fingerprint(self) -> str:
        """SHA-256 (hex) of what gives the ids below the special tokens their meaning: ``to_dict()``
        without ``special_tokens`` and ``version``, as canonical JSON (sorted keys, no spaces). Two
        tokenizers with the same fingerprint encode every text to the same ids (BPE: pattern, merges
        and byte order; char: the characters); token files record it (``token_file.py``)."""
        content = {k: v for k, v in self.to_dict().items() if k not in ("special_tokens", "version")}
        return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode("ascii")).hexdigest()

    def _safe_cut(self, text: str) -> int:
        """Largest i such that ``encode(text[:i]) + encode(text[i:])`` equals ``encode(text)``
        for every continuation of ``text``; 0 when there is none. Any cut is safe by default."""
        return len(text)

    def _encode_piece(self, text: str, **kwargs) -> list[int]:
        return self.encode(text, **kwargs)

    def encode_file(self, path: str | os.PathLike, out_path: str | os.PathLike,
                    piece_bytes: int = 4 << 20, tokenizer_name: str | None = None,
                    **encode_kwargs) -> tuple[int, np.dtype]:
        """Stream a UTF-8 text file into a header-less binary file of token ids, and its sidecar.

        The text is read ``piece_bytes`` at a time; each piece is encoded up to the last
        position where cutting cannot change the result (see ``_safe_cut``) and the rest is
        carried into the next piece, so the output equals ``encode(read_text(path))``.
        ``BPETokenizer`` cuts only where a space follows a non-whitespace character and no
        special token spans the cut: the GPT-2/GPT-4 split regexes always split there anyway
        (see ``BPETokenizer._safe_cut``); ``CharTokenizer`` may cut anywhere.
        The ids are written as a raw little-endian array of ``token_dtype()`` (uint16 when
        vocab_size <= 65536, else uint32), readable with ``np.fromfile(out_path, dtype)`` or
        ``np.memmap``; ``out_path.json`` beside it records the count, SHA-256 and this
        tokenizer's fingerprint (``token_file.py``). Both are written to temporary files and
        renamed into place: the previous file stays whole until the new one is.

        Args:
            path: the input text (UTF-8).
            out_path: the token file to write (replaced, with its sidecar).
            piece_bytes: how many bytes to read at a time.
            tokenizer_name: how the sidecar names this tokenizer (the file it is saved to);
                default its repr.
            **encode_kwargs: passed to ``encode`` (e.g. ``allowed_special="all"``).
        Returns:
            ``(number_of_tokens, dtype)``.
        Raises:
            ValueError: the input is not UTF-8 (path and byte offset in the message).
            OSError: the token file cannot be written (naming it and why).
        """
        if Path(out_path).resolve() == Path(path).resolve():
            raise ValueError(f"{out_path} is the text being encoded; write the ids to another file (such as "
                             f"{Path(path).with_suffix('.bin')})")
        dtype = self.token_dtype().newbyteorder("<")

        def pieces():
            pending = ""
            for text in iter_text_pieces(path, piece_bytes):
                pending += text
                cut = self._safe_cut(pending)
                if cut > 0:
                    yield self._encode_piece(pending[:cut], **encode_kwargs)
                    pending = pending[cut:]
            if pending:
                yield self._encode_piece(pending, **encode_kwargs)

        n = write_token_file(out_path, pieces(), dtype, self, tokenizer_name)
        return n, np.dtype(dtype)

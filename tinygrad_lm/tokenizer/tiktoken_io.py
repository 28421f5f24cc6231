"""Reading and writing tiktoken's ``.tiktoken`` rank files.

What this file implements: ``save_tiktoken_ranks(ranks, path)`` and ``load_tiktoken_ranks(path)``
for the plain-text format tiktoken's ``load_tiktoken_bpe`` reads: one token per line, written as
the base64 of its bytes, a space, and its rank (an integer), e.g. for the first merge of the
Wikipedia example::

    YQ== 97          <- b"a"
    ...
    YWE= 256         <- b"aa"

Ranks double as token ids. With a ``BPETokenizer`` the 256 single bytes take ranks 0..255 in
byte order and merge i takes rank 256+i, so the ids agree with ours.

What it leaves out: the split pattern and the special tokens, which the format does not store
(pass them to ``BPETokenizer.load_tiktoken``), and downloading or hash-checking remote files.
"""
from __future__ import annotations

import base64
import binascii
import os

from ..files import atomic_write


def save_tiktoken_ranks(ranks: dict[bytes, int], path: str | os.PathLike) -> None:
    """Write ``{token bytes: rank}`` as ``base64 rank`` lines, in rank order (ASCII text), whole or
    not at all (``files.atomic_write``).

        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "t.tiktoken")
        >>> save_tiktoken_ranks({b"a": 0, b"ab": 1}, p)
        >>> open(p).read()
        'YQ== 0\\nYWI= 1\\n'
    """
    lines = [f"{base64.b64encode(tok).decode('ascii')} {rank}\n"
             for tok, rank in sorted(ranks.items(), key=lambda kv: kv[1])]
    atomic_write(path, "".join(lines), what="the tiktoken rank file")


def load_tiktoken_ranks(path: str | os.PathLike) -> dict[bytes, int]:
    """Read a ``.tiktoken`` file into ``{token bytes: rank}``.

    Raises:
        ValueError: naming the path and line when a line is not ``<base64> <integer>``, or a
            token or rank appears twice.
    """
    ranks: dict[bytes, int] = {}
    seen_ranks = set()
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                tok_b64, rank_s = line.split()
                tok, rank = base64.b64decode(tok_b64, validate=True), int(rank_s)
            except (ValueError, binascii.Error):
                raise ValueError(f"{path}: line {lineno}: expected '<base64 token> <rank>', got "
                                 f"{line[:60]!r}; is this a .tiktoken rank file?") from None
            if tok in ranks or rank in seen_ranks:
                raise ValueError(f"{path}: line {lineno}: token or rank {rank} appears twice")
            ranks[tok] = rank
            seen_ranks.add(rank)
    return ranks

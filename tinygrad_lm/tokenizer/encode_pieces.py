"""Byte-level BPE encoding of long texts: a cache of the pieces between the spaces where the split always cuts.

What this file implements: ``cut_at_spaces(text)`` and ``PieceEncoder``, which
``BPETokenizer.encode_ordinary`` (``bpe.py``) uses for long texts under the GPT-2 and GPT-4
split patterns. It returns the ids of ``encode_fast.ChunkEncoder`` on the text's regex chunks,
that is, of ``BPETokenizer._encode_chunk`` chunk by chunk (read that one first: it is the rule;
tests/test_tokenizer_encode_pieces.py pins the two together on random texts).

Why: once its chunk cache is warm, encoding a text costs the regex split (about 190 ns a chunk
on this project's 2-core machine) and a dict lookup a chunk (about as much again): as much as
tiktoken's whole encode. But the GPT-2 and GPT-4 patterns always start a chunk at a space that
comes before a non-whitespace character: a chunk holds a space only as its first character, or
inside a run of whitespace, which ``\\s+(?!\\S)`` ends one short of a non-whitespace character
(so the last space of an indentation starts the next word's chunk). And how they cut the text
before such a space depends on the space alone, not on what follows it: their only lookahead,
``(?!\\S)``, sees one character. So a text's chunks are the chunks of each *piece* between such
spaces, one piece after the other (tested on random texts), and a piece that was seen before
needs neither the regex nor its chunks' lookups:

  1. ``cut_at_spaces``: find those spaces in one NumPy pass over the text's code points, put a
     character the text lacks in their place, and cut with one ``str.split``: the parts are the
     pieces without their leading space (``text == " ".join(parts)``);
  2. look each middle part up in the piece cache (``encode_fast.RunCache``: a part -> the ids of
     its piece, in flat arrays): one lookup a piece, about a word and the punctuation after it
     (1.75 chunks of English prose);
  3. the first part, the new pieces and the last part, joined, are split by the regex and
     encoded by the ``ChunkEncoder`` in one call. Every piece after the first starts with a
     space before a non-whitespace character, so the join cuts between them too, and the chunks
     fall into pieces at the sums of their lengths. (The first part may start with whitespace
     and the last one end with it, so they are not cached: they take the chunk cache each time.)
     When most pieces are new (a first call), their chunks skip the chunk cache and are all
     merged: they repeat little, and a lookup each cost more than the merges it saved;
  4. the ids are one gather from the flat arrays, and one ``tolist``.

The price is paid once: a first call numbers every piece in the cache (one ``setdefault`` each),
which makes it about 7-11% slower than the chunk cache alone; a call that meets pieces seen
before then takes about half of tiktoken's time (BENCHMARKS.md, issue #26, second round).

What it leaves out: other split patterns (a custom pattern may join a space to what comes
before it: those texts take the chunk path), texts with no such space (one piece), and cuts
after a newline (the piece before one ends in whitespace that sees a non-whitespace character
next, which a join must then give it too: tried with the new pieces ordered so, it cost more than
it saved; BENCHMARKS.md, issue #26, third round).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import regex

from .encode_fast import ChunkEncoder, RunCache
from .patterns import code_points, free_mark



def _whitespace_table() -> np.ndarray:
    """``table[c]``: is code point c whitespace to ``str.isspace``, stdlib ``re``'s ``\\s`` or
    ``regex``'s ``\\s``? (No code point above U+3000 is.) A space after any of them is not cut."""
    pattern = regex.compile(r"\s")
    return np.array([chr(c).isspace() or pattern.match(chr(c)) is not None for c in range(0x3001)], bool)


_WHITESPACE = _whitespace_table()


def cut_at_spaces(text: str) -> tuple[list[str], np.ndarray]:
    """``text`` cut at each space that comes before a non-whitespace character, those spaces
    dropped (``" ".join(parts) == text``), and where those spaces are. Every part but the first
    starts with a non-whitespace character.

        >>> parts, cuts = cut_at_spaces("To be,  or not\\n   to be ")
        >>> parts, cuts.tolist()
        (['To', 'be, ', 'or', 'not\\n  ', 'to', 'be '], [2, 7, 10, 17, 20])

    Raises:
        UnicodeEncodeError: the text holds a lone surrogate (the caller replaces them).
    """
    code, encoding = code_points(text)
    spaces = np.flatnonzero(code[:-1] == 32)                       # the spaces before another character
    after = code[spaces + 1].astype(np.int64)                      # that character
    white = _WHITESPACE[np.minimum(after, 0x3000)] & (after <= 0x3000)
    cuts = spaces[~white]                                          # the spaces to cut at
    if cuts.size == spaces.size and not text.endswith(" "):
        return text.split(" "), cuts                               # every space is a cut
    mark = free_mark(text)                                         # a character the text lacks marks the cuts
    if mark is None:
        out, at = [], 0                                            # (a text holding all of them)
        for c in cuts.tolist():
            out.append(text[at:c])
            at = c + 1
        return out + [text[at:]], cuts
    marked = code.copy()
    marked[cuts] = ord(mark)
    return marked.tobytes().decode(encoding).split(mark), cuts


class PieceEncoder:
    """The piece cache of a tokenizer, in front of its ``ChunkEncoder``.

    Args:
        chunks: the tokenizer's ``ChunkEncoder`` (``BPETokenizer._chunks``).
        split: text -> its regex chunks (``BPETokenizer._split_text``).
        cache_limit: the most pieces kept from one call to the next.
    """

    def __init__(self, chunks: ChunkEncoder, split: Callable[[str], list[str]], cache_limit: int = 1_000_000):
        self.chunks = chunks
        self.split = split
        self.cache_limit = cache_limit
        self.clear()

    def clear(self) -> None:
        """Empty the piece cache (the chunk cache is the ChunkEncoder's)."""
        self.cache = RunCache()

    def __len__(self) -> int:
        return len(self.cache)

    def encode(self, text: str) -> list[int]:
        """The ids of ``text``: those of the ChunkEncoder on ``split(text)``, in less time."""
        parts, cuts = cut_at_spaces(text)
        lead = 0 if parts[0] else 1            # a text that starts with " x": the first piece is " x"
        if len(parts) < 3 + lead:
            return self.chunks.encode(self.split(text))
        if len(self.cache) > self.cache_limit:
            self.clear()
        first, middle, last = " " * lead + parts[lead], parts[1 + lead:-1], parts[-1]
        slots, new = self.cache.number(middle)
        new_parts = [] if new is None else list(map(middle.__getitem__, new.tolist()))
        # the pieces to split: the first, " " + each new part, " " + the last part
        sizes = np.diff(np.append(cuts, len(text)))[lead:][new] if new_parts else np.zeros(0, np.int64)
        pieces_end = np.cumsum(np.concatenate([[len(first)], sizes, [len(last) + 1]]))
        # mostly new pieces (a first call): their chunks repeat little more than the pieces do,
        # so merging every chunk costs less than a chunk cache lookup each
        cached = 2 * len(new_parts) <= len(middle)
        try:
            ids, ids_end = self._encode_pieces(first, new_parts, last, pieces_end, cached)
            if new_parts:                      # the new pieces' runs, back to back after the first part's
                self.cache.add(ids[ids_end[0]:ids_end[-2]], np.diff(ids_end[:-1]), np.arange(len(new_parts)))
        except BaseException:
            self.cache.forget(new_parts)       # leave the cache as it was
            raise
        middle_ids = self.cache.gather(slots)[0]
        return np.concatenate([ids[:ids_end[0]], middle_ids, ids[ids_end[-2]:]]).tolist()

    def _encode_pieces(self, first: str, middle: list[str], last: str, pieces_end: np.ndarray,
                       cached: bool) -> tuple[np.ndarray, np.ndarray]:
        """The ids of ``first``, ``" " + m`` for each ``m`` of ``middle`` and ``" " + last``, one
        after the other (split and encoded as one text: they join at cuts), and where each
        piece's ids end; ``pieces_end``: where each piece ends in that text. ``cached``: through
        the chunk cache (else every chunk is merged)."""
        text = " ".join([first, *middle, last])
        chunks = self.split(text)
        ids, counts, sizes = self.chunks.encode_runs(chunks) if cached else self.chunks.merge_every(chunks, text)
        chunks_end = np.cumsum(sizes)
        k = np.searchsorted(chunks_end, pieces_end)                    # the chunk that ends each piece
        if k[-1] != len(chunks) - 1 or not np.array_equal(chunks_end[k], pieces_end):
            raise AssertionError("encode_pieces: a chunk crosses a piece boundary (a split pattern "
                                 "that joins a space to what comes before it?)")
        return ids, np.cumsum(counts)[k]

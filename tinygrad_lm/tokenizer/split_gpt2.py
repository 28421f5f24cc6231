"""GPT-2's split pattern, vectorized: the chunks of a long text from a few NumPy passes.

What this file implements: ``split_gpt2(text)``, which returns what
``regex.findall(patterns.GPT2_SPLIT_PATTERN, text)`` returns, for any text without characters
beyond U+FFFF. The pattern is the rule (read it first, in patterns.py);
tests/test_tokenizer_split_gpt2.py pins the two together on random texts.

Why: a first encode of a long text spends a fifth of its time in the split (stdlib ``re``
scanning the pattern's alternatives at each chunk start, about 0.2 us a chunk); the rest of a
first call is already one NumPy or C pass per stage (encode_pieces.py, encode_fast.py).

How: each character gets one of four classes, letter (``\\p{L}``), number (``\\p{N}``),
whitespace (``\\s``) or other, from a table read off the ``regex`` package itself (so the two
agree by construction). The pattern's alternatives, tried left to right at each chunk start,
then come down to rules about a character and its neighbours:

  1. a chunk starts where the class changes: a run of letters, of numbers, of others or of
     whitespace (`` ?\\p{L}+``, `` ?\\p{N}+``, `` ?[^\\s\\p{L}\\p{N}]+``, ``\\s+``);
  2. a run of whitespace followed by a non-whitespace character leaves its last character to
     the next chunk (``\\s+(?!\\S)`` backs off one), which that character joins when it is a
     space (the optional space of rule 1's first three) and starts alone otherwise (``\\s+``);
  3. an apostrophe that starts a chunk (after a letter, a number, whitespace other than a
     space, or at the start) followed by s, d, m, t, ll, ve or re is a chunk with those letters
     (``'(?:[sdmt]|ll|ve|re)``, the first alternative); after a space or an other it is part
     of a run of others.

The chunk starts are then one boolean array: a mark character that the text lacks goes in at
each of them (one ``np.insert``), and one ``str.split`` makes the chunks. Measured against
``re`` (median of 9): 1.6x to 2.4x faster on ASCII text (Tiny Shakespeare, 59 against 37 ms), about
as fast on text beyond ASCII (25 against 23 ms for 1 MB of mixed scripts), and slower below
about 4,000 characters (BENCHMARKS.md, issue #26, fourth round).

What it leaves out: the GPT-4 pattern (more rules: digits in threes, case-blind contractions,
a leading non-letter on words, newlines joined to punctuation; written out the same way they
gave the regex's chunks but took 1.5-1.9x ``re``'s time) and characters beyond U+FFFF
(``None``: the caller keeps the regex, as ``BPETokenizer._split_text`` does for them).
"""
from __future__ import annotations

import functools

import numpy as np
import regex

from .patterns import code_points, free_mark, has_astral

LETTER, NUMBER, OTHER, SPACE = 0, 1, 2, 3       # SPACE: any whitespace character
_SPACE_CHAR, _QUOTE = ord(" "), ord("'")
_ONE_LETTER = "sdmt"                   # 's 'd 'm 't
_TWO_LETTERS = ("ll", "ve", "re")       # 'll 've 're


@functools.lru_cache(maxsize=None)
def classes(size: int) -> np.ndarray:
    """``table[c]``: the class of code point ``c < size`` (128 for ASCII text, 0x10000 for the
    rest), read off ``regex``'s ``\\p{L}``, ``\\p{N}`` and ``\\s`` (about 20 ms for 0x10000, once).

        >>> classes(128)[[ord("a"), ord("7"), ord("\\n"), ord("!")]].tolist() == [LETTER, NUMBER, SPACE, OTHER]
        True
    """
    chars = "".join(map(chr, range(size)))
    table = np.full(size, OTHER, np.uint8)
    for cls, prop in ((LETTER, r"\p{L}"), (NUMBER, r"\p{N}"), (SPACE, r"\s")):
        for m in regex.finditer(f"(?:{prop})+", chars):
            table[m.start():m.end()] = cls
    return table


def split_gpt2(text: str) -> list[str] | None:
    """``regex.findall(GPT2_SPLIT_PATTERN, text)``, or None if the text holds a character
    beyond U+FFFF.

        >>> split_gpt2("I'm  here,\\n  ok 42!")
        ['I', "'m", ' ', ' here', ',', '\\n ', ' ok', ' 42', '!']
    """
    if len(text) < 2:
        return [text] if text else []
    if not text.isascii() and has_astral(text):
        return None
    code, encoding = code_points(text, "surrogatepass")
    starts = _starts(code, classes(128 if encoding == "ascii" else 0x10000))
    mark = free_mark(text)                         # a character the text lacks marks the chunk starts
    if mark is None:                               # (a text holding all of them)
        bounds = [0, *starts.tolist(), len(text)]
        return [text[a:b] for a, b in zip(bounds, bounds[1:])]
    marked = np.insert(code, starts, ord(mark))
    return marked.tobytes().decode(encoding, "surrogatepass").split(mark)


def _starts(code: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Where the chunks after the first start, by the module docstring's three rules."""
    n = code.size
    cls = table[code]
    start = np.empty(n, bool)
    np.not_equal(cls[1:], cls[:-1], out=start[1:])                 # rule 1: the class changes
    white = cls == SPACE
    after = np.flatnonzero(white[:-1] & ~white[1:]) + 1           # rule 2: the first non-whitespace after a run
    start[after - 1] = True                                        # the run's last character starts a chunk
    start[after[code[after - 1] == _SPACE_CHAR]] = False           # and a space joins the one after it
    quote = np.flatnonzero(code == _QUOTE)                         # rule 3: contractions
    if quote.size:
        before = code[np.maximum(quote - 1, 0)]
        kind = table[before]
        opens = (kind == LETTER) | (kind == NUMBER) | ((kind == SPACE) & (before != _SPACE_CHAR)) | (quote == 0)
        quote = quote[opens]
        first, second = (np.where(at < n, code[np.minimum(at, n - 1)], 0).astype(np.int64)
                         for at in (quote + 1, quote + 2))              # the two characters after each
        one = np.logical_or.reduce([first == ord(c) for c in _ONE_LETTER])
        two = np.logical_or.reduce([(first == ord(a)) & (second == ord(b)) for a, b in _TWO_LETTERS])
        letters = np.where(one, 1, np.where(two, 2, 0))          # how many letters each apostrophe takes
        quote, letters = quote[letters > 0], letters[letters > 0]
        start[quote] = True
        start[quote + 1] = False                                   # the letters belong to the apostrophe
        end = quote + 1 + letters
        start[end[end < n]] = True                                 # and the chunk ends after them
    start[0] = False                                               # (the first chunk's start: no cut)
    return np.flatnonzero(start)

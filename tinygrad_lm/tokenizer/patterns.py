"""The regexes that cut text into chunks before byte-pair encoding (GPT-2 and GPT-4 style).

BPE never merges across chunk boundaries, so a token can never span "dog" and "." or a word and
the space that follows it. Each pattern below is an alternation tried left to right at every
position (``regex.findall``); it needs the third-party ``regex`` package for ``\\p{L}`` (any
letter), ``\\p{N}`` (any number) and possessive quantifiers (``?+``, ``++``).

    >>> import regex
    >>> regex.findall(GPT4_SPLIT_PATTERN, "Hello world's 12345!!\\n\\n  ok")
    ['Hello', ' world', "'s", ' ', '123', '45', '!!\\n\\n', ' ', ' ok']

What the alternatives of the GPT-4 pattern do, in order:
  * ``'(?i:[sdmt]|ll|ve|re)``: English contractions ('s 'd 'm 't 'll 've 're, any case);
  * ``[^\\r\\n\\p{L}\\p{N}]?+\\p{L}+``: a word with at most one leading non-letter (often a space);
  * ``\\p{N}{1,3}``: numbers in groups of at most three digits;
  * `` ?[^\\s\\p{L}\\p{N}]++[\\r\\n]*``: punctuation, with one optional leading space and the
    newlines that follow;
  * ``\\s*[\\r\\n]``: whitespace ending in a newline;
  * ``\\s+(?!\\S)``: whitespace, leaving the last space to start the next word;
  * ``\\s+``: any remaining whitespace.

Provenance: these are the strings OpenAI published for GPT-2 (encoder.py) and cl100k_base, as
minbpe writes them. tiktoken's ``tiktoken_ext/openai_public.py`` (0.14) spells them with extra
possessive quantifiers and ends in ``\\s++$|\\s+(?!\\S)|\\s`` instead of ``\\s+(?!\\S)|\\s+``. Those
are speed rewrites that split every text the same way (``\\s+`` is reached only for a single
whitespace character); the tests check it by encoding with both spellings through tiktoken.
We keep the published spelling because Python's ``$`` also matches before a final newline,
which would make ``\\s++$`` behave differently in the ``regex`` package than in tiktoken's Rust.

Speed: the ``regex`` package runs the GPT-4 pattern at ~13 MB/s here, the main cost of encoding.
For text that is pure ASCII (``str.isascii()`` is O(1) in CPython) ``ASCII_PATTERNS`` gives each
pattern rewritten for the standard library's ``re`` (possessive quantifiers need Python 3.11),
which is about 2x faster: ``\\p{L}`` becomes ``A-Za-z``, ``\\p{N}`` becomes ``0-9``, and ``\\s`` is
spelled out as ``[\\t\\n\\x0b\\x0c\\r ]`` because ``re`` also counts ``\\x1c``-``\\x1f`` as whitespace
and ``regex`` does not. On ASCII text both spellings split identically (tested).

Text with characters beyond ASCII but none beyond the Basic Multilingual Plane (U+0000-U+FFFF:
Cyrillic, Greek, CJK, code with a few accented letters; not emoji) gets ``bmp_pattern(pattern)``,
the same rewrite for ``re`` in Unicode mode with ``\\p{L}``, ``\\p{N}`` and ``\\s`` spelled out as
the lists of BMP code-point ranges that ``regex`` itself puts in them (read off ``regex`` once,
at first use, so the two agree by construction; tests compare them on every BMP character).
``re`` compiles such a class to a bitmap, and splits about 2x faster than ``regex`` (code:
0.05 s against 0.10 s for 0.9 MB). Characters beyond U+FFFF would make ``re`` scan its ranges
one by one (slower than ``regex``), so text holding any keeps the ``regex`` split.

What this file leaves out: the o200k (GPT-4o) pattern, and any normalisation of the text.
"""
from __future__ import annotations

import functools
import re

import numpy as np
import regex

GPT2_SPLIT_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

GPT4_SPLIT_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*"""
    r"""|\s*[\r\n]|\s+(?!\S)|\s+""")

PATTERNS = {"gpt2": GPT2_SPLIT_PATTERN, "gpt4": GPT4_SPLIT_PATTERN}

_S = r"[\t\n\x0b\x0c\r ]"          # regex's \s on ASCII
_NS = r"[^\t\n\x0b\x0c\r ]"        # regex's \S on ASCII
ASCII_PATTERNS = {
    GPT2_SPLIT_PATTERN:
        r"""'(?:[sdmt]|ll|ve|re)| ?[A-Za-z]+| ?[0-9]+| ?[^\t\n\x0b\x0c\r A-Za-z0-9]+"""
        rf"""|{_S}+(?!{_NS})|{_S}+""",
    GPT4_SPLIT_PATTERN:
        r"""'(?i:[sdmt]|ll|ve|re)|[^\r\nA-Za-z0-9]?+[A-Za-z]+|[0-9]{1,3}"""
        r"""| ?[^\t\n\x0b\x0c\r A-Za-z0-9]++[\r\n]*"""
        rf"""|{_S}*[\r\n]|{_S}+(?!{_NS})|{_S}+""",
}


def resolve_pattern(pattern: str) -> str:
    """Map ``"gpt2"``/``"gpt4"`` to their regex; any other string is taken as a regex itself."""
    return PATTERNS.get(pattern, pattern)


# ``{L}``, ``{N}``, ``{S}`` (``\p{L}``, ``\p{N}``, ``\s`` as BMP ranges) filled in by ``bmp_pattern``
_BMP_TEMPLATES = {
    GPT2_SPLIT_PATTERN:
        r"""'(?:[sdmt]|ll|ve|re)| ?[{L}]+| ?[{N}]+| ?[^{S}{L}{N}]+|[{S}]+(?![^{S}])|[{S}]+""",
    GPT4_SPLIT_PATTERN:
        r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n{L}{N}]?+[{L}]+|[{N}]{1,3}| ?[^{S}{L}{N}]++[\r\n]*"""
        r"""|[{S}]*[\r\n]|[{S}]+(?![^{S}])|[{S}]+""",
}


@functools.lru_cache(maxsize=None)
def _bmp_ranges(prop: str) -> str:
    """The BMP code points that ``regex`` matches with ``prop`` (e.g. ``\\p{L}``), as the inside of
    a ``re`` character class.

        >>> _bmp_ranges("[a-c]|x|[0-9]")
        '0-9a-cx'
    """
    every = "".join(map(chr, range(0x10000)))
    parts = []
    for m in regex.finditer(f"(?:{prop})+", every):
        a, b = re.escape(m.group()[0]), re.escape(m.group()[-1])
        parts.append(a if a == b else f"{a}-{b}")
    return "".join(parts)


@functools.lru_cache(maxsize=None)
def bmp_pattern(pattern: str) -> re.Pattern | None:
    """The compiled ``re`` spelling of a GPT-2/GPT-4 pattern for text without characters beyond
    U+FFFF (see the module docstring); None for any other pattern, or a Python whose ``re`` lacks
    possessive quantifiers (before 3.11). Built once per process, at the first non-ASCII text
    (~50 ms for the first pattern, ~10 ms for the second)."""
    template = _BMP_TEMPLATES.get(pattern)
    if template is None:
        return None
    classes = {"L": _bmp_ranges(r"\p{L}"), "N": _bmp_ranges(r"\p{N}"), "S": _bmp_ranges(r"\s")}
    spelled = re.sub(r"\{([LNS])\}", lambda m: classes[m[1]], template)
    try:
        return re.compile(spelled)
    except re.error:  # pragma: no cover - Python 3.10: no possessive quantifiers
        return None


def astral_positions(text: str) -> list[int]:
    """The indices of the characters beyond U+FFFF in ``text`` (``has_astral`` first, then the
    code points from UTF-32: ~3 ms for 1 MB, where a regex scan takes ~10 ms).

        >>> astral_positions("a😀b 🎉"), astral_positions("Камень"), astral_positions("\\ud83d\\ude00 😀")
        ([1, 4], [], [3])
    """
    if not has_astral(text):
        return []
    code = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), np.uint32)
    return np.flatnonzero(code > 0xFFFF).tolist()


def code_points(text: str, errors: str = "strict") -> tuple[np.ndarray, str]:
    """``text``'s code points as an array, and the encoding that turns such an array back into
    text (``array.tobytes().decode(encoding)``): bytes for ASCII text, else UTF-32 words
    (encode_pieces.py, split_gpt2.py). ``errors``: "strict" raises UnicodeEncodeError on a lone
    surrogate, "surrogatepass" keeps it.

        >>> [(c.tolist(), e) for c, e in (code_points("a b"), code_points("é"))]
        [([97, 32, 98], 'ascii'), ([233], 'utf-32-le')]
    """
    if text.isascii():
        return np.frombuffer(text.encode("ascii"), np.uint8), "ascii"
    return np.frombuffer(text.encode("utf-32-le", errors), np.uint32), "utf-32-le"


def free_mark(text: str) -> str | None:
    """A character ``text`` lacks, to mark cuts in an array of its code points before one
    ``str.split`` (encode_pieces.py, split_gpt2.py); ASCII for ASCII text (its array is bytes).
    None when the text holds every candidate (the callers then slice).

        >>> eight = "".join(map(chr, range(8)))
        >>> free_mark("a b") == chr(0), free_mark(eight), free_mark(eight + "é") == chr(0xFFFE)
        (True, None, True)
    """
    marks = "\x00\x01\x02\x03\x04\x05\x06\x07" + ("" if text.isascii() else "\ufffe\uffff")
    return next((m for m in marks if m not in text), None)


def has_astral(text: str) -> bool:
    """Whether ``text`` holds a character beyond U+FFFF (emoji, rare CJK): those keep ``regex``.
    Such a character takes two UTF-16 code units (a copy at memory speed: ~0.5 ms for 1 MB,
    where a regex search takes ~10 ms).

        >>> has_astral("Камень 中文"), has_astral("ok 😀")
        (False, True)
    """
    return len(text.encode("utf-16-le", "surrogatepass")) != 2 * len(text)

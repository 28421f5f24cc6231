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

What this file leaves out: the o200k (GPT-4o) pattern, and any normalisation of the text.
"""
from __future__ import annotations

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

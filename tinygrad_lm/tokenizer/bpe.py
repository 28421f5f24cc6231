"""Byte-level BPE: the tokenizer (encode, decode, save, load), trained by either of two trainers.

What this file implements: ``BPETokenizer``, a GPT-2/GPT-4 style tokenizer. Text is cut into
chunks by a regex (``patterns.py``; a long text under GPT-2's pattern by the same rules in NumPy,
``split_gpt2.py``), each chunk is turned into its UTF-8 bytes, and the bytes
are fused by merges learned from a training text. Ids 0..255 are the raw bytes, id 256+i is
the i-th merge, and special tokens (``<|endoftext|>``...) come after the merges. The tokenizer
saves to a versioned text file, exports tiktoken's rank file, and streams large files into
uint16/uint32 token arrays (``Tokenizer.encode_file`` in ``base.py``).
``BPETokenizer.from_gpt2`` loads OpenAI's GPT-2 vocabulary (``gpt2_files.py``), whose ids
0..255 are the 256 bytes in another order (``byte_order``: id i is byte ``byte_order[i]``);
a chunk's bytes are mapped to their ids by one ``bytes.translate`` before merging.

Training (``BPETokenizer.train``) learns the merges with one of two trainers that sit beside
this file and return the same merges (tests/test_tokenizer.py pins them together):

  * ``train_reference.py``, ``train_bpe_reference``: the loop to read first, minbpe-style on
    one screen: split, count pairs (``get_stats``), take the most frequent (ties: the smallest
    pair of ids), merge it everywhere (``merge``), repeat. ``train(..., trainer="reference")``.
  * ``train_fast.py``, ``train_bpe_fast`` (the default, ``trainer="fast"``): the same merges
    with incremental pair counts and a heap; a merge only touches the chunks that hold its pair.
    Vocab 4096 on 1 MB of text in under a second, where the reference needs about 7 s for
    vocab 512 and 2.5 minutes for 4096 (BENCHMARKS.md).

Encoding (``BPETokenizer.encode``) does what tiktoken does: a chunk whose bytes are a token is
that token; otherwise repeatedly fuse the leftmost adjacent pair whose concatenated bytes form
the token of lowest rank (= lowest id), until no adjacent pair forms a token. For a vocabulary
trained here this is the usual "apply the merges in order"; matching tiktoken's rule exactly
makes ids agree even in the corner cases where the two could differ. ``_encode_chunk`` is that
rule for one chunk, the loop to read: O(L^2) for a chunk of L bytes (O(L log L) with a heap,
``_merge_long``, past ``LONG_CHUNK`` bytes), about 1 us a step in Python, paid once per distinct
chunk thanks to a ``chunk -> ids`` cache (``_encode_plain``). A text of
``encode_fast.FAST_MIN_CHUNKS`` chunks or more takes ``encode_fast.ChunkEncoder`` instead: the
same ids (tested against this loop and tiktoken), with the merges of all its new chunks done at
once in NumPy, for tiktoken's speed on text whose chunks are mostly distinct (README.md).
Either cache is emptied when a call finds it over ``CACHE_LIMIT`` chunks.

What it leaves out: training on special tokens (the training text is read as plain text),
byte-fallback/normalisation/pre-tokenizer options of other libraries, dropout, and threaded or
native-code encoding. It follows minbpe's regex.py in layout (the code is our own).
"""
from __future__ import annotations

import bisect
import heapq
import json
import operator
import os
import re
from typing import Iterable

import regex

from ..files import atomic_write
from ..version import is_newer, newer_format
from .base import Tokenizer, check_integer_ids, check_specials, read_text, render_token
from . import encode_fast
from .encode_fast import ChunkEncoder
from .encode_pieces import PieceEncoder
from .patterns import ASCII_PATTERNS, PATTERNS, astral_positions, bmp_pattern, has_astral, resolve_pattern
from .split_gpt2 import split_gpt2
from .train_fast import train_bpe_fast
from .train_reference import train_bpe_reference

FORMAT_HEADER = "tinygrad_lm bpe v1"  # a file of a later version ("... v2") is refused as newer (version.py)
LONG_CHUNK = 256  # bytes: longer chunks merge with a heap (_merge_long), shorter ones in the plain loop
# a text of this many characters or more, under the GPT-2/GPT-4 patterns, takes encode_pieces.py
PIECES_MIN_CHARS = 4096
# under GPT-2's pattern, a text (or stretch without characters beyond U+FFFF) of this many characters or
# more is split by split_gpt2.py's NumPy passes: measured on prose, re took 0.2 ms and NumPy 0.18 ms at
# 4,096 characters, 0.8 against 0.45 ms at 16,384, and NumPy's ~0.1 ms of calls lose below
SPLIT_MIN_CHARS = 4096
CACHE_LIMIT = 1_000_000  # chunks: a call that finds more in a chunk cache empties it first
_INF = float("inf")
_WHITESPACE = regex.compile(r"\s")
# BPETokenizer.train(trainer=...): each takes (text, 256 + merges, pattern) and returns the merges
TRAINERS = {"fast": train_bpe_fast, "reference": train_bpe_reference}


class BPETokenizer(Tokenizer):
    """Byte-level BPE over regex-split chunks (GPT-2/GPT-4 style), tiktoken compatible.

    Args:
        pattern: ``"gpt4"`` (cl100k split pattern, default), ``"gpt2"``, or a regex string.
        special_tokens: strings such as ``["<|endoftext|>"]``; they get the ids after the merges,
            in the given order.

    Example:
        >>> tok = BPETokenizer(special_tokens=["<|endoftext|>"])
        >>> tok.train("aaabdaaabac", vocab_size=256 + 3 + 1)
        >>> tok.encode("aaabdaaabac")
        [258, 100, 258, 97, 99]
        >>> tok.encode("aaab<|endoftext|>", allowed_special="all")
        [258, 259]
        >>> tok.decode([258, 259])
        'aaab<|endoftext|>'
    """

    def __init__(self, pattern: str = "gpt4", special_tokens: Iterable[str] | None = None):
        self.pattern = resolve_pattern(pattern)
        try:
            self._split = regex.compile(self.pattern)
        except regex.error as e:
            raise ValueError(f"invalid split pattern {self.pattern!r}: {e}") from None
        # the same split for pure-ASCII text with the faster stdlib ``re`` (see patterns.py)
        ascii_pattern = ASCII_PATTERNS.get(self.pattern)
        try:
            self._split_ascii = re.compile(ascii_pattern, re.ASCII) if ascii_pattern else self._split
        except re.error:  # pragma: no cover - Python 3.10: no possessive quantifiers in re
            self._split_ascii = self._split
        self._known_pattern = self.pattern in PATTERNS.values()   # gpt2 or gpt4: patterns.bmp_pattern spells it
        self._gpt2_pattern = self.pattern == PATTERNS["gpt2"]     # split_gpt2.py splits long texts
        self.merges: dict[tuple[int, int], int] = {}    # (id1, id2) -> new id, in merge order
        self.byte_order: tuple[int, ...] = tuple(range(256))   # id i < 256 is byte byte_order[i]
        specials = list(special_tokens or [])
        check_specials(specials)
        self.special_tokens = {s: 256 + i for i, s in enumerate(specials)}   # str -> id
        self._rebuild()

    # ------------------------------------------------------------------------------------------
    # derived tables

    def _rebuild(self):
        """Recompute everything derived from ``merges`` and ``special_tokens``."""
        if sorted(self.byte_order) != list(range(256)):
            raise ValueError("byte_order must list each of the 256 byte values once")
        vocab = [bytes([b]) for b in self.byte_order]
        self._byte_ids = bytes(sorted(range(256), key=self.byte_order.__getitem__))  # byte -> id
        for (a, b), idx in self.merges.items():
            assert idx == len(vocab), "merge ids must be 256, 257, ... in order"
            vocab.append(vocab[a] + vocab[b])
        self.vocab = vocab                                       # id -> bytes (no specials)
        self._rank_of = {}                                       # bytes -> id (first wins)
        for i, b in enumerate(vocab):
            self._rank_of.setdefault(b, i)
        self._unique = len(self._rank_of) == len(vocab)
        self._pair_rank = _pair_table(self._rank_of)
        ids = list(self.special_tokens.values())
        if len(set(ids)) != len(ids) or any(i < len(vocab) for i in ids):
            raise ValueError(f"special token ids {self.special_tokens} collide with each other "
                             f"or with the {len(vocab)} byte/merge tokens")
        self.vocab_size = max([len(vocab)] + [i + 1 for i in ids])
        self._id_to_bytes = list(vocab) + [None] * (self.vocab_size - len(vocab))
        for s, i in self.special_tokens.items():
            self._id_to_bytes[i] = s.encode("utf-8")
        self._cache: dict[str, list[int]] = {}   # chunk -> ids, for the plain loop (short texts)
        self._encoder = None  # the chunk cache and batched merges of long texts: `_chunks`, built on first use
        self._piece_encoder = None  # the piece cache in front of it: `_pieces`
        self._special_res: dict[frozenset, regex.Pattern] = {}

    @property
    def _chunks(self) -> ChunkEncoder:
        """encode_fast's ChunkEncoder for this vocabulary, built by the first long text: its
        tables cost 0.1 to 0.3 s for GPT-2's or a 4,096-token vocabulary: a loaded tokenizer
        (`_from_parts`) builds them at once, a trained one on its first long text, so that
        training does not pay them (it had got 10-25% slower when it built them)."""
        if self._encoder is None:
            self._encoder = ChunkEncoder(self._rank_of, self._pair_rank, self._byte_ids, self._merge_long,
                                         CACHE_LIMIT)
        return self._encoder

    @property
    def _pieces(self) -> PieceEncoder:
        """encode_pieces' PieceEncoder (the cache of the pieces between the spaces where the
        GPT-2/GPT-4 patterns always cut) in front of `_chunks`."""
        if self._piece_encoder is None:
            self._piece_encoder = PieceEncoder(self._chunks, self._split_text, CACHE_LIMIT)
        return self._piece_encoder

    def _clear_caches(self) -> None:
        """Empty the chunk and piece caches, as a fresh tokenizer's (the benchmarks' cold runs)."""
        self._cache.clear()
        self._chunks.clear()
        self._pieces.clear()

    # ------------------------------------------------------------------------------------------
    # training

    def train(self, text: str, vocab_size: int, verbose: bool = False,
              trainer: str = "fast") -> None:
        """Learn ``vocab_size - 256 - len(special_tokens)`` merges from ``text``.

        Replaces any previous merges (and byte order: ids 0..255 become the bytes 0..255);
        special tokens are renumbered to follow the merges.

        Args:
            text: the training text (special token strings in it are treated as plain text).
            vocab_size: the final vocabulary size, bytes + merges + specials.
            verbose: print progress (the fast trainer about ten times, the reference every merge).
            trainer: ``"fast"`` (default, ``train_fast.train_bpe_fast``: incremental counts) or
                ``"reference"`` (``train_reference.train_bpe_reference``: count, pick, merge,
                repeat; the same merges, much slower). See the module docstring.
        Raises:
            ValueError: vocab_size below 256 + number of specials, an empty text, or an unknown
                trainer.
        """
        if trainer not in TRAINERS:
            raise ValueError(f"unknown trainer {trainer!r}; expected one of {sorted(TRAINERS)}")
        n_merges = self._merges_to_learn(text, vocab_size)
        self.merges = TRAINERS[trainer](text, 256 + n_merges, self.pattern, verbose=verbose)
        self.byte_order = tuple(range(256))
        specials = list(self.special_tokens)
        self.special_tokens = {s: 256 + len(self.merges) + i for i, s in enumerate(specials)}
        self._rebuild()

    def _merges_to_learn(self, text: str, vocab_size) -> int:
        """Check ``train``'s arguments; return how many merges ``vocab_size`` leaves room for."""
        n_special = len(self.special_tokens)
        minimum = 256 + n_special
        try:
            vocab_size = operator.index(vocab_size)
        except TypeError:
            raise ValueError(f"vocab_size must be an integer, not {vocab_size!r}") from None
        if vocab_size < minimum:
            raise ValueError(f"vocab_size={vocab_size} is too small: the minimum is {minimum} "
                             f"(256 byte tokens + {n_special} special tokens)")
        if not text:
            raise ValueError("cannot train a BPE tokenizer on an empty text")
        return vocab_size - minimum

    # ------------------------------------------------------------------------------------------
    # encoding

    def _encode_chunk(self, data: bytes, max_rank: float = _INF) -> list[int]:
        """BPE one chunk the way tiktoken does: a chunk that is itself a token is that token;
        otherwise repeatedly fuse the leftmost adjacent pair whose concatenation is the token of
        lowest rank (below ``max_rank``). The loop below is O(L^2) for L bytes, fastest for the
        short chunks text is made of; a chunk longer than LONG_CHUNK bytes (a base64 blob, a
        line without spaces) takes `_merge_long`, the same merges in O(L log L).

            >>> tok = BPETokenizer()
            >>> tok.train("aaabdaaabac", 259)
            >>> tok._encode_chunk(b"aaabac")
            [258, 97, 99]
        """
        if max_rank == _INF:
            whole = self._rank_of.get(data)
            if whole is not None:
                return [whole]        # the chunk is a token: tiktoken takes it as is
        ids = list(data.translate(self._byte_ids))  # byte values -> their ids (the same for ours)
        if len(ids) < 2:
            return ids
        if len(ids) > LONG_CHUNK:
            return self._merge_long(ids, max_rank)
        get = self._pair_rank.get
        ranks = [get(p, _INF) for p in zip(ids, ids[1:])]   # ranks[i]: rank of ids[i]+ids[i+1]
        while True:
            r = min(ranks)
            if r >= max_rank:
                return ids
            i = ranks.index(r)                                # leftmost lowest rank
            ids[i:i + 2] = [r]
            del ranks[i]
            if i > 0:
                ranks[i - 1] = get((ids[i - 1], r), _INF)
            if i < len(ranks):
                ranks[i] = get((r, ids[i + 1]), _INF)
            if not ranks:
                return ids

    def _merge_long(self, ids: list[int], max_rank: float = _INF) -> list[int]:
        """The merges of `_encode_chunk`, in O(L log L): a heap of (rank, position) of adjacent
        pairs, and the tokens kept as a linked list of positions.

        Popping the heap gives the lowest rank, leftmost first (positions keep their order), as
        the quadratic loop picks. A popped pair whose tokens changed since it was pushed is
        stale and skipped: a merge only makes pairs of higher rank (the token it makes was
        learned after the pair's own), so a stale entry never matches a live pair.
        """
        get = self._pair_rank.get
        n = len(ids)
        tokens = list(ids)  # tokens[i]: the token starting at position i (valid while alive[i])
        after = list(range(1, n + 1))  # next live position (n: none)
        before = list(range(-1, n - 1))  # previous live position (-1: none)
        alive = [True] * n
        heap = [(r, i) for i in range(n - 1) if (r := get((tokens[i], tokens[i + 1]), _INF)) < max_rank]
        heapq.heapify(heap)
        while heap:
            r, i = heapq.heappop(heap)
            j = after[i]
            if not alive[i] or j >= n or get((tokens[i], tokens[j]), _INF) != r:
                continue  # stale: one of the two tokens was merged away since
            tokens[i], alive[j] = r, False  # the pair becomes token r at position i
            k = after[i] = after[j]
            if k < n:
                before[k] = i
                if (rk := get((r, tokens[k]), _INF)) < max_rank:
                    heapq.heappush(heap, (rk, i))
            h = before[i]
            if h >= 0 and (rh := get((tokens[h], r), _INF)) < max_rank:
                heapq.heappush(heap, (rh, h))
        return [t for t, live in zip(tokens, alive) if live]

    def _splitter(self, text: str):
        """The compiled split pattern: for the GPT-2/GPT-4 patterns the stdlib-``re`` spelling
        for ASCII text, and for text without characters beyond U+FFFF (patterns.py: the same
        chunks, about 2x faster); ``regex`` otherwise."""
        if text.isascii():
            return self._split_ascii
        if self._known_pattern and not has_astral(text):
            return bmp_pattern(self.pattern) or self._split
        return self._split

    def _split_text(self, text: str) -> list[str]:
        """``findall`` of the split pattern, with the fastest splitter that gives the same chunks
        (`_splitter`). In a GPT-2/GPT-4 text with characters beyond U+FFFF, only the stretch
        around each of them, from the cut before to the cut after (a space after a non-space
        character, where the patterns always split: see `_safe_cut`), takes the slower
        ``regex``: one emoji does not send a whole file there. Under GPT-2's pattern a long text
        or stretch (`_findall`) takes split_gpt2.py's NumPy split instead: the same chunks."""
        chunks = self._findall(text, None)
        if chunks is not None:
            return chunks
        bmp = bmp_pattern(self.pattern) if self._known_pattern and not text.isascii() else None
        if bmp is None:
            return self._splitter(text).findall(text)
        where = astral_positions(text)
        if not where:
            return bmp.findall(text)
        out, at = [], 0
        for p in where:
            if p < at:
                continue                  # inside the stretch just split
            lo, hi = _space_cut_before(text, p, at), _space_cut_after(text, p + 1)
            out += self._findall(text[at:lo], bmp)
            out += self._split.findall(text[lo:hi])
            at = hi
        out += self._findall(text[at:], bmp)
        return out

    def _findall(self, text: str, pattern) -> list[str] | None:
        """``pattern.findall(text)``, or the same chunks from split_gpt2.py's NumPy passes (up to
        2x faster) for a text of ``SPLIT_MIN_CHARS`` or more under GPT-2's pattern without
        characters beyond U+FFFF. None (pattern None) where the NumPy split does not apply."""
        if self._gpt2_pattern and len(text) >= SPLIT_MIN_CHARS:
            chunks = split_gpt2(text)                   # None: a character beyond U+FFFF
            if chunks is not None:
                return chunks
        return None if pattern is None else pattern.findall(text)

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode text with special token strings treated as plain text (tiktoken's
        ``encode_ordinary``). Lone surrogates become U+FFFD first, as in tiktoken.

        The text is split once. A text of ``encode_fast.FAST_MIN_CHUNKS`` chunks or more goes to
        ``encode_fast.ChunkEncoder``, which encodes all its new chunks at once in NumPy and
        keeps a chunk cache of its own; a shorter one to `_encode_plain`, the loop to read
        first. Under the GPT-2/GPT-4 patterns a text of ``PIECES_MIN_CHARS`` or more goes to
        ``encode_pieces.PieceEncoder`` first, which splits only the pieces (between spaces
        where those patterns always cut) it has not seen before. All give the ids of
        `_encode_chunk` (tests pin them together).

            >>> BPETokenizer().encode_ordinary("hi")
            [104, 105]
        """
        try:
            if self._known_pattern and len(text) >= PIECES_MIN_CHARS:
                return self._pieces.encode(text)
            chunks = self._split_text(text)
            if len(chunks) >= encode_fast.FAST_MIN_CHUNKS:
                # gpt2/gpt4 chunks cover every character; a custom pattern's may not (_encode_plain says so)
                if self._known_pattern or sum(map(len, chunks)) == len(text):
                    return self._chunks.encode(chunks)
            return self._encode_plain(text, chunks)
        except UnicodeEncodeError:
            # lone surrogates (e.g. from a bad JSON string) have no UTF-8 form; like tiktoken,
            # replace them with U+FFFD and encode again (such a text cannot round-trip)
            return self.encode_ordinary(
                text.encode("utf-16", "surrogatepass").decode("utf-16", "replace"))

    def _encode_plain(self, text: str, chunks: list[str]) -> list[int]:
        """The ids of ``text``'s ``chunks`` one by one: a chunk seen before is looked up in the
        chunk cache (``chunk -> ids``, emptied when over ``CACHE_LIMIT`` chunks), a new one is
        merged by `_encode_chunk`."""
        cache = self._cache
        if len(cache) > CACHE_LIMIT:      # bound memory on very diverse text
            cache.clear()
        out: list[int] = []
        extend = out.extend
        covered = 0
        for chunk in chunks:
            covered += len(chunk)
            try:
                extend(cache[chunk])
            except KeyError:
                ids = cache[chunk] = self._encode_chunk(chunk.encode("utf-8"))
                extend(ids)
        if covered != len(text):  # a custom pattern that skips characters would drop them silently
            raise ValueError(self._uncovered(text))
        return out

    def _uncovered(self, text: str) -> str:
        """The error for a split pattern whose matches leave characters of `text` out."""
        at = 0
        for m in self._splitter(text).finditer(text):
            if m.start() != at:
                break
            at = m.end()
        return (f"the split pattern {self.pattern!r} matches no chunk at offset {at} ({text[at:at + 20]!r}), so "
                "BPE would drop that text; use a pattern whose matches cover every character (gpt2 and gpt4 do)")

    def _special_re(self, specials) -> regex.Pattern:
        key = frozenset(specials)
        r = self._special_res.get(key)
        if r is None:
            # longest first, so that of two specials where one starts the other the longer wins
            alts = sorted(key, key=lambda s: (-len(s), s))
            r = self._special_res[key] = regex.compile("|".join(regex.escape(s) for s in alts))
        return r

    def _allowed(self, allowed_special) -> set[str]:
        if allowed_special == "all":
            return set(self.special_tokens)
        if allowed_special in ("none_raise", "none"):
            return set()
        if isinstance(allowed_special, str):
            raise ValueError(f"allowed_special must be 'none_raise', 'none', 'all' or a set of "
                             f"special tokens, not {allowed_special!r}")
        allowed = set(allowed_special)
        unknown = allowed - set(self.special_tokens)
        if unknown:
            raise ValueError(f"allowed_special names tokens that are not special tokens of this "
                             f"tokenizer: {sorted(unknown)}")
        return allowed

    def encode(self, text: str, allowed_special="none_raise") -> list[int]:
        """Encode text to ids, treating special tokens as tiktoken's ``encode`` does.

        Args:
            text: the text.
            allowed_special:
                ``"none_raise"`` (default): a special token string in the text raises ValueError;
                ``"all"``: every special token string becomes its special id;
                a set such as ``{"<|endoftext|>"}``: those become special ids, and any other
                special token string in the text raises (tiktoken's default
                ``disallowed_special="all"``);
                ``"none"``: special token strings are encoded as plain text (``encode_ordinary``).
        Returns:
            the list of ids.
        """
        if allowed_special == "none" or not self.special_tokens:
            return self.encode_ordinary(text)
        allowed = self._allowed(allowed_special)
        disallowed = set(self.special_tokens) - allowed
        if disallowed:
            m = self._special_re(disallowed).search(text)
            if m:
                raise ValueError(
                    f"the text contains the special token {m.group()!r} (at character {m.start()});"
                    f" pass allowed_special={{{m.group()!r}}} or allowed_special='all' to encode it"
                    f" as a special token, or allowed_special='none' (encode_ordinary) to encode it"
                    f" as plain text")
        if not allowed:
            return self.encode_ordinary(text)
        out: list[int] = []
        start = 0
        for m in self._special_re(allowed).finditer(text):
            out.extend(self.encode_ordinary(text[start:m.start()]))
            out.append(self.special_tokens[m.group()])
            start = m.end()
        out.extend(self.encode_ordinary(text[start:]))
        return out

    def _safe_cut(self, text: str) -> int:
        """Last index i where a space follows a non-whitespace character, and no special token
        spans i. With the GPT-2/GPT-4 patterns no chunk runs from a non-space character into a
        following space (words, numbers and punctuation stop there; whitespace chunks start
        there), and no pattern looks behind, so ``encode(text[:i]) + encode(text[i:])`` equals
        ``encode(text)``. For a custom pattern this holds when the same is true of it."""
        longest = max((len(s) for s in self.special_tokens), default=1)
        spans = []      # special token occurrences, found by the same left-to-right scan as encode
        if self.special_tokens:
            spans = [m.span() for m in self._special_re(self.special_tokens).finditer(text)]
        starts = [sp[0] for sp in spans]
        i = len(text) - longest + 1      # keep every special that could span i fully visible
        while True:
            i = text.rfind(" ", 0, i)
            if i <= 0:
                return 0
            if _WHITESPACE.match(text, i - 1):
                continue
            k = bisect.bisect_left(starts, i) - 1      # the last special starting before i
            if k >= 0 and spans[k][1] > i:
                continue
            return i

    # ------------------------------------------------------------------------------------------
    # decoding

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The raw bytes of the ids (may be invalid UTF-8 when a character is cut).

            >>> BPETokenizer().decode_bytes([226, 130])   # the first 2 of the 3 bytes of '€'
            b'\\xe2\\x82'
        """
        table = self._id_to_bytes
        if not isinstance(ids, list):
            ids = list(ids)
        try:
            if ids and min(ids) < 0:
                raise IndexError
            return b"".join([table[i] for i in ids])
        except (IndexError, TypeError):
            check_integer_ids(ids)
            bad = [i for i in ids if not 0 <= i < self.vocab_size or table[i] is None]
            raise ValueError(f"unknown token id(s) {bad[:5]} for vocab_size {self.vocab_size}") \
                from None

    def decode(self, ids: Iterable[int]) -> str:
        """Ids to text; bytes that are not valid UTF-8 become U+FFFD (the replacement character).

            >>> BPETokenizer().decode([104, 105, 226, 130])
            'hi\\ufffd'
        """
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def _specials_changed(self):
        """After ``add_special_tokens`` (base.py): the id tables and the special-token pattern.

            >>> tok = BPETokenizer()
            >>> tok.add_special_tokens(["[CLS]", "[SEP]"]), tok.special_tokens
            (2, {'[CLS]': 256, '[SEP]': 257})
        """
        self._rebuild()

    # ------------------------------------------------------------------------------------------
    # saving and loading

    def to_dict(self) -> dict:
        """A JSON-serialisable dict (for model checkpoints); ``tokenizer_from_dict`` reverses it."""
        d = {"type": "bpe", "version": 1, "pattern": self.pattern,
             "special_tokens": dict(self.special_tokens),
             "merges": [[a, b] for (a, b) in self.merges]}
        if self.byte_order != tuple(range(256)):  # GPT-2's vocabulary (from_gpt2)
            d["byte_order"] = list(self.byte_order)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "BPETokenizer":
        if d.get("type") == "bpe" and is_newer(d.get("version"), 1):
            raise newer_format("the tokenizer", "bpe tokenizer dict", d["version"], 1)
        if d.get("type") != "bpe" or d.get("version") != 1:
            raise ValueError(f"not a bpe tokenizer dict of version 1: version={d.get('version')!r}, "
                             f"type={d.get('type')!r}")
        return cls._from_parts(d["pattern"], [tuple(p) for p in d["merges"]],
                               d.get("special_tokens", {}), d.get("byte_order"))

    @classmethod
    def _from_parts(cls, pattern, merge_pairs, special_tokens: dict, byte_order=None) -> "BPETokenizer":
        tok = cls(pattern)
        if byte_order is not None:
            tok.byte_order = tuple(int(b) for b in byte_order)
        merges = {}
        for i, (a, b) in enumerate(merge_pairs):
            idx = 256 + i
            if not (0 <= a < idx and 0 <= b < idx):
                raise ValueError(f"merge {i} ({a}, {b}) refers to an id not yet defined")
            merges[(int(a), int(b))] = idx
        if len(merges) != len(merge_pairs):
            raise ValueError("the merge list contains the same pair twice")
        tok.merges = merges
        check_specials(list(special_tokens))
        tok.special_tokens = {str(s): int(i) for s, i in special_tokens.items()}
        tok._rebuild()
        _ = tok._chunks  # a loaded tokenizer builds its long-text tables now, as tiktoken's Encoding does
        return tok

    def save(self, path: str | os.PathLike) -> None:
        """Write the tokenizer to a versioned, human-readable UTF-8 text file::

            tinygrad_lm bpe v1
            pattern "<the split regex as a JSON string>"
            bytes 33 34 ...    (only for a byte order other than 0..255: GPT-2's, 256 numbers)
            specials 1
            "<|endoftext|>" 259
            merges 3
            97 97  # "aa"
            97 98  # "ab"
            256 257  # "aaab"

        The text after ``#`` renders the new token and is ignored when loading. The file is written
        whole or not at all (``files.atomic_write``: a failed or killed save leaves the old file).
        """
        lines = [FORMAT_HEADER, f"pattern {json.dumps(self.pattern)}"]
        if self.byte_order != tuple(range(256)):
            lines.append("bytes " + " ".join(map(str, self.byte_order)))
        lines.append(f"specials {len(self.special_tokens)}")
        lines += [f"{json.dumps(s)} {i}" for s, i in self.special_tokens.items()]
        lines.append(f"merges {len(self.merges)}")
        lines += [f'{a} {b}  # "{render_token(self.vocab[i])}"' for (a, b), i in self.merges.items()]
        atomic_write(path, "\n".join(lines) + "\n", what="the tokenizer")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "BPETokenizer":
        """Read a file written by ``save``. Raises ValueError naming the path (and line) when
        the file is not a ``tinygrad_lm bpe v1`` file or is damaged; a file cut short (it does not
        end with a newline, or ends before the merges or special tokens it announces) says so."""
        text = read_text(path)
        lines = text.split("\n")

        def bad(lineno, why):
            return ValueError(f"{path}: line {lineno}: {why}; expected a '{FORMAT_HEADER}' "
                              f"tokenizer file written by BPETokenizer.save")

        def cut(why):
            return ValueError(f"{path}: cut short? {why}; save the tokenizer again")

        if not text:
            raise ValueError(f"{path} is empty (a save that did not finish?); save the tokenizer again")
        if not text.endswith("\n"):  # save ends every line with one: a cut inside a line would parse as another merge
            raise cut(f"its last line ({len(lines)}) does not end with a newline, as every line BPETokenizer.save "
                      "writes does")
        if lines[0].strip() != FORMAT_HEADER:
            later = re.fullmatch(r"tinygrad_lm bpe v(\d+)", lines[0].strip())
            if later and is_newer(int(later[1]), 1):
                raise newer_format(path, "BPE tokenizer file", int(later[1]), 1)
            raise bad(1, f"unknown header {lines[0][:60]!r}")
        try:
            key, pat = lines[1].split(" ", 1)
            assert key == "pattern"
            pattern = json.loads(pat)
        except Exception:
            raise bad(2, "missing 'pattern <json string>'") from None
        pos = 2
        byte_order = None
        if lines[pos].startswith("bytes "):
            byte_order = lines[pos].split()[1:]
            if len(byte_order) != 256 or not all(b.isdigit() for b in byte_order):
                raise bad(pos + 1, "expected 'bytes' and 256 byte values")
            pos += 1

        def count(name):
            nonlocal pos
            parts = lines[pos].split() if pos < len(lines) else []
            if len(parts) != 2 or parts[0] != name or not parts[1].isdigit():
                raise bad(pos + 1, f"expected '{name} <count>'")
            pos += 1
            return int(parts[1])

        def present(k, n, what):
            if pos >= len(lines) - 1:  # only the empty string after the last newline is left
                raise cut(f"it ends at line {pos + 1}, after {k} of the {n} {what} it announces")

        specials = {}
        n_specials = count("specials")
        for k in range(n_specials):
            present(k, n_specials, "special tokens")
            try:
                s, i = lines[pos].rsplit(" ", 1)
                specials[json.loads(s)] = int(i)
            except Exception:
                raise bad(pos + 1, "expected '<json string> <id>'") from None
            pos += 1
        pairs = []
        n_merges = count("merges")
        for k in range(n_merges):
            present(k, n_merges, "merges")
            try:
                a, b = lines[pos].split("#", 1)[0].split()
                pairs.append((int(a), int(b)))
            except Exception:
                raise bad(pos + 1, "expected '<id1> <id2>' for a merge") from None
            pos += 1
        try:
            return cls._from_parts(pattern, pairs, specials, byte_order)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None

    # ------------------------------------------------------------------------------------------
    # tiktoken interop

    def to_tiktoken_ranks(self) -> dict[bytes, int]:
        """``{token bytes: rank}`` for ``tiktoken.Encoding(mergeable_ranks=...)``: the 256 bytes
        at ranks 0..255 (in ``byte_order``), then each merge's bytes at rank 256+i (rank == our id). Special tokens
        are not included; pass ``tok.special_tokens`` as tiktoken's ``special_tokens``."""
        if not self._unique:
            raise ValueError("two tokens have the same bytes, which a tiktoken rank file cannot "
                             "express (this tokenizer was not trained by BPETokenizer.train)")
        return {b: i for i, b in enumerate(self.vocab)}

    def save_tiktoken(self, path: str | os.PathLike) -> None:
        """Write tiktoken's ``.tiktoken`` rank file (``base64(token) rank`` per line). The file
        holds neither the split pattern nor the special tokens; pass them to ``load_tiktoken``."""
        from .tiktoken_io import save_tiktoken_ranks
        save_tiktoken_ranks(self.to_tiktoken_ranks(), path)

    @classmethod
    def from_tiktoken_ranks(cls, ranks: dict[bytes, int], pattern: str = "gpt4",
                            special_tokens: dict[str, int] | None = None) -> "BPETokenizer":
        """Rebuild a tokenizer from ``{bytes: rank}``. Ranks must be 0..n-1 with the 256 single
        bytes first, in any order (GPT-2's ranks them in its own order). The merge behind each
        token is recovered by BPE-encoding its bytes with the lower-ranked tokens only; it must
        end as two tokens."""
        by_rank = sorted(ranks.items(), key=lambda kv: kv[1])
        if [r for _, r in by_rank] != list(range(len(by_rank))) or len(by_rank) < 256:
            raise ValueError("ranks must be exactly 0..n-1 with n >= 256")
        if sorted(b for b, _ in by_rank[:256]) != [bytes([i]) for i in range(256)]:
            raise ValueError("ranks 0..255 must be the 256 single bytes")
        # pair table over the whole vocabulary, then read off the merge behind each token
        vocab = [b for b, _ in by_rank]
        byte_order = [b[0] for b in vocab[:256]]
        full = cls._from_parts(pattern, [], {}, byte_order)
        full._install_vocab(vocab)
        pairs = []
        for idx in range(256, len(vocab)):
            parts = full._encode_chunk(vocab[idx], max_rank=idx)
            if len(parts) != 2:
                raise ValueError(f"token {render_token(vocab[idx])!r} (rank {idx}) is not the "
                                 f"merge of two lower-ranked tokens")
            pairs.append(tuple(parts))
        return cls._from_parts(pattern, pairs, dict(special_tokens or {}), byte_order)

    def _install_vocab(self, vocab: list[bytes]) -> None:
        """Set the pair table from a plain vocabulary (used while recovering merges)."""
        self._pair_rank = _pair_table({b: i for i, b in enumerate(vocab)})
        self._encoder = False  # encode_ordinary would not see this table: only _encode_chunk may run

    @classmethod
    def from_gpt2(cls, encoder_json: str | os.PathLike, vocab_bpe: str | os.PathLike) -> "BPETokenizer":
        """GPT-2's own tokenizer from OpenAI's ``encoder.json`` and ``vocab.bpe`` (the same
        content as Hugging Face's ``vocab.json`` and ``merges.txt``): 50,257 ids, GPT-2's split
        pattern, ``<|endoftext|>`` = 50256. Encodes id for id as tiktoken's ``gpt2``.

        Raises:
            ValueError: naming the file (and line or key) when the two files are not a GPT-2
                vocabulary or do not agree with each other.
        """
        from .gpt2_files import read_gpt2_vocab
        byte_order, pairs, specials = read_gpt2_vocab(encoder_json, vocab_bpe)
        return cls._from_parts("gpt2", pairs, specials, byte_order)

    @classmethod
    def load_tiktoken(cls, path: str | os.PathLike, pattern: str = "gpt4",
                      special_tokens: dict[str, int] | None = None) -> "BPETokenizer":
        """Read a ``.tiktoken`` rank file (see ``save_tiktoken``) into a tokenizer."""
        from .tiktoken_io import load_tiktoken_ranks
        return cls.from_tiktoken_ranks(load_tiktoken_ranks(path), pattern, special_tokens)

    def __repr__(self):
        return (f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)}, "
                f"specials={list(self.special_tokens)})")


def _pair_table(rank_of: dict[bytes, int]) -> dict[tuple[int, int], int]:
    """``{(left id, right id): id}`` for every way of writing a token as two tokens.

    It holds each merge, and also any other split of a token into two tokens, because tiktoken
    looks up the rank of the concatenated bytes, not the pair. Cost: sum of token lengths.

        >>> _pair_table({b"a": 0, b"b": 1, b"c": 2, b"ab": 3, b"bc": 4, b"abc": 5})
        {(0, 1): 3, (1, 2): 4, (0, 4): 5, (3, 2): 5}
    """
    table = {}
    for t, idx in rank_of.items():
        for k in range(1, len(t)):
            left, right = rank_of.get(t[:k]), rank_of.get(t[k:])
            if left is not None and right is not None:
                table[(left, right)] = idx
    return table


def _space_cut_before(text: str, i: int, lo: int) -> int:
    """The last position in ``lo..i`` where a space follows a non-whitespace character; ``lo``
    if there is none.

        >>> _space_cut_before("ab cd  ef", 8, 0), _space_cut_before("ab", 1, 0)
        (5, 0)
    """
    while True:
        i = text.rfind(" ", lo + 1, i + 1)
        if i < 0:
            return lo
        if not _WHITESPACE.match(text, i - 1):
            return i
        i -= 1


def _space_cut_after(text: str, i: int) -> int:
    """The first position from ``i`` on where a space follows a non-whitespace character;
    ``len(text)`` if there is none.

        >>> _space_cut_after("ab cd  ef", 3), _space_cut_after("ab", 0)
        (5, 2)
    """
    while True:
        i = text.find(" ", i)
        if i < 0:
            return len(text)
        if i > 0 and not _WHITESPACE.match(text, i - 1):
            return i
        i += 1

"""Byte-level BPE: training with incremental pair counts, and tiktoken-compatible encoding.

What this file implements: ``BPETokenizer``, a GPT-2/GPT-4 style tokenizer. Text is cut into
chunks by a regex (``patterns.py``), each chunk is turned into its UTF-8 bytes, and the bytes
are fused by merges learned from a training text. Ids 0..255 are the raw bytes, id 256+i is
the i-th merge, and special tokens (``<|endoftext|>``...) come after the merges. The tokenizer
saves to a versioned text file, exports tiktoken's rank file, and streams large files into
uint16/uint32 token arrays (``Tokenizer.encode_file`` in ``base.py``).
``BPETokenizer.from_gpt2`` loads OpenAI's GPT-2 vocabulary (``gpt2_files.py``), whose ids
0..255 are the 256 bytes in another order (``byte_order``: id i is byte ``byte_order[i]``);
a chunk's bytes are mapped to their ids by one ``bytes.translate`` before merging.

What it leaves out: training on special tokens (the training text is read as plain text),
byte-fallback/normalisation/pre-tokenizer options of other libraries, dropout, and parallel or
native-code encoding. It follows minbpe's regex.py in layout; the training loop is rewritten so
that a merge only touches the chunks containing the merged pair.

Training (``BPETokenizer.train``) is a short loop over four named steps; the state they share
(the distinct chunks, the live pair counts, where each pair occurs, a heap) is a ``_PairCounts``:

  1. split: cut the text once with the regex and count the *distinct* chunks
     (``Counter(findall(text))``); a 1 MB English text has ~15k distinct chunks for ~260k
     chunk occurrences, so every later step works on the 15k, weighted by frequency.
  2. ``_PairCounts.count_pairs``: count every adjacent pair of every distinct chunk, weighted by
     the chunk's frequency (``base.get_stats`` with ``weight``), note for each pair the set of
     chunks that contain it, and put every pair on a max-heap of ``(-count, id1, id2)``.
  3. ``_PairCounts.best_pair``: pop the heap until the popped count is the pair's live count
     (an entry whose count has changed since it was pushed is stale and skipped: every count
     change pushes a fresh entry instead of updating the old one). **Tie-break**: among equal
     counts the pair with the smallest ``(id1, id2)`` wins, so every run on the same text gives
     the same merges, and the same merges as the plain minbpe loop.
  4. ``_PairCounts.apply_merge``: replace the pair in the chunks that contain it (and only
     those: ``_merge_chunks``), and add to the counts the difference between each changed
     chunk's new and old pairs (``_add_deltas``), pushing the changed counts on the heap.
  A guard in ``train``: a pair whose merged bytes already exist as a token is dropped
  (``_PairCounts.forget``), so every token is a distinct byte string, which a tiktoken rank file
  requires. (We have not seen it fire: on tinyshakespeare up to vocab 20000 and in random
  searches over small texts, no two pairs ever spelled the same bytes; minbpe and Hugging Face
  have no such guard.)

The Wikipedia example ``aaabdaaabac`` through those steps (one chunk; a=97 b=98 c=99 d=100)::

    count_pairs : aa:4 ab:2 bd:1 da:1 ba:1 ac:1       (pairs overlap: "aaa" holds 2 x "aa")
    best_pair   : (97, 97) x4
    apply_merge : -> 256 "aa"   chunk = [aa a b d aa a b a c]
                  deltas aa:-4 da:-1 (aa,a):+2 (d,aa):+1, so the counts are now
                  (256,97):2 (97,98):2 and four pairs seen once
    best_pair   : (97, 98) x2   a tie at 2: the smaller pair (97,98) < (256,97) is on top
    apply_merge : -> 257 "ab"   chunk = [aa ab d aa ab a c]; (256,97) drops to 0 and is
                  removed, but its heap entry (-2, 256, 97) stays behind
    best_pair   : pops (-2, 256, 97) first, sees it is stale and skips it, then (256, 257) x2
    apply_merge : -> 258 "aaab" chunk = [258 100 258 97 99], i.e. "XdXac" with X=aaab, as on
                  Wikipedia (Z=aa, Y=ab, X=ZY)

The plain reference is ``base.get_stats`` + ``base.merge`` (minbpe): recount every pair of every
chunk for each merge. The steps above give exactly its merges (tests/test_tokenizer.py checks
this on random texts), at a fraction of the cost: O(N) for the split (regex, in C), then per
merge O(sum of the lengths of the chunks that contain the pair + pushes * log heap) in Python.
Early merges (" t", "e ") touch thousands of chunks, late ones a handful. On tinyshakespeare
(1.1 MB, 15k distinct chunks) vocab 4096 trains in under a second on one core, where
rescanning all ids for each merge (minbpe) takes about a minute for vocab 512.

Encoding (``BPETokenizer.encode``) does what tiktoken does: a chunk whose bytes are a token is
that token; otherwise repeatedly fuse the leftmost adjacent pair whose concatenated bytes form
the token of lowest rank (= lowest id), until no adjacent pair forms a token. For a vocabulary
trained here this is the usual "apply the merges in order"; matching tiktoken's rule exactly
makes ids agree even in the corner cases where the two could differ. Its cost is O(L^2) for a chunk of L bytes, paid once per
distinct chunk thanks to a ``chunk -> ids`` cache; a repeated word costs one dict lookup.
"""
from __future__ import annotations

import bisect
import heapq
import json
import operator
import os
import re
import time
from collections import Counter
from pathlib import Path
from typing import Iterable

import regex

from .base import Tokenizer, check_specials, read_text, render_token
from .patterns import ASCII_PATTERNS, resolve_pattern

FORMAT_HEADER = "tinygrad_lm bpe v1"
LONG_CHUNK = 256  # bytes: longer chunks merge with a heap (_merge_long), shorter ones in the plain loop
_INF = float("inf")
_WHITESPACE = regex.compile(r"\s")


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
        self._split_ascii = re.compile(ascii_pattern, re.ASCII) if ascii_pattern else self._split
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
        self._cache: dict[str, list[int]] = {}
        self._special_res: dict[frozenset, regex.Pattern] = {}

    # ------------------------------------------------------------------------------------------
    # training

    def train(self, text: str, vocab_size: int, verbose: bool = False) -> None:
        """Learn ``vocab_size - 256 - len(special_tokens)`` merges from ``text``.

        Replaces any previous merges (and byte order: ids 0..255 become the bytes 0..255);
        special tokens are renumbered to follow the merges.
        The loop is the module docstring's steps: split, ``count_pairs``, then ``best_pair`` and
        ``apply_merge`` once per merge (see there for the worked example, the tie-break and the
        cost).

        Args:
            text: the training text (special token strings in it are treated as plain text).
            vocab_size: the final vocabulary size, bytes + merges + specials.
            verbose: print progress (merges done / total, elapsed time) about ten times.
        Raises:
            ValueError: vocab_size below 256 + number of specials, or an empty text.
        """
        n_merges = self._merges_to_learn(text, vocab_size)
        t0 = time.perf_counter()
        chunk_counts = Counter(self._splitter(text).findall(text))       # 1. split
        pairs = _PairCounts.count_pairs(chunk_counts)                    # 2. count pairs
        if verbose:
            print(f"bpe train: {len(text):,} chars, {len(chunk_counts):,} unique chunks, "
                  f"{n_merges:,} merges to learn")
        vocab = [bytes([i]) for i in range(256)]
        known = set(vocab)
        merges: dict[tuple[int, int], int] = {}
        report_every = max(1, n_merges // 10)
        while len(merges) < n_merges:
            best = pairs.best_pair()                                     # 3. best pair
            if best is None:
                break                          # no pair occurs in the text any more
            pair, count = best
            new_bytes = vocab[pair[0]] + vocab[pair[1]]
            if new_bytes in known:
                pairs.forget(pair)             # same bytes as an existing token: never merge
                continue
            idx = 256 + len(merges)
            merges[pair] = idx
            vocab.append(new_bytes)
            known.add(new_bytes)
            pairs.apply_merge(pair, idx)                                 # 4. apply the merge
            if verbose and (len(merges) % report_every == 0 or len(merges) == n_merges):
                print(f"  merge {len(merges):>6,}/{n_merges:,}  {time.perf_counter() - t0:7.2f}s"
                      f"  {render_token(new_bytes)!r} x{count}")
        if verbose and len(merges) < n_merges:
            print(f"  stopped after {len(merges):,} merges: no pair occurs in the text any more")

        self.merges = merges
        self.byte_order = tuple(range(256))
        specials = list(self.special_tokens)
        self.special_tokens = {s: 256 + len(merges) + i for i, s in enumerate(specials)}
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
        """The compiled split pattern; the stdlib-``re`` spelling when the text is ASCII."""
        return self._split_ascii if text.isascii() else self._split

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode text with special token strings treated as plain text (tiktoken's
        ``encode_ordinary``). Lone surrogates become U+FFFD first, as in tiktoken.

            >>> BPETokenizer().encode_ordinary("hi")
            [104, 105]
        """
        cache = self._cache
        if len(cache) > 1_000_000:        # bound memory on very diverse text
            cache.clear()
        out: list[int] = []
        extend = out.extend
        covered = 0
        try:
            for chunk in self._splitter(text).findall(text):
                covered += len(chunk)
                try:
                    extend(cache[chunk])
                except KeyError:
                    ids = cache[chunk] = self._encode_chunk(chunk.encode("utf-8"))
                    extend(ids)
        except UnicodeEncodeError:
            # lone surrogates (e.g. from a bad JSON string) have no UTF-8 form; like tiktoken,
            # replace them with U+FFFD and encode again (such a text cannot round-trip)
            return self.encode_ordinary(
                text.encode("utf-16", "surrogatepass").decode("utf-16", "replace"))
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
        if d.get("type") != "bpe" or d.get("version") != 1:
            raise ValueError(f"not a version-1 BPE tokenizer dict: type={d.get('type')!r} "
                             f"version={d.get('version')!r}")
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

        The text after ``#`` renders the new token and is ignored when loading.
        """
        lines = [FORMAT_HEADER, f"pattern {json.dumps(self.pattern)}"]
        if self.byte_order != tuple(range(256)):
            lines.append("bytes " + " ".join(map(str, self.byte_order)))
        lines.append(f"specials {len(self.special_tokens)}")
        lines += [f"{json.dumps(s)} {i}" for s, i in self.special_tokens.items()]
        lines.append(f"merges {len(self.merges)}")
        lines += [f'{a} {b}  # "{render_token(self.vocab[i])}"' for (a, b), i in self.merges.items()]
        Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "BPETokenizer":
        """Read a file written by ``save``. Raises ValueError naming the path (and line) when
        the file is not a ``tinygrad_lm bpe v1`` file or is damaged."""
        lines = read_text(path).split("\n")

        def bad(lineno, why):
            return ValueError(f"{path}: line {lineno}: {why}; expected a '{FORMAT_HEADER}' "
                              f"tokenizer file written by BPETokenizer.save")

        if lines[0].strip() != FORMAT_HEADER:
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

        specials = {}
        for _ in range(count("specials")):
            try:
                s, i = lines[pos].rsplit(" ", 1)
                specials[json.loads(s)] = int(i)
            except Exception:
                raise bad(pos + 1, "expected '<json string> <id>'") from None
            pos += 1
        pairs = []
        for _ in range(count("merges")):
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


class _PairCounts:
    """The training state: the distinct chunks and the live count of every adjacent pair.

    Attributes:
        words: ``words[i]`` is the i-th distinct chunk as a list of token ids (merged so far).
        freqs: ``freqs[i]`` is how often that chunk occurs in the text.
        stats: ``{pair: count}`` over the whole text (each chunk weighted by its frequency);
            only pairs with a count > 0 (and not forgotten) are in it.
        where: ``{pair: set of i}``, the chunks that contain the pair. It may list chunks that no
            longer do (a later merge ate the pair); ``_merge_chunks`` skips those.
        heap: ``(-count, id1, id2)`` entries, a max-heap on count with ties to the smallest
            pair. Each count change pushes a new entry; ``best_pair`` skips the outdated ones.

    The Wikipedia example, one merge (``BPETokenizer.train`` runs the full loop):

        >>> from tinygrad_lm.tokenizer.base import get_stats
        >>> pairs = _PairCounts.count_pairs({"aaabdaaabac": 1})
        >>> pairs.stats == get_stats(b"aaabdaaabac")
        True
        >>> pairs.best_pair()
        ((97, 97), 4)
        >>> pairs.apply_merge((97, 97), 256)
        >>> pairs.words
        [[256, 97, 98, 100, 256, 97, 98, 97, 99]]
        >>> pairs.stats == get_stats(pairs.words[0])
        True
        >>> pairs.best_pair()      # a tie at 2 with (256, 97): the smaller pair wins
        ((97, 98), 2)
    """

    __slots__ = ("words", "freqs", "stats", "where", "heap")

    def __init__(self, words: list[list[int]], freqs: list[int]):
        self.words = words
        self.freqs = freqs
        self.stats: dict[tuple[int, int], int] = {}
        self.where: dict[tuple[int, int], set[int]] = {}
        self.heap: list[tuple[int, int, int]] = []

    @classmethod
    def count_pairs(cls, chunk_counts: dict[str, int]) -> "_PairCounts":
        """Step 2: the pair counts of ``{chunk: frequency}``, where each pair occurs, the heap.

        Each chunk becomes the list of its UTF-8 bytes, and its pairs are counted weighted by
        the chunk's frequency, so a chunk seen 1000 times is scanned once. The counts are
        ``get_stats(w, stats, weight=f)`` over every chunk ``w`` of frequency ``f``, done in the
        same pass as ``where`` (one loop instead of two saves ~10% of this step).
        """
        self = cls([list(w.encode("utf-8")) for w in chunk_counts], list(chunk_counts.values()))
        stats, where = self.stats, self.where
        for wi, (w, f) in enumerate(zip(self.words, self.freqs)):
            for pair in zip(w, w[1:]):
                stats[pair] = stats.get(pair, 0) + f
                s = where.get(pair)
                if s is None:
                    where[pair] = {wi}
                else:
                    s.add(wi)
        self.heap = [(-c, a, b) for (a, b), c in stats.items()]
        heapq.heapify(self.heap)
        return self

    def best_pair(self) -> tuple[tuple[int, int], int] | None:
        """Step 3: the most frequent pair and its count, ties to the smallest ``(id1, id2)``;
        None when no pair is left. Pops heap entries until one holds its pair's live count
        (the others are stale: pushed before the count changed)."""
        heap, stats = self.heap, self.stats
        while heap:
            negc, a, b = heapq.heappop(heap)
            if stats.get((a, b)) == -negc:
                return (a, b), -negc
        return None

    def forget(self, pair: tuple[int, int]) -> None:
        """Drop ``pair``'s count, so that ``best_pair`` skips it (``train`` calls this for a
        pair whose merged bytes are already a token)."""
        del self.stats[pair]

    def apply_merge(self, pair: tuple[int, int], idx: int) -> None:
        """Step 4: replace ``pair`` by ``idx`` in every chunk that contains it, and update the
        pair counts by the difference between those chunks' new and old pairs."""
        self._add_deltas(self._merge_chunks(pair, idx))

    def _merge_chunks(self, pair: tuple[int, int], idx: int) -> dict[tuple[int, int], int]:
        """Merge ``pair`` in the chunks listed in ``where[pair]`` (``_merge_pair``, i.e.
        ``base.merge``); return ``{pair: count change}`` and index the new pairs in ``where``.

        A changed chunk of frequency f takes f off each of its old pairs and adds f to each of
        its new pairs; pairs away from the merge cancel out (delta 0)."""
        a, b = pair
        words, freqs, where = self.words, self.freqs, self.where
        delta: dict[tuple[int, int], int] = {}
        for wi in where.pop(pair):
            w = words[wi]
            new = _merge_pair(w, a, b, idx)
            if new is None:
                continue                       # stale index entry: pair no longer there
            f = freqs[wi]
            for p in zip(w, w[1:]):
                delta[p] = delta.get(p, 0) - f
            for p in zip(new, new[1:]):
                delta[p] = delta.get(p, 0) + f
                s = where.get(p)
                if s is None:
                    where[p] = {wi}
                else:
                    s.add(wi)
            words[wi] = new
        return delta

    def _add_deltas(self, delta: dict[tuple[int, int], int]) -> None:
        """Add the count changes to ``stats``: push each new count on the heap, and drop the
        pairs whose count reaches 0 from ``stats`` and ``where``."""
        stats, where, heap = self.stats, self.where, self.heap
        push = heapq.heappush
        for p, d in delta.items():
            if d == 0:
                continue
            c = stats.get(p, 0) + d
            if c > 0:
                stats[p] = c
                push(heap, (-c, p[0], p[1]))
            else:
                stats.pop(p, None)
                where.pop(p, None)


def _merge_pair(w: list[int], a: int, b: int, idx: int) -> list[int] | None:
    """``base.merge`` specialised for the training loop: returns None when the pair is absent,
    so that chunks no longer holding the pair cost one scan and no allocation."""
    try:
        i = w.index(a)
    except ValueError:
        return None
    n = len(w)
    out = None
    while i < n:
        if w[i] == a and i + 1 < n and w[i + 1] == b:
            if out is None:
                out = w[:i]
            out.append(idx)
            i += 2
        else:
            if out is not None:
                out.append(w[i])
            i += 1
    return out

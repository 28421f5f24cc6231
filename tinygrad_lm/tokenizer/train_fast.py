"""Byte-level BPE training, fast: the reference loop with incremental pair counts and a heap.

What this file implements: ``train_bpe_fast(text, vocab_size, pattern)``, the default trainer of
``BPETokenizer.train``. It learns exactly the merges of ``train_reference.train_bpe_reference``
(read that one first: count pairs, take the best, merge, repeat) and returns them in the same
``{(id1, id2): new id}`` dict; tests/test_tokenizer.py pins the two together on random texts.

What it changes against the reference, and why: the reference recounts every pair of every
chunk for each merge. Here a merge only touches the chunks that contain the merged pair, and
only the counts of the pairs next to each merge site change. The loop is four named steps; the
state they share (the distinct chunks, the live pair counts, where each pair occurs, a heap) is
a ``_PairCounts``, which keeps a pair ``(a, b)`` as the one int ``a * n_ids + b`` (``n_ids``: the
vocabulary size), cheaper to hash and compare than a tuple, and ordered as the pairs are:

  1. split: cut the text once with the regex (the stdlib ``re`` spelling for ASCII text, about
     2x faster, see ``patterns.py``) and count the *distinct* chunks (``Counter(findall(text))``);
     a 1 MB English text has ~15k distinct chunks for ~260k chunk occurrences, so every later
     step works on the 15k, weighted by frequency (the reference does this too).
  2. ``_PairCounts.count_pairs``: count every adjacent pair of every distinct chunk, weighted by
     the chunk's frequency (what ``get_stats`` with ``weight`` does), with NumPy over all the
     chunks' bytes at once; note for each pair the set of chunks that contain it, and put every
     pair on a heap ordered by count, largest first.
  3. ``_PairCounts.best_pair``: pop the heap until the popped count is the pair's live count
     (an entry whose count has changed since it was pushed is stale and skipped: every count
     change pushes a fresh entry instead of updating the old one). **Tie-break**: the heap
     orders equal counts by the pair's key, i.e. by ``(id1, id2)``, so the smallest pair wins,
     as in the reference.
  4. ``_PairCounts.apply_merge``: replace the pair in place in the chunks that contain it (and
     only those: ``_merge_chunks``). A site ``p a b q`` becomes ``p X q`` (X: the new id): (p, a)
     and (b, q) lose the chunk's frequency, (p, X) and (X, q) gain it, and nothing else in the
     chunk changes; ``_add_deltas`` adds those changes to the counts and pushes the new counts
     on the heap.
  The reference's guard: a pair whose merged bytes already exist as a token is dropped
  (``_PairCounts.forget``), so every token is a distinct byte string, which a tiktoken rank file
  requires. (We have not seen it fire: on tinyshakespeare up to vocab 20000 and in random
  searches over small texts, no two pairs ever spelled the same bytes; minbpe and Hugging Face
  have no such guard.) The four steps run with Python's cyclic garbage collector paused
  (``_gc_paused``): they make many small containers and no cycles.

The Wikipedia example ``aaabdaaabac`` through those steps (one chunk; a=97 b=98 c=99 d=100)::

    count_pairs : aa:4 ab:2 bd:1 da:1 ba:1 ac:1       (pairs overlap: "aaa" holds 2 x "aa")
    best_pair   : (97, 97) x4
    apply_merge : -> 256 "aa"   chunk = [aa a b d aa a b a c]
                  aa is deleted (every occurrence merged); site 1 (nothing before, a after):
                  (aa,a):+1; site 2 (d before, a after): da:-1 (d,aa):+1 (aa,a):+1
                  (and aa:-1 at each site, moot); so the counts are now
                  (256,97):2 (97,98):2 and four pairs seen once
    best_pair   : (97, 98) x2   a tie at 2: the smaller pair (97,98) < (256,97) is on top
    apply_merge : -> 257 "ab"   chunk = [aa ab d aa ab a c]; (256,97) drops to 0 and is
                  removed, but its heap entry (count 2) stays behind
    best_pair   : pops that entry first, sees it is stale and skips it, then (256, 257) x2
    apply_merge : -> 258 "aaab" chunk = [258 100 258 97 99], i.e. "XdXac" with X=aaab, as on
                  Wikipedia (Z=aa, Y=ab, X=ZY)

    >>> train_bpe_fast("aaabdaaabac", 256 + 3)
    {(97, 97): 256, (97, 98): 257, (256, 257): 258}

Cost: O(N) for the split (regex, in C) and the pair count (NumPy), then per merge, in Python,
O(chunks that contain the pair + merge sites + heap pushes * log heap); finding the sites in a
chunk is ``list.count``/``list.index``, in C. Early merges (" t", "e ") touch thousands of
chunks, late ones a handful. On Tiny Shakespeare (1.1 MB, 15k distinct chunks; 2-core AMD EPYC,
load average 1-2) vocab 512 / 1024 / 4096 trained in 0.25 / 0.34 / 0.55 s (medians of 5 fresh
processes, best of 3 calls each): 0.32x / 0.38x / 0.57x the time of Hugging Face
``tokenizers``' trainer in the same runs (same regex, byte-level, its default 2 threads), and
0.33x / 0.39x / 0.46x the time of this file's previous version, which subtracted and re-added
every pair of each changed chunk, keyed pairs by tuples and counted them in Python. The
reference took 40x this trainer's time at vocab 512 and 111x at 1024 (``python
scripts/bench_tokenizer.py --trainer both``, same machine, loaded).

What it leaves out: parallel work and a native merge loop (Hugging Face ``tokenizers`` has
both; BENCHMARKS.md compares), and training on special tokens.
"""
from __future__ import annotations

import gc
import heapq
import re
import time
from collections import Counter, defaultdict
from contextlib import contextmanager

import numpy as np
import regex

from .base import render_token
from .patterns import ASCII_PATTERNS, resolve_pattern


def split_chunks(text: str, pattern: str) -> list[str]:
    """``regex.findall(pattern, text)``; for ASCII text the same split by the faster stdlib ``re``
    spelling of the GPT-2/GPT-4 patterns (``patterns.ASCII_PATTERNS``, tested to agree)."""
    ascii_pattern = ASCII_PATTERNS.get(pattern)
    if ascii_pattern is not None and text.isascii():
        return re.findall(ascii_pattern, text, re.ASCII)
    return regex.findall(pattern, text)


@contextmanager
def _gc_paused():
    """Switch Python's cyclic garbage collector off for the block (and back on if it was on).

    Training builds ~10^5 small lists, sets and ints that all live until it returns and hold no
    reference cycles, so each pass of the collector over them frees nothing; pausing it saved
    3-8% of the training time on Tiny Shakespeare (vocab 512 to 4096, medians of 11 runs
    alternating in one process). Memory is freed as usual (by reference counting) either way."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def train_bpe_fast(text: str, vocab_size: int, pattern: str = "gpt4",
                   verbose: bool = False) -> dict[tuple[int, int], int]:
    """Learn ``vocab_size - 256`` merges from ``text`` (fewer if no pair is left).

    The same arguments and result as ``train_reference.train_bpe_reference`` (the same merges,
    in the same order); the loop is the module docstring's steps.

    Args:
        text: the training text (special token strings in it are plain text).
        vocab_size: 256 byte tokens + the number of merges to learn (no special tokens).
        pattern: ``"gpt4"``, ``"gpt2"`` or a split regex (``patterns.py``).
        verbose: print progress (merges done / total, elapsed time) about ten times.
    Returns:
        ``{(id1, id2): new id}`` in merge order, new ids 256, 257, ...
    """
    n_merges = max(0, vocab_size - 256)
    t0 = time.perf_counter()
    with _gc_paused():                     # nothing to collect: see _gc_paused
        chunk_counts = Counter(split_chunks(text, resolve_pattern(pattern)))  # 1. split
        pairs = _PairCounts.count_pairs(chunk_counts, 256 + n_merges)         # 2. count pairs
        if verbose:
            print(f"bpe train: {len(text):,} chars, {len(chunk_counts):,} unique chunks, "
                  f"{n_merges:,} merges to learn")
        vocab = [bytes([i]) for i in range(256)]
        known = set(vocab)
        merges: dict[tuple[int, int], int] = {}
        report_every = max(1, n_merges // 10)
        while len(merges) < n_merges:
            best = pairs.best_pair()                                          # 3. best pair
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
            pairs.apply_merge(pair, idx)                                      # 4. apply the merge
            if verbose and (len(merges) % report_every == 0 or len(merges) == n_merges):
                print(f"  merge {len(merges):>6,}/{n_merges:,}  {time.perf_counter() - t0:7.2f}s"
                      f"  {render_token(new_bytes)!r} x{count}")
        if verbose and len(merges) < n_merges:
            print(f"  stopped after {len(merges):,} merges: no pair occurs in the text any more")
    return merges


class _PairCounts:
    """The training state: the distinct chunks and the live count of every adjacent pair.

    A pair ``(a, b)`` is kept as one int, its key ``a * n_ids + b`` (every id is below
    ``n_ids``, the vocabulary size): an int hashes and compares faster than a tuple and takes
    no allocation to look up. Keys sort as the pairs do, so "ties to the smallest pair" is
    "ties to the smallest key". ``pair_counts()`` gives the counts back keyed by tuples.

    Attributes:
        n_ids: one more than the largest id a pair may hold; ``divmod(key, n_ids)`` is the pair.
        words: ``words[i]`` is the i-th distinct chunk as a list of token ids (merged so far).
        freqs: ``freqs[i]`` is how often that chunk occurs in the text.
        stats: ``{key: count}`` over the whole text (each chunk weighted by its frequency);
            only pairs with a count > 0 (and not forgotten) are in it.
        where: ``{key: set of i}``, the chunks that contain the pair. It may list chunks that no
            longer do (a later merge ate the pair); ``_merge_chunks`` finds no site in those.
        heap: a min-heap of ints ``key - count * n_ids**2``: the smallest entry is the largest
            count, ties to the smallest key, and ``entry % n_ids**2`` is the key back (one int
            per entry is faster to push and compare than a ``(-count, a, b)`` tuple). Each
            count change pushes a new entry; ``best_pair`` skips the outdated ones.

    The Wikipedia example, one merge (``train_bpe_fast`` runs the full loop):

        >>> from tinygrad_lm.tokenizer.train_reference import get_stats
        >>> pairs = _PairCounts.count_pairs({"aaabdaaabac": 1}, n_ids=256 + 3)
        >>> pairs.pair_counts() == get_stats(b"aaabdaaabac")
        True
        >>> pairs.best_pair()
        ((97, 97), 4)
        >>> pairs.apply_merge((97, 97), 256)
        >>> pairs.words
        [[256, 97, 98, 100, 256, 97, 98, 97, 99]]
        >>> pairs.pair_counts() == get_stats(pairs.words[0])
        True
        >>> pairs.best_pair()      # a tie at 2 with (256, 97): the smaller pair wins
        ((97, 98), 2)
    """

    __slots__ = ("n_ids", "words", "freqs", "stats", "where", "heap")

    def __init__(self, n_ids: int, words: list[list[int]], freqs: list[int]):
        self.n_ids = n_ids
        self.words = words
        self.freqs = freqs
        self.stats: dict[int, int] = {}
        self.where: dict[int, set[int]] = defaultdict(set)
        self.heap: list[int] = []

    @classmethod
    def count_pairs(cls, chunk_counts: dict[str, int], n_ids: int) -> "_PairCounts":
        """Step 2: the pair counts of ``{chunk: frequency}``, where each pair occurs, the heap.

        Each chunk becomes the list of its UTF-8 bytes, and its pairs are counted weighted by
        the chunk's frequency, so a chunk seen 1000 times is scanned once: ``get_stats(w,
        weight=f)`` summed over every chunk ``w`` of frequency ``f``. Done with NumPy over all
        chunks' bytes at once (one Python step per pair per chunk took about twice as long on
        Tiny Shakespeare): the bytes of all chunks end to end, the pairs inside a chunk as
        keys, ``np.unique`` for the distinct keys, ``bincount`` of the chunks' frequencies for
        their counts, and the occurrences sorted by key for ``where``.
        """
        if n_ids < 256:
            raise ValueError(f"n_ids={n_ids} is below 256: every byte is an id, so pass at "
                             "least 256 (the vocabulary size the training goes to)")
        encoded = [w.encode("utf-8") for w in chunk_counts]
        self = cls(n_ids, [list(w) for w in encoded], list(chunk_counts.values()))
        ids = np.frombuffer(b"".join(encoded), dtype=np.uint8).astype(np.int64)    # (N,) all bytes
        lengths = [len(w) for w in encoded]
        chunk_of = np.repeat(np.arange(len(encoded)), lengths)   # (N,) the chunk of each byte
        inside = chunk_of[1:] == chunk_of[:-1]          # (N-1,) bytes j, j+1 in the same chunk
        keys = (ids[:-1] * n_ids + ids[1:])[inside]     # (P,) the key of every pair occurrence
        chunks = chunk_of[:-1][inside]                  # (P,) its chunk
        freqs = np.array(self.freqs, dtype=np.int64)    # (n_chunks,)
        uniq, inverse = np.unique(keys, return_inverse=True)                       # (U,), (P,)
        # (U,) each pair's count: float64, exact below 2**53
        counts = np.bincount(inverse, weights=freqs[chunks], minlength=len(uniq))
        uniq = uniq.tolist()
        self.stats = dict(zip(uniq, counts.astype(np.int64).tolist()))
        # where: the chunks of each pair's occurrences, grouped by pair (a set drops repeats)
        by_pair = np.argsort(inverse)                                 # (P,) occurrences by pair
        chunk_ids = chunks[by_pair].tolist()
        ends = np.cumsum(np.bincount(inverse, minlength=len(uniq))).tolist()   # (U,)
        for key, lo, hi in zip(uniq, [0] + ends, ends):
            self.where[key] = set(chunk_ids[lo:hi])
        square = n_ids * n_ids
        self.heap = [key - c * square for key, c in self.stats.items()]
        heapq.heapify(self.heap)
        return self

    def pair_counts(self) -> dict[tuple[int, int], int]:
        """The live counts keyed by ``(id1, id2)``, as ``get_stats`` gives them (for tests)."""
        return {divmod(key, self.n_ids): c for key, c in self.stats.items()}

    def best_pair(self) -> tuple[tuple[int, int], int] | None:
        """Step 3: the most frequent pair and its count, ties to the smallest ``(id1, id2)``;
        None when no pair is left. Pops heap entries until one holds its pair's live count
        (the others are stale: pushed before the count changed)."""
        heap, stats, square = self.heap, self.stats, self.n_ids * self.n_ids
        while heap:
            entry = heapq.heappop(heap)
            key = entry % square
            count = (key - entry) // square
            if stats.get(key) == count:
                return divmod(key, self.n_ids), count
        return None

    def forget(self, pair: tuple[int, int]) -> None:
        """Drop ``pair``'s count, so that ``best_pair`` skips it (``train_bpe_fast`` calls this
        for a pair whose merged bytes are already a token)."""
        del self.stats[pair[0] * self.n_ids + pair[1]]

    def apply_merge(self, pair: tuple[int, int], idx: int) -> None:
        """Step 4: replace ``pair`` by ``idx`` in every chunk that contains it, and update the
        pair counts by what changed next to each merge site."""
        if idx >= self.n_ids:
            raise ValueError(f"new id {idx} does not fit n_ids={self.n_ids}: pass count_pairs "
                             "an n_ids above the largest id to be made (the vocabulary size)")
        del self.stats[pair[0] * self.n_ids + pair[1]]   # every occurrence is merged: count 0
        self._add_deltas(self._merge_chunks(pair, idx))

    def _merge_chunks(self, pair: tuple[int, int], idx: int) -> dict[int, int]:
        """Merge ``pair`` in place in the chunks listed in ``where[pair]``; return
        ``{key: count change}`` and index the new pairs in ``where``.

        Only the pairs next to a merge site change. Left to right, for each occurrence of
        ``a b`` in a chunk of frequency f, with ``p`` the token now before it (possibly ``idx``
        from the previous occurrence) and ``q`` the token after it::

            p a b q  ->  p idx q :   (p, a) -f   (p, idx) +f   (b, q) -f   (idx, q) +f

        (the pair itself goes to 0: ``apply_merge`` deletes it). In a run the steps chain:
        "a b a b" -> (b, a) -f (idx, a) +f at the first site, then (idx, a) -f (idx, idx) +f
        at the second, so (idx, a) nets 0 and only the pairs the chunk really lost or gained
        are left."""
        a, b = pair
        n_ids, words, freqs, where = self.n_ids, self.words, self.freqs, self.where
        b_row, idx_row = b * n_ids, idx * n_ids          # keys (b, q) and (idx, q) are row + q
        delta: dict[int, int] = {}
        get = delta.get
        for wi in where.pop(a * n_ids + b):
            w = words[wi]
            f = freqs[wi]
            last = len(w) - 1                  # a pair starts at 0 .. last - 1
            i = 0
            n_a = w.count(a)                   # the a's left to look at (stale entry: maybe none)
            while n_a:
                i = w.index(a, i)
                n_a -= 1
                if i == last or w[i + 1] != b:
                    i += 1
                    continue
                if a == b:
                    n_a -= 1                   # this site's b was one of the a's
                if i:                          # p before the site
                    p_row = w[i - 1] * n_ids
                    key = p_row + a
                    delta[key] = get(key, 0) - f
                    key = p_row + idx
                    delta[key] = get(key, 0) + f
                    where[key].add(wi)
                if i + 1 < last:               # q after the site
                    q = w[i + 2]
                    key = b_row + q
                    delta[key] = get(key, 0) - f
                    key = idx_row + q
                    delta[key] = get(key, 0) + f
                    where[key].add(wi)
                w[i:i + 2] = (idx,)
                last -= 1
                i += 1
        return delta

    def _add_deltas(self, delta: dict[int, int]) -> None:
        """Add the count changes to ``stats``: push each new count on the heap, and drop the
        pairs whose count reaches 0 from ``stats`` and ``where``."""
        stats, where, heap = self.stats, self.where, self.heap
        square = self.n_ids * self.n_ids
        push = heapq.heappush
        for key, d in delta.items():
            if d == 0:
                continue
            c = stats.get(key, 0) + d
            if c > 0:
                stats[key] = c
                push(heap, key - c * square)
            else:
                stats.pop(key, None)
                where.pop(key, None)

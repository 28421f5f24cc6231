"""Byte-level BPE training, fast: the reference loop with incremental pair counts and a heap.

What this file implements: ``train_bpe_fast(text, vocab_size, pattern)``, the default trainer of
``BPETokenizer.train``. It learns exactly the merges of ``train_reference.train_bpe_reference``
(read that one first: count pairs, take the best, merge, repeat) and returns them in the same
``{(id1, id2): new id}`` dict; tests/test_tokenizer.py pins the two together on random texts.

What it changes against the reference, and why: the reference recounts every pair of every
chunk for each merge. Here a merge only touches the chunks that contain the merged pair, and
the counts are updated by the difference. The loop is four named steps; the state they share
(the distinct chunks, the live pair counts, where each pair occurs, a heap) is a ``_PairCounts``:

  1. split: cut the text once with the regex (the stdlib ``re`` spelling for ASCII text, about
     2x faster, see ``patterns.py``) and count the *distinct* chunks (``Counter(findall(text))``);
     a 1 MB English text has ~15k distinct chunks for ~260k chunk occurrences, so every later
     step works on the 15k, weighted by frequency (the reference does this too).
  2. ``_PairCounts.count_pairs``: count every adjacent pair of every distinct chunk, weighted by
     the chunk's frequency (what ``get_stats`` with ``weight`` does), note for each pair the set
     of chunks that contain it, and put every pair on a max-heap of ``(-count, id1, id2)``.
  3. ``_PairCounts.best_pair``: pop the heap until the popped count is the pair's live count
     (an entry whose count has changed since it was pushed is stale and skipped: every count
     change pushes a fresh entry instead of updating the old one). **Tie-break**: the heap
     orders equal counts by ``(id1, id2)``, so the smallest pair wins, as in the reference.
  4. ``_PairCounts.apply_merge``: replace the pair in the chunks that contain it (and only
     those: ``_merge_chunks``), and change the counts of the pairs next to each merge site
     only (``_add_deltas``), pushing the changed counts on the heap.
  The reference's guard: a pair whose merged bytes already exist as a token is dropped
  (``_PairCounts.forget``), so every token is a distinct byte string, which a tiktoken rank file
  requires. (We have not seen it fire: on tinyshakespeare up to vocab 20000 and in random
  searches over small texts, no two pairs ever spelled the same bytes; minbpe and Hugging Face
  have no such guard.)

The Wikipedia example ``aaabdaaabac`` through those steps (one chunk; a=97 b=98 c=99 d=100)::

    count_pairs : aa:4 ab:2 bd:1 da:1 ba:1 ac:1       (pairs overlap: "aaa" holds 2 x "aa")
    best_pair   : (97, 97) x4
    apply_merge : -> 256 "aa"   chunk = [aa a b d aa a b a c]
                  aa goes to 0; site 1 "aa|a": aa:-1 (aa,a):+1; site 2 "d|aa|a": da:-1
                  (d,aa):+1 aa:-1 (aa,a):+1, so the counts are now
                  (256,97):2 (97,98):2 and four pairs seen once
    best_pair   : (97, 98) x2   a tie at 2: the smaller pair (97,98) < (256,97) is on top
    apply_merge : -> 257 "ab"   chunk = [aa ab d aa ab a c]; (256,97) drops to 0 and is
                  removed, but its heap entry (-2, 256, 97) stays behind
    best_pair   : pops (-2, 256, 97) first, sees it is stale and skips it, then (256, 257) x2
    apply_merge : -> 258 "aaab" chunk = [258 100 258 97 99], i.e. "XdXac" with X=aaab, as on
                  Wikipedia (Z=aa, Y=ab, X=ZY)

    >>> train_bpe_fast("aaabdaaabac", 256 + 3)
    {(97, 97): 256, (97, 98): 257, (256, 257): 258}

Cost: O(N) for the split (regex, in C), then per merge O(sum of the lengths of the chunks that
contain the pair + pushes * log heap) in Python. Early merges (" t", "e ") touch thousands of
chunks, late ones a handful. On tinyshakespeare (1.1 MB, 15k distinct chunks) vocab 4096 trains
in under a second on one core, where the reference takes about 7 s for vocab 512 (19x), 21 s
for 1024 (50x) and 2.5 minutes for 4096 (190x) (``python scripts/bench_tokenizer.py --trainer
both``). Moving this loop out of bpe.py into its own function left its speed as it was
(before/after timings interleaved in one process: 0.92x to 1.04x, noise).

What it leaves out: parallel counting and native code (Hugging Face ``tokenizers`` has both;
BENCHMARKS.md compares), and training on special tokens.
"""
from __future__ import annotations

import heapq
import re
import time
from collections import Counter, defaultdict

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
    chunk_counts = Counter(split_chunks(text, resolve_pattern(pattern)))  # 1. split
    pairs = _PairCounts.count_pairs(chunk_counts)                         # 2. count pairs
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

    Attributes:
        words: ``words[i]`` is the i-th distinct chunk as a list of token ids (merged so far).
        freqs: ``freqs[i]`` is how often that chunk occurs in the text.
        stats: ``{pair: count}`` over the whole text (each chunk weighted by its frequency);
            only pairs with a count > 0 (and not forgotten) are in it.
        where: ``{pair: set of i}``, the chunks that contain the pair. It may list chunks that no
            longer do (a later merge ate the pair); ``_merge_chunks`` skips those.
        heap: ``(-count, id1, id2)`` entries, a max-heap on count with ties to the smallest
            pair. Each count change pushes a new entry; ``best_pair`` skips the outdated ones.

    The Wikipedia example, one merge (``train_bpe_fast`` runs the full loop):

        >>> from tinygrad_lm.tokenizer.train_reference import get_stats
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
        self.where: dict[tuple[int, int], set[int]] = defaultdict(set)
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
                where[pair].add(wi)
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
        """Drop ``pair``'s count, so that ``best_pair`` skips it (``train_bpe_fast`` calls this
        for a pair whose merged bytes are already a token)."""
        del self.stats[pair]

    def apply_merge(self, pair: tuple[int, int], idx: int) -> None:
        """Step 4: replace ``pair`` by ``idx`` in every chunk that contains it, and update the
        pair counts by what changed next to each merge site."""
        del self.stats[pair]                  # every occurrence is merged: its count becomes 0
        self._add_deltas(self._merge_chunks(pair, idx))

    def _merge_chunks(self, pair: tuple[int, int], idx: int) -> dict[tuple[int, int], int]:
        """Merge ``pair`` in place in the chunks listed in ``where[pair]``; return
        ``{pair: count change}`` and index the new pairs in ``where``.

        Only the pairs next to a merge site change. Left to right, for each occurrence of
        ``a b`` in a chunk of frequency f, with ``p`` the token now before it (possibly ``idx``
        from the previous occurrence) and ``q`` the token after it::

            p a b q  ->  p idx q :   (p, a) -f   (p, idx) +f   (b, q) -f   (idx, q) +f

        (the pair itself goes to 0: ``apply_merge`` deletes it). In a run the steps chain:
        "a b a b" -> (b, a) -f (idx, a) +f at the first site, then (idx, a) -f (idx, idx) +f
        at the second, so (idx, a) nets 0 and only the pairs the chunk really lost or gained
        are left."""
        a, b = pair
        words, freqs, where = self.words, self.freqs, self.where
        delta: dict[tuple[int, int], int] = {}
        get = delta.get
        for wi in where.pop(pair):
            w = words[wi]
            f = freqs[wi]
            i = 0
            while a in w[i:-1]:               # (stale index entries: no a b left, no change)
                i = w.index(a, i, -1)
                if w[i + 1] != b:
                    i += 1
                    continue
                if i:
                    p = w[i - 1]
                    delta[p, a] = get((p, a), 0) - f
                    delta[p, idx] = get((p, idx), 0) + f
                    where[p, idx].add(wi)
                if i + 2 < len(w):
                    q = w[i + 2]
                    delta[b, q] = get((b, q), 0) - f
                    delta[idx, q] = get((idx, q), 0) + f
                    where[idx, q].add(wi)
                w[i:i + 2] = (idx,)
                i += 1
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

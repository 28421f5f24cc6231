"""Byte-level BPE training as a reader first meets it: count pairs, take the best, merge, repeat.

What this file implements:
  * ``get_stats(ids)``: how often each pair of neighbouring ids occurs;
  * ``merge(ids, pair, idx)``: every occurrence of ``pair`` replaced by the new id ``idx``;
  * ``train_bpe_reference(text, vocab_size, pattern)``: the training loop built from those two,
    on one screen. It is the oracle that the fast trainer (``train_fast.py``, the default of
    ``BPETokenizer.train``) is pinned to: both learn exactly the same merges (tested on random
    texts in tests/test_tokenizer.py). ``BPETokenizer.train(..., trainer="reference")`` runs it.

The loop, minbpe-style (minbpe's regex.py ``train``; the code is our own):

  1. split the text into chunks with the regex (``patterns.py``): a merge never crosses a chunk
     boundary, so " dog" and "." can never fuse. Each chunk becomes the list of its UTF-8 bytes
     (ids 0..255). A chunk that occurs f times is kept once, with the weight f;
  2. count every adjacent pair in every chunk (``get_stats``, weighted by the chunk's count);
  3. take the most frequent pair. **Tie-break**: among equal counts, the smallest pair
     ``(id1, id2)`` wins, so training is deterministic and both trainers agree;
  4. give it the next id (256, 257, ...) and merge it in every chunk (``merge``); repeat from 2
     until ``vocab_size - 256`` merges are learned or no pair is left.

One guard, which minbpe does not have: a pair whose two tokens spell bytes that are already a
token is never merged, so every token is a distinct byte string (a tiktoken rank file needs
that). We have never seen it fire on real text.

The Wikipedia example, ``aaabdaaabac`` (a=97 b=98 c=99 d=100), three merges::

    counts  aa:4 ab:2 bd:1 da:1 ba:1 ac:1   -> merge (97, 97) "aa" as 256   [256 97 98 100 256 97 98 97 99]
    counts  (256,97):2 (97,98):2 ...        -> a tie at 2: (97, 98) < (256, 97), "ab" as 257
    counts  (256,257):2 ...                 -> merge (256, 257) "aaab" as 258  [258 100 258 97 99]

    >>> train_bpe_reference("aaabdaaabac", 256 + 3)
    {(97, 97): 256, (97, 98): 257, (256, 257): 258}

What it leaves out: speed. Every merge recounts every pair of every distinct chunk and rescans
every chunk, in Python: O(merges x total length of the distinct chunks). On Tiny Shakespeare
(1.1 MB, ~15k distinct chunks, one core) that is about 7 s for vocab 512, 21 s for 1024 and
2.5 minutes for 4096, where ``train_fast.py`` takes 0.25-0.55 s (``python
scripts/bench_tokenizer.py --trainer both``; minbpe, which recounts every chunk occurrence,
takes about 62 s for 512). Special tokens are not this file's business: the tokenizer gives them
the ids after the merges.
"""
from __future__ import annotations

from collections import Counter
from typing import Iterable

import regex

from .patterns import resolve_pattern


def get_stats(ids: Iterable[int], counts: dict | None = None, weight: int = 1) -> dict:
    """Count every pair of neighbouring ids (pairs overlap).

    Args:
        ids: a sequence of token ids.
        counts: an existing ``{pair: count}`` dict to add to (updated in place), or None.
        weight: how much each occurrence adds (the training loop passes a chunk's frequency).
    Returns:
        the ``{(id1, id2): count}`` dict.

    Worked example, the Wikipedia string ``aaabdaaabac`` as bytes (a=97, b=98, c=99, d=100):

        >>> get_stats([97, 97, 97, 98, 100, 97, 97, 97, 98, 97, 99])
        {(97, 97): 4, (97, 98): 2, (98, 100): 1, (100, 97): 1, (98, 97): 1, (97, 99): 1}

    ``aaa`` holds two overlapping ``aa`` pairs, so ``aa`` is counted 4 times, not 2.
    """
    counts = {} if counts is None else counts
    it = iter(ids)
    prev = next(it, None)
    for cur in it:
        pair = (prev, cur)
        counts[pair] = counts.get(pair, 0) + weight
        prev = cur
    return counts


def merge(ids: list[int], pair: tuple[int, int], idx: int) -> list[int]:
    """Replace every occurrence of ``pair`` in ``ids`` by the single id ``idx``.

    Occurrences are taken left to right without overlap, so a run ``a a a`` merged on
    ``(a, a)`` becomes ``[aa, a]``.

    Args:
        ids: the token ids (not modified).
        pair: the two ids to fuse.
        idx: the id of the new token.
    Returns:
        a new list of ids.

    Worked example, the first merge of the Wikipedia string (``aa`` -> 256):

        >>> merge([97, 97, 97, 98, 100, 97, 97, 97, 98, 97, 99], (97, 97), 256)
        [256, 97, 98, 100, 256, 97, 98, 97, 99]
    """
    a, b = pair
    out = []
    i, n = 0, len(ids)
    while i < n:
        if ids[i] == a and i + 1 < n and ids[i + 1] == b:
            out.append(idx)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def train_bpe_reference(text: str, vocab_size: int, pattern: str = "gpt4",
                        verbose: bool = False) -> dict[tuple[int, int], int]:
    """Learn ``vocab_size - 256`` merges from ``text`` (fewer if no pair is left), the plain way.

    Args:
        text: the training text (special token strings in it are plain text).
        vocab_size: 256 byte tokens + the number of merges to learn (no special tokens).
        pattern: ``"gpt4"``, ``"gpt2"`` or a split regex (``patterns.py``).
        verbose: print each merge.
    Returns:
        ``{(id1, id2): new id}`` in merge order, new ids 256, 257, ...: the format of
        ``BPETokenizer.merges`` and of ``train_fast.train_bpe_fast``, which returns the same dict.
    """
    chunks = Counter(regex.findall(resolve_pattern(pattern), text))    # 1. split, {chunk: count}
    words = [list(chunk.encode("utf-8")) for chunk in chunks]           #    each chunk as bytes
    vocab = [bytes([i]) for i in range(256)]                             # id -> its bytes
    merges: dict[tuple[int, int], int] = {}
    while len(merges) < vocab_size - 256:
        stats: dict[tuple[int, int], int] = {}
        for ids, count in zip(words, chunks.values()):                   # 2. count pairs
            get_stats(ids, stats, weight=count)
        known = set(vocab)
        new = [p for p in stats if vocab[p[0]] + vocab[p[1]] not in known]  # the guard
        if not new:
            break                                                         # no pair left
        pair = min(new, key=lambda p: (-stats[p], p))                     # 3. best; ties: smallest
        idx = 256 + len(merges)
        words = [merge(ids, pair, idx) for ids in words]                  # 4. merge everywhere
        merges[pair] = idx
        vocab.append(vocab[pair[0]] + vocab[pair[1]])
        if verbose:
            print(f"  merge {idx - 255}/{vocab_size - 256}: {pair} -> {idx} {vocab[idx]!r} x{stats[pair]}")
    return merges

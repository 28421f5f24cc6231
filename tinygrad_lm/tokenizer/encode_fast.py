"""Byte-level BPE encoding, fast: all the new chunks of a text merged at once, with NumPy.

What this file implements: ``ChunkEncoder``, which ``BPETokenizer.encode_ordinary`` (``bpe.py``)
hands the regex chunks of a text. It returns the ids that ``BPETokenizer._encode_chunk``, the
textbook per-chunk loop, gives chunk by chunk: that loop stays the reference (read it first)
and the oracle: tests/test_tokenizer_encode_fast.py pins the two together on random texts, and
tiktoken pins both (test_tokenizer_tiktoken.py, test_gpt2_tokenizer.py).

The rule is tiktoken's, as in ``_encode_chunk``: a chunk whose bytes are a token is that token;
otherwise repeatedly fuse the leftmost adjacent pair whose concatenation is the token of lowest
rank, until no adjacent pair forms a token. What changes, and why: that loop costs about 1 us a
step in Python, paid once per distinct chunk, which is most chunks of some texts (identifiers,
numbers, names); and a Python list per chunk costs about as much again. Here:

  1. one ``dict.setdefault`` pass over the chunks finds the ones already in the chunk cache and
     gives each new one a slot (``ChunkEncoder.encode``);
  2. a new chunk that is a token is that token: tiktoken looks it up whole. For most vocabularies
     (GPT-2's, the ones trained here) the merges of a token's bytes give back the token itself,
     so the lookup changes nothing; the constructor merges every token's bytes once and keeps
     only the tokens for which they do not, in ``whole`` (``str -> id``), usually empty. Only
     then does each new chunk cost a dict lookup (a quarter of the cold time on mostly-distinct
     chunks, where almost none is a token);
  3. the new chunks' UTF-8 bytes go into one flat array (``lens`` marks the chunks),
     mapped to byte ids by one table lookup (GPT-2 numbers the bytes its own way); ``ranks[i]``,
     the rank of the pair at ``i`` (``INF`` where it forms no token, and at each chunk's last
     position), comes from a dense 256 x 256 table: every id is a byte then;
  4. each round, for every chunk at once: the lowest rank and its leftmost position in one
     ``np.minimum.reduceat`` over ``rank << 32 | position``; a chunk whose lowest rank is
     ``INF`` is finished and leaves; in the others the pair becomes its token, the right-hand id
     is deleted (one boolean compaction for all), and only the two pairs around the new token
     get new ranks, from ``HashTable`` (open addressing, searched for a whole array of pairs
     at once: about one probe a pair);
  5. chunks longer than ``LONG_CHUNK`` bytes would keep the rounds going long after the others
     are done (one merge per chunk per round), so they take ``_merge_long``, the heap;
  6. every chunk's ids are then one gather from the cache's flat arrays, and one ``tolist``.

One merge per chunk per round is exactly the reference's order, so the ids are the same for
every vocabulary, including tokens that can be written as two tokens in more than one way
(GPT-2 has those) and repeats such as ``aaaa``. A text of a few chunks costs more in NumPy
calls than in Python, so ``bpe.py`` sends only texts of ``FAST_MIN_CHUNKS`` chunks or more here.
Measured with scripts/bench_tokenizer.py against tiktoken: README.md's tokenizer section.

What it leaves out: the split (``bpe.py``), encoding with a rank limit (the merge recovery of
``from_tiktoken_ranks`` keeps the plain loop), threads and native code.
"""
from __future__ import annotations

from itertools import repeat
from typing import Callable

import numpy as np

INF = 2 ** 31 - 1          # "no token": above every id
LONG_CHUNK = 128           # bytes: longer chunks take the heap (bpe.BPETokenizer._merge_long)
# bpe.py: texts of fewer chunks take the plain per-chunk loop. Measured (Tiny Shakespeare cut into
# texts of 256 to 2048 words, 2-core machine): on prose, whose words repeat, the loop and its
# dict cache stay faster up to ~4000 chunks; on mostly distinct chunks the batch is 2-4x faster
# from ~500 chunks on
FAST_MIN_CHUNKS = 1024
_EMPTY = -1
_HIGH, _LOW = -(1 << 32), (1 << 32) - 1   # the rank and the id halves of rank << 32 | id
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)   # Fibonacci hashing: key * 2^64/phi, top bits


def _positions(starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """The indices ``starts[0] .. starts[0]+lens[0]-1, starts[1] ..`` of segments, back to back.

        >>> _positions(np.array([5, 0]), np.array([2, 3])).tolist()
        [5, 6, 0, 1, 2]
    """
    out_starts = np.cumsum(lens) - lens
    return np.arange(int(lens.sum()), dtype=np.int64) + np.repeat(starts - out_starts, lens)


class _Growing:
    """An int64 array that grows at its end, doubling its buffer (appending k values costs O(k),
    amortised, where ``np.concatenate`` would copy everything each time).

        >>> g = _Growing(); g.append(np.array([1, 2])); g.append(np.array([3])); g.array.tolist()
        [1, 2, 3]
    """

    def __init__(self):
        self.buffer = np.zeros(16, np.int64)
        self.size = 0

    @property
    def array(self) -> np.ndarray:
        return self.buffer[:self.size]

    def append(self, values: np.ndarray) -> None:
        end = self.size + values.size
        if end > self.buffer.size:
            self.buffer = np.concatenate([self.array, np.zeros(max(end, 2 * self.buffer.size) - self.size, np.int64)])
        self.buffer[self.size:end] = values
        self.size = end


class HashTable:
    """Non-negative int64 keys -> int64 values; insert and look up whole arrays at once.

    A key's first slot is the top ``bits`` bits of ``key * 0x9E3779B97F4A7C15`` (mod 2^64); a
    taken slot sends it to the next (linear probing). The table is kept at most half full (it
    doubles when needed), so a lookup takes about one probe; probing goes on only for the keys
    that met neither their own key nor an empty slot.

        >>> t = HashTable(missing=-1)
        >>> t.insert(np.array([12, 40]), np.array([7, 9]))
        >>> t.lookup(np.array([40, 12, 3])).tolist()
        [9, 7, -1]
    """

    def __init__(self, missing: int, capacity: int = 0):
        self.missing = missing
        self.count = 0
        self._allocate(capacity)

    def _allocate(self, capacity: int):
        self.bits = max(10, int(4 * capacity).bit_length())
        self.mask = (1 << self.bits) - 1
        self.keys = np.full(1 << self.bits, _EMPTY, np.int64)
        self.vals = np.zeros(1 << self.bits, np.int64)

    def _slot(self, keys: np.ndarray) -> np.ndarray:
        return ((keys.astype(np.uint64) * _GOLDEN) >> np.uint64(64 - self.bits)).astype(np.int64)

    def insert(self, keys: np.ndarray, vals: np.ndarray) -> None:
        """Add distinct keys that are not in the table yet."""
        if 2 * (self.count + keys.size) > self.keys.size:        # grow: place everything again
            used = self.keys != _EMPTY
            old_keys, old_vals = self.keys[used], self.vals[used]
            self._allocate(self.count + keys.size)
            self.count = 0
            self._place(old_keys, old_vals)
        self._place(keys, vals)

    def _place(self, keys: np.ndarray, vals: np.ndarray) -> None:
        slot = self._slot(keys)
        pending = np.arange(keys.size)
        while pending.size:                            # all pending keys at once
            s = slot[pending]
            free = self.keys[s] == _EMPTY
            won, first = np.unique(s[free], return_index=True)   # one key per free slot
            winners = pending[free][first]
            self.keys[won] = keys[winners]
            self.vals[won] = vals[winners]
            placed = np.zeros(keys.size, bool)
            placed[winners] = True
            pending = pending[~placed[pending]]
            slot[pending] = (slot[pending] + 1) & self.mask   # the slot seen is taken now
        self.count += keys.size

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """The value of each key, ``missing`` for keys not in the table."""
        slot = self._slot(keys)
        found = self.keys[slot]
        out = np.where(found == keys, self.vals[slot], self.missing)
        todo = np.flatnonzero((found != keys) & (found != _EMPTY))   # met another key: probe on
        while todo.size:
            s = slot[todo] = (slot[todo] + 1) & self.mask
            found = self.keys[s]
            hit = found == keys[todo]
            out[todo[hit]] = self.vals[s[hit]]
            todo = todo[~hit & (found != _EMPTY)]
        return out


class RunCache:
    """Strings -> runs of ids, the runs back to back in flat arrays, so that the ids of many
    strings are one gather (and a new string costs a number, not a Python list).

    ``number(keys)`` gives each key its slot (a new key a free one); ``add`` stores the runs of
    the new keys, ``gather(slots)`` joins the runs of the given slots.

        >>> c = RunCache()
        >>> slots, new = c.number(["ab", "c", "ab"]); slots.tolist(), new.tolist()   # slot 2 unused
        ([0, 1, 0], [0, 1])
        >>> c.add(np.array([7, 8, 9]), np.array([2, 1]), np.array([0, 1]))      # ab -> 7 8, c -> 9
        >>> slots, new = c.number(["ab", "x", "c", "x"]); slots.tolist(), new.tolist()
        ([0, 3, 1, 3], [1])
        >>> c.add(np.array([5]), np.array([1]), np.array([0]))                  # x -> 5
        >>> c.gather(slots)[0].tolist()
        [7, 8, 5, 9, 5]
    """

    def __init__(self):
        self.slot_of: dict[str, int] = {}
        self.start, self.length, self.ids = _Growing(), _Growing(), _Growing()
        self.size = _Growing()    # each key's length in characters, where `add` was given it
        self._pending = None      # the last `number`'s new keys: (their places among the slots taken, how many taken)

    def __len__(self) -> int:
        return len(self.slot_of)

    def number(self, keys: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
        """The slot of each key, and (None if every key was known) the position in ``keys`` of
        the first sighting of each new key, in slot order. The new keys must then be given their runs
        by `add` (or taken back by `forget`) before the next call."""
        try:
            return np.array(list(map(self.slot_of.__getitem__, keys)), np.int64), None   # (np.fromiter: 10% slower)
        except KeyError:
            pass
        base, n, known = self.start.size, len(keys), len(self.slot_of)
        # one pass, one setdefault a key: an old key gives its slot, a new one takes base + the
        # position of its first sighting (a dict(zip(...)) and a lookup pass took 1.5x as long)
        slots = np.fromiter(map(self.slot_of.setdefault, keys, range(base, base + n)), np.int64, n)
        new = np.flatnonzero(slots == np.arange(base, base + n))      # (k,) each new key's first sighting
        if not known:
            self._pending = (new, n)           # an empty cache: the slots of repeats stay unused, once
            return slots, new
        # a cache in use: the k new keys are renumbered base, base + 1, ... (no gaps, call after call)
        self.slot_of.update(zip(map(keys.__getitem__, new.tolist()), range(base, base + new.size)))
        renumber = np.zeros(n, np.int64)
        renumber[new] = np.arange(new.size)    # (n,) first sighting -> its number among the new keys
        fresh = slots >= base
        slots[fresh] = base + renumber[slots[fresh] - base]
        self._pending = (np.arange(new.size), new.size)
        return slots, new

    def forget(self, new_keys: list[str]) -> None:
        """Take back the keys `number` just added (their runs could not be computed)."""
        for k in new_keys:
            self.slot_of.pop(k, None)
        self._pending = None

    def add(self, flat: np.ndarray, lens: np.ndarray, who: np.ndarray, sizes: np.ndarray | None = None) -> None:
        """The runs of the new keys of the last `number`: the ``who[k]``-th of them (in its
        ``new`` order) has the ``lens[k]`` ids that follow in ``flat``; one missing from ``who``
        has none. ``sizes``: the length of each new key (in ``new`` order), if wanted later."""
        (where, taken), self._pending = self._pending, None
        size = np.zeros(taken, np.int64)
        if sizes is not None:
            size[where] = sizes
        self.size.append(size)
        at = where[who]                        # (len(who),) their places among the slots taken
        length = np.zeros(taken, np.int64)
        length[at] = lens
        start = np.zeros(taken, np.int64)
        start[at] = self.ids.size + np.cumsum(lens) - lens
        self.start.append(start)
        self.length.append(length)
        self.ids.append(flat)

    def gather(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The runs of ``slots``, back to back, and the length of each."""
        length = self.length.array[slots]
        return self.ids.array[_positions(self.start.array[slots], length)], length


class ChunkEncoder:
    """The chunk cache of one vocabulary and the batched merges that fill it (module docstring).

    ``slot_of`` maps each chunk seen to a slot; slot k's ids are ``ids[start[k]:start[k] +
    length[k]]`` in flat NumPy arrays. The cache is emptied when a call finds more than
    ``cache_limit`` chunks in it.

    Args:
        rank_of: bytes -> id, the first id of each byte string (``BPETokenizer._rank_of``).
        pair_rank: ``(left, right) -> id`` of every way to write a token as two tokens
            (``bpe._pair_table``).
        byte_ids: ``bytes`` of 256: the id of each byte value (``bytes.translate`` table).
        merge_long: the heap merge for a list of byte ids (``BPETokenizer._merge_long``).
        cache_limit: the most chunks kept from one call to the next.
    """

    def __init__(self, rank_of: dict[bytes, int], pair_rank: dict[tuple[int, int], int], byte_ids: bytes,
                 merge_long: Callable[[list[int]], list[int]], cache_limit: int = 1_000_000):
        self.byte_ids = np.frombuffer(byte_ids, np.uint8).astype(np.int64)   # byte value -> id
        pairs = np.array(sorted((a, b, r) for (a, b), r in pair_rank.items()), np.int64).reshape(-1, 3)
        small = (pairs[:, 0] < 256) & (pairs[:, 1] < 256)      # (pairs, [left, right, rank])
        by_ids = np.full(256 * 256, INF, np.int64)             # left id * 256 + right id -> rank
        by_ids[pairs[small, 0] * 256 + pairs[small, 1]] = pairs[small, 2]
        both = self.byte_ids[:, None] * 256 + self.byte_ids[None, :]   # (256, 256): [left byte, right byte]
        self.byte_pairs = by_ids[both.ravel()]                 # left byte * 256 + right byte -> rank
        self.n_ids = max(rank_of.values(), default=0) + 1
        self.pairs = HashTable(INF, len(pairs))
        self.pairs.insert(pairs[:, 0] * self.n_ids + pairs[:, 1], pairs[:, 2])
        self.merge_long = merge_long
        self.cache_limit = cache_limit
        self.clear()
        # step 2's dict: the tokens (valid UTF-8: a chunk is text) that the merges of their own
        # bytes do not give back as themselves; GPT-2's and ours have none, so their new chunks
        # skip a lookup per chunk (a quarter of the cold time on mostly-distinct chunks)
        self.whole: dict[str, int] = {}
        texts, ids = [], []
        for b, i in rank_of.items():
            try:
                texts.append(b.decode("utf-8"))
                ids.append(i)
            except UnicodeDecodeError:
                pass                                   # half a character: never a whole chunk
        flat, lens, who = self._encode_new(texts)      # all merged, with self.whole empty
        first = np.cumsum(lens) - lens                 # each token's first id
        itself = np.zeros(len(texts), bool)
        itself[who] = (lens == 1) & (flat[first] == np.array(ids, np.int64)[who])
        self.whole = {texts[k]: ids[k] for k in np.flatnonzero(~itself).tolist()}

    def clear(self) -> None:
        """Empty the chunk cache."""
        self.cache = RunCache()

    def __len__(self) -> int:
        return len(self.cache)

    def encode(self, chunks: list[str]) -> list[int]:
        """The ids of a text cut into ``chunks``: each chunk's ids, one after the other.

        Raises:
            UnicodeEncodeError: a new chunk holds a lone surrogate (the caller replaces them).
        """
        slots = self._slots(chunks)                    # first: it may empty the cache (a new RunCache)
        return self.cache.gather(slots)[0].tolist()

    def encode_runs(self, chunks: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`encode`'s ids as an array, how many of them each chunk has, and each chunk's
        length in characters (encode_pieces.py needs to know where each chunk ends, in the text
        and in the ids; the cache keeps each chunk's length, so a known one costs no ``len``)."""
        slots = self._slots(chunks)
        return (*self.cache.gather(slots), self.cache.size.array[slots])

    def _slots(self, chunks: list[str]) -> np.ndarray:
        """Each chunk's slot in the chunk cache, the new chunks merged and added first."""
        if len(self.cache) > self.cache_limit:
            self.clear()
        slots, new = self.cache.number(chunks)
        if new is not None:                            # new chunks: encode them
            new_chunks = list(map(chunks.__getitem__, new.tolist()))
            sizes = np.fromiter(map(len, new_chunks), np.int64, len(new_chunks))
            try:
                flat, lens, who = self._encode_new(new_chunks, sizes=sizes)
            except BaseException:
                self.cache.forget(new_chunks)          # leave the cache as it was
                raise
            self.cache.add(flat, lens, who, sizes)
        return slots

    def merge_every(self, chunks: list[str], text: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`encode_runs` without the chunk cache: every chunk merged, repeats too (cheaper when
        few repeat: no lookup a chunk; encode_pieces.py's first calls). ``text``:
        ``"".join(chunks)``, when the caller has it."""
        sizes = np.fromiter(map(len, chunks), np.int64, len(chunks))
        flat, lens, who = self._encode_new(chunks, text, sizes)
        counts = np.zeros(len(chunks), np.int64)
        counts[who] = lens
        start = np.zeros(len(chunks), np.int64)
        start[who] = np.cumsum(lens) - lens           # flat lists the chunks in who's order
        return flat[_positions(start, counts)], counts, sizes

    def _encode_new(self, chunks: list[str], text: str | None = None, sizes: np.ndarray | None = None):
        """New chunks (distinct, or `merge_every`'s) -> ``(ids, lens, who)``: the ids of chunks ``who[0], who[1], ...``
        back to back, ``lens[k]`` of them for the k-th. ``text``, ``sizes``: ``"".join(chunks)`` and
        each chunk's length in characters, when the caller has them."""
        if not self.whole:                             # step 2 not needed: merge them all
            return self._merge_text(chunks, np.arange(len(chunks)), text, sizes)
        got = np.fromiter(map(self.whole.get, chunks, repeat(-1)), np.int64, len(chunks))
        one = np.flatnonzero(got >= 0)                 # step 2: the chunk is a token
        rest = np.flatnonzero(got < 0)
        if not rest.size:
            return got, np.ones(one.size, np.int64), one
        flat, out_lens, who = self._merge_text(list(map(chunks.__getitem__, rest.tolist())), rest)
        return (np.concatenate([got[one], flat]), np.concatenate([np.ones(one.size, np.int64), out_lens]),
                np.concatenate([one, who]))

    def _merge_text(self, texts: list[str], numbers: np.ndarray, joined: str | None = None,
                    lens: np.ndarray | None = None):
        """The merges of chunks ``texts``, numbered ``numbers``: ``(ids, lens, who)`` as
        `_encode_new`'s, ``who`` from ``numbers``; ``joined`` and ``lens``: their join and
        lengths, if known."""
        joined = "".join(texts) if joined is None else joined
        raw = joined.encode("utf-8")
        if lens is None:
            lens = np.fromiter(map(len, texts), np.int64, len(texts))      # in characters
        if len(raw) != len(joined):                     # not ASCII: characters -> bytes
            code = np.frombuffer(joined.encode("utf-32-le"), np.uint32)
            width = 1 + (code >= 0x80).astype(np.int64) + (code >= 0x800) + (code >= 0x10000)
            lens = np.diff(np.concatenate([[0], np.cumsum(width)])[np.cumsum(lens)], prepend=0)
        flat, out_lens, who = self._merge(np.frombuffer(raw, np.uint8), lens)
        return flat, out_lens, numbers[who]

    def _merge(self, data: np.ndarray, lens: np.ndarray):
        """Steps 3-5: the merges of chunks that are not one token, whose UTF-8 bytes are ``data``,
        ``lens[k]`` bytes for the k-th. Returns ``(ids, lens, who)``: the ids of chunks ``who[0],
        who[1], ...`` back to back, ``lens[k]`` of them for the k-th."""
        batch = (lens > 0) & (lens <= LONG_CHUNK)      # the empty chunk (custom patterns): no ids
        if batch.all():
            return self._merge_rounds(data, lens, np.arange(lens.size))
        parts = [self._merge_rounds(data[np.repeat(batch, lens)], lens[batch], np.flatnonzero(batch))]
        ends = np.cumsum(lens)
        for k in np.flatnonzero(~batch).tolist():
            ids = self.byte_ids[data[ends[k] - lens[k]:ends[k]]].tolist()
            merged = self.merge_long(ids) if ids else []
            parts.append((np.array(merged, np.int64), np.array([len(merged)]), np.array([k])))
        return tuple(np.concatenate(p) for p in zip(*parts))

    def _merge_rounds(self, data: np.ndarray, lens: np.ndarray, who: np.ndarray):
        """Step 3 and 4: all chunks' merges, one per chunk per round. ``data`` holds the chunks'
        bytes back to back, ``lens`` their lengths (all >= 1), ``who`` their numbers; returns
        ``(ids, lens, who)`` of the merged chunks, in the order they finished.

        Each position is one int64, ``rank << 32 | id`` (``rank``: of the pair starting there),
        so that a round compacts one array, not two (a third less time than separate arrays)."""
        n = data.size
        ranks = np.full(n, INF, np.int64)
        pair = data[:-1].astype(np.int32)
        pair <<= 8
        pair |= data[1:]
        ranks[:-1] = self.byte_pairs[pair]               # indexed by the two byte values
        ranks[np.cumsum(lens) - 1] = INF                 # a chunk's last id pairs with nothing
        tok = ranks << 32
        tok |= self.byte_ids[data]
        position = np.arange(n, dtype=np.int64)
        key = np.empty(n, np.int64)
        done = [(np.zeros(0, np.int64),) * 3]
        while lens.size:
            m = tok.size
            starts = np.cumsum(lens) - lens
            np.bitwise_and(tok, _HIGH, out=key[:m])      # rank << 32 | position: the min is the
            key[:m] |= position[:m]                      # lowest rank, leftmost
            best = np.minimum.reduceat(key[:m], starts)
            rank = best >> 32
            at = best & _LOW
            finished = rank == INF
            if finished.any():                           # no pair left to merge: done
                keep = np.repeat(~finished, lens)
                done.append((tok[~keep] & _LOW, lens[finished], who[finished]))
                go = ~finished
                at, rank, starts, lens, who = at[go], rank[go], starts[go], lens[go], who[go]
            else:
                keep = np.ones(m, bool)
            if not lens.size:
                break
            keep[at + 1] = False                         # the pair's right id goes
            left = at > starts                           # the pair (id before, new token)
            right = at + 2 < starts + lens               # the pair (new token, id after)
            a, b = at[left], at[right]
            before = tok[a - 1] & _LOW
            new = self.pairs.lookup(np.concatenate([before, rank[right]]) * self.n_ids
                                    + np.concatenate([rank[left], tok[b + 2] & _LOW]))
            tok[a - 1] = (new[:a.size] << 32) | before
            tok[at] = (INF << 32) | rank                 # the pair becomes its token
            tok[b] = (new[a.size:] << 32) | rank[right]
            tok = tok[keep]
            lens = lens - 1
        return tuple(np.concatenate(p) for p in zip(*done))

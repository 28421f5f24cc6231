"""The batched BPE encoder (tokenizer/encode_fast.py) pinned to the per-chunk reference loop.

``ChunkEncoder.encode`` must give, for any list of chunks, exactly the ids of
``BPETokenizer._encode_chunk`` chunk by chunk (the textbook loop), with an empty cache, a warm
one, and one filled by other texts; for a trained vocabulary, for GPT-2's (when its files are
present) and for a vocabulary whose tokens can be written as two tokens in more than one way.
Also: the stdlib-``re`` split for BMP text against ``regex`` on every BMP character, the pair
hash table against a dict, lone surrogates, the bounded cache, and ``encode_ordinary`` taking
either path with the same ids. tiktoken is the oracle in test_tokenizer_tiktoken.py.
"""
import random
import re
from pathlib import Path

import numpy as np
import pytest
import regex
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tinygrad_lm.tokenizer import BPETokenizer, GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN, bpe, encode_fast
from tinygrad_lm.tokenizer.encode_fast import HashTable
from tinygrad_lm.tokenizer.patterns import bmp_pattern, has_astral

GPT2_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "gpt2"
HYP = settings(max_examples=80, deadline=None, derandomize=True,
               suppress_health_check=[HealthCheck.function_scoped_fixture])
ALPHABET = list("the kingqu'sI\n\r\t 0123456789.,!-_aaaaéñü中文😀👍\u0301\u00a0") + ["\ud800"]


def training_text(seed=0, n_words=8000):
    rng = random.Random(seed)
    words = ["the", "and", "king", "I'm", "héllo", "naïve", "日本", "中文", "😀", "1234", "aaaa", "--",
             "\n", "\r\n", "  ", "_x", "snake_case", "Камень", "λόγος"]
    words += ["".join(rng.choice("etaoinshrdlucmfwyp") for _ in range(rng.randint(2, 9))) for _ in range(400)]
    return " ".join(rng.choice(words) for _ in range(n_words))


@pytest.fixture(scope="module", params=["gpt4", "gpt2"])
def tok(request):
    t = BPETokenizer(request.param, special_tokens=["<|endoftext|>"])
    t.train(training_text(), vocab_size=600)
    return t


@pytest.fixture(scope="module")
def gpt2():
    if not (GPT2_DIR / "encoder.json").is_file():
        pytest.skip(f"GPT-2's vocabulary not found in {GPT2_DIR}")
    return BPETokenizer.from_gpt2(GPT2_DIR / "encoder.json", GPT2_DIR / "vocab.bpe")


def reference(tok, chunks):
    """The textbook loop, chunk by chunk."""
    return [i for c in chunks for i in tok._encode_chunk(c.encode("utf-8"))]


def fresh(tok):
    return BPETokenizer.from_dict(tok.to_dict())


CHUNKS = st.lists(st.text(alphabet=st.sampled_from(ALPHABET[:-1]), max_size=12), max_size=60)


@HYP
@given(chunks=CHUNKS, more=CHUNKS)
@example(chunks=["aaaa", "aaaaa", "a" * 9, " aaa", "ab" * 7, "", "a"], more=[])
def test_batched_equals_reference_per_chunk(tok, chunks, more):
    t = fresh(tok)
    want = reference(t, chunks)
    assert t._chunks.encode(chunks) == want                  # empty cache
    assert t._chunks.encode(chunks) == want                  # warm: every chunk cached
    assert t._chunks.encode(more + chunks) == reference(t, more) + want   # partly cached


@HYP
@given(text=st.text(alphabet=st.sampled_from(ALPHABET[:-1]), min_size=200, max_size=600))
def test_encode_ordinary_fast_path_equals_reference(tok, text):
    t = fresh(tok)
    chunks = t._splitter(text).findall(text)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(encode_fast, "FAST_MIN_CHUNKS", 0)         # the batch even for a text of one chunk
        assert t.encode_ordinary(text) == reference(t, chunks) == t.encode_ordinary(text)


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(long=st.lists(st.text(alphabet=st.sampled_from(list("aaabé中")), min_size=100, max_size=400), max_size=4),
       short=CHUNKS)
def test_long_chunks_among_short_ones_hypothesis(tok, long, short):
    t = fresh(tok)
    chunks = short[:len(short) // 2] + long + short[len(short) // 2:]
    assert t._chunks.encode(chunks) == reference(t, chunks)


def test_long_chunks_take_the_heap_inside_a_batch(tok):
    rng = random.Random(1)
    chunks = ["a" * n for n in (1, 2, 3, 127, 128, 129, 300, 1000)]
    chunks += ["".join(rng.choice("etaoin") for _ in range(n)) for n in (50, 200, 129, 2000)]
    chunks += [" " + c for c in chunks] + ["x"] * 70
    t = fresh(tok)
    assert max(len(c) for c in chunks) > encode_fast.LONG_CHUNK
    assert t._chunks.encode(chunks) == reference(t, chunks)


def test_empty_chunks_have_no_ids(tok):
    t = fresh(tok)
    assert t._chunks.encode(["", "the", "", "aaaa", ""]) == reference(t, ["the", "aaaa"])


def test_tokens_with_two_spellings():
    # "abc" is both (a, bc) and (ab, c): tiktoken looks up the bytes, so both pairs have its rank
    ranks = {bytes([i]): i for i in range(256)}
    ranks.update({b"bc": 256, b"ab": 257, b"abc": 258, b"abcabc": 259, b"ca": 260})
    t = BPETokenizer.from_tiktoken_ranks(ranks, pattern=r"\S+|\s+")
    assert (257, 99) in t._pair_rank and (97, 256) in t._pair_rank
    rng = random.Random(0)
    chunks = ["".join(rng.choice("abc") for _ in range(rng.randint(1, 14))) for _ in range(3000)]
    assert t._chunks.encode(chunks) == reference(t, chunks)


def test_a_token_the_merges_do_not_reach_is_still_taken_whole():
    # merges bc, ab, cd, (ab)(cd): the bytes of "abcd" merge bc first and stop at a + bc + d,
    # so only tiktoken's whole-chunk lookup gives the token abcd (259)
    t = BPETokenizer._from_parts(r"\S+|\s+", [(98, 99), (97, 98), (99, 100), (257, 258)], {})
    assert t._chunks.whole == {"abcd": 259}
    rng = random.Random(1)
    chunks = ["".join(rng.choice("abcd") for _ in range(rng.randint(1, 6))) for _ in range(3000)]
    chunks += ["abcd", "abcdabcd", "xabcd"]
    assert t._chunks.encode(chunks) == reference(t, chunks)
    assert t._chunks.encode(["abcd", "abcdx"]) == [259, 97, 256, 100, 120]


def test_gpt2_needs_no_whole_chunk_lookup(gpt2):
    assert gpt2._chunks.whole == {}                   # every token is its bytes' merges


def test_gpt2_batched_equals_reference(gpt2):
    rng = random.Random(0)
    words = regex.findall(GPT2_SPLIT_PATTERN, training_text(1, 3000))
    chunks = words + ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789_ ") for _ in range(rng.randint(1, 20)))
                      for _ in range(3000)]
    t = fresh(gpt2)
    assert t._chunks.encode(chunks) == reference(t, chunks)


@HYP
@given(chunks=CHUNKS)
def test_gpt2_batched_equals_reference_hypothesis(gpt2, chunks):
    gpt2._chunks.clear()                                     # as a fresh tokenizer's (from_gpt2 takes ~1 s)
    assert gpt2._chunks.encode(chunks) == reference(gpt2, chunks) == gpt2._chunks.encode(chunks)


def test_lone_surrogates_on_the_fast_path(tok):
    text = "ok \ud800 x\udfff " * 300 + "the king"
    t = fresh(tok)
    assert len(t._splitter(text).findall(text)) >= encode_fast.FAST_MIN_CHUNKS
    replaced = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    assert t.encode(text) == fresh(tok).encode(replaced)
    clean = training_text(2, 300)                            # the cache is still consistent
    assert t.encode(clean) == reference(t, t._splitter(clean).findall(clean))


def test_chunk_cache_stays_bounded(tok, monkeypatch):
    monkeypatch.setattr(encode_fast, "FAST_MIN_CHUNKS", 0)
    t = fresh(tok)
    t._chunks.cache_limit = 500
    for seed in range(6):
        text = training_text(seed, 600)
        chunks = t._splitter(text).findall(text)
        assert t.encode(text) == reference(t, chunks)
        assert len(t._chunks) <= 500 + len(set(chunks))          # emptied when over
        assert t._chunks.cache.length.size <= 500 + len(chunks)  # (a first call leaves the slots of repeats unused)


def test_short_and_long_texts_agree(tok, monkeypatch):
    text = training_text(3, 2000)
    t = fresh(tok)
    assert len(t._splitter(text).findall(text)) >= encode_fast.FAST_MIN_CHUNKS
    fast = t.encode(text)                                          # the piece cache (encode_pieces.py)
    monkeypatch.setattr(bpe, "PIECES_MIN_CHARS", 10 ** 12)        # no pieces: the chunk cache
    assert fresh(tok).encode(text) == fast
    monkeypatch.setattr(encode_fast, "FAST_MIN_CHUNKS", 10 ** 9)   # everything through the plain loop
    assert fresh(tok).encode(text) == fast
    monkeypatch.setattr(encode_fast, "FAST_MIN_CHUNKS", 0)         # everything through the batch
    for s in ("", "a", " the", "😀"):
        assert fresh(tok).encode(s) == reference(tok, t._splitter(s).findall(s))


def test_special_tokens_on_the_fast_path(tok):
    body = training_text(4, 1500)
    assert len(tok._splitter(body).findall(body)) >= encode_fast.FAST_MIN_CHUNKS
    text = body + "<|endoftext|>" + body
    ids = tok.encode(text, allowed_special="all")
    assert ids == tok.encode(body) + [tok.special_tokens["<|endoftext|>"]] + tok.encode(body)
    with pytest.raises(ValueError, match="special token"):
        tok.encode(text)


def test_custom_pattern_that_skips_text_still_raises():
    t = BPETokenizer(r"[a-z]+")
    with pytest.raises(ValueError, match="matches no chunk"):
        t.encode("abc " * 100)


def test_hash_table_matches_a_dict():
    rng = np.random.default_rng(0)
    table, want = HashTable(missing=-7), {}
    for _ in range(4):                                       # several inserts: the table grows
        keys = np.unique(rng.integers(0, 1 << 40, 3000))
        keys = keys[[k not in want for k in keys.tolist()]]
        vals = rng.integers(0, 1000, keys.size)
        table.insert(keys, vals)
        want.update(zip(keys.tolist(), vals.tolist()))
    probe = np.concatenate([np.array(list(want)), rng.integers(0, 1 << 40, 5000)])
    assert table.lookup(probe).tolist() == [want.get(k, -7) for k in probe.tolist()]


# ----------------------------------------------------------------------------------------------
# the split of BMP text with the stdlib's re (patterns.bmp_pattern)

@pytest.mark.parametrize("pattern", [GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN])
def test_bmp_split_equals_regex_on_every_bmp_character(pattern):
    fast, slow = bmp_pattern(pattern), regex.compile(pattern)
    every = [chr(c) for c in range(0x10000)]
    # each character alone, after a space, an apostrophe, a letter and a digit, and doubled
    for context in ("{c}", " {c}", "'{c}", "x{c}1", "{c}{c} ", "\n{c}\n"):
        text = "\u2028".join(context.format(c=c) for c in every)
        assert fast.findall(text) == slow.findall(text), context


@settings(max_examples=300, deadline=None, derandomize=True)
@given(s=st.text(alphabet=st.characters(max_codepoint=0xFFFF)))
@example("'S 'ſ 'K 'ﬅ I'M ½ ² \x1c\x1d \u0085\u2028 ǅ")
def test_bmp_split_equals_regex_random(s):
    for pattern in (GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN):
        assert bmp_pattern(pattern).findall(s) == regex.findall(pattern, s)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(s=st.text(alphabet=st.sampled_from(list("ab Z1!'s\n\t\r\x1c\u00a0中é😀🎉\U00020000\ud83d\ude00    "))))
@example("x 😀 y  z" * 3)
@example("😀")
@example("  😀  ")
def test_split_text_around_astral_characters_equals_regex(s):
    # the BMP re split, with regex only around characters beyond U+FFFF (bpe._split_text)
    for pattern in ("gpt2", "gpt4"):
        t = BPETokenizer(pattern)
        assert t._split_text(s) == regex.findall(t.pattern, s)
        assert t._split_text(s * 5 + "ok") == regex.findall(t.pattern, s * 5 + "ok")


def test_splitter_choice():
    t = BPETokenizer("gpt4")
    assert t._splitter("plain ascii") is t._split_ascii
    assert t._splitter("Камень") is bmp_pattern(t.pattern)
    assert has_astral("a 😀") and t._splitter("a 😀") is t._split
    assert bmp_pattern(r"\w+") is None and BPETokenizer(r"\w+|\s+")._splitter("Камень").pattern == r"\w+|\s+"
    assert isinstance(bmp_pattern(GPT2_SPLIT_PATTERN), re.Pattern)

"""Tests for tinygrad_lm.tokenizer: BPE training/encoding, special tokens, files, CharTokenizer.

The fast BPE trainer (``train_fast.py``) is pinned to the public reference trainer
(``train_reference.train_bpe_reference``, the minbpe-style loop over ``get_stats``/``merge``) on
fixed texts and on random ones (hypothesis): the same merges, and tokenizers trained either way
have the same vocabulary and encode alike; each of the fast trainer's named steps
(``_PairCounts.count_pairs``/``best_pair``/``apply_merge``) is checked against the helpers too.
The reference trainer alone is checked by hand on the Wikipedia ``aaabdaaabac`` example. The
encoder is checked against a direct transcription of tiktoken's rule; the tiktoken library
itself is the oracle in test_tokenizer_tiktoken.py.
"""
import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import regex
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tinygrad_lm.tokenizer.train_fast import _PairCounts
from tinygrad_lm.tokenizer.patterns import ASCII_PATTERNS
from tinygrad_lm.tokenizer import (GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN, BPETokenizer,
                                   CharTokenizer, get_stats, load_tokenizer, merge, read_text,
                                   tokenizer_from_dict, train_bpe_fast, train_bpe_reference)

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tinyshakespeare.txt"
HYP = settings(max_examples=60, deadline=None, derandomize=True,
               suppress_health_check=[HealthCheck.function_scoped_fixture])

# text with the things that tend to break tokenizers: emoji (4-byte UTF-8 and ZWJ sequences),
# CJK, combining marks, runs of whitespace, \r\n, contractions, digits, punctuation
TRICKY = ["", " ", "\n", "\r\n", "  \r\n\r\n  x", "hello world", "Hello, World!!\n\n  ok",
          "I'm, you'RE, they'll've", "12345678 9", "😀👍🏽 👨‍👩‍👧", "中文字符 日本語の文",
          "e\u0301 n\u0303 a\u0308\u0304", "\t\t  \n\n\n   \x00\x01", "ÿ\u00a0\u2028x", "a" * 50]


def synthetic_text(n_words=6000, seed=0):
    """A seeded, corpus-free training text: English-like words plus some non-ASCII."""
    rng = random.Random(seed)
    words = ["the", "and", "to", "of", "king", "queen", "love", "thou", "art", "I'm", "don't",
             "héllo", "naïve", "日本", "😀", "1234", "3.14", "--", "!!", "\n", "\r\n", "  "]
    words += ["".join(rng.choice("etaoinshrdlucmfwypvbgk") for _ in range(rng.randint(2, 8)))
              for _ in range(300)]
    return " ".join(rng.choice(words) for _ in range(n_words))


@pytest.fixture(scope="module")
def corpus():
    if not CORPUS.exists():
        pytest.skip(f"{CORPUS} not found")
    return CORPUS.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def tok():
    t = BPETokenizer("gpt4", special_tokens=["<|endoftext|>", "<|pad|>"])
    t.train(synthetic_text(), vocab_size=400)
    return t


# ----------------------------------------------------------------------------------------------
# slow, obviously-correct references

def reference_stats(chunks):
    """Pair counts over every chunk occurrence, from scratch with ``get_stats`` (minbpe)."""
    stats = {}
    for c in chunks:
        get_stats(c, stats)
    return stats


def reference_best(stats):
    """(pair, count) of the most frequent pair, ties to the smallest (id1, id2); or None.
    (The reference trainer's pick, for checking the fast trainer's ``best_pair`` step alone.)"""
    if not stats:
        return None
    count, pair = min((-n, p) for p, n in stats.items())
    return pair, -count


def reference_encode(text, pattern, ranks):
    """tiktoken's rule, transcribed: a chunk that is a token is that token; otherwise fuse the
    leftmost adjacent pair whose concatenated bytes has the lowest rank, until none has one."""
    out = []
    for chunk in regex.findall(pattern, text):
        b = chunk.encode("utf-8")
        if b in ranks:
            out.append(ranks[b])
            continue
        parts = [bytes([x]) for x in b]
        while len(parts) > 1:
            cands = [(ranks.get(parts[i] + parts[i + 1], float("inf")), i)
                     for i in range(len(parts) - 1)]
            r, i = min(cands)
            if r == float("inf"):
                break
            parts[i:i + 2] = [parts[i] + parts[i + 1]]
        out.extend(ranks[p] for p in parts)
    return out


# ----------------------------------------------------------------------------------------------
# the pure helpers and the Wikipedia example

def test_get_stats_and_merge_worked_example():
    ids = list(b"aaabdaaabac")
    assert get_stats(ids) == {(97, 97): 4, (97, 98): 2, (98, 100): 1, (100, 97): 1,
                              (98, 97): 1, (97, 99): 1}
    assert merge(ids, (97, 97), 256) == [256, 97, 98, 100, 256, 97, 98, 97, 99]
    assert merge([97, 97, 97, 97, 97], (97, 97), 256) == [256, 256, 97]
    assert get_stats([]) == {} and get_stats([5]) == {}


def test_reference_trainer_by_hand():
    # the Wikipedia example worked by hand (train_reference.py's docstring): aa is counted 4
    # times (overlapping) -> 256; then ab=(97,98) and aa+a=(256,97) tie at 2 and the smaller
    # pair wins -> 257; then aa+ab -> 258, leaving "XdXac" as on Wikipedia with X = aaab
    assert train_bpe_reference("aaabdaaabac", 259) == {(97, 97): 256, (97, 98): 257, (256, 257): 258}
    # going on, [258 100 258 97 99] holds four pairs seen once each, so every pick is a tie won
    # by the smallest pair: (97,99) "ac" -> [258 100 258 259]; (100,258) "daaab" -> [258 260 259];
    # (258,260) -> [261 259]; (261,259) -> one token, and no pair is left: 7 merges, not 744
    assert list(train_bpe_reference("aaabdaaabac", 1000).items())[3:] == [
        ((97, 99), 259), ((100, 258), 260), ((258, 260), 261), ((261, 259), 262)]
    assert train_bpe_reference("aaabdaaabac", 256) == {}
    # no merge crosses a chunk boundary: gpt2 splits "ab ab" into "ab" and " ab", so ab:2 and
    # " a":1 give ab -> 256, then " "+ab -> 257 (the pair "b " is never counted)
    assert train_bpe_reference("ab ab", 300, pattern="gpt2") == {(97, 98): 256, (32, 256): 257}
    # a chunk that occurs f times counts f times: gpt4 cuts "ab\nba\nba" into ab \n ba \n ba,
    # so ba (the distinct chunk "ba", twice) beats ab (once)
    assert train_bpe_reference("ab\nba\nba", 257) == {(98, 97): 256}


def test_wikipedia_example_exact_ids():
    for trainer in ("fast", "reference"):
        t = BPETokenizer()
        t.train("aaabdaaabac", vocab_size=259, trainer=trainer)
        assert t.merges == {(97, 97): 256, (97, 98): 257, (256, 257): 258}
        assert [t.vocab[i] for i in (256, 257, 258)] == [b"aa", b"ab", b"aaab"]
        assert t.encode("aaabdaaabac") == [258, 100, 258, 97, 99]
        assert t.decode([258, 100, 258, 97, 99]) == "aaabdaaabac"
        assert t.vocab_size == 259


def test_train_stops_when_no_pair_is_left():
    for trainer in ("fast", "reference"):
        t = BPETokenizer()
        t.train("ab", vocab_size=1000, trainer=trainer)
        assert t.merges == {(97, 98): 256} and t.vocab_size == 257


def test_unknown_trainer():
    with pytest.raises(ValueError, match="unknown trainer 'slow'.*'fast', 'reference'"):
        BPETokenizer().train("ab", 300, trainer="slow")


@pytest.mark.parametrize("pattern", ["gpt4", "gpt2"])
@pytest.mark.parametrize("vocab_size", [256, 257, 316, 512, 1024, 2000])
def test_fast_trainer_matches_reference_at_vocab_sizes(pattern, vocab_size):
    text = synthetic_text(1500, seed=1)
    fast = train_bpe_fast(text, vocab_size, pattern)
    assert list(fast.items()) == list(train_bpe_reference(text, vocab_size, pattern).items())
    room = {"gpt4": 987, "gpt2": 990}[pattern]     # merges until every chunk is one token
    assert len(fast) == min(vocab_size - 256, room)


@st.composite
def training_texts(draw):
    """Texts where BPE has work to do and ties are common: a few short words over a small
    alphabet (ASCII, accents, emoji, CJK, digits, whitespace runs), repeated in a random order;
    also any unicode text, and the empty text."""
    alphabet = draw(st.sampled_from(["ab", "ab ", "aab c", "aé😀 ", "x\ny\r\n z", "日本語 '1",
                                     "abcdefgh", "Ünï cødé\u0301 ", "12 3.4,"]))
    if draw(st.integers(0, 4)) == 0:
        return draw(st.text(max_size=40))
    words = draw(st.lists(st.text(alphabet, min_size=1, max_size=8), min_size=1, max_size=6))
    n = draw(st.integers(1, 60))
    return "".join(draw(st.lists(st.sampled_from(words), min_size=n, max_size=n)))


PATTERNS = st.sampled_from([GPT4_SPLIT_PATTERN, GPT2_SPLIT_PATTERN])


@settings(max_examples=300, deadline=None, derandomize=True)
@given(text=training_texts(), pattern=PATTERNS, n_merges=st.integers(0, 60),
       n_special=st.integers(0, 2))
@example(text="aaabdaaabac", pattern=GPT4_SPLIT_PATTERN, n_merges=3, n_special=0)
@example(text="", pattern=GPT4_SPLIT_PATTERN, n_merges=3, n_special=1)
@example(text="abab baba", pattern=GPT2_SPLIT_PATTERN, n_merges=10, n_special=1)
def test_fast_trainer_matches_reference_random_texts(text, pattern, n_merges, n_special):
    # the fast trainer (distinct chunks, pair deltas, lazy heap) learns exactly the merges of
    # the reference loop, in the same order, tie-break and early stop included, so the two
    # tokenizers are the same: vocabulary, special ids, saved form, encodings
    specials = [f"<|s{i}|>" for i in range(n_special)]
    fast, ref = BPETokenizer(pattern, specials), BPETokenizer(pattern, specials)
    vocab_size = 256 + n_special + n_merges
    if not text:
        for t in (fast, ref):
            with pytest.raises(ValueError, match="empty"):
                t.train(text, vocab_size)
        return
    fast.train(text, vocab_size)                       # trainer="fast" is the default
    ref.train(text, vocab_size, trainer="reference")
    assert list(fast.merges.items()) == list(ref.merges.items())
    assert fast.vocab == ref.vocab and fast.to_dict() == ref.to_dict()
    assert list(fast.special_tokens.values()) == [256 + len(fast.merges) + i for i in range(n_special)]
    assert fast.encode(text) == ref.encode(text) and ref.decode(ref.encode(text)) == text
    assert fast.encode("abc the 日本 😀 1234") == ref.encode("abc the 日本 😀 1234")


@st.composite
def run_texts(draw):
    """Texts made of runs: one byte (or one multi-byte character) repeated, and a short unit
    such as "ab" or "aab" repeated, 1 to 40 times, joined with or without spaces. A merge in a
    run changes the pairs next to each merge site, and the sites chain ("aaaa" on (a, a) is
    "X X", "abab" on (a, b) is "X X"), which is where the fast trainer's pair updates can go
    wrong."""
    unit = st.sampled_from(["a", "b", "ab", "ba", "aab", "abb", "é", "😀", "aé", " ", "1"])
    runs = draw(st.lists(st.tuples(unit, st.integers(1, 40)), min_size=1, max_size=6))
    sep = draw(st.sampled_from(["", " ", "\n"]))
    return sep.join(u * n for u, n in runs)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(text=run_texts(), pattern=PATTERNS, n_merges=st.integers(1, 40))
@example(text="aaaa", pattern=GPT4_SPLIT_PATTERN, n_merges=3)
@example(text="aaaaa aaa aaaaaaa", pattern=GPT4_SPLIT_PATTERN, n_merges=6)
@example(text="abababab abab aba", pattern=GPT4_SPLIT_PATTERN, n_merges=6)
@example(text="a" * 40 + " " + "ab" * 20, pattern=GPT2_SPLIT_PATTERN, n_merges=12)
def test_fast_trainer_matches_reference_on_runs(text, pattern, n_merges):
    # long runs of one byte and repeated pairs: the same merges as the reference, in order
    fast = train_bpe_fast(text, 256 + n_merges, pattern)
    assert list(fast.items()) == list(train_bpe_reference(text, 256 + n_merges, pattern).items())


@settings(max_examples=150, deadline=None, derandomize=True)
@given(text=training_texts(), pattern=PATTERNS, n_merges=st.integers(1, 30))
@example(text="aaabdaaabac", pattern=GPT4_SPLIT_PATTERN, n_merges=4)
def test_pair_counts_steps_match_get_stats_and_merge(text, pattern, n_merges):
    # each named step of the fast trainer against the helpers: after count_pairs and after every
    # apply_merge the live counts are get_stats over all chunk occurrences (not the distinct
    # chunks), the chunks are merge()'s output, and best_pair is the reference's pick (ties to
    # the smallest pair)
    chunks = regex.findall(pattern, text)
    ref_chunks = [list(c.encode("utf-8")) for c in chunks]
    pairs = _PairCounts.count_pairs(Counter(chunks), n_ids=256 + n_merges)
    for idx in range(256, 256 + n_merges):
        stats = reference_stats(ref_chunks)
        assert pairs.pair_counts() == stats
        best = pairs.best_pair()
        assert best == reference_best(stats)
        if best is None:
            break
        pairs.apply_merge(best[0], idx)
        ref_chunks = [merge(c, best[0], idx) for c in ref_chunks]
        expected = {c: ids for c, ids in zip(chunks, ref_chunks)}
        assert dict(zip(Counter(chunks), pairs.words)) == expected


def test_pair_counts_ids_must_fit_n_ids():
    # the pair keys are a * n_ids + b: an id at or above n_ids would alias another pair
    with pytest.raises(ValueError, match="n_ids=255 is below 256"):
        _PairCounts.count_pairs({"ab": 1}, n_ids=255)
    pairs = _PairCounts.count_pairs({"ab": 1}, n_ids=257)
    with pytest.raises(ValueError, match="new id 257 does not fit n_ids=257"):
        pairs.apply_merge((97, 98), 257)
    pairs.apply_merge((97, 98), 256)
    assert pairs.words == [[256]] and pairs.pair_counts() == {}


def test_pair_counts_forget():
    # the guard's path (a pair whose bytes are already a token): forget drops its count, best_pair
    # never returns it, and merges that eat its occurrences leave it out of the counts
    pairs = _PairCounts.count_pairs({"abab": 1}, n_ids=260)
    pairs.forget((97, 98))
    assert pairs.best_pair() == ((98, 97), 1)
    pairs.apply_merge((98, 97), 256)                   # "a b a b" -> "a 256 b": one (a, b) eaten
    assert pairs.words == [[97, 256, 98]]
    assert pairs.pair_counts() == {(97, 256): 1, (256, 98): 1}
    assert pairs.best_pair() == ((97, 256), 1)


def test_fast_trainer_matches_reference_on_corpus(corpus):
    text = corpus[:30_000]
    fast, ref = BPETokenizer("gpt4"), BPETokenizer("gpt4")
    fast.train(text, vocab_size=512)
    ref.train(text, vocab_size=512, trainer="reference")
    assert list(fast.merges.items()) == list(ref.merges.items()) and len(fast.merges) == 256
    assert fast.encode(corpus[30_000:40_000]) == ref.encode(corpus[30_000:40_000])


def test_training_is_deterministic(corpus):
    text = corpus[:200_000]
    a, b = BPETokenizer(), BPETokenizer()
    a.train(text, 1024)
    b.train(text, 1024)
    assert list(a.merges.items()) == list(b.merges.items())
    assert len(set(a.vocab)) == len(a.vocab)           # every token is distinct bytes
    a.train(text[:50_000], 300)                        # retraining replaces the merges
    assert len(a.merges) == 44


def test_verbose_progress(capsys):
    t = BPETokenizer()
    t.train(synthetic_text(2000), vocab_size=306, verbose=True)
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.strip().startswith("merge")]
    assert 5 <= len(lines) <= 12 and lines[-1].split()[1] == "50/50"
    t.train("aaabdaaabac", vocab_size=259, verbose=True, trainer="reference")   # every merge
    assert capsys.readouterr().out.splitlines() == [
        "  merge 1/3: (97, 97) -> 256 b'aa' x4", "  merge 2/3: (97, 98) -> 257 b'ab' x2",
        "  merge 3/3: (256, 257) -> 258 b'aaab' x2"]


def test_patterns_split_as_documented():
    assert BPETokenizer("gpt4").pattern == GPT4_SPLIT_PATTERN
    assert BPETokenizer("gpt2").pattern == GPT2_SPLIT_PATTERN
    s = "Hello world's 12345!!\n\n  ok"
    assert regex.findall(GPT4_SPLIT_PATTERN, s) == \
        ["Hello", " world", "'s", " ", "123", "45", "!!\n\n", " ", " ok"]
    assert regex.findall(GPT2_SPLIT_PATTERN, s) == \
        ["Hello", " world", "'s", " 12345", "!!", "\n\n ", " ok"]


@settings(max_examples=300, deadline=None, derandomize=True)
@given(s=st.one_of(st.text(alphabet=st.characters(max_codepoint=127)),
                   st.text(alphabet=st.sampled_from(list("aZ9 '\r\n\t\x0b\x0c\x1c\x1f.sSlLtT")))))
def test_ascii_fast_split_equals_regex_split(s):
    import re
    for pattern in (GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN):
        assert re.findall(ASCII_PATTERNS[pattern], s, re.ASCII) == regex.findall(pattern, s)


def test_ascii_fast_split_exhaustive_short_strings():
    import itertools
    import re
    alphabet = "a9 '\r\n\x0b\x1c.s"
    fast = {p: re.compile(ASCII_PATTERNS[p], re.ASCII) for p in ASCII_PATTERNS}
    for n in range(1, 5):
        for t in itertools.product(alphabet, repeat=n):
            s = "".join(t)
            for p, f in fast.items():
                assert f.findall(s) == regex.findall(p, s), (p, s)


def test_custom_pattern():
    t = BPETokenizer(r"\w+|\s+|[^\w\s]+")
    t.train(synthetic_text(500), 300)
    s = "the king, the queen"
    assert t.decode(t.encode(s)) == s and t.pattern == r"\w+|\s+|[^\w\s]+"
    with pytest.raises(ValueError, match="invalid split pattern"):
        BPETokenizer("(unclosed")


# ----------------------------------------------------------------------------------------------
# encoding and decoding

@pytest.mark.parametrize("s", TRICKY)
def test_encode_matches_reference(tok, s):
    ranks = tok.to_tiktoken_ranks()
    assert tok.encode(s) == reference_encode(s, tok.pattern, ranks)
    assert tok.decode(tok.encode(s)) == s


@HYP
@given(s=st.text())
@example("")
@example("😀 中文 e\u0301\r\n\r\n   \t x")
def test_roundtrip_any_unicode(tok, s):
    ids = tok.encode(s, allowed_special="none")
    assert tok.decode(ids) == s
    assert tok.decode_bytes(ids) == s.encode("utf-8")
    assert all(0 <= i < tok.vocab_size for i in ids)


@HYP
@given(s=st.text(alphabet=st.sampled_from(list("the kingqu'sI\n\r\t 0123.,!éñ中😀\u0301")),
                 max_size=80))
def test_encode_matches_reference_hypothesis(tok, s):
    assert tok.encode(s) == reference_encode(s, tok.pattern, tok.to_tiktoken_ranks())


def test_roundtrip_corpus_and_compression(corpus):
    t = BPETokenizer()
    t.train(corpus[:300_000], 1024)
    ids = t.encode(corpus)
    assert t.decode(ids) == corpus
    assert len(ids) < len(corpus.encode()) / 2.5       # BPE actually compresses
    assert t.encode(corpus[:20_000]) == reference_encode(corpus[:20_000], t.pattern,
                                                         t.to_tiktoken_ranks())


def test_decode_invalid_utf8_uses_replacement(tok):
    euro = list("€".encode())                          # 3 bytes
    assert tok.decode(euro[:2]) == "\ufffd"
    assert tok.decode_bytes(euro[:2]) == b"\xe2\x82"
    assert tok.decode([0xFF, 104]) == "\ufffdh"
    assert tok.decode(np.array(tok.encode("hi there"))) == "hi there"
    for bad in ([tok.vocab_size], [-1]):
        with pytest.raises(ValueError, match="unknown token id"):
            tok.decode(bad)


# ----------------------------------------------------------------------------------------------
# special tokens

def test_special_tokens(tok):
    eot, pad = tok.special_tokens["<|endoftext|>"], tok.special_tokens["<|pad|>"]
    assert (eot, pad) == (256 + len(tok.merges), 257 + len(tok.merges)) == (398, 399)
    assert tok.vocab_size == 400
    s = "the king<|endoftext|>queen<|pad|>"
    with pytest.raises(ValueError, match=r"'<\|endoftext\|>'.*allowed_special"):
        tok.encode(s)
    ids = tok.encode(s, allowed_special="all")
    assert ids.count(eot) == 1 and ids.count(pad) == 1 and ids[-1] == pad
    assert tok.decode(ids) == s
    assert tok.encode(s, allowed_special="all") == \
        tok.encode("the king") + [eot] + tok.encode("queen") + [pad]
    # a set allows those; any other special in the text still raises (tiktoken's default)
    with pytest.raises(ValueError, match=r"<\|pad\|>"):
        tok.encode(s, allowed_special={"<|endoftext|>"})
    assert tok.encode("a<|pad|>", allowed_special={"<|pad|>"}) == tok.encode("a") + [pad]
    # "none" = encode_ordinary: special strings are plain text
    plain = tok.encode(s, allowed_special="none")
    assert plain == tok.encode_ordinary(s) and eot not in plain and pad not in plain
    assert tok.decode(plain) == s
    with pytest.raises(ValueError, match="not special tokens"):
        tok.encode("x", allowed_special={"<|nope|>"})
    with pytest.raises(ValueError, match="allowed_special must be"):
        tok.encode("x", allowed_special="some")


def test_overlapping_specials_longest_wins():
    t = BPETokenizer(special_tokens=["<|a|>", "<|a|>b"])
    t.train("hello there", 258 + 2)
    a, ab = t.special_tokens["<|a|>"], t.special_tokens["<|a|>b"]
    assert t.encode("<|a|>b<|a|>", allowed_special="all") == [ab, a]


def test_special_token_validation():
    with pytest.raises(ValueError, match="distinct"):
        BPETokenizer(special_tokens=["<|x|>", "<|x|>"])
    with pytest.raises(ValueError, match="non-empty"):
        BPETokenizer(special_tokens=[""])


def test_vocab_size_and_empty_text_errors():
    t = BPETokenizer(special_tokens=["<|endoftext|>"])
    with pytest.raises(ValueError, match="minimum is 257"):
        t.train("hello", 256)
    with pytest.raises(ValueError, match="minimum is 256"):
        BPETokenizer().train("hello", 100)
    with pytest.raises(ValueError, match="empty"):
        t.train("", 300)
    with pytest.raises(ValueError, match="integer"):
        t.train("hello", 300.0)
    t.train("hello", np.int64(258))        # NumPy integers are fine
    t.train("hello", 257)                  # exactly the minimum: no merges, one special
    assert t.merges == {} and t.special_tokens == {"<|endoftext|>": 256}


# ----------------------------------------------------------------------------------------------
# saving and loading

def test_save_load_roundtrip(tok, tmp_path):
    p = tmp_path / "tok.bpe"
    tok.save(p)
    text = p.read_text(encoding="utf-8")
    assert text.startswith("tinygrad_lm bpe v1\npattern ")
    assert '\n32 116  # " t"\n' in text                 # merge lines carry a readable comment
    t2 = BPETokenizer.load(p)
    assert t2.merges == tok.merges and t2.special_tokens == tok.special_tokens
    assert t2.pattern == tok.pattern and t2.vocab_size == tok.vocab_size
    for s in TRICKY + ["x<|endoftext|>y"]:
        assert t2.encode(s, allowed_special="all") == tok.encode(s, allowed_special="all")


def test_dict_roundtrip(tok):
    d = json.loads(json.dumps(tok.to_dict()))
    assert d["type"] == "bpe"
    t2 = tokenizer_from_dict(d)
    assert isinstance(t2, BPETokenizer) and t2.merges == tok.merges
    assert t2.special_tokens == tok.special_tokens
    with pytest.raises(ValueError, match="unknown tokenizer type"):
        tokenizer_from_dict({"type": "wordpiece"})


def test_load_wrong_format_names_path(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("minbpe v1\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"notes\.txt.*line 1"):
        BPETokenizer.load(p)
    p.write_text("tinygrad_lm bpe v1\npattern \"x\"\nspecials 0\nmerges 2\n97 97\n", "utf-8")
    with pytest.raises(ValueError, match=r"notes\.txt.*line 6"):
        BPETokenizer.load(p)
    p.write_text("tinygrad_lm bpe v1\npattern \"x\"\nspecials 0\nmerges 1\n97 300\n", "utf-8")
    with pytest.raises(ValueError, match=r"notes\.txt.*not yet defined"):
        BPETokenizer.load(p)


def test_tiktoken_file_roundtrip(tok, tmp_path):
    p = tmp_path / "tok.tiktoken"
    tok.save_tiktoken(p)
    lines = p.read_text().splitlines()
    assert len(lines) == 256 + len(tok.merges)
    assert lines[97] == "YQ== 97" and lines[256].split()[1] == "256"
    t2 = BPETokenizer.load_tiktoken(p, pattern=tok.pattern, special_tokens=tok.special_tokens)
    assert t2.merges == tok.merges and t2.to_tiktoken_ranks() == tok.to_tiktoken_ranks()
    for s in TRICKY:
        assert t2.encode(s) == tok.encode(s)
    p.write_text("YQ== 0\nnot base64!! 1\n")
    with pytest.raises(ValueError, match=r"tok\.tiktoken: line 2"):
        BPETokenizer.load_tiktoken(p)


def test_from_tiktoken_ranks_validation():
    base = {bytes([i]): i for i in range(256)}
    swapped = BPETokenizer.from_tiktoken_ranks({**base, b"a": 1, b"\x01": 97, b"aa": 256})  # GPT-2 reorders bytes
    assert swapped.encode("a\x01aa") == [1, 97, 256] and swapped.decode([1, 97, 256]) == "a\x01aa"
    with pytest.raises(ValueError, match="256 single bytes"):
        BPETokenizer.from_tiktoken_ranks({**base, b"ab": 97, b"a": 256})
    with pytest.raises(ValueError, match="0..n-1"):
        BPETokenizer.from_tiktoken_ranks({**base, b"ab": 300})
    with pytest.raises(ValueError, match="two lower-ranked"):
        BPETokenizer.from_tiktoken_ranks({**base, b"abc": 256})


# ----------------------------------------------------------------------------------------------
# files: encode_file and UTF-8 errors

@pytest.mark.parametrize("pattern", ["gpt4", "gpt2"])
def test_encode_file_matches_encode(corpus, tmp_path, pattern):
    t = BPETokenizer(pattern)
    t.train(corpus[:100_000], 600)
    text = corpus[:150_000]
    src = tmp_path / "in.txt"
    src.write_text(text, encoding="utf-8")
    n, dtype = t.encode_file(src, tmp_path / "out.bin", piece_bytes=4096)
    ids = np.fromfile(tmp_path / "out.bin", dtype=dtype)
    assert dtype == np.uint16 and n == len(ids)
    assert ids.tolist() == t.encode(text)


@HYP
@given(s=st.lists(st.sampled_from(list("ab \n\r\t.'s1😀中<|") + ["<|endoftext|>", "<|pad|>"]),
                  max_size=100).map("".join),
       piece=st.integers(1, 16))
def test_encode_file_any_cut(tok, tmp_path, s, piece):
    # tiny pieces: cuts land everywhere, including inside multi-byte characters and specials
    src = tmp_path / "in.txt"
    src.write_bytes(s.encode("utf-8"))
    n, dtype = tok.encode_file(src, tmp_path / "o.bin", piece_bytes=piece, allowed_special="all")
    assert np.fromfile(tmp_path / "o.bin", dtype=dtype).tolist() == \
        tok.encode(s, allowed_special="all")


@HYP
@given(s=st.text(alphabet=st.sampled_from(list("ab  \n\r\t.,'s12")), max_size=60))
def test_safe_cut_property(tok, s):
    for k in range(len(s) + 1):
        i = tok._safe_cut(s[:k])
        if i:
            assert tok.encode(s[:i]) + tok.encode(s[i:]) == tok.encode(s)


def test_encode_file_uint32_for_large_vocab(tmp_path):
    ranks = {bytes([i]): i for i in range(256)}
    t = BPETokenizer.from_tiktoken_ranks(ranks, special_tokens={"<|big|>": 70_000})
    assert t.vocab_size == 70_001
    src = tmp_path / "in.txt"
    src.write_text("hi<|big|>", encoding="utf-8")
    n, dtype = t.encode_file(src, tmp_path / "o.bin", allowed_special="all")
    assert dtype == np.uint32 and np.fromfile(tmp_path / "o.bin", np.uint32).tolist() == \
        [104, 105, 70_000]


def test_not_utf8_errors_name_path_and_offset(tok, tmp_path):
    src = tmp_path / "latin1.txt"
    src.write_bytes(b"hello world " * 1000 + b"caf\xe9 au lait")   # latin-1 e-acute
    offset = 12 * 1000 + 3
    for call in (lambda: read_text(src),
                 lambda: tok.encode_file(src, tmp_path / "o.bin", piece_bytes=100),
                 lambda: CharTokenizer.from_file(src)):
        with pytest.raises(ValueError) as e:
            call()
        msg = str(e.value)
        assert str(src) in msg and f"byte offset {offset}" in msg and "0xe9" in msg
    src.write_bytes(b"ok \xe2\x82")                         # truncated character at the end
    with pytest.raises(ValueError, match="byte offset 3"):
        tok.encode_file(src, tmp_path / "o.bin", piece_bytes=2)


# ----------------------------------------------------------------------------------------------
# CharTokenizer

def test_char_tokenizer(tmp_path):
    t = CharTokenizer("hello world")
    assert t.chars == " dehlorw" and t.vocab_size == 8
    assert t.encode("hello") == [3, 2, 4, 4, 5] and t.decode([3, 2, 4, 4, 5]) == "hello"
    with pytest.raises(ValueError, match=r"'z'.*not in the training text"):
        t.encode("hez")
    with pytest.raises(ValueError, match="unknown token id"):
        t.decode([8])
    with pytest.raises(ValueError, match="empty"):
        CharTokenizer("")
    p = tmp_path / "c.json"
    t.save(p)
    assert CharTokenizer.load(p).chars == t.chars
    t2 = tokenizer_from_dict(json.loads(json.dumps(t.to_dict())))
    assert isinstance(t2, CharTokenizer) and t2.chars == t.chars
    p.write_text("{}", encoding="utf-8")
    with pytest.raises(ValueError, match=r"c\.json"):
        CharTokenizer.load(p)


@HYP
@given(s=st.text(min_size=1))
def test_char_roundtrip_and_file(tmp_path, s):
    t = CharTokenizer(s)
    assert t.decode(t.encode(s)) == s
    src = tmp_path / "in.txt"
    src.write_bytes(s.encode("utf-8"))
    n, dtype = t.encode_file(src, tmp_path / "o.bin", piece_bytes=3)
    assert dtype == np.uint16 and np.fromfile(tmp_path / "o.bin", dtype).tolist() == t.encode(s)


def test_load_tokenizer_sniffs_the_kind(tok, tmp_path):
    tok.save(tmp_path / "b.bpe")
    CharTokenizer("abc").save(tmp_path / "c.json")
    assert load_tokenizer(tmp_path / "b.bpe").merges == tok.merges
    assert load_tokenizer(tmp_path / "c.json").chars == "abc"
    tok.save_tiktoken(tmp_path / "t.tiktoken")
    with pytest.raises(ValueError, match=r"t\.tiktoken.*load_tiktoken"):
        load_tokenizer(tmp_path / "t.tiktoken")


@pytest.mark.parametrize("name", ["base", "bpe", "char", "patterns", "tiktoken_io", "train_reference",
                                  "train_fast", "__init__"])
def test_docstring_examples(name):
    import doctest
    import importlib
    mod = importlib.import_module("tinygrad_lm.tokenizer" + ("" if name == "__init__" else "." + name))
    result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and (result.attempted > 0 or name == "__init__")

"""The piece cache of long texts (tokenizer/encode_pieces.py) pinned to the regex and to the per-chunk loop.

Two claims: (1) under the GPT-2 and GPT-4 patterns, ``regex``'s chunks of a text are the chunks
of its pieces (cut at each space before a non-whitespace character) one after the other: checked
against ``regex.findall`` itself on random texts rich in whitespace of every kind, apostrophes,
digits, punctuation and characters beyond U+FFFF; (2) ``PieceEncoder.encode`` gives the ids of
``BPETokenizer._encode_chunk`` chunk by chunk, with an empty cache, a warm one and one filled by
other texts, and leaves its cache as it was when interrupted. tiktoken pins the whole encode in
test_tokenizer_tiktoken.py.
"""
import random
from pathlib import Path

import pytest
import regex
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tinygrad_lm.tokenizer import BPETokenizer, GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN, bpe
from tinygrad_lm.tokenizer.encode_pieces import cut_at_spaces

SENTINELS = "".join(map(chr, range(8))) + "\ufffe\uffff"   # every mark patterns.free_mark may pick

GPT2_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "gpt2"
HYP = settings(max_examples=150, deadline=None, derandomize=True,
               suppress_health_check=[HealthCheck.function_scoped_fixture])
# whitespace of every kind (\x1c-\x1f are str.isspace but not regex's \s), contractions, digits,
# punctuation, letters of three scripts, a combining mark, characters beyond U+FFFF
ALPHABET = list("ab Z1!'s\n\t\r\x0b\x0c\x1c\x1f\x85\u00a0\u2028\u3000中é\u0301😀\U00020000.,-_") + [" "] * 6
TEXTS = st.text(alphabet=st.sampled_from(ALPHABET), max_size=80)


def pieces(text):
    """The pieces themselves: the first part, then each later part with its space back."""
    parts = cut_at_spaces(text)[0]
    return parts[:1] + [" " + p for p in parts[1:]]


def is_whitespace(c):
    return c.isspace() or regex.match(r"\s", c) is not None


@settings(max_examples=300, deadline=None, derandomize=True)
@given(text=TEXTS)
@example("  a b\n c  ")
@example(" a")
@example("a ")
def test_cut_at_spaces_cuts_at_each_space_before_a_non_space(text):
    parts, cuts = cut_at_spaces(text)
    assert " ".join(parts) == text
    want = [i for i in range(len(text) - 1) if text[i] == " " and not is_whitespace(text[i + 1])]
    ends = [sum(len(p) + 1 for p in parts[:k + 1]) - 1 for k in range(len(parts) - 1)]
    assert ends == want == cuts.tolist()
    assert all(p and not is_whitespace(p[0]) for p in parts[1:])


def test_cut_at_spaces_without_a_free_sentinel():
    text = "a b" + SENTINELS + " c  d\n e"
    assert cut_at_spaces(text)[0] == ["a", "b" + SENTINELS, "c ", "d\n", "e"]


@pytest.mark.parametrize("marks", ["\x00\x01\x02\x03", SENTINELS[:8]])
def test_cut_at_spaces_on_ascii_text_holding_marks(marks):
    """ASCII text is cut as bytes: its mark must be ASCII too (a text holding \x00-\x03 once got
    U+FFFE, which overflowed the byte array); with none free, the parts are sliced."""
    text = "a b" + marks + " c  d\n e"
    assert cut_at_spaces(text)[0] == ["a", "b" + marks, "c ", "d\n", "e"]


@settings(max_examples=400, deadline=None, derandomize=True)
@given(text=TEXTS)
@example("a\n\n b")
@example("x  \t y")
@example("it's 's x")
@example("a.\r\n b")
def test_the_chunks_of_a_text_are_the_chunks_of_its_pieces(text):
    for pattern in (GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN):
        split = regex.compile(pattern)
        assert [c for p in pieces(text) for c in split.findall(p)] == split.findall(text)


@pytest.fixture(scope="module", params=["gpt4", "gpt2"])
def tok(request):
    rng = random.Random(0)
    words = ["the", "king", "I'm", "héllo", "中文", "😀", "1234", "aaaa", "--", "\n", "\r\n", "  ", "\t"]
    words += ["".join(rng.choice("etaoinshrdlu") for _ in range(rng.randint(2, 8))) for _ in range(300)]
    t = BPETokenizer(request.param)
    t.train(" ".join(rng.choice(words) for _ in range(6000)), vocab_size=500)
    return t


def reference(tok, text):
    """The textbook loop, chunk by chunk, over regex's chunks."""
    return [i for c in regex.findall(tok.pattern, text) for i in tok._encode_chunk(c.encode("utf-8"))]


def fresh(tok):
    return BPETokenizer.from_dict(tok.to_dict())


@HYP
@given(text=st.text(alphabet=st.sampled_from(ALPHABET), max_size=300),
       other=st.text(alphabet=st.sampled_from(ALPHABET), max_size=300))
@example(text="a b c d e", other="")
@example(text=" lead and trail \n ", other="and trail")
def test_pieces_encode_equals_reference(tok, text, other):
    t = fresh(tok)
    want = reference(t, text)
    assert t._pieces.encode(text) == want                    # empty caches
    assert t._pieces.encode(text) == want                    # warm
    assert t._pieces.encode(other + " x " + text) == reference(t, other + " x " + text)   # partly warm
    assert t._pieces.encode(text) == want


def test_long_texts_take_the_pieces(tok, monkeypatch):
    text = " ".join(["the king's  men\n  went", "1234 aaaa", "中文 😀"] * 400)
    assert len(text) >= bpe.PIECES_MIN_CHARS
    t = fresh(tok)
    assert t.encode_ordinary(text) == reference(t, text)
    assert len(t._pieces) > 0
    monkeypatch.setattr(bpe, "PIECES_MIN_CHARS", 10 ** 12)  # the chunk path: the same ids
    assert fresh(tok).encode_ordinary(text) == t.encode_ordinary(text)


def test_long_ascii_text_holding_control_characters(tok):
    """The cuts' mark is a character the text lacks; ASCII text holding \x00-\x03 once made the
    piece cut fail (a non-ASCII mark in its byte array), under both patterns and both splits."""
    text = " ".join(["a b\x00\x01\x02\x03 c  d\n e", "it's  42"] * 400)
    assert len(text) >= max(bpe.PIECES_MIN_CHARS, bpe.SPLIT_MIN_CHARS)
    for t in (fresh(tok), BPETokenizer("gpt2")):
        assert t.encode_ordinary(text) == reference(t, text)


def test_custom_patterns_never_take_the_pieces():
    t = BPETokenizer(r"\S+ ?|\s+")          # joins a space to what comes before: the cuts would be wrong
    text = "ab cd " * 2000
    assert t.encode_ordinary(text) == reference(t, text)
    assert t._piece_encoder is None


def test_gpt2_pieces_equal_reference():
    if not (GPT2_DIR / "encoder.json").is_file():
        pytest.skip(f"GPT-2's vocabulary not found in {GPT2_DIR}")
    t = BPETokenizer.from_gpt2(GPT2_DIR / "encoder.json", GPT2_DIR / "vocab.bpe")
    rng = random.Random(2)
    text = "".join(rng.choice(["The ", "king's ", " men", "\n\n", "  x", "1999 ", "naïve ", "😀 ", "ok.\n "])
                   for _ in range(3000))
    assert t._pieces.encode(text) == reference(t, text) == t._pieces.encode(text)


def test_piece_cache_stays_bounded(tok):
    t = fresh(tok)
    t._pieces.cache_limit = 300
    rng = random.Random(3)
    for _ in range(5):
        text = " ".join("".join(rng.choice("abcdefgh") for _ in range(5)) for _ in range(400))
        assert t._pieces.encode(text) == reference(t, text)
        assert len(t._pieces) <= 300 + 400                   # emptied first when over the limit


def test_an_interrupted_encode_leaves_the_cache_as_it_was(tok, monkeypatch):
    t = fresh(tok)
    first = "the king went to the sea " * 20
    assert t._pieces.encode(first) == reference(t, first)
    before = dict(t._pieces.cache.slot_of)
    calls = []

    def broken_split(text):
        calls.append(text)
        raise KeyboardInterrupt

    monkeypatch.setattr(t._pieces, "split", broken_split)
    with pytest.raises(KeyboardInterrupt):
        t._pieces.encode("new words here and there " * 10)
    assert calls and t._pieces.cache.slot_of == before       # no piece kept without its ids
    monkeypatch.undo()
    text = "new words here and there " * 10 + first
    assert t._pieces.encode(text) == reference(t, text)

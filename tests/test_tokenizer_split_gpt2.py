"""GPT-2's split, vectorized (tokenizer/split_gpt2.py), pinned to ``regex.findall`` of the pattern.

``split_gpt2(text)`` must give ``regex``'s chunks for every text without characters beyond
U+FFFF (and None for the others): checked on random texts built from the characters the
pattern's rules turn on (apostrophes before each contraction's letters, spaces beside every
other kind of whitespace, letters and numbers of several scripts, punctuation, control
characters, the marks it inserts), on Tiny Shakespeare when present, and through
``BPETokenizer._split_text``, which hands it long texts and long stretches around emoji.
"""
import doctest
import random
from pathlib import Path

import numpy as np
import regex
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tinygrad_lm.tokenizer import BPETokenizer, GPT2_SPLIT_PATTERN, bpe, split_gpt2 as module
from tinygrad_lm.tokenizer.split_gpt2 import LETTER, NUMBER, OTHER, SPACE, classes, split_gpt2

SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"
PATTERN = regex.compile(GPT2_SPLIT_PATTERN)
# what the rules turn on: contractions' letters after apostrophes, spaces beside \n \t \r \x0b
# \x0c, whitespace beyond ASCII (\x85, no-break space, line separator, ideographic space),
# \x1c-\x1f (str.isspace, not regex's \s), letters and numbers beyond ASCII (Arabic-Indic
# three, Roman twelve), look-alike apostrophes, a lone surrogate, the marks split_gpt2 inserts
ASCII = list("sdmtlvreSx09'.!-_\n\t\r\x0b\x0c\x1c\x1f\x00\x7f") + [" "] * 4 + ["'"] * 3
WIDER = ASCII + list("\x85\u00a0\u2028\u3000é中ж\u0663\u216bʼ’\ud800\x01\x02\x03\x04\x05\x06\x07")


def test_the_docstrings_examples():
    assert doctest.testmod(module).failed == 0


@settings(max_examples=600, deadline=None, derandomize=True)
@given(text=st.text(alphabet=st.sampled_from(ASCII), max_size=40))
@example("'s")
@example("x 's  're\n'll\t've")
@example("it's'sam''d.'t")
@example("  \n\n  a")
@example("a  ")
def test_ascii_texts_split_as_the_regex_splits_them(text):
    assert split_gpt2(text) == PATTERN.findall(text)


@settings(max_examples=600, deadline=None, derandomize=True)
@given(text=st.text(alphabet=st.sampled_from(WIDER), max_size=40))
@example("\u3000'm \u00a0x\u2028 y")
@example("a'k\u016c a'l\u016c")    # 'k' * 256 + U+016C == 'l' * 256 + 'l': a pair code would take them for 'll
def test_texts_beyond_ascii_split_as_the_regex_splits_them(text):
    assert split_gpt2(text) == PATTERN.findall(text)


def test_long_random_texts_and_one_holding_every_mark():
    rng = random.Random(0)
    for alphabet in (ASCII, WIDER):
        text = "".join(rng.choice(alphabet) for _ in range(20_000))
        assert split_gpt2(text) == PATTERN.findall(text)
    every_mark = "a \x00 b\x01\x02c's \x03\x04\x05\x06\x07 d" * 3    # no free mark: the chunks are sliced
    assert split_gpt2(every_mark) == PATTERN.findall(every_mark)


def test_a_character_beyond_the_bmp_is_left_to_the_regex():
    assert split_gpt2("ab 😀 cd") is None
    assert split_gpt2("") == [] and split_gpt2("x") == ["x"]


def test_the_class_table_is_the_regex_packages():
    table = classes(0x10000)
    rng = np.random.default_rng(0)
    for c in [*range(0x3100), *rng.integers(0x3100, 0x10000, 4000).tolist()]:
        ch = chr(c)
        want = (LETTER if regex.match(r"\p{L}", ch) else NUMBER if regex.match(r"\p{N}", ch)
                else SPACE if regex.match(r"\s", ch) else OTHER)
        assert table[c] == want, hex(c)
    assert np.array_equal(classes(128), table[:128])


def test_tiny_shakespeare_splits_as_the_regex_splits_it():
    if not SHAKESPEARE.is_file():
        import pytest
        pytest.skip(f"{SHAKESPEARE} not found")
    text = SHAKESPEARE.read_text(encoding="utf-8")
    assert split_gpt2(text) == PATTERN.findall(text)


def test_the_tokenizer_hands_it_long_texts_and_long_stretches_around_emoji(monkeypatch):
    tok = BPETokenizer("gpt2")
    rng = random.Random(1)
    words = ["the", "it's", "don't", "  ", "\n", "\n\n  ", "42", "x_y", "’", "Ж", "中文"]
    text = " ".join(rng.choice(words) for _ in range(4000))
    with_emoji = text[:9000] + " 😀 " + text[9000:]
    calls = []
    monkeypatch.setattr(bpe, "split_gpt2", lambda t: calls.append(len(t)) or module.split_gpt2(t))
    assert tok._split_text(text) == PATTERN.findall(text)
    assert calls == [len(text)]
    calls.clear()
    assert tok._split_text(with_emoji) == PATTERN.findall(with_emoji)
    assert calls[0] == len(with_emoji) and len(calls) == 3    # the whole (None), then the stretches on both sides
    assert all(n >= bpe.SPLIT_MIN_CHARS for n in calls)
    short = text[:bpe.SPLIT_MIN_CHARS - 1]
    calls.clear()
    assert tok._split_text(short) == PATTERN.findall(short) and calls == []    # short: the regex
    assert BPETokenizer("gpt4")._split_text(text) == regex.findall(BPETokenizer("gpt4").pattern, text)

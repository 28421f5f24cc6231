"""tiktoken as the oracle: an Encoding built from our exported ranks must give our ids exactly.

Skipped when tiktoken is not installed. No network is needed: the Encoding is built from
``tok.to_tiktoken_ranks()`` (or our ``.tiktoken`` file) and ``tok.pattern``.
"""
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tinygrad_lm.tokenizer import BPETokenizer, encode_fast, load_tiktoken_ranks

from oracles import oracle  # tests/oracles.py

pytestmark = pytest.mark.oracle
tiktoken = oracle("tiktoken")

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tinyshakespeare.txt"
HYP = settings(max_examples=200, deadline=None, derandomize=True,
               suppress_health_check=[HealthCheck.function_scoped_fixture])

# tiktoken_ext/openai_public.py (tiktoken 0.14) spells the patterns with extra possessive
# quantifiers and a final `\s++$|\s+(?!\S)|\s`; they must split text the same way as ours
TIKTOKEN_R50K_PAT = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
TIKTOKEN_CL100K_PAT = (r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+"""
                       r"""| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""")
OFFICIAL = {"gpt2": TIKTOKEN_R50K_PAT, "gpt4": TIKTOKEN_CL100K_PAT}

WORDY = st.text(alphabet=st.sampled_from(
    list("the kingqueodrwsI'TM\n\r\t   0123456789.,!?-éñü中文😀👍\u0301\u00a0")), max_size=120)


def training_text():
    if CORPUS.exists():
        return CORPUS.read_text(encoding="utf-8")[:300_000]
    rng = random.Random(0)
    words = ["".join(rng.choice("etaoinshrdlu") for _ in range(rng.randint(1, 7)))
             for _ in range(500)] + ["I'm", "you'll", "中文", "😀", "123", "\n", "\r\n", "  "]
    return " ".join(rng.choice(words) for _ in range(40_000))


@pytest.fixture(scope="module", params=["gpt4", "gpt2"])
def pair(request):
    tok = BPETokenizer(request.param, special_tokens=["<|endoftext|>", "<|fim|>"])
    tok.train(training_text(), vocab_size=1500)
    enc = tiktoken.Encoding(name=f"tinygrad_lm_{request.param}", pat_str=tok.pattern,
                            mergeable_ranks=tok.to_tiktoken_ranks(),
                            special_tokens=tok.special_tokens)
    tok.name = request.param
    return tok, enc


@HYP
@given(s=st.one_of(st.text(), WORDY))
@example("")
@example("  hello   world\r\n\r\n\t I'M fine, you'll see: 1234567 😀👍🏽 中文 e\u0301\n  ")
def test_same_ids_as_tiktoken(pair, s):
    tok, enc = pair
    ids = tok.encode(s)
    assert ids == enc.encode(s) == enc.encode_ordinary(s)
    assert enc.decode_bytes(ids) == tok.decode_bytes(ids)


@HYP
@given(parts=st.lists(st.one_of(st.text(), WORDY), min_size=1, max_size=6), repeat=st.integers(1, 30))
def test_same_ids_as_tiktoken_batched(pair, parts, repeat):
    # every text through the batched encoder (encode_fast.py; by default texts of
    # FAST_MIN_CHUNKS chunks or more); the chunk cache carries over from example to example
    tok, enc = pair
    s = "<|endoftext|>".join(parts) * repeat + " ".join(parts)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(encode_fast, "FAST_MIN_CHUNKS", 0)
        assert tok.encode(s, allowed_special="all") == enc.encode(s, allowed_special="all")
        assert tok.encode_ordinary(s) == enc.encode_ordinary(s) == \
            BPETokenizer.from_dict(tok.to_dict()).encode_ordinary(s)


@HYP
@given(s=WORDY)
def test_same_splits_as_tiktoken_official_pattern(pair, s):
    # our spelling of the pattern and tiktoken's own give the same tokens
    tok, enc = pair
    official = tiktoken.Encoding(name="official", pat_str=OFFICIAL[tok.name],
                                 mergeable_ranks=tok.to_tiktoken_ranks(), special_tokens={})
    assert tok.encode(s) == official.encode(s)


def test_lone_surrogates_like_tiktoken(pair):
    tok, enc = pair
    s = "ok \ud800 x\udfff\ud83d\ude00"          # two lone halves, then a valid pair as halves
    assert tok.encode(s) == enc.encode(s)
    assert tok.decode(tok.encode(s)) == "ok \ufffd x\ufffd\U0001f600"


def test_same_ids_on_corpus(pair):
    if not CORPUS.exists():
        pytest.skip(f"{CORPUS} not found")
    tok, enc = pair
    text = CORPUS.read_text(encoding="utf-8")
    assert tok.encode(text) == enc.encode_ordinary(text)


def test_special_tokens_like_tiktoken(pair):
    tok, enc = pair
    s = "a<|endoftext|> b<|fim|>c <|endoftext|>"
    assert tok.encode(s, allowed_special="all") == enc.encode(s, allowed_special="all")
    assert tok.encode(s, allowed_special="none") == enc.encode(s, disallowed_special=())
    assert tok.encode("x<|fim|>", allowed_special={"<|fim|>"}) == \
        enc.encode("x<|fim|>", allowed_special={"<|fim|>"})
    for allowed in ("none_raise", {"<|fim|>"}):
        with pytest.raises(ValueError):
            tok.encode(s, allowed_special=allowed)
        with pytest.raises(ValueError):
            enc.encode(s, allowed_special=set() if allowed == "none_raise" else allowed)


def test_tiktoken_reads_our_rank_file(pair, tmp_path):
    load = oracle("tiktoken.load")
    tok, _ = pair
    p = tmp_path / "ours.tiktoken"
    tok.save_tiktoken(p)
    ranks = load.load_tiktoken_bpe(str(p))            # tiktoken's own reader, local file
    assert ranks == load_tiktoken_ranks(p) == tok.to_tiktoken_ranks()
    enc = tiktoken.Encoding(name="from_file", pat_str=tok.pattern, mergeable_ranks=ranks,
                            special_tokens={})
    s = "To be, or not to be: that is the question.\r\n  Whether 'tis nobler 12345"
    assert enc.encode(s) == tok.encode(s) == \
        BPETokenizer.load_tiktoken(p, pattern=tok.pattern).encode(s)

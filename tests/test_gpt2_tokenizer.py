"""GPT-2's own tokenizer (`BPETokenizer.from_gpt2`, tokenizer/gpt2_files.py): id for id with
tiktoken's GPT-2 encoding built from the same files, on Tiny Shakespeare and on hypothesis
text; the vocab.json/merges.txt writer read back; saving keeps the byte order; bad files.

The real files are ../shared/data/gpt2/{encoder.json,vocab.bpe}; tests that need them skip
when they are absent, and tiktoken is an optional oracle.
"""
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinygrad_lm.tokenizer import BPETokenizer, load_tokenizer, tokenizer_from_dict
from tinygrad_lm.tokenizer.gpt2_files import bytes_to_unicode, read_gpt2_vocab, write_gpt2_vocab

from oracles import oracle  # tests/oracles.py

GPT2_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "gpt2"
ENCODER, VOCAB_BPE = GPT2_DIR / "encoder.json", GPT2_DIR / "vocab.bpe"
TEXTS = ["Hello world", "", " ", "\n\n\n", "  leading and trailing  ", "it's 2024, y'all'll've",
         "héllo wörld ünïcödé 日本語 🎉🎉", "tabs\tand\r\nwindows", "1234567890 3.14159 $100.00",
         "x" * 300, "<|endoftext|>"]


@pytest.fixture(scope="module")
def gpt2_tok():
    if not (ENCODER.is_file() and VOCAB_BPE.is_file()):
        pytest.skip(f"GPT-2 vocabulary not found in {GPT2_DIR}")
    return BPETokenizer.from_gpt2(ENCODER, VOCAB_BPE)


@pytest.fixture(scope="module")
def tiktoken_gpt2(gpt2_tok):
    tiktoken = oracle("tiktoken")
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks
    try:
        from tiktoken_ext.openai_public import r50k_pat_str as pattern  # tiktoken's own spelling
    except ImportError:
        pattern = gpt2_tok.pattern
    ranks = data_gym_to_mergeable_bpe_ranks(str(VOCAB_BPE), str(ENCODER))
    return tiktoken.Encoding("gpt2-local", pat_str=pattern, mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": 50256})


def test_gpt2_vocabulary_shape(gpt2_tok):
    assert gpt2_tok.vocab_size == 50257 and len(gpt2_tok.merges) == 50000
    assert gpt2_tok.special_tokens == {"<|endoftext|>": 50256}
    assert gpt2_tok.byte_order[0] == ord("!")  # id 0 is "!", as in encoder.json
    assert gpt2_tok.encode("<|endoftext|>", allowed_special="all") == [50256]
    assert gpt2_tok.encode("Hello world") == [15496, 995]  # GPT-2's published ids


@pytest.mark.oracle
def test_gpt2_encodes_the_corpus_as_tiktoken(gpt2_tok, tiktoken_gpt2, shakespeare_path):
    text = shakespeare_path.read_text(encoding="utf-8")
    ids = gpt2_tok.encode(text)
    assert ids == tiktoken_gpt2.encode_ordinary(text)
    assert gpt2_tok.decode(ids) == text


@pytest.mark.oracle
@pytest.mark.parametrize("text", TEXTS)
def test_gpt2_encodes_tricky_strings_as_tiktoken(gpt2_tok, tiktoken_gpt2, text):
    assert gpt2_tok.encode(text, allowed_special="all") == tiktoken_gpt2.encode(text, allowed_special="all")
    assert gpt2_tok.encode_ordinary(text) == tiktoken_gpt2.encode_ordinary(text)


@pytest.mark.oracle
@settings(max_examples=200)
@given(st.text(max_size=60) | st.text(alphabet=" \n\t'sdlvetr0123456789.,!?aAéü😀", max_size=60))
def test_gpt2_encodes_hypothesis_text_as_tiktoken(gpt2_tok, tiktoken_gpt2, text):
    ids = gpt2_tok.encode_ordinary(text)
    assert ids == tiktoken_gpt2.encode_ordinary(text)
    assert gpt2_tok.decode_bytes(ids) == tiktoken_gpt2.decode_bytes(ids)


def test_gpt2_tokenizer_survives_save_load_and_checkpoint_dicts(gpt2_tok, tmp_path):
    text = "Byte order matters: ids 0..255 are not bytes 0..255 in GPT-2.\n"
    gpt2_tok.save(tmp_path / "gpt2.model")
    for tok in (load_tokenizer(tmp_path / "gpt2.model"), tokenizer_from_dict(json.loads(json.dumps(gpt2_tok.to_dict())))):
        assert tok.byte_order == gpt2_tok.byte_order
        assert tok.encode(text) == gpt2_tok.encode(text)


def test_gpt2_files_round_trip(gpt2_tok, tmp_path):
    write_gpt2_vocab(gpt2_tok, tmp_path / "vocab.json", tmp_path / "merges.txt")
    assert json.loads((tmp_path / "vocab.json").read_text(encoding="utf-8")) == \
        json.loads(ENCODER.read_text(encoding="utf-8"))
    assert read_gpt2_vocab(tmp_path / "vocab.json", tmp_path / "merges.txt") == read_gpt2_vocab(ENCODER, VOCAB_BPE)


@pytest.fixture
def small_files(tmp_path):
    """A small BPE trained here, written in GPT-2's file format (needs no download)."""
    tok = BPETokenizer("gpt2", special_tokens=["<|endoftext|>"])
    tok.train("the quick brown fox jumps over the lazy dog; the dog sleeps.\n" * 20, 256 + 30 + 1)
    write_gpt2_vocab(tok, tmp_path / "vocab.json", tmp_path / "merges.txt")
    return tok, tmp_path / "vocab.json", tmp_path / "merges.txt"


def test_written_gpt2_files_read_back_to_the_same_tokenizer(small_files):
    tok, vocab, merges = small_files
    back = BPETokenizer.from_gpt2(vocab, merges)
    assert back.special_tokens == tok.special_tokens and back.vocab_size == tok.vocab_size
    for text in TEXTS[:-1]:
        assert back.decode(back.encode(text)) == text
    # the same bytes get the same tokens; only the numbering of the 256 byte ids differs
    assert [back.vocab[i] for i in back.encode("the lazy dog")] == [tok.vocab[i] for i in tok.encode("the lazy dog")]


def test_bytes_to_unicode_is_a_printable_bijection():
    table = bytes_to_unicode()
    assert sorted(table) == list(range(256)) and len(set(table.values())) == 256
    assert all(ch.isprintable() and not ch.isspace() for ch in table.values())
    assert table[ord(" ")] == "Ġ" and table[ord("A")] == "A"


def test_bad_gpt2_files_name_the_file_and_line(small_files, tmp_path):
    tok, vocab, merges = small_files
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.json: not JSON"):
        BPETokenizer.from_gpt2(bad, merges)
    lines = merges.read_text(encoding="utf-8").split("\n")
    swapped = tmp_path / "swapped.txt"
    swapped.write_text("\n".join([lines[0], lines[2], lines[1]] + lines[3:]), encoding="utf-8")
    with pytest.raises(ValueError, match=r"swapped\.txt: line 2: merge .* should make id 256"):
        BPETokenizer.from_gpt2(vocab, swapped)
    three = tmp_path / "three.txt"
    three.write_text("#version: 0.2\na b c\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"three\.txt: line 2: expected two tokens"):
        BPETokenizer.from_gpt2(vocab, three)
    short = tmp_path / "short.txt"
    short.write_text("\n".join(lines[:5]) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"vocab\.json: 26 tokens are neither bytes, merges of .*short\.txt"):
        BPETokenizer.from_gpt2(vocab, short)
    with pytest.raises(FileNotFoundError):
        BPETokenizer.from_gpt2(tmp_path / "missing.json", merges)


@pytest.mark.oracle
def test_gpt2_encodes_the_corpus_as_transformers(gpt2_tok, shakespeare_path, tmp_path):
    """Hugging Face's GPT-2 tokenizer, given the same two files under its names, as the second oracle."""
    oracle("tokenizers")
    transformers = oracle("transformers")
    (tmp_path / "vocab.json").write_bytes(ENCODER.read_bytes())
    (tmp_path / "merges.txt").write_bytes(VOCAB_BPE.read_bytes())
    (tmp_path / "config.json").write_text('{"model_type": "gpt2"}')  # so AutoTokenizer picks GPT-2's
    hf = transformers.AutoTokenizer.from_pretrained(tmp_path)
    text = shakespeare_path.read_text(encoding="utf-8")
    assert gpt2_tok.encode(text) == hf(text).input_ids

"""Special tokens added to a trained tokenizer (`add_special_tokens`, as masked-LM pretraining adds
[CLS] [SEP] [MASK] [PAD]): ids after the vocabulary, decoding, and save/load round trips, for both
tokenizers; a tokenizer without them writes exactly what it always wrote."""
import json

import pytest

from tinygrad_lm.run.mlm import SPECIAL_TOKENS, SpecialIds, add_special_tokens
from tinygrad_lm.tokenizer import BPETokenizer, CharTokenizer, load_tokenizer, tokenizer_from_dict

TEXT = "the quick brown fox jumps over the lazy dog; the dog sleeps. " * 10


def bpe():
    tok = BPETokenizer("gpt4")
    tok.train(TEXT, 300)
    return tok


@pytest.mark.parametrize("make", [lambda: CharTokenizer(TEXT), bpe], ids=["char", "bpe"])
def test_specials_get_the_ids_after_the_vocabulary_and_survive_save_and_load(make, tmp_path):
    tok = make()
    n, plain = tok.vocab_size, tok.encode("the lazy fox")
    ids = add_special_tokens(tok)
    assert (ids.cls, ids.sep, ids.mask, ids.pad) == (n, n + 1, n + 2, n + 3) and tok.vocab_size == n + 4
    assert tok.encode("the lazy fox") == plain  # ordinary text encodes as before
    assert tok.decode([ids.cls, *plain, ids.sep, ids.pad]) == "[CLS]the lazy fox[SEP][PAD]"
    assert tok.add_special_tokens(SPECIAL_TOKENS) == 0 and tok.vocab_size == n + 4  # adding again: nothing new
    for again in (tokenizer_from_dict(json.loads(json.dumps(tok.to_dict()))), _saved_and_loaded(tok, tmp_path)):
        assert type(again) is type(tok) and again.vocab_size == n + 4
        assert SpecialIds.of(again) == ids and again.special_tokens == tok.special_tokens
        assert again.encode("the lazy fox") == plain and again.decode([ids.mask, *plain]) == "[MASK]the lazy fox"


def _saved_and_loaded(tok, tmp_path):
    path = tmp_path / f"{type(tok).__name__}.tok"
    tok.save(path)
    return load_tokenizer(path)


def test_a_char_tokenizer_without_specials_writes_what_it_always_wrote(tmp_path):
    tok = CharTokenizer("abc")
    assert tok.to_dict() == {"type": "char", "version": 1, "chars": "abc"}
    tok.save(tmp_path / "t.json")
    assert json.loads((tmp_path / "t.json").read_text(encoding="utf-8")) == {"format": "tinygrad_lm char v1",
                                                                           "chars": "abc"}
    assert repr(tok) == "CharTokenizer(vocab_size=3)"


def test_char_specials_are_written_by_id_only():
    tok = CharTokenizer("[CLS]ab")
    add_special_tokens(tok)
    assert tok.encode("[CLS]") == [tok.chars.index(c) for c in "[CLS]"]  # five characters, not the special id
    with pytest.raises(ValueError, match="unknown token id"):
        tok.decode([tok.vocab_size])


def test_bad_special_tokens_and_damaged_dicts_are_clear_errors():
    tok = CharTokenizer("ab")
    with pytest.raises(ValueError, match="non-empty strings"):
        tok.add_special_tokens([""])
    with pytest.raises(ValueError, match="distinct"):
        tok.add_special_tokens(["[X]", "[X]"])
    with pytest.raises(ValueError, match=r"special token ids \{'\[X\]': 7\} must be \[2\]"):
        CharTokenizer.from_dict({"type": "char", "version": 1, "chars": "ab", "special_tokens": {"[X]": 7}})
    with pytest.raises(ValueError, match="distinct"):
        bpe().add_special_tokens(["[X]", "[X]"])

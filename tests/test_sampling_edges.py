"""Sampling at the numeric edges (issue #28, item 5): `GPT.generate` and its `_sample` stay exact.

A tiny temperature is greedy (no overflow into NaN: the logits are shifted by their maximum
before they are divided), a huge one is uniform, top-k of 1 is greedy (ties included), top-k of
the vocabulary size or more is no top-k, a single-token vocabulary samples its one token, and
logits of -inf (tokens ruled out) are never sampled, whatever the random draw; NaN or +inf
logits, and a row with every token ruled out, are refused by name. `generate`'s arguments are
checked where they enter. In-process, tiny models: fast.
"""
import numpy as np
import pytest

from tinygrad_lm.models.gpt import GPT, GPTConfig, _sample, sample_text
from tinygrad_lm.tokenizer import CharTokenizer

INF = float("inf")


class Draw:
    """A stand-in for np.random.Generator whose `random` returns one fixed number: a draw at an edge."""

    def __init__(self, u):
        self.u = u

    def random(self, shape):
        return np.full(shape, self.u)


LAST_BELOW_ONE = 1.0 - 2.0 ** -53  # the largest draw np.random.Generator.random can return


@pytest.fixture(scope="module")
def model():
    return GPT(GPTConfig(vocab_size=12, block_size=16, n_layer=1, n_head=2, n_embd=16))


def prompt():
    return np.array([[1, 2, 3], [4, 5, 6]])


@pytest.mark.parametrize("temperature", [1e-30, 1e-300, 5e-324])
def test_a_tiny_temperature_is_greedy(model, temperature):
    greedy = model.generate(prompt(), 8, temperature=0)
    assert np.array_equal(model.generate(prompt(), 8, temperature=temperature, seed=3), greedy)


def test_a_tiny_temperature_with_huge_logits_is_still_greedy():
    logits = np.array([[1e300, -1e300, 0.0, 9e299], [-5.0, 7.0, 7.0 - 1e-9, 6.0]])
    for seed in range(20):
        assert _sample(logits, 1e-30, None, np.random.default_rng(seed)).tolist() == [0, 1]


def test_a_huge_temperature_is_uniform_and_never_nan():
    logits = np.tile(np.array([[0.0, 1.0, 5.0, -3.0]]), (8000, 1))
    counts = np.bincount(_sample(logits, 1e30, None, np.random.default_rng(0)), minlength=4)
    assert counts.sum() == 8000 and np.all(np.abs(counts - 2000) < 200), counts
    wide = np.array([[-1e300, 1e300]])  # divided after the shift: (-2e300) / 1e30, no overflow
    assert _sample(wide, 1e30, None, np.random.default_rng(0)).tolist() == [1]


def test_top_k_of_one_is_greedy_even_with_ties(model):
    greedy = model.generate(prompt(), 8, temperature=0)
    for seed in range(5):
        assert np.array_equal(model.generate(prompt(), 8, temperature=1.5, top_k=1, seed=seed), greedy)
    tied = np.array([[1.0, 3.0, 3.0, 0.0]])
    assert {int(_sample(tied, 1.0, 1, np.random.default_rng(s))[0]) for s in range(50)} == {1}  # argmax's pick


def test_top_k_of_the_vocabulary_size_or_more_is_no_top_k(model):
    plain = model.generate(prompt(), 8, temperature=1.0, seed=7)
    for k in (12, 13, 1000):
        assert np.array_equal(model.generate(prompt(), 8, temperature=1.0, top_k=k, seed=7), plain)


@pytest.mark.parametrize("temperature, top_k", [(0, None), (1e-30, None), (1.0, None), (1e30, None), (1.0, 1),
                                                (1.0, 5)])
def test_a_single_token_vocabulary_samples_its_one_token(temperature, top_k):
    one = GPT(GPTConfig(vocab_size=1, block_size=8, n_layer=1, n_head=2, n_embd=8))
    out = one.generate(np.zeros((2, 1), dtype=np.int64), 5, temperature=temperature, top_k=top_k, seed=0)
    assert out.shape == (2, 6) and not out.any()


def test_sample_text_from_an_empty_prompt_with_a_vocabulary_lacking_a_newline():
    one = GPT(GPTConfig(vocab_size=1, block_size=8, n_layer=1, n_head=2, n_embd=8))
    assert sample_text(one, CharTokenizer("aaaa"), "", max_new_tokens=3, seed=0) == "aaaa"


@pytest.mark.parametrize("temperature, top_k", [(1.0, None), (1e-30, None), (1e30, None), (0, None), (1.0, 1),
                                                (1.0, 2), (0.5, 3)])
def test_minus_inf_logits_are_never_sampled(temperature, top_k):
    logits = np.array([[-INF, 0.5, -INF, 0.2, -INF]])
    for u in (0.0, 0.5, LAST_BELOW_ONE):
        assert int(_sample(logits, temperature, top_k, Draw(u))[0]) in (1, 3)


def test_tokens_cut_by_top_k_are_never_sampled_at_the_last_draw():
    """The draw below 1 must not fall past the cumulative sum (which rounding may leave below 1)
    onto a token of probability 0: the largest draw lands on a kept token, for any logits."""
    rng = np.random.default_rng(0)
    for _ in range(300):
        logits = rng.normal(size=(1, 6)) * rng.choice([1e-3, 1.0, 30.0])
        kept = np.argsort(logits[0])[-3:]
        for temperature in (0.3, 1.0, 7.0):
            assert int(_sample(logits, temperature, 3, Draw(LAST_BELOW_ONE))[0]) in kept


@pytest.mark.parametrize("logits, words", [
    (np.array([[0.0, np.nan]]), "NaN"),
    (np.array([[0.0, INF]]), r"\+inf"),
    (np.array([[-INF, -INF], [0.0, 1.0]]), "every token's logit is -inf"),
])
def test_nan_inf_or_nothing_to_sample_is_refused(logits, words):
    with pytest.raises(ValueError, match=words):
        _sample(logits, 1.0, None, np.random.default_rng(0))


@pytest.mark.parametrize("kwargs, words", [
    (dict(temperature=INF), "temperature must be a number >= 0, got .*: a finite one"),
    (dict(temperature=float("nan")), "temperature must be a number >= 0, got .*: a finite one"),
    (dict(temperature="1"), "temperature must be a number >= 0, got .*: a finite one"),
    (dict(top_k=2.5), "top_k must be a positive integer or None"),
    (dict(top_k=True), "top_k must be a positive integer or None"),
    (dict(top_k=0), "top_k must be a positive integer or None"),
    (dict(max_new_tokens=-1), "max_new_tokens must be an integer >= 0"),
    (dict(max_new_tokens=2.5), "max_new_tokens must be an integer >= 0"),
    (dict(seed=-1), "seed must be an integer >= 0 or None"),
])
def test_generate_checks_its_arguments(model, kwargs, words):
    args = {"max_new_tokens": 2, **kwargs}
    with pytest.raises(ValueError, match=words):
        model.generate(np.array([[1]]), **args)


def test_generate_refuses_float_ids_instead_of_truncating_them(model):
    with pytest.raises(TypeError, match=r"generate: idx must be integer token ids, got dtype float64"):
        model.generate(np.array([[1.7, 2.0]]), 2)

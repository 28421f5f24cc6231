"""The key/value cache of generation (nn/kv_cache.py), on the reference and the fused path:
cached and uncached generation give the same logits (float64, 1e-12) and tokens, also when the
context slides past block_size; a cached forward in pieces equals one forward over the whole;
after the prompt only the new token is fed; errors.
"""
import numpy as np
import pytest

from tinygrad_lm import Tensor, fast, no_grad
from tinygrad_lm.models.gpt import GPT, GPTConfig
from tinygrad_lm.nn.kv_cache import KVCache

BOTH = pytest.mark.parametrize("fused", [False, True], ids=["reference", "fast"])


def tiny_gpt(fused, block_size=8, **kw):
    cfg = dict(vocab_size=31, block_size=block_size, n_layer=2, n_head=2, n_embd=16)
    model = GPT(GPTConfig(**{**cfg, **kw})).to(dtype=np.float64)
    return fast.fuse(model) if fused else model


def record_steps(model, monkeypatch):
    """Make the model note each step's last-position logits (B, V) and its input length T."""
    logits, lengths = [], []
    head, body = model.lm_head.forward, model.transformer.forward

    def head_forward(x):
        y = head(x)
        logits.append(y.data[:, -1, :].copy())
        return y

    def body_forward(idx, *args):
        lengths.append(np.shape(idx)[1])
        return body(idx, *args)

    monkeypatch.setattr(model.lm_head, "forward", head_forward)
    monkeypatch.setattr(model.transformer, "forward", body_forward)
    return logits, lengths


@BOTH
@pytest.mark.parametrize("prompt_len", [1, 3, 8, 11], ids=lambda n: f"prompt{n}")
def test_cached_generation_gives_the_uncached_logits_and_tokens(fused, prompt_len, rng, monkeypatch):
    model = tiny_gpt(fused, block_size=8)
    prompt = rng.integers(0, 31, size=(2, prompt_len))
    runs = {}
    for use_cache in (True, False):
        logits, lengths = record_steps(model, monkeypatch)
        out = model.generate(prompt, 14, temperature=0.9, top_k=10, seed=5, use_cache=use_cache)
        runs[use_cache] = (out, np.stack(logits), list(lengths))
        monkeypatch.undo()
    (out_c, logits_c, lengths_c), (out_u, logits_u, lengths_u) = runs[True], runs[False]
    np.testing.assert_array_equal(out_c, out_u)
    assert logits_c.shape == logits_u.shape == (14, 2, 31)
    np.testing.assert_allclose(logits_c, logits_u, rtol=0, atol=1e-12)
    # what each step fed: uncached always the cropped context; cached one token until the
    # window slides (then the whole block_size window again)
    total = prompt_len + np.arange(14)
    assert lengths_u == list(np.minimum(total, 8))
    expected = [min(prompt_len, 8)] + [1 if t <= 8 else 8 for t in total[1:]]
    assert lengths_c == expected


@BOTH
def test_greedy_generation_is_the_same_with_and_without_the_cache(fused, rng):
    model = tiny_gpt(fused, block_size=16)
    prompt = rng.integers(0, 31, size=(1, 5))
    cached = model.generate(prompt, 20, temperature=0)
    assert cached.shape == (1, 25)
    np.testing.assert_array_equal(cached, model.generate(prompt, 20, temperature=0, use_cache=False))


@BOTH
@pytest.mark.parametrize("split", [1, 4, 6])
def test_a_cached_forward_in_pieces_equals_one_forward(fused, split, rng):
    model = tiny_gpt(fused, block_size=8).eval()
    idx = rng.integers(0, 31, size=(2, 7))
    with no_grad():
        whole = model.transformer(idx).data  # (B, T, C)
        cache = KVCache(model.config.n_layer)
        first = model.transformer(idx[:, :split], kv_cache=cache).data
        assert len(cache) == split
        rest = model.transformer(idx[:, split:], kv_cache=cache).data
        assert len(cache) == 7
    np.testing.assert_allclose(np.concatenate([first, rest], axis=1), whole, rtol=0, atol=1e-12)
    assert cache[0].k.shape == (2, 2, 7, 8)  # (B, nh, S, hs)


def test_reference_and_fused_attention_agree_with_a_cache(rng):
    ref = tiny_gpt(False).eval()
    fused = fast.fuse(tiny_gpt(False)).eval()
    fused.load_state_dict(ref.state_dict())
    idx = rng.integers(0, 31, size=(3, 6))
    with no_grad():
        outs = []
        for model in (ref, fused):
            cache = KVCache(2)
            model.transformer(idx[:, :2], kv_cache=cache)
            outs.append(model.transformer(idx[:, 2:], kv_cache=cache).data)
    np.testing.assert_allclose(outs[0], outs[1], rtol=0, atol=1e-12)


def test_cache_clear_and_length():
    cache = KVCache(3)
    assert len(cache) == 0
    k = Tensor(np.ones((1, 2, 4, 5)))
    all_k, all_v = cache[0].append(k, k)
    all_k, _ = cache[0].append(k, k)
    assert all_k.shape == (1, 2, 8, 5) and len(cache) == 8
    cache.clear()
    assert len(cache) == 0 and cache[2].k is None


@BOTH
def test_cache_errors_name_the_problem(fused, rng):
    model = tiny_gpt(fused, block_size=8).eval()
    cache = KVCache(2)
    with no_grad():
        model(rng.integers(0, 31, size=(1, 6)), kv_cache=cache)
        with pytest.raises(ValueError, match="after 6 cached positions exceeds block_size 8"):
            model(rng.integers(0, 31, size=(1, 3)), kv_cache=cache)
        with pytest.raises(ValueError, match="attention_mask and kv_cache"):
            model(rng.integers(0, 31, size=(1, 1)), attention_mask=np.ones((1, 1)), kv_cache=cache)

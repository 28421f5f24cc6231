"""GPT model: GPT-2 layout, gradients, causality, generation, and input errors."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_lm
from tinygrad_lm.testing import check_gradients
from tinygrad_lm.models.gpt import GPT, GPTConfig


def tiny(**kw):
    cfg = dict(vocab_size=11, block_size=6, n_layer=2, n_head=2, n_embd=8)
    cfg.update(kw)
    tinygrad_lm.manual_seed(0)
    return GPT(GPTConfig(**cfg))


def test_state_dict_follows_gpt2_layout():
    m = tiny()
    names = list(m.state_dict())
    expected = ["transformer.wte.weight", "transformer.wpe.weight"]
    for i in range(2):
        p = f"transformer.h.{i}."
        expected += [p + "ln_1.weight", p + "ln_1.bias", p + "attn.c_attn.weight", p + "attn.c_attn.bias",
                     p + "attn.c_proj.weight", p + "attn.c_proj.bias", p + "ln_2.weight", p + "ln_2.bias",
                     p + "mlp.c_fc.weight", p + "mlp.c_fc.bias", p + "mlp.c_proj.weight", p + "mlp.c_proj.bias"]
    expected += ["transformer.ln_f.weight", "transformer.ln_f.bias", "lm_head.weight"]
    assert names == expected
    sd = m.state_dict()
    assert sd["transformer.h.0.attn.c_attn.weight"].shape == (24, 8)  # (3C, C): q, k, v
    assert sd["transformer.h.0.mlp.c_fc.weight"].shape == (32, 8)  # (out, in)
    assert sd["lm_head.weight"].shape == (11, 8)
    assert m.lm_head.weight is m.transformer.wte.weight  # tied: one Parameter
    assert m.num_params() == sum(v.size for k, v in sd.items() if k != "lm_head.weight")


def test_untied_sinusoidal_and_biasless_variants():
    m = tiny(tie_weights=False, pos_encoding="sinusoidal", bias=False)
    names = list(m.state_dict())
    assert "transformer.wpe.weight" not in names
    assert not any(n.endswith(".bias") for n in names)
    assert m.lm_head.weight is not m.transformer.wte.weight


def test_gpt2_initialisation_scales_residual_projections():
    m = tiny(n_layer=8, n_embd=64, n_head=4, vocab_size=300, block_size=64)
    sd = m.state_dict()
    assert abs(sd["transformer.wte.weight"].std() - 0.02) < 0.002
    proj = np.concatenate([sd[f"transformer.h.{i}.mlp.c_proj.weight"].ravel() for i in range(8)])
    assert abs(proj.std() - 0.02 / np.sqrt(16)) < 0.0005
    assert np.all(sd["transformer.h.0.attn.c_attn.bias"] == 0)
    assert np.all(sd["transformer.ln_f.weight"] == 1)


@pytest.mark.parametrize("pos", ["learned", "sinusoidal"])
def test_whole_tiny_gpt_passes_gradcheck(pos):
    m = tiny(pos_encoding=pos, block_size=4, n_layer=1, vocab_size=7).to(dtype=np.float64)
    idx = np.array([[1, 2, 3, 4], [0, 6, 5, 1]])
    targets = np.array([[2, 3, 4, 5], [6, 5, 1, -1]])
    assert check_gradients(lambda: m(idx, targets)[1], params=dict(m.named_parameters()))


@settings(max_examples=10, deadline=None)
@given(t=st.integers(0, 5), seed=st.integers(0, 1000))
def test_changing_a_token_changes_no_earlier_logit(t, seed):
    m = tiny(dropout=0.0).to(dtype=np.float64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, 11, (2, 6))
    targets = rng.integers(0, 11, (2, 6))
    logits, _ = m(idx, targets)
    idx2 = idx.copy()
    idx2[:, t] = (idx2[:, t] + 1) % 11
    logits2, _ = m(idx2, targets)
    np.testing.assert_array_equal(logits.data[:, :t], logits2.data[:, :t])
    assert not np.allclose(logits.data[:, t], logits2.data[:, t])


def test_generate_is_deterministic_given_a_seed_and_keeps_the_prompt():
    m = tiny()
    prompt = np.array([[1, 2, 3]])
    a = m.generate(prompt, 10, temperature=1.0, seed=5)
    b = m.generate(prompt, 10, temperature=1.0, seed=5)
    c = m.generate(prompt, 10, temperature=1.0, seed=6)
    assert a.shape == (1, 13)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[:, :3], prompt)
    assert not np.array_equal(a, c)
    assert a.min() >= 0 and a.max() < 11
    assert m.training  # mode restored


def test_generate_crops_context_and_greedy_equals_argmax():
    m = tiny(block_size=4)
    out = m.generate(np.array([[1, 2, 3, 4, 5, 6, 7]]), 5, temperature=0)  # longer than block_size
    assert out.shape == (1, 12)
    logits, _ = m(out[:, 3:7])  # the cropped context that produced the first new token
    assert out[0, 7] == int(np.argmax(logits.data[0, -1]))


def test_top_k_samples_only_among_k_most_likely():
    m = tiny()
    prompt = np.array([[1, 2]])
    logits, _ = m(prompt)
    top2 = set(np.argsort(logits.data[0, -1])[-2:].tolist())
    for seed in range(20):
        tok = m.generate(prompt, 1, temperature=1.0, top_k=2, seed=seed)[0, -1]
        assert int(tok) in top2


def test_clear_errors_for_bad_inputs():
    m = tiny(block_size=4)
    with pytest.raises(ValueError, match="exceeds block_size 4"):
        m(np.zeros((1, 5), dtype=np.int64))
    with pytest.raises(ValueError, match=r"shape \(B, T\)"):
        m(np.zeros(4, dtype=np.int64))
    with pytest.raises(ValueError, match="targets of shape"):
        m(np.zeros((1, 4), dtype=np.int64), np.zeros((1, 3), dtype=np.int64))
    with pytest.raises(IndexError, match="out of range"):
        m(np.array([[1, 99]]))
    with pytest.raises(ValueError, match="divisible"):
        GPTConfig(n_embd=10, n_head=3)


def test_tiny_model_overfits_a_tiny_text():
    from tinygrad_lm.optim import AdamW

    m = tiny(vocab_size=5, block_size=8, n_layer=1, n_embd=16)
    rng = np.random.default_rng(0)
    seq = rng.integers(0, 5, 9)
    x, y = seq[None, :-1], seq[None, 1:]
    opt = AdamW(m.parameters(), lr=1e-2, weight_decay=0.0)
    first = None
    for _ in range(150):
        _, loss = m(x, y)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert first > 1.2 and loss.item() < 0.05

"""The CuPy path end to end, on every "cuda" parameter of `devices()`: the real GPU where there is
one, and otherwise the CPU stand-in for CuPy (`cupy_standin.py`, a test double), so these run
on every commit.

Each test here is a bug the stand-in found or a promise of issue #13: arrays stay on their
device (generate, the classifier's labels, masks, gradcheck, dropout given a NumPy generator),
the training loops and fine-tuning run and resume bit-for-bit with dropout on, the backward of
embedding and indexing is a deterministic segment sum, and a training step does not stop the
GPU to read a number back except where the loop asks for one.
"""
import json

import numpy as np
import pytest

import tinygrad_lm
from tinygrad_lm import Tensor, fast, nn
from tinygrad_lm import gradcheck
from tinygrad_lm.engine import backend, rng
from tinygrad_lm import checkpoint
from tinygrad_lm.engine import functional as F
from tinygrad_lm.run.config import from_flat
from tinygrad_lm.fast import functional as FAST
from tinygrad_lm.models.gpt import GPT, GPTConfig
from tinygrad_lm.engine.ops.shape import scatter_add, segment_sum
from tinygrad_lm.testing import check_gradients
from tinygrad_lm.testing.backends import cuda_devices
from tinygrad_lm.run.train import TrainConfig, train

CUDA = cuda_devices()  # the real GPU (skipped without one) and, where no GPU is, the stand-in
TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n" * 30


def on(device, array):
    return backend.to_device(np.asarray(array), device)


pytestmark = pytest.mark.usefixtures("isolated_cache")  # conftest.py: a cache per test


# ------------------------------------------------------------------ arrays stay on their device
@pytest.mark.parametrize("device", CUDA)
def test_generate_takes_a_device_idx_and_answers_on_that_device(device):
    model = GPT(GPTConfig(vocab_size=7, block_size=8, n_layer=1, n_head=2, n_embd=8)).to(device=device)
    idx = on(device, [[1, 2, 3]])
    out = model.generate(idx, 4, seed=0)
    assert backend.device_of(out) == "cuda" and out.shape == (1, 7)
    host = model.to(device="cpu").generate(np.array([[1, 2, 3]]), 4, seed=0)
    np.testing.assert_array_equal(backend.to_device(out, "cpu"), host)


@pytest.mark.parametrize("device", CUDA)
def test_classifier_takes_device_labels(device):
    from tinygrad_lm.models.gpt_classifier import GPTForSequenceClassification

    model = GPTForSequenceClassification(GPTConfig(vocab_size=7, block_size=6, n_layer=1, n_head=2, n_embd=8), 3)
    model.to(device=device)
    idx, labels = on(device, [[1, 2, 3], [4, 5, 6]]), on(device, [0, 2])
    _, loss = model(idx, labels=labels)
    loss.backward()
    assert loss.device == "cuda" and np.isfinite(loss.item())
    with pytest.raises(ValueError, match=r"labels must be ids in 0\.\.2, got 0\.\.5"):
        model(idx, labels=on(device, [0, 5]))[1].item()  # a GPU's check is read at the next host read


@pytest.mark.parametrize("fused", [False, True], ids=["reference", "fast"])
@pytest.mark.parametrize("device", CUDA)
def test_attention_takes_a_device_mask(device, fused):
    attend = FAST.scaled_dot_product_attention if fused else F.scaled_dot_product_attention
    r = np.random.default_rng(0)
    q, k, v = (r.standard_normal((1, 2, 3, 4)) for _ in range(3))
    mask = np.array([True, True, False])  # (S,): the last key is padding
    got = attend(*(Tensor(a, device=device) for a in (q, k, v)), mask=on(device, mask))
    want = attend(*(Tensor(a) for a in (q, k, v)), mask=mask)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12)


@pytest.mark.parametrize("device", CUDA)
def test_gradcheck_takes_raw_device_arrays(device):
    r = np.random.default_rng(0)
    a = on(device, r.standard_normal((2, 3)))
    assert gradcheck(lambda x: (x * x).tanh(), [Tensor(a, requires_grad=True)])
    assert check_gradients(lambda x: x.softmax(), a)  # a raw device array becomes a float64 leaf there
    assert check_gradients(lambda x, i: x[i], a, on(device, [1, 1, 0]))  # integer ids pass through


@pytest.mark.parametrize("fused", [False, True], ids=["reference", "fast"])
@pytest.mark.parametrize("device", CUDA)
def test_dropout_with_a_numpy_generator_on_a_device_tensor_uses_the_cpus_mask(device, fused):
    x = np.ones((2, 3, 4))
    got = F.dropout(Tensor(x, device=device), 0.5, rng=np.random.default_rng(3))
    want = F.dropout(Tensor(x), 0.5, rng=np.random.default_rng(3))
    assert got.device == "cuda"
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    attend = FAST.scaled_dot_product_attention if fused else F.scaled_dot_product_attention
    qkv = [np.random.default_rng(i).standard_normal((1, 2, 3, 4)) for i in range(3)]
    got = attend(*(Tensor(a, device=device) for a in qkv), dropout_p=0.5, rng=np.random.default_rng(4))
    want = attend(*(Tensor(a) for a in qkv), dropout_p=0.5, rng=np.random.default_rng(4))
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12)


@pytest.mark.parametrize("device", CUDA)
def test_every_reference_layer_and_its_fused_twin_gradchecks_on_the_device(device):
    tinygrad_lm.manual_seed(0)
    layers = [nn.Linear(4, 3), nn.LayerNorm(4), nn.GELU(), nn.CausalSelfAttention(4, 2, dropout=0.0)]
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3, 4)), device=device, requires_grad=True)
    for layer in layers:
        for twin in (False, True):
            if twin:
                fast.fuse(layer)
            layer.to(device=device, dtype=np.float64)
            assert check_gradients(layer, x, params=dict(layer.named_parameters())), type(layer).__name__
    emb = nn.Embedding(5, 3).to(device=device, dtype=np.float64)
    ids = on(device, [[0, 4, 0], [2, 2, 2]])
    for twin in (False, True):
        if twin:
            fast.fuse(emb)
        assert check_gradients(lambda: emb(ids), params=dict(emb.named_parameters()))


# ------------------------------------------------------------------ deterministic scatter-add
def test_segment_sum_equals_add_at_on_numpy(rng):
    ids = rng.integers(0, 6, 200)
    values = rng.standard_normal((200, 3))
    want = np.zeros((7, 3))
    np.add.at(want, ids, values)
    np.testing.assert_allclose(segment_sum(ids, values, 7), want, rtol=1e-12, atol=1e-12)
    assert not segment_sum(ids, values, 7)[6].any()  # an id nobody names: zero


@pytest.mark.parametrize("device", CUDA)
def test_scatter_add_on_the_device_is_the_segment_sum_and_matches_add_at(device, rng):
    values = rng.standard_normal((50, 4)).astype(np.float32)
    ids = rng.integers(-3, 5, 50)  # negative ids count from the end, as in indexing
    want = np.zeros((5, 4), dtype=np.float32)
    np.add.at(want, ids, values)
    got = scatter_add((5, 4), on(device, ids), on(device, values))
    np.testing.assert_allclose(backend.to_device(got, "cpu"), want, rtol=1e-5, atol=1e-6)
    again = scatter_add((5, 4), on(device, ids), on(device, values))
    np.testing.assert_array_equal(backend.to_device(again, "cpu"), backend.to_device(got, "cpu"))
    mask = rng.random((5, 4)) < 0.5  # a boolean index: the flat-position path
    got = scatter_add((5, 4), on(device, mask), on(device, values.reshape(-1)[:mask.sum()]))
    want = np.zeros((5, 4), dtype=np.float32)
    want[mask] = values.reshape(-1)[:mask.sum()]
    np.testing.assert_array_equal(backend.to_device(got, "cpu"), want)


# ------------------------------------------------------------------ no host sync in the step
def test_a_fast_training_step_on_the_standin_reads_nothing_back_before_the_loss(monkeypatch):
    import cupy_standin

    cupy_standin.install(monkeypatch)
    from tinygrad_lm.optim import AdamW

    model = fast.fuse(GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8, dropout=0.1)))
    model.to(device="cuda")
    opt = fast.fuse(AdamW(model.parameters(), lr=1e-3))
    r = np.random.default_rng(0)
    x, y = on("cuda", r.integers(0, 11, (2, 8))), on("cuda", r.integers(0, 11, (2, 8)))
    before = cupy_standin.host_syncs
    _, loss = model(x, y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert cupy_standin.host_syncs == before  # ids checked, loss counted, dropout drawn: all on the device
    loss.item()
    assert cupy_standin.host_syncs == before + 2  # the deferred id checks (one read) and the loss


@pytest.mark.parametrize("device", CUDA)
def test_a_bad_id_on_the_device_is_reported_at_the_next_host_read(device):
    ids = on(device, [0, 9])
    F.check_ids(ids, 5)  # no error yet: the flag waits on the device
    with pytest.raises(IndexError, match=r"embedding: id 9 is out of range for 5 rows"):
        Tensor(on(device, [1.0])).item()
    Tensor(on(device, [1.0])).item()  # reported once


# ------------------------------------------------------------------ the device's generator
def test_counter_generator_is_a_stream_of_uniforms_that_its_state_restores():
    g = rng.CounterGenerator(np, seed=5)
    a = g.random((1000,), np.float64)
    assert 0.0 <= a.min() and a.max() < 1.0 and abs(a.mean() - 0.5) < 0.03
    state = g.state
    assert json.loads(json.dumps(state)) == {"seed": 5, "counter": 1000}
    b = g.random((3, 4), np.float32)
    g.state = state
    np.testing.assert_array_equal(g.random((3, 4), np.float32), b)
    whole = rng.CounterGenerator(np, seed=5).random((1012,), np.float64)
    np.testing.assert_array_equal(whole[:1000], a)  # two draws = one long draw: a counter, not a reseed
    assert not np.array_equal(rng.CounterGenerator(np, seed=6).random((8,)), whole[:8].astype(np.float32))


@pytest.mark.parametrize("device", CUDA)
def test_get_state_holds_the_device_generator_and_old_states_still_load(device):
    xp = backend.get_array_module(on(device, [0]))
    rng.manual_seed(1)
    rng.get_rng(xp).random((10,))
    state = json.loads(json.dumps(rng.get_state()))  # what a checkpoint's JSON holds
    assert state["device"] == {"seed": 1, "counter": 10}
    first = backend.to_device(rng.get_rng(xp).random((4,)), "cpu")
    rng.manual_seed(2)
    rng.set_state(state)
    np.testing.assert_array_equal(backend.to_device(rng.get_rng(xp).random((4,)), "cpu"), first)
    old = {k: v for k, v in state.items() if k != "device"}  # a checkpoint from before the GPU's state
    rng.set_state(old)
    assert rng.get_rng(xp).state == {"seed": 1, "counter": 14}  # the device stream is left as it was


# ------------------------------------------------------------------ whole loops on the device
def _train_cfg(text_file, out_dir, **kw):
    cfg = dict(data=str(text_file), block_size=16, n_layer=1, n_head=2, n_embd=16, batch_size=4, max_iters=20,
               warmup_iters=5, eval_interval=10, eval_iters=2, log_interval=5, out_dir=str(out_dir),
               sample_tokens=0, quiet=True, dropout=0.1, device="cuda")
    cfg.update(kw)
    return from_flat(TrainConfig, **cfg)


@pytest.mark.parametrize("device", CUDA)
def test_training_on_the_device_resumes_bit_for_bit_with_dropout_on(device, tmp_path):
    text = tmp_path / "corpus.txt"
    text.write_text(TEXT, encoding="utf-8")
    full = train(_train_cfg(text, tmp_path / "a"))
    part = train(_train_cfg(text, tmp_path / "b"), stop_at=13)
    rest = train(_train_cfg(text, tmp_path / "b"), resume=True)
    assert part["losses"] + rest["losses"] == full["losses"]  # the dropout numbers' place was saved
    meta, wa, _ = checkpoint.load(tmp_path / "a" / "ckpt.npz")
    assert meta["rng"]["dropout"]["site"] > 0  # masks were drawn, keyed by (seed, site, row)
    _, wb, _ = checkpoint.load(tmp_path / "b" / "ckpt.npz")
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k])


@pytest.mark.parametrize("device", CUDA)
def test_finetuning_on_the_device_learns_and_resumes_bit_for_bit(device, tmp_path):
    from tinygrad_lm.run.finetune import FinetuneConfig, finetune

    text = tmp_path / "corpus.txt"
    text.write_text("the cat sat on the mat.\nthe dog ran to the log.\n" * 30, encoding="utf-8")
    train(from_flat(TrainConfig, data=str(text), max_iters=3, n_layer=1, n_embd=16, n_head=2, block_size=16,
                    batch_size=4, eval_interval=3, eval_iters=1, out_dir=str(tmp_path / "pre"), quiet=True,
                    sample_tokens=0))
    rows = [{"text": t, "label": t.split()[1]} for t in ["the cat sat.", "the dog ran.", "a cat on mat.", "a dog ran."]]
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows * 6), encoding="utf-8")

    def cfg(out, **kw):
        return from_flat(FinetuneConfig, ckpt=str(tmp_path / "pre" / "best.npz"), data=str(data), val=str(data),
                         batch_size=4, max_iters=12, lr=3e-3, warmup_iters=2, eval_interval=6, log_interval=3,
                         out_dir=str(tmp_path / out), quiet=True, dropout=0.1, device="cuda", **kw)

    full = finetune(cfg("a"))
    part = finetune(cfg("b"), stop_at=7)
    rest = finetune(cfg("b"), resume=True)
    assert part["history"] + rest["history"] == full["history"]
    assert np.isfinite(full["history"]).all()


@pytest.mark.parametrize("device", CUDA)
def test_the_causal_mask_cache_is_per_device_and_bounded(device):
    from tinygrad_lm.fast import attention

    xp = backend.get_array_module(on(device, [0]))
    attention._causal_cache.clear()
    cpu, gpu = attention.causal_bias_t(3, 3, np, np.float32), attention.causal_bias_t(3, 3, xp, np.float32)
    assert backend.device_of(cpu) == "cpu" and backend.device_of(gpu) == "cuda"
    for t in range(1, 40):  # generation asks for a new (T, S) at every token
        attention.causal_bias_t(1, t, xp, np.float32)
    assert len(attention._causal_cache) == attention._causal_cache.size


@pytest.mark.parametrize("device", CUDA)
def test_gpt2_init_on_a_model_already_on_the_device_keeps_it_there(device):
    from tinygrad_lm.models.gpt import init_gpt2_

    model = GPT(GPTConfig(vocab_size=7, block_size=8, n_layer=1, n_head=2, n_embd=8)).to(device=device,
                                                                                       dtype=np.float64)
    init_gpt2_(model, 1)
    assert {(p.device, p.dtype) for p in model.parameters()} == {("cuda", np.dtype(np.float64))}
    model(on(device, [[1, 2]]), on(device, [[2, 3]]))[1].backward()

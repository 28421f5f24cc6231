"""Dropout masks that do not depend on how a batch is split (issue 26, item 1).

What is pinned: a mask drawn for rows [r0, r1) inside `rng.batch_rows(r0)` is exactly those rows
of the mask one thread draws over the whole batch, for the reference op (float32 and float64),
the fused attention and the GPU's CounterGenerator (run on NumPy); the fused model draws the
reference model's masks bit for bit; 1, 2 and 4 threads train the same run with dropout on, up to
float32 summation order (2 MPI ranks: tests/test_train_dist.py); a checkpoint written before the
keyed masks samples, fine-tunes, resumes exactly without dropout and is refused, with the reason,
with dropout.
"""
import numpy as np
import pytest

from tinygrad_lm import Tensor, checkpoint, fast, manual_seed, nn
from tinygrad_lm.engine import functional as F
from tinygrad_lm.engine import rng
from tinygrad_lm.fast.data_parallel import DataParallel
from tinygrad_lm.models.gpt import GPT, GPTConfig
from tinygrad_lm.run.config import from_flat
from tinygrad_lm.run.train import TrainConfig, load_model, train

pytestmark = pytest.mark.usefixtures("isolated_cache")  # conftest.py: a cache per test

TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n" * 40)
CUTS = [[(0, 6)], [(0, 3), (3, 6)], [(0, 1), (1, 4), (4, 6)], [(0, 5), (5, 6)]]  # row slices of 6 rows


def _in_slices(cuts, draw):
    """draw(r0, r1) for each slice, each inside batch_rows(r0) from the same site, joined on axis 0."""
    site = rng.current_site()
    blocks = [rng.batch_rows(r0, site) for r0, _ in cuts]
    parts = []
    for block, (r0, r1) in zip(blocks, cuts):
        with block:
            parts.append(draw(r0, r1))
    rng.advance_sites(blocks)
    return np.concatenate(parts)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(6, 7, 3), (6, 2, 5, 5), (6, 16)])  # row lengths 21, 50, 16: any alignment
def test_a_slice_of_the_reference_dropout_is_those_rows_of_the_whole_batchs(dtype, shape):
    x = Tensor(np.ones(shape, dtype=dtype))
    manual_seed(5)
    first = F.dropout(x, 0.3).data  # site 0
    whole = F.dropout(x, 0.3).data  # site 1
    for cuts in CUTS:
        manual_seed(5)
        assert np.array_equal(_in_slices(cuts, lambda r0, r1: F.dropout(Tensor(x.data[r0:r1]), 0.3).data), first)
        assert np.array_equal(_in_slices(cuts, lambda r0, r1: F.dropout(Tensor(x.data[r0:r1]), 0.3).data), whole)
        assert rng.current_site() == 2  # each slice drew sites 0 and 1; the run's counter moved past them
    assert whole.dtype == dtype and set(np.unique(whole)) == {0.0, dtype(1 / 0.7)}
    assert not np.array_equal(first, whole)  # a new site, new numbers
    assert abs((whole == 0).mean() - 0.3) < 0.1


def test_the_keyed_numbers_depend_on_the_seed_and_are_uniform():
    shape = (64, 64, 64)
    manual_seed(1)
    a = rng.dropout_mask(shape, 0.25, np.float32, np)
    manual_seed(2)
    b = rng.dropout_mask(shape, 0.25, np.float32, np)
    for m in (a, b):
        assert abs((m == 0).mean() - 0.25) < 0.005  # 262,144 draws: 5 sigma is about 0.004
    assert 0.2 < ((a == 0) & (b == 0)).mean() / 0.25 < 0.3  # the two seeds' masks are independent
    manual_seed(1)
    np.testing.assert_array_equal(rng.dropout_mask(shape, 0.25, np.float32, np), a)
    # p is compared exactly: u = k / 2^24 is kept iff u >= p
    manual_seed(1)
    assert rng.dropout_mask((4,), 1 - 2 ** -25, np.float32, np).sum() == 0  # rounds up to "never kept"


def test_a_slice_of_the_fused_attention_draws_those_rows_of_the_whole_batchs_mask():
    qkv = np.random.default_rng(0).standard_normal((6, 5, 3 * 8)).astype(np.float32)

    def drop(r0, r1):
        kernel = fast.attention.PackedAttentionKernel(2, dropout_p=0.3)
        kernel(Tensor(qkv[r0:r1]))
        return kernel.drop  # (b, nh, S, T): 0 or 1/(1-p)

    manual_seed(3)
    whole = _in_slices([(0, 6)], drop)
    for cuts in CUTS[1:]:
        manual_seed(3)
        assert np.array_equal(_in_slices(cuts, drop), whole)
    manual_seed(3)  # and it is the reference's mask, in the reference's (B, nh, T, S) layout
    reference = F.dropout(Tensor(np.ones((6, 2, 5, 5), dtype=np.float32)), 0.3).data
    np.testing.assert_array_equal(whole.swapaxes(-1, -2), reference)


def test_a_slice_of_the_counter_generators_mask_is_those_rows_of_the_whole_batchs():
    """The GPU's numbers, run on NumPy (the CUDA kernel computes the same: test_cuda_kernels.py)."""
    shape = (6, 3, 7)
    manual_seed(9)
    whole = rng.site_generator(np, shape).random(shape, np.float32)
    for cuts in CUTS[1:]:
        manual_seed(9)
        got = _in_slices(cuts, lambda r0, r1: rng.site_generator(np, (r1 - r0,) + shape[1:]).random(
            (r1 - r0,) + shape[1:], np.float32))
        assert np.array_equal(got, whole)
    manual_seed(9)
    assert np.array_equal(rng.site_generator(np, shape).random(shape, np.float32), whole)
    assert not np.array_equal(rng.site_generator(np, shape).random(shape, np.float32), whole)  # next site
    assert rng.site_seed(9, 0) != rng.site_seed(9, 1) != rng.site_seed(10, 0)


def test_slices_that_draw_different_numbers_of_masks_are_an_error():
    site = rng.current_site()
    blocks = [rng.batch_rows(0, site), rng.batch_rows(3, site)]
    with blocks[0]:
        F.dropout(Tensor(np.ones((3, 4))), 0.5)
    with pytest.raises(RuntimeError, match="different numbers of dropout masks"):
        rng.advance_sites(blocks)


def test_a_dropout_with_its_own_generator_draws_from_it_and_is_refused_under_threads():
    x = Tensor(np.ones((4, 8)))
    layer = nn.Dropout(0.5)
    layer.generator = np.random.default_rng(3)
    want = F.dropout(x, 0.5, rng=np.random.default_rng(3)).data
    np.testing.assert_array_equal(layer(x).data, want)  # the generator's stream, as before
    model = GPT(GPTConfig(vocab_size=11, block_size=6, n_layer=1, n_head=2, n_embd=8, dropout=0.1))
    model.transformer.h[0].attn.attn_dropout.generator = np.random.default_rng(0)
    ids = np.zeros((4, 6), dtype=np.int64)
    with pytest.raises(ValueError, match=r"transformer\.h\.0\.attn\.attn_dropout draws from a generator of its own"):
        DataParallel(model, threads=2)(ids, ids)


def _masks(model, x, y):
    """Every Dropout module's dropped positions in one forward (the fused attention reports its
    weights to its dropout module's hooks: fast/attention.py report_weights), and the sites used."""
    seen = []

    def hook(module, inputs, output):
        seen.append((output.data == 0) & (inputs[0].data != 0))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Dropout)]
    manual_seed(7)
    model(x, y)
    for h in handles:
        h.remove()
    return seen, rng.current_site()


def test_the_fused_gpt_draws_the_reference_gpts_masks_bit_for_bit():
    manual_seed(3)
    model = GPT(GPTConfig(vocab_size=11, block_size=6, n_layer=2, n_head=2, n_embd=8, dropout=0.1))
    data = np.random.default_rng(0)
    x, y = data.integers(0, 11, (3, 6)), data.integers(0, 11, (3, 6))
    ref, ref_sites = _masks(model, x, y)
    fused, fused_sites = _masks(fast.fuse(model), x, y)
    assert ref_sites == fused_sites == 7  # embedding + 2 x (attention, residual, MLP)
    assert len(ref) == len(fused) == 7 and sum(m.sum() for m in ref) > 0
    for a, b in zip(ref, fused):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- whole runs
def tiny_cfg(text_file, out_dir, **kw):
    cfg = dict(data=str(text_file), block_size=16, n_layer=2, n_head=2, n_embd=32, batch_size=6, max_iters=50,
               warmup_iters=5, eval_interval=25, eval_iters=2, log_interval=10, out_dir=str(out_dir),
               sample_tokens=0, quiet=True, dropout=0.1)
    cfg.update(kw)
    return from_flat(TrainConfig, **cfg)


def _auto_threads():
    """['auto'] once `--threads auto` exists (issue 26, item 2: another branch adds it), else []:
    the hook that puts `auto` into the split-independence test without editing it."""
    try:
        from_flat(TrainConfig, threads="auto")
    except (ValueError, TypeError):
        return []
    return ["auto"]


THREADS = [2, 4] + _auto_threads()  # 6 rows over 4 threads: uneven slices (2, 1, 1, 2)


def test_threads_train_the_run_of_one_thread_with_dropout_on(text_file, tmp_path):
    one = train(tiny_cfg(text_file, tmp_path / "one"))
    for threads in THREADS:
        split = train(tiny_cfg(text_file, tmp_path / f"t{threads}", threads=threads))
        # float32: the slices' gradients are summed in another order, nothing else differs
        np.testing.assert_allclose(split["losses"], one["losses"], rtol=1e-5, err_msg=f"threads={threads}")
        assert split["best_val"] == pytest.approx(one["best_val"], rel=1e-5)
    no_dropout = train(tiny_cfg(text_file, tmp_path / "off", dropout=0.0, max_iters=5))
    assert abs(no_dropout["losses"][-1] - one["losses"][4]) > 1e-4  # dropout really was on


# ---------------------------------------------------------------- checkpoints from before the keyed masks
def _make_old(path):
    """Rewrite a checkpoint as the code before the keyed masks wrote it: no "dropout" in its rng state."""
    meta, weights, optim = checkpoint.load(path)
    meta = dict(meta)
    meta["rng"] = {k: v for k, v in meta["rng"].items() if k != "dropout"}
    checkpoint.save(path, weights, optim, meta)


def test_an_old_checkpoint_with_dropout_is_refused_on_resume_and_still_samples(text_file, tmp_path):
    cfg = tiny_cfg(text_file, tmp_path / "run", max_iters=6, eval_interval=3, n_layer=1, n_embd=16)
    train(cfg, stop_at=3)
    _make_old(tmp_path / "run" / "ckpt.npz")
    with pytest.raises(ValueError, match=r"written before dropout masks were keyed .* cannot be continued exactly"
                                         r".*dropout 0\.1.*fine-tune from it"):
        train(cfg, resume=True)
    model, tokenizer, meta = load_model(tmp_path / "run" / "ckpt.npz")  # sampling reads the weights only
    assert "dropout" not in meta["rng"]
    out = model.eval().generate(np.array([[0]]), 5, seed=0)
    assert out.shape == (1, 6)
    from tinygrad_lm.models.gpt_classifier import GPTForSequenceClassification

    clf = GPTForSequenceClassification.from_pretrained(tmp_path / "run" / "ckpt.npz", 2, verbose=False)
    np.testing.assert_array_equal(clf.transformer.wte.weight.data, model.transformer.wte.weight.data)


def test_an_old_checkpoint_without_dropout_resumes_exactly(text_file, tmp_path):
    cfg = dict(max_iters=8, eval_interval=4, n_layer=1, n_embd=16, dropout=0.0)
    full = train(tiny_cfg(text_file, tmp_path / "a", **cfg))
    part = train(tiny_cfg(text_file, tmp_path / "b", **cfg), stop_at=5)
    _make_old(tmp_path / "b" / "ckpt.npz")
    rest = train(tiny_cfg(text_file, tmp_path / "b", **cfg), resume=True)
    assert part["losses"] + rest["losses"] == full["losses"]


def test_a_new_checkpoint_carries_the_site_and_a_future_format_is_refused(text_file, tmp_path):
    cfg = tiny_cfg(text_file, tmp_path / "run", max_iters=4, eval_interval=2, n_layer=1, n_embd=16)
    train(cfg)
    meta, _, _ = checkpoint.load(tmp_path / "run" / "ckpt.npz")
    assert meta["rng"]["dropout"] == {"format": rng.KEYED_FORMAT, "seed": cfg.run.seed, "site": 4 * 4}  # 4 per step
    state = dict(meta["rng"], dropout=dict(meta["rng"]["dropout"], format=rng.KEYED_FORMAT + 1))
    with pytest.raises(ValueError, match="upgrade tinygrad_lm"):
        rng.set_state(state)

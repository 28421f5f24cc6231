"""The thread split (fast/data_parallel.py, workers.py, blas.py): a DataParallel model gives the
same loss, outputs and gradients as one backward over the whole batch through the plain
`loss.backward()`, reproducible dropout, errors from worker threads re-raised, BLAS threads
restored, and a split optimizer step equal to the sequential one."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_lm
from tinygrad_lm import Tensor, fast, nn, no_grad
from tinygrad_lm.fast import blas, data_parallel, workers
from tinygrad_lm.fast.data_parallel import DataParallel
from tinygrad_lm.models.gpt import GPT, GPTConfig


def tiny_gpt(dropout=0.0, seed=0):
    tinygrad_lm.manual_seed(seed)
    cfg = GPTConfig(vocab_size=11, block_size=6, n_layer=2, n_head=2, n_embd=8, dropout=dropout)
    return GPT(cfg).to(dtype=np.float64)


def grads(model):
    return {n: p.grad.copy() for n, p in model.named_parameters()}


def split_step(model, x, y, threads):
    """The training loop's lines on a DataParallel model: returns the loss as a float."""
    logits, loss = DataParallel(model, threads)(x, y)
    loss.backward()
    return float(loss.item())


@settings(max_examples=15, deadline=None)
@given(B=st.integers(1, 5), T=st.integers(1, 6), threads=st.integers(1, 4), seed=st.integers(0, 999),
       ignored=st.integers(0, 8), fused=st.booleans())
def test_split_model_equals_one_backward_over_the_batch(B, T, threads, seed, ignored, fused):
    rng = np.random.default_rng(seed)
    x, y = rng.integers(0, 11, (B, T)), rng.integers(0, 11, (B, T))
    y.reshape(-1)[:min(ignored, B * T - 1)] = -1  # uneven counted targets per slice; one stays
    model = tiny_gpt()
    if fused:
        fast.fuse(model)
    logits, loss = model(x, y)
    loss.backward()
    want, want_loss, want_logits = grads(model), float(loss.item()), logits.data.copy()
    model.zero_grad()
    logits, loss = DataParallel(model, threads)(x, y)
    loss.backward()
    assert float(loss.item()) == pytest.approx(want_loss, rel=1e-12)
    np.testing.assert_allclose(logits.data, want_logits, rtol=1e-12, atol=1e-14)
    for name, g in grads(model).items():
        np.testing.assert_allclose(g, want[name], rtol=1e-10, atol=1e-13, err_msg=name)


def test_gradients_through_the_split_logits_reach_the_parameters():
    # a loss computed outside the model from the joined logits back-propagates through every slice
    rng = np.random.default_rng(2)
    x = rng.integers(0, 11, (4, 5))
    gy = rng.standard_normal((4, 5, 11))
    model = tiny_gpt()
    logits, _ = model(x, np.zeros((4, 5), dtype=np.int64))
    (logits * Tensor(gy)).sum().backward()
    want = grads(model)
    model.zero_grad()
    logits, _ = DataParallel(model, 2)(x, np.zeros((4, 5), dtype=np.int64))
    (logits * Tensor(gy)).sum().backward()
    for name, g in grads(model).items():
        np.testing.assert_allclose(g, want[name], rtol=1e-10, atol=1e-13, err_msg=name)


def test_evaluation_under_no_grad_splits_the_forward_only():
    rng = np.random.default_rng(3)
    x, y = rng.integers(0, 11, (5, 6)), rng.integers(0, 11, (5, 6))
    model = tiny_gpt(dropout=0.5).eval()
    with no_grad():
        want_logits, want_loss = model(x, y)
        logits, loss = DataParallel(model, 3)(x, y)
        last, none = DataParallel(model, 2)(x)  # no targets: the last position's logits, loss None
    assert not loss.requires_grad and loss.item() == pytest.approx(want_loss.item(), rel=1e-12)
    np.testing.assert_allclose(logits.data, want_logits.data, rtol=1e-12)
    assert last.shape == (5, 1, 11) and none is None
    assert all(p.grad is None for p in model.parameters())


def test_the_wrapper_stands_in_for_the_model():
    model = tiny_gpt()
    wrapped = DataParallel(model, 2)
    assert wrapped.module is model and wrapped.config is model.config
    assert list(wrapped.state_dict()) == list(model.state_dict())
    assert wrapped.parameters() == model.parameters()
    wrapped.eval()
    assert not model.training
    with pytest.raises(ValueError, match="threads must be >= 1"):
        DataParallel(model, 0)


def test_replicas_share_arrays_and_ties_but_not_parameter_objects():
    model = tiny_gpt()
    replica, pairs = data_parallel.replicate(model)
    assert len(pairs) == len(model.parameters())
    for p, q in pairs:
        assert q is not p and q.data is p.data
    assert replica.lm_head.weight is replica.transformer.wte.weight  # the tie survives
    assert replica.transformer.h[0] is not model.transformer.h[0]


def test_a_slice_with_no_counted_targets_gets_no_gradient_and_no_nan():
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 11, (4, 5)), rng.integers(0, 11, (4, 5))
    y[:2] = -1  # the first thread's slice is all padding
    model = tiny_gpt()
    _, loss = model(x[2:], y[2:])
    loss.backward()
    want = grads(model)
    model.zero_grad()
    assert split_step(model, x, y, threads=2) == pytest.approx(float(loss.item()), rel=1e-12)
    for name, g in grads(model).items():
        np.testing.assert_allclose(g, want[name], rtol=1e-10, atol=1e-13)


def test_dropout_is_reproducible_under_the_global_seed():
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 11, (4, 6)), rng.integers(0, 11, (4, 6))
    runs = []
    for _ in range(2):
        model = tiny_gpt(dropout=0.3, seed=5)
        tinygrad_lm.manual_seed(7)
        loss = split_step(model, x, y, threads=2)
        runs.append((loss, grads(model), tinygrad_lm.engine.rng.get_state()))
    (l1, g1, s1), (l2, g2, s2) = runs
    assert l1 == l2 and s1 == s2
    for name in g1:
        np.testing.assert_array_equal(g1[name], g2[name])
    model = tiny_gpt(dropout=0.3, seed=5)
    tinygrad_lm.manual_seed(8)
    assert split_step(model, x, y, threads=2) != l1  # the seed really matters


def test_an_error_in_a_worker_thread_is_raised_in_the_caller():
    model = tiny_gpt()
    x = np.zeros((2, 3), dtype=np.int64)
    y = np.zeros((2, 3), dtype=np.int64)
    x[1, 0] = 99  # only the second slice (a worker thread's) has a bad id
    with pytest.raises(IndexError, match="99"):
        split_step(model, x, y, threads=2)


def test_blas_threads_restores_the_previous_count():
    found = blas._find_openblas()
    if found is None:
        pytest.skip("no OpenBLAS found in this process (the context manager is then a no-op)")
    _, get_fn = found
    before = get_fn()
    with blas.blas_threads(1) as ok:
        assert ok and get_fn() == 1
    assert get_fn() == before


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_split_optimizer_step_equals_the_sequential_step(threads):
    from tinygrad_lm.optim import AdamW, param_groups

    models = [tiny_gpt(seed=3), tiny_gpt(seed=3)]
    opts = [AdamW(param_groups(m.named_parameters(), 0.1), lr=1e-2) for m in models]
    assert fast.split_optimizer_step(opts[1], threads=threads) is opts[1]
    rng = np.random.default_rng(0)
    for step in range(3):
        grads_now = {n: rng.standard_normal(p.shape) for n, p in models[0].named_parameters()}
        for m in models:
            for n, p in m.named_parameters():
                p.grad = grads_now[n].copy()
        opts[0].step()
        opts[1].step()
    for (n, a), (_, b) in zip(models[0].named_parameters(), models[1].named_parameters()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=n)
    assert opts[0].state_dict()["state"].keys() == opts[1].state_dict()["state"].keys()


def test_run_in_threads_runs_everything_and_reraises_in_list_order():
    seen = []
    workers.run_in_threads([lambda: seen.append(0), lambda: seen.append(1), lambda: seen.append(2)])
    assert sorted(seen) == [0, 1, 2]

    def fail(msg):
        raise ValueError(msg)

    with pytest.raises(ValueError, match="second"):
        workers.run_in_threads([lambda: None, lambda: fail("second"), lambda: fail("third")])
    workers.run_in_threads([lambda: None, lambda: None])  # the workers survive an error


@pytest.mark.parametrize("threads", [2, 3])
def test_split_block_with_a_differentiable_input_equals_one_backward(threads):
    tinygrad_lm.manual_seed(0)
    block = nn.Block(8, 2).to(dtype=np.float64)
    rng = np.random.default_rng(0)
    xd, gy = rng.standard_normal((5, 4, 8)), rng.standard_normal((5, 4, 8))
    x = Tensor(xd, requires_grad=True)
    y = block(x)
    y.backward(gy)
    want = {n: p.grad.copy() for n, p in block.named_parameters()}
    want_x, want_y = x.grad.copy(), y.data.copy()
    block.zero_grad()
    x2 = Tensor(xd, requires_grad=True)
    out = DataParallel(block, threads)(x2)  # one Tensor out: the slices' outputs joined
    out.backward(gy)
    np.testing.assert_allclose(out.data, want_y, rtol=1e-12)
    np.testing.assert_allclose(x2.grad, want_x, rtol=1e-10, atol=1e-13)
    for n, p in block.named_parameters():
        np.testing.assert_allclose(p.grad, want[n], rtol=1e-10, atol=1e-13, err_msg=n)


def test_run_in_threads_nested_inside_its_own_functions_runs_in_turn():
    seen = []

    def outer(k):
        workers.run_in_threads([lambda: seen.append((k, 0)), lambda: seen.append((k, 1))])

    workers.run_in_threads([lambda: outer("a"), lambda: outer("b")])  # would deadlock if it waited
    assert sorted(seen) == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]


def test_speed_up_fuses_and_wraps_only_with_threads():
    from tinygrad_lm.optim import AdamW

    model = tiny_gpt()
    opt = AdamW(model.parameters())
    same, same_opt = fast.speed_up(model, opt, threads=1)
    assert same is model and same_opt is opt and type(model.lm_head).__name__ == "FusedLinear"
    found = blas._find_openblas()
    before = found[1]() if found else None
    try:
        wrapped, opt2 = fast.speed_up(model, opt, threads=2)  # limits BLAS to 1 thread from now on
        assert found is None or found[1]() == 1
    finally:
        if before is not None:
            blas.set_blas_threads(before)
    assert isinstance(wrapped, DataParallel) and wrapped.module is model and opt2 is opt
    assert "step" in vars(opt)  # the split step, on this optimizer only
    with pytest.raises(ValueError, match="threads must be >= 1"):
        fast.speed_up(model, opt, threads=0)

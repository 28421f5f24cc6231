"""The data-parallel step (parallel.py): the same gradients as one backward over the whole
batch, reproducible dropout, errors from worker threads re-raised, BLAS threads restored."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_lm
from tinygrad_lm import parallel
from tinygrad_lm.model import GPT, GPTConfig


def tiny_gpt(dropout=0.0, seed=0):
    tinygrad_lm.manual_seed(seed)
    cfg = GPTConfig(vocab_size=11, block_size=6, n_layer=2, n_head=2, n_embd=8, dropout=dropout)
    return GPT(cfg).to(dtype=np.float64)


def grads(model):
    return {n: p.grad.copy() for n, p in model.named_parameters()}


@settings(max_examples=15, deadline=None)
@given(B=st.integers(1, 5), T=st.integers(1, 6), threads=st.integers(1, 4), seed=st.integers(0, 999),
       ignored=st.integers(0, 8))
def test_forward_backward_equals_one_backward_over_the_batch(B, T, threads, seed, ignored):
    rng = np.random.default_rng(seed)
    x, y = rng.integers(0, 11, (B, T)), rng.integers(0, 11, (B, T))
    y.reshape(-1)[:min(ignored, B * T - 1)] = -1  # uneven counted targets per slice; one stays
    model = tiny_gpt()
    _, loss = model(x, y)
    loss.backward()
    want, want_loss = grads(model), float(loss.item())
    model.zero_grad()
    got_loss = parallel.forward_backward(model, x, y, threads=threads)
    assert got_loss == pytest.approx(want_loss, rel=1e-12)
    for name, g in grads(model).items():
        np.testing.assert_allclose(g, want[name], rtol=1e-10, atol=1e-13, err_msg=name)


def test_a_slice_with_no_counted_targets_gets_no_gradient_and_no_nan():
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 11, (4, 5)), rng.integers(0, 11, (4, 5))
    y[:2] = -1  # the first thread's slice is all padding
    model = tiny_gpt()
    _, loss = model(x[2:], y[2:])
    loss.backward()
    want = grads(model)
    model.zero_grad()
    assert parallel.forward_backward(model, x, y, threads=2) == pytest.approx(float(loss.item()), rel=1e-12)
    for name, g in grads(model).items():
        np.testing.assert_allclose(g, want[name], rtol=1e-10, atol=1e-13)


def test_dropout_is_reproducible_under_the_global_seed():
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 11, (4, 6)), rng.integers(0, 11, (4, 6))
    runs = []
    for _ in range(2):
        model = tiny_gpt(dropout=0.3, seed=5)
        tinygrad_lm.manual_seed(7)
        loss = parallel.forward_backward(model, x, y, threads=2)
        runs.append((loss, grads(model), tinygrad_lm.rng.get_state()))
    (l1, g1, s1), (l2, g2, s2) = runs
    assert l1 == l2 and s1 == s2
    for name in g1:
        np.testing.assert_array_equal(g1[name], g2[name])
    model = tiny_gpt(dropout=0.3, seed=5)
    tinygrad_lm.manual_seed(8)
    assert parallel.forward_backward(model, x, y, threads=2) != l1  # the seed really matters


def test_an_error_in_a_worker_thread_is_raised_in_the_caller():
    model = tiny_gpt()
    x = np.zeros((2, 3), dtype=np.int64)
    y = np.zeros((2, 3), dtype=np.int64)
    x[1, 0] = 99  # only the second slice (a worker thread's) has a bad id
    with pytest.raises(IndexError, match="99"):
        parallel.forward_backward(model, x, y, threads=2)


def test_blas_threads_restores_the_previous_count():
    blas = parallel._find_openblas()
    if blas is None:
        pytest.skip("no OpenBLAS found in this process (the context manager is then a no-op)")
    _, get_fn = blas
    before = get_fn()
    with parallel.blas_threads(1) as ok:
        assert ok and get_fn() == 1
    assert get_fn() == before


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_optimizer_step_equals_the_sequential_step(threads):
    from tinygrad_lm.optim import AdamW, param_groups

    models = [tiny_gpt(seed=3), tiny_gpt(seed=3)]
    opts = [AdamW(param_groups(m.named_parameters(), 0.1), lr=1e-2) for m in models]
    rng = np.random.default_rng(0)
    for step in range(3):
        grads_now = {n: rng.standard_normal(p.shape) for n, p in models[0].named_parameters()}
        for m in models:
            for n, p in m.named_parameters():
                p.grad = grads_now[n].copy()
        opts[0].step()
        parallel.optimizer_step(opts[1], threads=threads)
    for (n, a), (_, b) in zip(models[0].named_parameters(), models[1].named_parameters()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=n)
    assert opts[0].state_dict()["state"].keys() == opts[1].state_dict()["state"].keys()


def test_run_in_threads_runs_everything_and_reraises_in_list_order():
    seen = []
    parallel.run_in_threads([lambda: seen.append(0), lambda: seen.append(1), lambda: seen.append(2)])
    assert sorted(seen) == [0, 1, 2]

    def fail(msg):
        raise ValueError(msg)

    with pytest.raises(ValueError, match="second"):
        parallel.run_in_threads([lambda: None, lambda: fail("second"), lambda: fail("third")])
    parallel.run_in_threads([lambda: None, lambda: None])  # the workers survive an error


@pytest.mark.parametrize("threads", [2, 3])
def test_backward_split_of_a_block_equals_one_backward(threads):
    from tinygrad_lm import Tensor, nn

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
    out = parallel.backward_split(block, [x2], Tensor(gy), threads=threads)
    np.testing.assert_allclose(out, want_y, rtol=1e-12)
    np.testing.assert_allclose(x2.grad, want_x, rtol=1e-10, atol=1e-13)
    for n, p in block.named_parameters():
        np.testing.assert_allclose(p.grad, want[n], rtol=1e-10, atol=1e-13, err_msg=n)


def test_run_in_threads_nested_inside_its_own_functions_runs_in_turn():
    seen = []

    def outer(k):
        parallel.run_in_threads([lambda: seen.append((k, 0)), lambda: seen.append((k, 1))])

    parallel.run_in_threads([lambda: outer("a"), lambda: outer("b")])  # would deadlock if it waited
    assert sorted(seen) == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]


@pytest.mark.parametrize("n", [0, 1, 5])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_for_each_in_threads_calls_every_index_once(n, threads):
    calls = [0] * n

    def bump(j):
        calls[j] += 1

    parallel.for_each_in_threads(bump, n, threads)
    assert calls == [1] * n

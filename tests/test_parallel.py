"""Threaded elementwise kernels give exactly the single-threaded results."""
import numpy as np
import pytest

from tinygrad_lm import Tensor
from tinygrad_lm.parallel import MIN_ELEMENTS, num_threads, parallel_rows


def test_parallel_rows_covers_every_row_once(monkeypatch):
    monkeypatch.setenv("TINYGRAD_LM_THREADS", "3")
    x = np.arange(MIN_ELEMENTS * 2, dtype=np.float64).reshape(-1, 16)
    out = np.zeros_like(x)
    seen = []

    def kernel(a, o):
        seen.append(a.shape[0])
        np.multiply(a, 2.0, out=o)

    parallel_rows(kernel, x, out)
    np.testing.assert_array_equal(out, 2 * x)
    assert len(seen) == 3 and sum(seen) == x.shape[0]


def test_kernel_errors_surface_in_the_caller(monkeypatch):
    monkeypatch.setenv("TINYGRAD_LM_THREADS", "2")

    def kernel(a):
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        parallel_rows(kernel, np.zeros((MIN_ELEMENTS, 2)))


@pytest.mark.parametrize("threads", ["1", "2", "4"])
def test_threaded_gelu_equals_single_threaded(threads, monkeypatch):
    rng = np.random.default_rng(0)
    data = rng.standard_normal((3, 70, 512)).astype(np.float32)  # above MIN_ELEMENTS
    gy = rng.standard_normal(data.shape).astype(np.float32)
    monkeypatch.setenv("TINYGRAD_LM_THREADS", "1")
    x1 = Tensor(data, requires_grad=True)
    y1 = x1.gelu()
    y1.backward(gy)
    monkeypatch.setenv("TINYGRAD_LM_THREADS", threads)
    assert num_threads() == int(threads)
    x2 = Tensor(data, requires_grad=True)
    y2 = x2.gelu()
    y2.backward(gy)
    np.testing.assert_array_equal(y1.data, y2.data)
    np.testing.assert_array_equal(x1.grad, x2.grad)


def _run_layer(fn, shapes, threads, monkeypatch):
    monkeypatch.setenv("TINYGRAD_LM_THREADS", threads)
    rng = np.random.default_rng(1)
    inputs = [Tensor(rng.standard_normal(s).astype(np.float32), requires_grad=True) for s in shapes]
    out = fn(*inputs)
    out.backward(np.random.default_rng(2).standard_normal(out.shape).astype(np.float32))
    return out.data, [t.grad for t in inputs]


@pytest.mark.parametrize("name", ["layer_norm", "attention", "masked_attention"])
def test_threaded_fused_layers_equal_single_threaded(name, monkeypatch):
    from tinygrad_lm import functional as F

    mask = np.ones((3, 1, 1, 96), dtype=bool)
    mask[0, ..., 50:] = False  # padding: some queries still see keys, none of the later keys count
    cases = {
        "layer_norm": (lambda x, w, b: F.layer_norm(x, w, b), [(6, 96, 128), (128,), (128,)]),
        "attention": (lambda q, k, v: F.scaled_dot_product_attention(q, k, v), [(3, 4, 96, 32)] * 3),
        "masked_attention": (lambda q, k, v: F.scaled_dot_product_attention(q, k, v, mask=mask),
                             [(3, 4, 96, 32)] * 3),
    }
    fn, shapes = cases[name]
    y1, g1 = _run_layer(fn, shapes, "1", monkeypatch)
    y3, g3 = _run_layer(fn, shapes, "3", monkeypatch)
    np.testing.assert_array_equal(y1, y3)
    for a, b in zip(g1, g3):
        np.testing.assert_array_equal(a, b)

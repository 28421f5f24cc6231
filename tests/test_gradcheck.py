"""The gradient checker itself: it passes correct ops and fails broken ones, loudly.

The key case is DeZero's hole: a softmax whose backward returns zeros passes a check that
reduces the output with a plain sum (softmax rows sum to 1, so d(sum)/dx = 0 whatever the
backward says). `gradcheck` reduces with a fixed random weighting, and catches it.
"""
import re

import numpy as np
import pytest

from tinygrad_lm import Function, Tensor
from tinygrad_lm import gradcheck
from tinygrad_lm.engine.backend import get_array_module


def leaf(a):
    return Tensor(np.asarray(a, dtype=np.float64), requires_grad=True)


class GoodSoftmax(Function):
    """Softmax over the last axis with the correct backward, y * (gy - sum(y * gy))."""

    def forward(self, x):
        xp = get_array_module(x)
        e = xp.exp(x - x.max(axis=-1, keepdims=True))
        self.y = e / e.sum(axis=-1, keepdims=True)
        return self.y

    def backward(self, gy):
        return self.y * (gy - (self.y * gy).sum(axis=-1, keepdims=True))


class ZeroBackwardSoftmax(GoodSoftmax):
    """Deliberately wrong: the gradient is always zero."""

    def backward(self, gy):
        return np.zeros_like(gy)


class ScaledBackwardSoftmax(GoodSoftmax):
    """Deliberately wrong: the gradient is off by a factor."""
    factor = 1.5

    def backward(self, gy):
        return super().backward(gy) * self.factor


class WrongSecondInputMul(Function):
    """x * y whose gradient for y is wrong (uses x + 1 instead of x), for input 1 only."""

    def forward(self, x, y):
        self.x, self.y = x, y
        return x * y

    def backward(self, gy):
        return gy * self.y, gy * (self.x + 1)


def plain_sum_gradcheck(fn, x, eps=1e-6, atol=1e-5, rtol=1e-3):
    """The check DeZero does: reduce with a plain sum, compare with central differences.

    Returns True when analytic and numeric gradients agree (it does not raise).
    """
    x = leaf(x)
    fn(x).sum().backward()
    analytic = x.grad
    numeric = np.zeros(x.shape)
    for j in range(x.size):
        xp_, xm = x.data.copy(), x.data.copy()
        xp_.flat[j] += eps
        xm.flat[j] -= eps
        numeric.flat[j] = (fn(Tensor(xp_)).data.sum() - fn(Tensor(xm)).data.sum()) / (2 * eps)
    return bool(np.all(np.abs(analytic - numeric) <= atol + rtol * np.abs(numeric)))


@pytest.fixture
def x(rng):
    return rng.standard_normal((3, 4))


# ----------------------------------------------------------------- passes correct ops
def test_passes_correct_ops(x, rng):
    assert gradcheck(lambda t: GoodSoftmax()(t), [leaf(x)]) is True
    w, b = rng.standard_normal((4, 5)), rng.standard_normal(5)
    assert gradcheck(lambda t, w, b: (t @ w + b).tanh(), [leaf(x), leaf(w), leaf(b)]) is True


@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_passes_for_any_seed(x, seed):
    assert gradcheck(lambda t: t.softmax(axis=0) * t, [leaf(x)], seed=seed)


def test_zero_dim_input(rng):
    assert gradcheck(lambda t: (t * t).exp(), [leaf(np.array(0.7))])


def test_multiple_outputs_are_all_weighted(x):
    assert gradcheck(lambda t: (t.exp(), t * t), [leaf(x)])
    assert gradcheck(lambda t: t.split([1, 3], axis=1), [leaf(x)])


class ForgetsSecondOutput(Function):
    """(2x, x^2) whose backward drops the second output's gradient."""

    def forward(self, x):
        self.x = x
        return 2 * x, x * x

    def backward(self, g1, g2):
        return 2 * g1 if g1 is not None else np.zeros_like(self.x)


def test_catches_a_wrong_gradient_of_the_second_output(x):
    with pytest.raises(AssertionError, match="input 0"):
        gradcheck(lambda t: ForgetsSecondOutput()(t), [leaf(x)])
    assert gradcheck(lambda t: ForgetsSecondOutput()(t)[0], [leaf(x)])  # first output alone is right


# ----------------------------------------------------------------- catches wrong backwards
def test_catches_zero_backward_softmax_and_names_input_and_element(x):
    with pytest.raises(AssertionError) as info:
        gradcheck(lambda t: ZeroBackwardSoftmax()(t), [leaf(x)])
    msg = str(info.value)
    assert re.search(r"gradcheck failed for input 0 \(shape \(3, 4\)\): worst element \(\d+, \d+\) "
                     r"has analytic grad 0 but numeric grad -?\d", msg), msg
    assert re.search(r"\d+ of 12 elements differ", msg), msg


def test_plain_sum_would_miss_the_zero_backward_softmax(x):
    """The random weighting is what catches it: with a plain sum both gradients are ~0."""
    assert plain_sum_gradcheck(lambda t: ZeroBackwardSoftmax()(t), x)  # the broken op passes
    assert plain_sum_gradcheck(lambda t: GoodSoftmax()(t), x)
    with pytest.raises(AssertionError):
        gradcheck(lambda t: ZeroBackwardSoftmax()(t), [leaf(x)])  # the weighted check does not


def test_catches_backward_off_by_a_factor_and_reports_the_worst_element(x):
    with pytest.raises(AssertionError) as info:
        gradcheck(lambda t: ScaledBackwardSoftmax()(t), [leaf(x)])
    msg = str(info.value)
    m = re.search(r"input 0 \(shape \(3, 4\)\): worst element \((\d+), (\d+)\) has analytic grad "
                  r"(\S+) but numeric grad (\S+) ", msg)
    assert m, msg
    row, col, analytic, numeric = int(m[1]), int(m[2]), float(m[3]), float(m[4])
    # recompute independently: the correct gradient at that element, and the broken one
    t = leaf(x)
    y = GoodSoftmax()(t)
    y.backward(np.random.default_rng(0).standard_normal(x.shape))
    assert numeric == pytest.approx(t.grad[row, col], rel=1e-6, abs=1e-8)
    assert analytic == pytest.approx(1.5 * t.grad[row, col], rel=1e-6, abs=1e-8)
    # and it is the element with the largest violation of the tolerance
    err = np.abs(0.5 * t.grad) - (1e-5 + 1e-3 * np.abs(t.grad))
    assert (row, col) == np.unravel_index(np.argmax(err), x.shape)


def test_names_the_input_whose_gradient_is_wrong(rng):
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    with pytest.raises(AssertionError, match=r"gradcheck failed for input 1 \(shape \(2, 3\)\)"):
        gradcheck(lambda s, t: WrongSecondInputMul()(s, t), [leaf(a), leaf(b)])
    # when input 1 is not checked (requires_grad False), the wrong gradient is not looked at
    assert gradcheck(lambda s, t: WrongSecondInputMul()(s, t), [leaf(a), Tensor(b)])


def test_small_error_passes_loose_tolerance_and_fails_tight_one(x):
    class Slightly(GoodSoftmax):
        def backward(self, gy):
            return super().backward(gy) * 1.005

    assert gradcheck(lambda t: Slightly()(t), [leaf(x)], rtol=1e-2)
    with pytest.raises(AssertionError, match=r"rtol 0\.001"):
        gradcheck(lambda t: Slightly()(t), [leaf(x)], rtol=1e-3)


def test_non_finite_analytic_gradient_fails(x):
    class NanBackward(GoodSoftmax):
        def backward(self, gy):
            g = super().backward(gy)
            g[1, 2] = np.nan
            return g

    with pytest.raises(AssertionError, match=r"worst element \(1, 2\) has analytic grad nan"):
        gradcheck(lambda t: NanBackward()(t), [leaf(x)])


# ----------------------------------------------------------------- float64, inputs, params
def test_runs_in_float64_even_for_float32_inputs(x):
    seen = []

    def fn(t):
        seen.append(t.dtype)
        return t.tanh()

    assert gradcheck(fn, [Tensor(x.astype(np.float32), requires_grad=True)], atol=1e-8, rtol=1e-6)
    assert set(seen) == {np.dtype(np.float64)}


def test_non_float_inputs_pass_through(x):
    idx = np.array([2, 0, 2])
    assert gradcheck(lambda t, i: t[:, i.data], [leaf(x), Tensor(idx)])
    assert gradcheck(lambda t, i: t[i.data], [leaf(x), idx])


def test_needs_something_to_check(x):
    with pytest.raises(ValueError, match="nothing to check"):
        gradcheck(lambda t: t * 2, [Tensor(x)])


def test_fn_must_return_tensors(x):
    with pytest.raises(TypeError, match="fn must return a Tensor or a tuple of Tensors, got ndarray"):
        gradcheck(lambda t: t.data * 2, [leaf(x)])


def test_params_argument_checks_closed_over_parameters(x, rng):
    w = leaf(rng.standard_normal((4, 2)))
    b = leaf(rng.standard_normal(2))
    w_before, b_before = w.data.copy(), b.data.copy()
    assert gradcheck(lambda t: (t @ w + b).tanh(), [leaf(x)], params=[w, b])
    assert gradcheck(lambda t: (t @ w + b).tanh(), [leaf(x)], params={"w": w, "b": b})
    np.testing.assert_array_equal(w.data, w_before)  # perturbed in place, then restored
    np.testing.assert_array_equal(b.data, b_before)
    assert gradcheck(lambda: (Tensor(x) @ w).sum(axis=0), [], params={"w": w})  # only params


def test_params_with_a_wrong_gradient_are_named(x, rng):
    w = leaf(rng.standard_normal((3, 4)))
    with pytest.raises(AssertionError, match=r"gradcheck failed for param w \(shape \(3, 4\)\)"):
        gradcheck(lambda t: WrongSecondInputMul()(t, w), [leaf(x)], params={"w": w})
    with pytest.raises(AssertionError, match=r"gradcheck failed for param 0 \(shape \(3, 4\)\)"):
        gradcheck(lambda t: WrongSecondInputMul()(t, w), [Tensor(x)], params=[w])


def test_params_must_be_float64(x):
    w = Tensor(np.ones((4, 2), np.float32), requires_grad=True)
    with pytest.raises(TypeError, match="param w is float32"):
        gradcheck(lambda t: t @ w, [leaf(x)], params={"w": w})


def test_stale_param_grad_is_cleared_first(x, rng):
    w = leaf(rng.standard_normal((4, 2)))
    w.grad = np.full(w.shape, 100.0)  # left over from an earlier backward
    assert gradcheck(lambda t: t @ w, [leaf(x)], params=[w])


def test_inputs_are_copied_not_modified(x):
    t = leaf(x)
    before = t.data.copy()
    gradcheck(lambda s: s.exp(), [t])
    np.testing.assert_array_equal(t.data, before)
    assert t.grad is None  # gradcheck works on its own float64 copies

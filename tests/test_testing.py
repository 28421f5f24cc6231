"""`tinygrad_lm.testing` keeps its promises: each strategy draws only what it says (and reaches
every case it says it covers), `check_gradients` and `check_against` pass correct ops and fail
wrong ones with a short message that names the input, its shape, the worst element and both
values, and the backend helpers parametrize over the devices this machine has.
"""
import re
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import find, given, settings
from hypothesis import strategies as st

from tinygrad_lm import Function, Tensor, nn
from tinygrad_lm.engine import backend
from tinygrad_lm.testing import (arrays, away_from, broadcastable_shapes, check_against, check_gradients, device,
                                 devices, positive, probabilities, shapes, tensors, token_ids)

assert device  # the fixture, imported so that pytest finds it in this module

FEW = settings(max_examples=40)


# ----------------------------------------------------------------- shapes
@FEW
@given(s=shapes(min_dims=1, max_dims=3, min_side=2, max_side=4))
def test_shapes_respect_their_bounds(s):
    assert 1 <= len(s) <= 3 and all(2 <= n <= 4 for n in s)


def test_default_shapes_reach_0d_and_size_1_axes_and_4_dims():
    assert find(shapes(), lambda s: s == ()) == ()
    assert find(shapes(), lambda s: 1 in s and len(s) >= 2)
    assert len(find(shapes(), lambda s: len(s) == 4)) == 4


@FEW
@given(data=st.data())
def test_broadcastable_shapes_broadcast_to_exactly_the_shape(data):
    shape = data.draw(shapes(max_dims=4))
    partner = data.draw(broadcastable_shapes(shape))
    assert np.broadcast_shapes(shape, partner) == shape
    assert len(partner) <= len(shape)


def test_broadcastable_shapes_reach_fewer_dims_size_1_sides_and_0d():
    shape = (3, 4, 5)
    assert find(broadcastable_shapes(shape), lambda s: s == ()) == ()
    assert find(broadcastable_shapes(shape), lambda s: len(s) == 2) == (4, 5)  # shrinks to the kept sides
    assert find(broadcastable_shapes(shape), lambda s: s != shape and len(s) == 3) in {(1, 4, 5), (3, 1, 5), (3, 4, 1)}
    assert find(broadcastable_shapes(shape, min_dims=3), lambda s: True) == shape  # the simplest is shape itself


def test_broadcastable_shapes_min_dims_is_checked():
    with pytest.raises(ValueError, match=r"min_dims=3 must be between 0 and len\(shape\)=2"):
        broadcastable_shapes((2, 3), min_dims=3)


# ----------------------------------------------------------------- arrays and tensors
@FEW
@given(a=arrays(shapes(max_dims=3)))
def test_arrays_default_to_bounded_finite_float64(a):
    assert a.dtype == np.float64 and np.all(np.isfinite(a)) and np.all(np.abs(a) <= 2)


@FEW
@given(a=arrays((3, 4), np.float32), ids=arrays((5,), np.int64, token_ids(7)))
def test_arrays_take_dtype_and_elements(a, ids):
    assert a.dtype == np.float32 and a.shape == (3, 4)
    assert ids.dtype == np.int64 and np.all((0 <= ids) & (ids < 7))


@FEW
@given(a=arrays((6,), elements=st.integers(-40, 40).map(lambda i: i / 10), unique=True))
def test_unique_arrays_have_no_ties(a):
    assert len(set(a.tolist())) == 6


def test_arrays_without_a_default_for_the_dtype_ask_for_elements():
    with pytest.raises(TypeError, match="no default elements for dtype complex128; pass elements="):
        arrays((2,), np.complex128)


@FEW
@given(t=tensors(shapes(max_dims=2)), ids=tensors((3,), np.int64, token_ids(4)))
def test_tensors_are_float64_leaves_that_require_grad_and_ids_never_do(t, ids):
    assert isinstance(t, Tensor) and t.dtype == np.float64 and t.requires_grad and t._ctx is None
    assert ids.dtype == np.int64 and not ids.requires_grad


def test_tensors_on_cuda_without_a_gpu_fail_at_once_with_the_install_hint():
    if backend.gpu_available:
        pytest.skip("this machine has a GPU")
    with pytest.raises(RuntimeError, match="device 'cuda' needs CuPy"):
        tensors((2,), device="cuda")


# ----------------------------------------------------------------- domains
@FEW
@given(x=positive(), p=probabilities(), r=away_from([0.0, 1.0], margin=0.2), i=token_ids(3))
def test_domains_keep_their_distance(x, p, r, i):
    assert 0.1 <= x <= 4.0
    assert 0.01 <= p <= 0.99
    assert -2 <= r <= 2 and abs(r) >= 0.2 - 1e-12 and abs(r - 1) >= 0.2 - 1e-12  # 1.2 - 1 rounds below 0.2
    assert i in (0, 1, 2)


def test_away_from_reaches_every_allowed_piece():
    s = away_from([0.0, 1.0], margin=0.2)
    assert find(s, lambda r: r < -0.2) <= -0.2
    assert 0.2 <= find(s, lambda r: 0 < r < 1) <= 0.8
    assert find(s, lambda r: r > 1) >= 1.2


@pytest.mark.parametrize("make, message", [
    (lambda: positive(0.0), r"positive: min_value must be > 0, got 0.0"),
    (lambda: positive(2.0, 1.0), r"positive: need finite min_value < max_value, got \[2.0, 1.0\]"),
    (lambda: away_from(0, margin=3), r"away_from: nothing in \[-2.0, 2.0\] is 3 away from \[0.0\]"),
    (lambda: away_from(0, margin=0), r"away_from: margin must be > 0"),
    (lambda: probabilities(0.5), r"probabilities: margin must be in \(0, 0.5\), got 0.5"),
    (lambda: token_ids(0), r"token_ids: vocab must be >= 1, got 0"),
])
def test_bad_domain_arguments_say_what_is_wrong(make, message):
    with pytest.raises(ValueError, match=message):
        make()


# ----------------------------------------------------------------- check_gradients
@FEW
@given(data=st.data())
def test_check_gradients_passes_correct_ops_on_drawn_inputs(data):
    shape = data.draw(shapes(max_dims=3, max_side=3))
    a = data.draw(arrays(shape))
    b = data.draw(arrays(broadcastable_shapes(shape)))
    assert check_gradients(lambda x, y: (x * y + y).tanh(), a, b)
    assert check_gradients(lambda x: x.log().sqrt(), data.draw(arrays(shape, elements=positive(1.1, 4.0))))
    assert check_gradients(lambda x: x.relu(), data.draw(arrays(shape, elements=away_from(0))))


def test_check_gradients_takes_arrays_as_leaves_and_ids_as_constants(rng):
    w = rng.standard_normal((5, 3))
    ids = np.array([[0, 4, 4], [2, 1, 0]])
    assert check_gradients(lambda w, i: w[i.data].tanh(), w, ids)


class Triple(Function):
    """3x, with a backward that says 3x everywhere except 2x at one element."""

    def forward(self, x):
        return 3 * x

    def backward(self, gy):
        g = 3 * gy
        g.reshape(-1)[-1] *= 2 / 3
        return g


def test_check_gradients_message_is_one_short_line_with_input_shape_element_and_values(rng):
    x = rng.standard_normal((2, 3))
    with pytest.raises(AssertionError) as info:
        check_gradients(lambda a, t: a + Triple()(t), rng.standard_normal((2, 3)), x)
    msg = str(info.value)
    assert "\n" not in msg and len(msg) < 250, msg
    m = re.fullmatch(r"gradcheck failed for input 1 \(shape \(2, 3\)\): worst element \(1, 2\) has analytic grad "
                     r"(\S+) but numeric grad (\S+) \(abs error .*\); 1 of 6 elements differ", msg)
    assert m, msg
    weight = np.random.default_rng(0).standard_normal((2, 3))[1, 2]  # check_gradients' output weighting
    assert float(m[1]) == pytest.approx(2 * weight) and float(m[2]) == pytest.approx(3 * weight)


def test_check_gradients_tolerances_are_relative_and_absolute(rng):
    class Off(Function):  # x^2 with a gradient off by 1 part in 10^5, then by 1 part in 10^3
        factor = 1 + 1e-5

        def forward(self, x):
            self.x = x
            return x * x

        def backward(self, gy):
            return 2 * self.x * gy * self.factor

    x = rng.uniform(1, 2, (4,))
    assert check_gradients(lambda t: Off()(t), x)  # within the default rtol 1e-4
    Off.factor = 1 + 1e-3
    with pytest.raises(AssertionError, match=r"rtol 0.0001"):
        check_gradients(lambda t: Off()(t), x)
    assert check_gradients(lambda t: Off()(t), x, rtol=1e-2)


# ----------------------------------------------------------------- check_against
def twin_softmax(x):
    e = (x - x.max(axis=-1, keepdims=True).detach()).exp()
    return e / e.sum(axis=-1, keepdims=True)


def test_check_against_passes_twins_and_returns_true(rng):
    assert check_against(lambda x: x.softmax(axis=-1), twin_softmax, rng.standard_normal((3, 4)))


def test_check_against_names_a_wrong_value(rng):
    with pytest.raises(AssertionError, match=r"check_against: output 0 \(shape \(3, 4\)\) differs from the "
                                             r"reference: worst element \(\d, \d\) has value"):
        check_against(lambda x: x.softmax(axis=-1) * 1.01, twin_softmax, rng.standard_normal((3, 4)))


def test_check_against_names_a_wrong_gradient_and_a_wrong_output_count(rng):
    class Detached(Function):  # the right values, a zero gradient
        def forward(self, x):
            return np.tanh(x)

        def backward(self, gy):
            return np.zeros_like(gy)

    a, b = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    with pytest.raises(AssertionError, match=r"gradient of input 1 \(shape \(2, 3\)\) differs"):
        check_against(lambda x, y: x * Detached()(y), lambda x, y: x * y.tanh(), a, b)
    with pytest.raises(AssertionError, match="fn returned 2 outputs, the reference 1"):
        check_against(lambda x: (x, x), lambda x: x, a)


def test_check_against_compares_the_gradients_of_two_modules_parameters(rng):
    ref, other = nn.Linear(3, 2).to(dtype=np.float64), nn.Linear(3, 2).to(dtype=np.float64)
    other.load_state_dict(ref.state_dict())
    x = rng.standard_normal((4, 3))
    assert check_against(other, ref, x, params=(dict(other.named_parameters()), dict(ref.named_parameters())))
    # the same values and input gradient, but no gradient reaches the weight
    with pytest.raises(AssertionError, match=r"gradient of param weight \(shape \(2, 3\)\) differs"):
        check_against(lambda t: t @ other.weight.detach().transpose(0, 1) + other.bias, ref, x,
                      params=(dict(other.named_parameters()), dict(ref.named_parameters())))
    with pytest.raises(ValueError, match="params must be a pair"):
        check_against(other, ref, x, params=(list(other.parameters()),))


# ----------------------------------------------------------------- backends and import
def test_devices_are_numpy_always_and_cupy_skipped_without_a_gpu(monkeypatch):
    from tinygrad_lm.testing import backends

    monkeypatch.setitem(backends._standin, "install", None)  # as a user without our tests/ sees it
    params = devices()
    assert [p.values for p in params] == [("cpu",), ("cuda",)]
    assert [p.id for p in params] == ["numpy", "cupy"]
    (skip,) = params[1].marks
    assert skip.args == (not backend.gpu_available,)


def test_devices_offer_the_registered_standin_only_where_no_gpu_is(monkeypatch):
    from tinygrad_lm.testing import backends

    monkeypatch.setitem(backends._standin, "install", lambda mp: None)
    monkeypatch.setattr(backend, "gpu_available", False)
    params = devices()
    assert [p.id for p in params] == ["numpy", "cupy", "cupy-standin"]
    assert params[2].values == ("cuda",) and params[2].marks[0].name == "cupy_standin"
    monkeypatch.setattr(backend, "gpu_available", True)  # a real GPU: "cuda" means the real one
    assert [p.id for p in devices()] == ["numpy", "cupy"]


def test_the_device_fixture_gives_a_usable_device(device):
    t = Tensor(np.ones(2), device=device, requires_grad=True)
    assert check_gradients(lambda x: (x * x).exp(), t)


def test_importing_without_hypothesis_gives_an_install_hint():
    code = ("import sys; sys.modules['hypothesis'] = None\n"
            "import tinygrad_lm\n"  # the package itself imports without it
            "try:\n    import tinygrad_lm.testing\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "tinygrad_lm.testing needs Hypothesis and pytest (hypothesis is missing): pip install" in out

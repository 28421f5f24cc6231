"""Run one test on every array backend: NumPy always, CuPy where a GPU is usable.

What this file implements: `devices()`, the device names as pytest parameters ("cpu", and "cuda"
marked skip with the reason when CuPy or a GPU is missing, so the skip shows in the report
instead of the test vanishing), and `device`, a fixture over them. Use either:

    @pytest.mark.parametrize("device", devices())
    def test_my_op(device): ...

    from tinygrad_lm.testing import device   # in a test module or conftest.py: the fixture
    def test_my_op(device): ...

What it leaves out: choosing among several GPUs ("cuda" is the current CUDA device).

Follows pytest's parametrization with `pytest.param(..., marks=skipif)` in place of the copied
GPU test files DeZero keeps.
"""
import pytest

from .. import backend


def devices():
    """The backends as pytest parameters: "cpu" (id numpy) and "cuda" (id cupy, skipped unless
    `tinygrad_lm.backend.gpu_available`)."""
    reason = "CuPy is not installed" if backend.cupy is None else "CuPy found no usable GPU"
    return [pytest.param("cpu", id="numpy"),
            pytest.param("cuda", id="cupy", marks=pytest.mark.skipif(not backend.gpu_available, reason=reason))]


@pytest.fixture(params=devices())
def device(request):
    """Each backend's device name in turn ("cpu", then "cuda" where a GPU is)."""
    return request.param

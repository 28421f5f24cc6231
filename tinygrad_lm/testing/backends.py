"""Run one test on every array backend: NumPy always, CuPy where a GPU is usable, and a CPU
stand-in for CuPy where a test suite has registered one.

What this file implements: `devices()`, the device names as pytest parameters, and `device`,
a fixture over them. Use either:

    @pytest.mark.parametrize("device", devices())
    def test_my_op(device): ...

    from tinygrad_lm.testing import device   # in a test module or conftest.py: the fixture
    def test_my_op(device): ...

The parameters:
  * "cpu", id `numpy`: always;
  * "cuda", id `cupy`: the real GPU, marked skip with the reason when CuPy or a GPU is missing
    (so the skip shows in the report instead of the test vanishing);
  * "cuda", id `cupy-standin`: only after `register_standin(install)` and only where no real
    GPU is usable. The test runs with device "cuda" while a test double stands in for CuPy
    (tinygrad_lm's own suite registers `tests/cupy_standin.py`, a strict CPU imitation, from
    its conftest). The parameter carries the `cupy_standin` mark; the registering conftest
    installs the double for tests with that mark. Where a real GPU exists the stand-in is not
    offered: "cuda" means the real one, which stays the authority.
A user without a stand-in sees the first two, as before.

What it leaves out: choosing among several GPUs ("cuda" is the current CUDA device). The
`device` fixture's parameters are fixed when this module is first imported, so it offers the
stand-in only if `register_standin` ran before that; `devices()` reads the registration
each time it is called.

Follows pytest's parametrization with `pytest.param(..., marks=skipif)` in place of the copied
GPU test files DeZero keeps.
"""
import pytest

from ..engine import backend

_standin = {"install": None}


def register_standin(install):
    """Offer a CuPy test double as a third "cuda" parameter (id cupy-standin) from now on.

    Args:
        install: callable(monkeypatch) that makes the double `tinygrad_lm.engine.backend.cupy` with a
            GPU reported present, for one test; the conftest that registers it calls it for
            tests marked `cupy_standin`.
    """
    _standin["install"] = install


def standin_installer():
    """The registered installer, or None."""
    return _standin["install"]


def devices():
    """The backends as pytest parameters: "cpu" (id numpy), "cuda" (id cupy, skipped unless
    `tinygrad_lm.engine.backend.gpu_available`) and, where registered and no GPU is, "cuda" on the
    stand-in (id cupy-standin)."""
    reason = "CuPy is not installed" if backend.cupy is None else "CuPy found no usable GPU"
    params = [pytest.param("cpu", id="numpy"),
              pytest.param("cuda", id="cupy", marks=pytest.mark.skipif(not backend.gpu_available, reason=reason))]
    if _standin["install"] is not None and not backend.gpu_available:
        params.append(pytest.param("cuda", id="cupy-standin", marks=pytest.mark.cupy_standin))
    return params


def cuda_devices():
    """Only the "cuda" parameters of `devices()` (the real GPU and, where offered, the stand-in)."""
    return devices()[1:]


@pytest.fixture(params=devices())
def device(request):
    """Each backend's device name in turn ("cpu", then "cuda" where a GPU or a stand-in is)."""
    if request.node.get_closest_marker("cupy_standin") is not None:
        _standin["install"](request.getfixturevalue("monkeypatch"))
    return request.param

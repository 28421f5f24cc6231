"""The CuPy stand-in (`cupy_standin.py`, a test double) refuses what CuPy refuses: if it were
lenient, the CuPy half of the suite would pass on it and fail on a GPU."""
import numpy as np
import pytest

import cupy_standin as cp


def test_implicit_conversion_to_numpy_raises_and_explicit_transfers_count_syncs():
    x = cp.asarray(np.arange(3.0))
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array is not allowed"):
        np.asarray(x)
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.array(x, dtype=np.float32)
    before = cp.host_syncs
    np.testing.assert_array_equal(cp.asnumpy(x), [0.0, 1.0, 2.0])
    assert x.sum().item() == 3.0 and float(x[1]) == 1.0
    assert cp.host_syncs == before + 3


def test_mixing_host_and_device_arrays_raises_in_operators_ufuncs_functions_and_indexing():
    x, host = cp.asarray(np.ones(3)), np.ones(3)
    for mix in (lambda: x + host, lambda: host * x, lambda: np.add(x, host), lambda: cp.where(x > 0, x, host),
                lambda: np.concatenate([x, host]), lambda: x[np.array([0, 1])], lambda: x.__setitem__(0, host[:1])):
        with pytest.raises(TypeError, match="host array cannot be mixed"):
            mix()
    assert isinstance(x * np.float32(2) + 1, cp.ndarray)  # NumPy and Python scalars are fine, as in CuPy


def test_reductions_return_0d_device_arrays_and_numpy_functions_dispatch():
    x = cp.asarray(np.arange(6.0).reshape(2, 3))
    total = x.sum()
    assert isinstance(total, cp.ndarray) and total.shape == ()
    assert isinstance(np.exp(x), cp.ndarray) and isinstance(np.concatenate([x, x]), cp.ndarray)
    assert isinstance(np.max(x, axis=0), cp.ndarray) and isinstance(x[0, 1], cp.ndarray)
    out = cp.empty((2, 3))
    assert cp.exp(x, out=out) is out


def test_out_of_bounds_integer_ids_wrap_as_in_cupy():
    x = cp.asarray(np.arange(4.0))
    assert cp.asnumpy(x[cp.asarray(np.array([5, -1]))]).tolist() == [1.0, 3.0]

"""Row and column sums as matrix-vector products.

NumPy's `a.sum(axis=-1)` over short rows (the 64 keys of an attention row, the 128 features
of a LayerNorm row) runs a scalar loop per row; `a @ ones` hands the same sum to BLAS, which
is several times faster at these sizes (`python scripts/bench_kernels.py` times both; the
figures are in BENCHMARKS.md). Results agree to float32 rounding.
`rowdot(a, b)`, the sum over the last axis of a * b, is NumPy 2's `vecdot` where there is one:
one pass, no (..., n) product array: measured 20 against 31 us for `rowsum(a * a)` on
(6, 64, 128), a LayerNorm's variance in one thread's slice of the default command (thread CPU
time, median of 500 calls, the shared 2-core AMD machine). On NumPy 1.x and CuPy it is
`rowsum(a * b)`. Its summation order differs from the mat-vec's: equal to float32 rounding.
Leaves out: nothing; these are only faster spellings of `sum`.
"""
import numpy as np

from ..engine.backend import get_array_module
from .cache import DeviceCache

_ones = DeviceCache(32)
_numpy_ones = {}  # (n, dtype): NumPy's vectors, read without the cache's lock (a step asks ~65 times a thread)


def ones_vector(n, dtype, xp):
    """A cached vector of n ones (dtype, on xp's device): the right operand of a BLAS sum."""
    if xp is np:  # a plain dict read: its lookup is atomic, and the vectors are never written
        ones = _numpy_ones.get((n, dtype))
        if ones is None:
            if len(_numpy_ones) >= 32:  # bounded, as the device cache: many batch sizes do not grow it
                _numpy_ones.clear()
            ones = _numpy_ones[(n, dtype)] = np.ones(n, dtype=dtype)
            ones.flags.writeable = False
        return ones
    return _ones.get((n, np.dtype(dtype).str), xp, lambda: xp.ones(n, dtype=dtype))


def rowsum(a):
    """Sum over the last axis, kept as a size-1 axis: (..., n) -> (..., 1)."""
    return rowsum_weighted(a, ones_vector(a.shape[-1], a.dtype, get_array_module(a)))


def rowsum_weighted(a, w):
    """Sum over the last axis weighted by w, kept as a size-1 axis: (..., n), (n,) -> (..., 1)."""
    if a.ndim > 2 and a.flags.c_contiguous:  # one mat-vec over all rows, not one per leading index
        return (a.reshape(-1, a.shape[-1]) @ w).reshape(a.shape[:-1] + (1,))  # (N, n) @ (n,) -> (..., 1)
    return (a @ w)[..., None]


def colsum(a):
    """Sum over every axis but the last: (..., n) -> (n,)."""
    xp = get_array_module(a)
    rows = a.reshape(-1, a.shape[-1])  # (N, n)
    return ones_vector(rows.shape[0], a.dtype, xp) @ rows


def rowdot(a, b):
    """Sum over the last axis of a * b, kept as a size-1 axis: (..., n), (..., n) -> (..., 1)."""
    xp = get_array_module(a)
    if xp is np and hasattr(np, "vecdot"):  # NumPy >= 2: one pass, no product array
        return np.vecdot(a, b)[..., None]
    return rowsum(a * b)

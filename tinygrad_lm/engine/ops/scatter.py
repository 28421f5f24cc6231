"""Scatter-add, the backward of indexing and embedding: g[index] += values, repeats summed.

On NumPy it is `np.add.at`, the textbook one-liner. On a GPU `add.at` is an atomic add: the
order in which repeated indices land changes from run to run, so float sums (and training)
are not reproducible. There the same sum is done by a deterministic segment sum:

    order  = argsort(ids)                      rows with equal ids become one run
    cs     = [0; cumsum(values[order])]        prefix sums in float64, (N + 1, C)
    lo, hi = searchsorted(sorted ids, each id) the run [lo, hi) holding each row's id
    g[ids] = cs[hi] - cs[lo]                   every row of a run writes the same run total

All writes of one id carry the same value, so which write lands last does not matter, and
nothing here needs the number of runs on the host (no sync). The float64 prefix sums keep
the subtraction exact to about 1e-16 of the prefix's size.
Leaves out: a fused kernel (one thread block per run; `fast/` is the place for it).
"""
import numpy as np

from ..backend import get_array_module


def segment_sum(ids, values, n_rows):
    """Sum the rows of `values` (N, C) that share an id: out[k] = sum of values[i] with ids[i] == k.

    Args:
        ids: (N,) integer array, each in 0..n_rows-1.
        values: (N, C) array on the same device.
        n_rows: rows of the result.
    Returns:
        (n_rows, C) array in values' dtype; rows no id names are zero. Deterministic on every
        backend (no atomics).
    """
    xp = get_array_module(ids, values)
    out = xp.zeros((n_rows,) + values.shape[1:], dtype=values.dtype)
    if ids.size == 0:
        return out
    order = xp.argsort(ids)
    sorted_ids = ids[order]  # (N,)
    cs = xp.zeros((ids.shape[0] + 1,) + values.shape[1:], dtype=np.float64)  # (N + 1, C)
    xp.cumsum(values[order], axis=0, dtype=np.float64, out=cs[1:])
    lo = xp.searchsorted(sorted_ids, sorted_ids, side="left")  # (N,): first row of each row's run
    hi = xp.searchsorted(sorted_ids, sorted_ids, side="right")  # (N,): one past its last row
    out[sorted_ids] = (cs[hi] - cs[lo]).astype(values.dtype)  # equal values for equal ids
    return out


def scatter_add(shape, index, values):
    """A zero array of `shape` with `values` added at `index` (repeats accumulate): the gradient
    of `x[index]` for an advanced (integer or boolean array) index. NumPy: `np.add.at`; a GPU:
    `segment_sum` (deterministic), through `_scatter_add_segments`."""
    if get_array_module(values) is not np:
        return _scatter_add_segments(shape, index, values)
    g = np.zeros(shape, dtype=values.dtype)
    np.add.at(g, index, values)
    return g


def _scatter_add_segments(shape, index, values):
    """`scatter_add` as a segment sum over rows (index a single integer array on axis 0) or over
    flat element positions (any other advanced index)."""
    xp = get_array_module(values)
    if not isinstance(index, tuple) and getattr(index, "dtype", None) is not None \
            and np.issubdtype(index.dtype, np.integer):
        ids = index.reshape(-1) % shape[0]  # negative ids count from the end, as in indexing
        rows = values.reshape(ids.shape[0], -1)  # (N, row size)
        return segment_sum(ids, rows, shape[0]).reshape(shape)
    positions = xp.arange(int(np.prod(shape))).reshape(shape)[index].reshape(-1)  # flat target of each value
    return segment_sum(positions, values.reshape(-1, 1), int(np.prod(shape))).reshape(shape)

"""How one batch is cut into slices: the rows, the loss weight and the dropout stream of each.

Two things split a batch: threads in one process (`fast/data_parallel.py`) and processes
over MPI (`distributed.py`). Both use these three rules, which is why a 2-rank run and a
2-thread run compute the same slices with the same weights and the same dropout masks, and
agree bit for bit:

    split_rows(8, 2)               -> [slice(0, 4), slice(4, 8)]     nearly equal runs of rows
    slice_weights(targets, cuts)   -> [n_0 / N, n_1 / N]             counted targets (>= 0) per slice
    slice_generators(2)            -> two NumPy Generators, seeded from the global one in order

A slice's loss is the mean over its n_i counted targets, so weighting it by n_i / N makes
the weighted sum the whole batch's mean, and the summed gradients its gradient.
Leaves out: uneven weighting for other reductions (a sum loss, per-row losses).
"""
import numpy as np

from ..engine.rng import get_rng


def split_rows(n, parts):
    """Slice bounds cutting range(n) into `parts` nearly equal runs, in order."""
    edges = [round(i * n / parts) for i in range(parts + 1)]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]


def slice_weights(targets, slices):
    """n_i / N per slice: n_i its entries of `targets` that are >= 0 (its rows when targets is None).

    Args:
        targets: the batch's target ids (an array; negative = ignored: the GPT's -1, the masked LM's -100), or None.
        slices: the row slices of `split_rows`.
    """
    if targets is None:
        counts = [s.stop - s.start for s in slices]
    else:
        counts = [int((targets[s] >= 0).sum()) for s in slices]
    total = sum(counts)
    if total == 0:  # nothing counted anywhere: every slice's mean is NaN, as the whole batch's is
        counts = [s.stop - s.start for s in slices]
        total = sum(counts)
    return [c / total for c in counts]


def slice_generators(parts):
    """`parts` NumPy Generators for the slices' dropout, seeded by numbers drawn from the global
    generator (so the streams, and the global generator's state after, depend on the seed only)."""
    return [np.random.default_rng(int(s)) for s in get_rng(np).integers(0, 2**63, size=parts)]


def is_batch_first(v):
    """True for an array or Tensor with at least one axis (axis 0 is the batch)."""
    return (hasattr(v, "__array_interface__") or hasattr(v, "__cuda_array_interface__") or hasattr(v, "_ctx")) \
        and getattr(v, "ndim", 0) >= 1

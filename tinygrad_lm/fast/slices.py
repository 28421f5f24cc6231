"""How one batch is cut into slices: the rows and the loss weight of each.

Two things split a batch: threads in one process (`fast/data_parallel.py`) and processes
over MPI (`distributed.py`). Both use these two rules, which is why a 2-rank run and a
2-thread run compute the same slices with the same weights, and agree bit for bit:

    split_rows(8, 2)               -> [slice(0, 4), slice(4, 8)]     nearly equal runs of rows
    slice_weights(targets, cuts)   -> [n_0 / N, n_1 / N]             counted targets (>= 0) per slice

Dropout masks need no rule here: each slice runs inside `rng.batch_rows(first row)`, and the
keyed numbers of rng.py give it those rows of the whole batch's masks, so any split (1 thread,
2 threads, 2 ranks) draws the same masks. A Dropout with a generator of its own cannot be split
that way: `check_no_own_generators` refuses it.

A slice's loss is the mean over its n_i counted targets, so weighting it by n_i / N makes
the weighted sum the whole batch's mean, and the summed gradients its gradient.
Leaves out: uneven weighting for other reductions (a sum loss, per-row losses).
"""
from ..nn import Dropout


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


def check_no_own_generators(module, split, named_modules=None):
    """Raise ValueError if a Dropout in `module` (p > 0, training) draws from a generator of its
    own: its stream would follow the slices (threads racing for it, or each rank drawing the
    same numbers for other rows), not the rows. `split` names the split in the message;
    `named_modules`, when given, is the list `module.named_modules()` yields (a caller that
    walks the tree for other checks too walks it once)."""
    for name, m in module.named_modules() if named_modules is None else named_modules:
        if isinstance(m, Dropout) and m.generator is not None and m.p > 0 and m.training:
            raise ValueError(f"{split}: the Dropout module {name or '(the model)'} draws from a generator of its own, "
                             "whose masks would depend on how the batch is split; set its .generator to None (the "
                             "package's keyed masks are the same for any split) or do not split the batch")


def is_batch_first(v):
    """True for an array or Tensor with at least one axis (axis 0 is the batch)."""
    return (hasattr(v, "__array_interface__") or hasattr(v, "__cuda_array_interface__") or hasattr(v, "_ctx")) \
        and getattr(v, "ndim", 0) >= 1

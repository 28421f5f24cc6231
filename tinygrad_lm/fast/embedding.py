"""Fast twin of `F.embedding` / `nn.Embedding`: the lookup y = W[ids] as one Function.

Forward gathers rows: with the ids flattened to N positions and W (V, C),
    y_p = W[ids_p]                 for each position p, a (C,) row
Backward, from gy = dL/dy (N, C):
1. Row v of W is copied into y_p at every position p with ids_p = v, and nowhere else:
       d y_pc / d W_vc' = [ids_p == v] [c == c']
2. So its gradient sums the output gradients of all those positions:
       dL/dW_v = sum over p with ids_p = v of gy_p        (0 for an id that does not occur)
Token ids repeat within a batch, so this is a scatter-add into a zero (V, C) matrix, never
plain assignment `gW[ids] = gy` (which would keep only the last occurrence of each id).

The sum on NumPy, without `add.at`'s element-by-element scatter (the code's names; rows is gy
as (N, C), gw starts as zeros):
    order      = argsort(ids, stable)       positions grouped by id; each id's rows in the
                                            order they occur
    sorted_ids = ids[order]                 equal ids now form runs
    starts     = where each run begins      0, and each i where sorted_ids[i] differs
                                            from sorted_ids[i - 1]
    gw[sorted_ids[starts]] = add.reduceat(rows[order], starts, axis=0)
`add.reduceat` sums rows starts[r] .. starts[r + 1] - 1 of rows[order] for each run r: one row
per distinct id, so the final assignment has no repeated index and plain indexing is exact.
Sorting and `reduceat` are vectorised: measured 6.6x faster than `add.at` at V=65 and 2.0x at
V=1024 (BENCHMARKS.md's "Each fast kernel against its reference twin" section; `python
scripts/bench_kernels.py` times both). On a GPU the same sum is `engine/ops/shape.py`'s segment sum
(sorted ids, float64 prefix sums, no atomics), so that it is deterministic: `add.at` there is
an atomic add whose rounding changes from run to run. Forward + backward against the
reference (`weight[ids]`, whose backward is `add.at`): measured 5.8x faster on the CPU
(BENCHMARKS.md).
Leaves out: sparse gradients, max_norm renormalisation, padding_idx.
"""
from ..engine.backend import get_array_module
from ..engine.functional import _ids, check_ids
from ..nn import Embedding
from ..engine.ops.shape import segment_sum
from ..engine.tensor import Function


class EmbeddingKernel(Function):
    def __init__(self, ids):
        self.ids = ids

    def forward(self, weight):
        xp = get_array_module(weight)
        ids = self.ids
        check_ids(ids, weight.shape[0])
        self.weight_shape, self.dtype = weight.shape, weight.dtype
        return xp.take(weight, ids, axis=0)  # (*ids.shape, C)

    def backward(self, gy):
        xp = get_array_module(gy)
        ids, rows = self.ids.reshape(-1), gy.reshape(-1, self.weight_shape[1])  # (N,), (N, C)
        if xp.__name__ != "numpy":
            return segment_sum(ids, rows, self.weight_shape[0])  # deterministic: no atomics
        gw = xp.zeros(self.weight_shape, dtype=self.dtype)
        if ids.size == 0:
            return gw
        order = xp.argsort(ids, kind="stable")
        sorted_ids = ids[order]
        starts = xp.flatnonzero(xp.concatenate(([True], sorted_ids[1:] != sorted_ids[:-1])))  # first of each run
        gw[sorted_ids[starts]] = xp.add.reduceat(rows[order], starts, axis=0)  # (runs, C): one sum per id
        return gw


def embedding(ids, weight):
    """`F.embedding`, fused: rows of weight (V, C) picked by ids -> (*ids.shape, C)."""
    return EmbeddingKernel(_ids(ids, weight))(weight)


class FusedEmbedding(Embedding):
    """`nn.Embedding` with the fused kernel (same parameters, names and state dict)."""

    def forward(self, ids):
        return embedding(ids, self.weight)

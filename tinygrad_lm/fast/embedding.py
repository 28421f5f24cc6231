"""Fast twin of `F.embedding` / `nn.Embedding`: the lookup y = W[ids] as one Function.

Forward gathers rows; backward scatter-adds the output gradient into a zero (V, C) matrix:
token ids repeat within a batch, so the gradient of a row is the sum over all its occurrences
(never plain assignment, which would keep only the last occurrence). On NumPy the sum is done
by sorting the ids and adding each run of equal ids with one `add.reduceat`, which is several
times faster than `add.at`'s element-by-element scatter (`python
scripts/bench_kernels.py` times both: 6.6x at V=65, 2.0x at V=1024 on the machine of
BENCHMARKS.md's first section). On a GPU the same sum is `ops/scatter.py`'s segment sum
(sorted ids, float64 prefix sums, no atomics), so that it is deterministic: `add.at` there is
an atomic add whose rounding changes from run to run. Forward + backward against the
reference (`weight[ids]`, whose backward is `add.at`): 5.8x faster on the CPU.
Leaves out: sparse gradients, max_norm renormalisation, padding_idx.
"""
from ..engine.backend import get_array_module
from ..engine.functional import _ids, check_ids
from ..nn import Embedding
from ..engine.ops.scatter import segment_sum
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

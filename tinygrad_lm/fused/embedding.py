"""Embedding lookup y = W[ids] as one Function.

Forward gathers rows; backward scatter-adds the output gradient into a zero (V, C) matrix:
token ids repeat within a batch, so the gradient of a row is the sum over all its occurrences
(`add.at`, never plain assignment, which would keep only the last occurrence).
Leaves out: sparse gradients, max_norm renormalisation, padding_idx.
"""
from ..backend import get_array_module
from ..tensor import Function


class Embedding(Function):
    def __init__(self, ids):
        self.ids = ids

    def forward(self, weight):
        xp = get_array_module(weight)
        ids = self.ids
        if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= weight.shape[0]):
            bad = int(ids.min()) if int(ids.min()) < 0 else int(ids.max())
            raise IndexError(f"embedding: id {bad} is out of range for an embedding table of "
                             f"{weight.shape[0]} rows (valid ids are 0..{weight.shape[0] - 1})")
        self.weight_shape, self.dtype = weight.shape, weight.dtype
        return xp.take(weight, ids, axis=0)  # (*ids.shape, C)

    def backward(self, gy):
        xp = get_array_module(gy)
        gw = xp.zeros(self.weight_shape, dtype=self.dtype)
        xp.add.at(gw, self.ids.reshape(-1), gy.reshape(-1, self.weight_shape[1]))  # (N,), (N, C)
        return gw

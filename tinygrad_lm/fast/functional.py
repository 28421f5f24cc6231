"""The fused kernels as functions with `functional`'s names and arguments (`F.linear` ->
`fast.functional.linear`, ...), for code and tests that call layers as functions.

Each is pinned to its reference twin in `tinygrad_lm.engine.functional` by tests/test_fast.py.
Leaves out: the primitives that have no fused twin (softmax, relu...): use `functional`.
"""
from .attention import packed_self_attention, scaled_dot_product_attention
from .cross_entropy import cross_entropy
from .dropout import dropout
from .embedding import embedding
from .gelu import gelu
from .layernorm import layer_norm
from .linear import linear

__all__ = ["linear", "embedding", "layer_norm", "cross_entropy", "scaled_dot_product_attention",
           "packed_self_attention", "gelu", "dropout"]

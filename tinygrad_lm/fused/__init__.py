"""Fused Functions: one forward and one hand-derived backward for a whole layer's math.

Composing a layer from primitive ops works (and `functional.py` keeps composed twins for the
tests), but each primitive allocates its output and saves its inputs. Fusing LayerNorm,
cross-entropy, attention, linear and embedding into single Functions saves memory traffic and
Python overhead; each file derives its backward in the docstring.
"""
from .attention import PackedSelfAttention, ScaledDotProductAttention
from .cross_entropy import CrossEntropy
from .embedding import Embedding
from .layernorm import LayerNorm
from .linear import Linear

__all__ = ["ScaledDotProductAttention", "PackedSelfAttention", "CrossEntropy", "Embedding", "LayerNorm", "Linear"]

"""Neural-network building blocks with PyTorch's names: `nn.Module`, `nn.Linear`, ...

    module.py      Module (with register_forward_hook), Parameter, ModuleList, ModuleDict
    hooks.py       the hook handle, and run_with_cache (every submodule's output of one forward)
    layers.py      Linear, Embedding, LayerNorm, Dropout, GELU, MLP, CrossEntropyLoss
    positional.py  SinusoidalPositionalEncoding, LearnedPositionalEmbedding
    attention.py   CausalSelfAttention (GPT-2), SelfAttention (bidirectional, BERT), Block (pre-LN)
    kv_cache.py    KVCache (each layer's keys and values, for generation)
"""
from ..engine import functional  # noqa: F401  (so `nn.functional` works as in PyTorch)
from .attention import Block, CausalSelfAttention, SelfAttention
from .kv_cache import KVCache
from .layers import GELU, MLP, CrossEntropyLoss, Dropout, Embedding, LayerNorm, Linear
from .module import Module, ModuleDict, ModuleList, Parameter
from .positional import LearnedPositionalEmbedding, SinusoidalPositionalEncoding, sinusoidal_table

__all__ = [
    "Module", "Parameter", "ModuleList", "ModuleDict", "Linear", "Embedding", "LayerNorm",
    "Dropout", "GELU", "MLP", "SinusoidalPositionalEncoding", "LearnedPositionalEmbedding",
    "sinusoidal_table", "CausalSelfAttention", "SelfAttention", "Block", "CrossEntropyLoss", "KVCache", "functional",
]

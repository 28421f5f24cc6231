"""Parameter initialisers, drawing from the package's seeded generator (`manual_seed`).

Leaves out: orthogonal, Xavier and the other schemes a GPT does not use.
"""
import numpy as np

from ..engine.rng import get_rng


def normal(shape, std=0.02, dtype=np.float32):
    """N(0, std^2) samples (GPT-2's initialisation for weights and embeddings)."""
    return (get_rng(np).standard_normal(shape) * std).astype(dtype)


def uniform(shape, bound, dtype=np.float32):
    """U(-bound, bound) samples (PyTorch's default Linear init uses bound = 1/sqrt(fan_in))."""
    return get_rng(np).uniform(-bound, bound, shape).astype(dtype)

"""The package's global random-number generators (one per backend), seeded by `manual_seed`.

Implements what `torch.manual_seed` gives PyTorch users: one call makes parameter init,
dropout masks and batch sampling reproducible, and `get_state`/`set_state` let a checkpoint
capture and restore the exact stream so a resumed run continues bit-for-bit.

Code that needs a stream of its own (a dropout layer given `generator=`, a sampler given a
seed) passes its own `numpy.random.Generator` instead.
Leaves out: per-device generators beyond "one for NumPy, one for CuPy".
"""
import numpy as np

from .backend import cupy

_generators = {}
_seed = 0


def manual_seed(seed):
    """Reseed the global generators (NumPy now, CuPy lazily on first use)."""
    global _seed
    _seed = int(seed)
    _generators.clear()
    _generators["numpy"] = np.random.default_rng(_seed)


def get_rng(xp=np):
    """The global `Generator` for backend module `xp` (numpy or cupy)."""
    name = xp.__name__
    if name not in _generators:
        if name == "numpy":
            _generators[name] = np.random.default_rng(_seed)
        else:
            _generators[name] = cupy.random.default_rng(_seed)
    return _generators[name]


def get_state():
    """A JSON-serialisable snapshot of the NumPy generator (the one training depends on)."""
    return get_rng(np).bit_generator.state


def set_state(state):
    """Restore a snapshot from `get_state`."""
    get_rng(np).bit_generator.state = state


manual_seed(0)

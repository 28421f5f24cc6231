"""The package's global random-number generators (one per backend), seeded by `manual_seed`.

Implements what `torch.manual_seed` gives PyTorch users: one call makes parameter init,
dropout masks and batch sampling reproducible, and `get_state`/`set_state` let a checkpoint
capture and restore the exact stream so a resumed run continues bit-for-bit.

A thread can swap in a generator of its own (`local_generator`), and `fork(n)` draws n seeds
from the global generator for such per-thread generators: the data-parallel step
(parallel.py) uses both so that dropout masks do not depend on thread scheduling.
Leaves out: per-device generators beyond "one for NumPy, one for CuPy".
"""
import contextlib
import threading

import numpy as np

from .backend import cupy

_generators = {}
_seed = 0
_local = threading.local()  # .generator: this thread's override of the NumPy generator


def manual_seed(seed):
    """Reseed the global generators (NumPy now, CuPy lazily on first use)."""
    global _seed
    _seed = int(seed)
    _generators.clear()
    _generators["numpy"] = np.random.default_rng(_seed)


def get_rng(xp=np):
    """The global `Generator` for backend module `xp` (numpy or cupy)."""
    name = xp.__name__
    local = getattr(_local, "generator", None)
    if local is not None and name == "numpy":
        return local
    if name not in _generators:
        if name == "numpy":
            _generators[name] = np.random.default_rng(_seed)
        else:
            _generators[name] = cupy.random.default_rng(_seed)
    return _generators[name]


def fork(n):
    """n new NumPy generators, seeded by n draws from the global one (which advances)."""
    seeds = get_rng(np).integers(0, 2**63, size=n)
    return [np.random.default_rng(int(s)) for s in seeds]


@contextlib.contextmanager
def local_generator(generator):
    """In this thread, make `get_rng(np)` return `generator` for the duration of the block."""
    previous = getattr(_local, "generator", None)
    _local.generator = generator
    try:
        yield generator
    finally:
        _local.generator = previous


def get_state():
    """A JSON-serialisable snapshot of the NumPy generator (the one training depends on)."""
    return get_rng(np).bit_generator.state


def set_state(state):
    """Restore a snapshot from `get_state`."""
    get_rng(np).bit_generator.state = state


manual_seed(0)

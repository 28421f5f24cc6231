"""The package's global random-number generators (one per backend), seeded by `manual_seed`.

Implements what `torch.manual_seed` gives PyTorch users: one call makes parameter init,
dropout masks and batch sampling reproducible, and `get_state`/`set_state` let a checkpoint
capture and restore the exact stream so a resumed run continues bit-for-bit, on the CPU and
on a GPU.

  * NumPy: a `numpy.random.Generator` (PCG64). Init and batch sampling always draw here.
  * GPU: a `CounterGenerator`, counter-based like PyTorch's Philox (seed, offset) and JAX's
    keys: the i-th number drawn is a hash (splitmix64) of the seed and i, so its whole state
    is two integers that a checkpoint's JSON holds, and restoring them restores the stream
    exactly. CuPy's own `Generator` keeps megabytes of cuRAND states in GPU memory behind no
    public getter, which is why it is not used. It is written with plain array ops, so the
    same code draws on any array module (NumPy included, which the tests use as its oracle);
    `fast/cuda/` has the one-kernel version of the same hash, bit-for-bit equal.

Code that needs a stream of its own (a dropout layer given `generator=`, a sampler given a
seed) passes its own generator; `uniform` accepts a NumPy `Generator` for a device array too
(it draws on the host and copies: the CPU's numbers, at the cost of a transfer).
Leaves out: per-device generators beyond "one for NumPy, one for the GPU".
"""
import numpy as np

from . import backend

_generators = {}
_seed = 0

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # splitmix64's increment (2^64 / golden ratio)
_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def splitmix64(x):
    """splitmix64's output function on a uint64 array (wrapping arithmetic), elementwise."""
    x = (x ^ (x >> np.uint64(30))) * _MIX1
    x = (x ^ (x >> np.uint64(27))) * _MIX2
    return x ^ (x >> np.uint64(31))


class CounterGenerator:
    """Uniform [0, 1) floats from hash(seed, position): the device's global generator.

    Number i of the stream is splitmix64(key + (i + 1) * golden), key = splitmix64(seed); a
    float32 keeps the top 24 bits, a float64 the top 53 (exact multiples of 2^-24, 2^-53).
    Args:
        xp: the array module to draw on (cupy, or numpy for tests).
        seed, counter: where the stream starts.
    """

    def __init__(self, xp, seed=0, counter=0):
        self.xp, self.seed, self.counter = xp, int(seed), int(counter)

    def reserve(self, n):
        """Advance the stream by n numbers without drawing them: returns (key, counter before),
        what a kernel needs to compute numbers counter + 1 .. counter + n itself."""
        key = splitmix64(np.array([self.seed % 2 ** 64], dtype=np.uint64))[0]
        start, self.counter = self.counter, self.counter + n
        return key, start

    def random(self, shape, dtype=np.float32):
        """An array of `shape` of uniform [0, 1) numbers in `dtype` (float32 or float64)."""
        xp, dtype = self.xp, np.dtype(dtype)
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        n = int(np.prod(shape))
        key, start = self.reserve(n)
        i = xp.arange(1, n + 1, dtype=xp.uint64) + np.uint64(start)
        bits = splitmix64(i * _GOLDEN + key)
        if dtype == np.float64:
            return ((bits >> np.uint64(11)).astype(np.float64) * 2.0 ** -53).reshape(shape)
        if dtype == np.float32:
            return ((bits >> np.uint64(40)).astype(np.float32) * np.float32(2.0 ** -24)).reshape(shape)
        raise TypeError(f"CounterGenerator.random: dtype must be float32 or float64, got {dtype}")

    @property
    def state(self):
        return {"seed": self.seed, "counter": self.counter}

    @state.setter
    def state(self, value):
        self.seed, self.counter = int(value["seed"]), int(value["counter"])


def manual_seed(seed):
    """Reseed the global generators (NumPy now, the GPU's lazily on first use)."""
    global _seed
    _seed = int(seed)
    _generators.clear()
    _generators["numpy"] = np.random.default_rng(_seed)


def get_rng(xp=np):
    """The global generator for backend module `xp`: NumPy's `Generator`, or the device's
    `CounterGenerator` for any other array module (CuPy)."""
    if xp is np:
        if "numpy" not in _generators:
            _generators["numpy"] = np.random.default_rng(_seed)
        return _generators["numpy"]
    gen = _generators.get("device")
    if gen is None:
        gen = _generators["device"] = CounterGenerator(xp, _seed)
    gen.xp = xp  # one stream whatever module object stands for the GPU
    return gen


def uniform(shape, dtype, xp, generator=None):
    """Uniform [0, 1) numbers of `shape` and float `dtype` as an `xp` array.

    Args:
        generator: None for the package's global one on `xp`'s device; a NumPy `Generator`
            (drawn on the host, then copied to the device when xp is not NumPy); or a
            `CounterGenerator`.
    """
    gen = generator if generator is not None else get_rng(xp)
    out = gen.random(shape, dtype=dtype)
    if xp is not np and isinstance(out, np.ndarray):
        out = xp.asarray(out)
    return out


def get_state():
    """A JSON-serialisable snapshot: the NumPy generator's state, plus the GPU generator's
    seed and counter under "device" once it has been used."""
    state = dict(get_rng(np).bit_generator.state)
    if "device" in _generators:
        state["device"] = _generators["device"].state
    return state


def set_state(state):
    """Restore a snapshot from `get_state` (one without "device", from before the GPU
    generator was saved, restores the NumPy stream and leaves the GPU's as it is)."""
    state = dict(state)
    device = state.pop("device", None)
    get_rng(np).bit_generator.state = state
    if device is not None:  # the array module is set again by get_rng on the next draw
        _generators["device"] = CounterGenerator(backend.cupy or np, device["seed"], device["counter"])


manual_seed(0)

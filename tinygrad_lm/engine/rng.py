"""The package's random numbers, seeded by `manual_seed`: the generators of init and sampling,
and the keyed numbers of dropout masks.

Implements what `torch.manual_seed` gives PyTorch users: one call makes parameter init,
dropout masks and batch sampling reproducible, and `get_state`/`set_state` let a checkpoint
capture and restore everything so a resumed run continues bit-for-bit, on the CPU and on a GPU.

  * NumPy: a `numpy.random.Generator` (PCG64) for init and the package's other sequential draws.
  * GPU: a `CounterGenerator`, counter-based like PyTorch's Philox (seed, offset) and JAX's
    keys: the i-th number drawn is a hash (splitmix64) of the seed and i, so its whole state
    is two integers that a checkpoint's JSON holds. CuPy's own `Generator` keeps megabytes of
    cuRAND states in GPU memory behind no public getter, which is why it is not used. It is
    written with plain array ops, so the same code draws on any array module (NumPy included,
    which the tests use as its oracle); `fast/cuda/` has the one-kernel version of the same
    hash, bit-for-bit equal.

Dropout masks (`dropout_mask`) are not drawn from a stream but computed from a key, so that a
batch split over threads or MPI ranks draws the masks of the whole batch. Every mask is a
"site", numbered 0, 1, 2, ... in the order a run draws them; the element (r, j) of site s
(r: the row, that is the sample, in the global batch; j: its index inside the row, C order) is
number r * row_length + j of a stream keyed by (seed, site):
    CPU: NumPy's Philox4x64 with key (seed, site); a float32 mask takes the top 24 bits of each
         uint32 (two per uint64, little-endian halves), a float64 one the top 53 of each uint64;
    GPU: the CounterGenerator with seed `site_seed(seed, site)`, numbers from r * row_length on.
A slice of rows [r0, r1) therefore computes exactly rows r0..r1 of the whole batch's mask,
whichever thread or process runs it. The split tells this module where its rows start with
`batch_rows(offset)`, a context variable (each thread has its own value, so slices running at
once in threads each see theirs); without it the offset is 0, so one thread over the whole
batch draws what the slices draw together. The slices of one batch all start from the same
site number and each counts its own; `advance_sites` then moves the run's counter past them
(fast/data_parallel.py, distributed.py). Philox draws at about the speed of the Generator's
float32 draw it replaced: the uint32 compare costs what the float conversion did.

Code that needs a stream of its own (a dropout layer given `generator=`, a sampler given a
seed) passes its own generator; `uniform` accepts a NumPy `Generator` for a device array too
(it draws on the host and copies: the CPU's numbers, at the cost of a transfer). Those draws
follow the generator, not the rows: they are the caller's stream, not split-independent.
Leaves out: per-device generators beyond "one for NumPy, one for the GPU"; masks keyed by
anything but the batch axis (a mask whose axis 0 is not the sample is still reproducible,
but a split of it would not be).
"""
import math
from contextvars import ContextVar

import numpy as np

from . import backend

_generators = {}
_seed = 0
_sites = 0  # the run's next site number (outside any batch_rows block)
_rows = ContextVar("batch_rows", default=None)  # the innermost batch_rows block here (per thread)
KEYED_FORMAT = 1  # the version of the keyed dropout numbers, stored with their state in checkpoints

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # splitmix64's increment (2^64 / golden ratio)
_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def splitmix64(x):
    """splitmix64's output function on a uint64 array (wrapping arithmetic), elementwise."""
    x = (x ^ (x >> np.uint64(30))) * _MIX1
    x = (x ^ (x >> np.uint64(27))) * _MIX2
    return x ^ (x >> np.uint64(31))


class CounterGenerator:
    """Uniform [0, 1) floats from hash(seed, position): the device's generator.

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
    """Reseed the global generators (NumPy now, the GPU's lazily on first use) and restart the
    dropout sites at 0."""
    global _seed, _sites
    _seed, _sites = int(seed), 0
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


# ---------------------------------------------------------------- keyed numbers: dropout masks
def dropout_mask(shape, p, dtype, xp, generator=None):
    """Inverted dropout's scale array: 1/(1-p) where an element is kept, 0 where dropped.

    Args:
        shape: the input's shape, axis 0 the batch (the samples).
        p: the drop probability, in [0, 1).
        dtype: the input's dtype (the scale's; the numbers are float64 for a float64 input,
            float32 otherwise).
        xp: the array module (numpy, or cupy for a GPU array).
        generator: None for the keyed numbers (module docstring): the next site, the rows
            where the current `batch_rows` block says they are; or a generator of the
            caller's (a NumPy `Generator`, a `CounterGenerator`) to draw from instead.
    Returns:
        an `xp` array of `shape` in `dtype`.
    """
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    draw = np.float64 if np.dtype(dtype) == np.float64 else np.float32
    if generator is not None:
        keep = uniform(shape, draw, xp, generator) >= p
    elif xp is np:
        keep = _philox_keep(shape, p, draw)
    else:
        keep = site_generator(xp, shape).random(shape, draw) >= p
    return keep * np.dtype(dtype).type(1.0 / (1.0 - p))  # 0 or 1/(1-p), in x's dtype


def _philox_keep(shape, p, draw):
    """The CPU's keyed keep mask: number e of Philox(key=(seed, site)) for element e = first + i.

    Philox gives 4 uint64 per counter step, so a draw starting at number e starts at counter
    step e // 4 (e // 8 for uint32 halves) and drops the first e % 4 (e % 8) numbers.
    """
    n = math.prod(shape)
    seed, site, first = next_site(math.prod(shape[1:]))
    bits = 24 if draw == np.float32 else 53
    threshold = math.ceil(p * 2 ** bits)  # u = k / 2^bits is kept iff u >= p, that is k >= threshold (exact)
    if threshold >= 2 ** bits:
        return np.zeros(shape, dtype=bool)
    per_step = 8 if bits == 24 else 4  # numbers per Philox counter step (uint32 halves or uint64)
    skip = first % per_step
    gen = np.random.Philox(key=[seed % 2 ** 64, site], counter=[first // per_step, 0, 0, 0])
    if bits == 24:
        raw = gen.random_raw((skip + n + 1) // 2).astype("<u8", copy=False).view("<u4")  # uint32 halves, low first
        keep = raw[skip:skip + n] >= np.uint32(threshold << 8)  # top 24 bits >= threshold
    else:
        keep = gen.random_raw(skip + n)[skip:] >= np.uint64(threshold << 11)  # top 53 bits >= threshold
    return keep.reshape(shape)


def site_seed(seed, site):
    """The GPU's CounterGenerator seed for one site: a hash of (seed, site), a Python int < 2^64."""
    x, s = np.array([seed % 2 ** 64, site % 2 ** 64], dtype=np.uint64)[:, None]  # arrays: uint64 products wrap
    return int(splitmix64(splitmix64(x) + s * _GOLDEN)[0])


def site_generator(xp, shape):
    """The GPU's numbers for the next site: a CounterGenerator on `xp` keyed by (seed, site) whose
    counter starts at the current first row times the row length of `shape` (a tuple; the keyed
    numbers of the module docstring; `fast/cuda/dropout.py` computes the same in one kernel)."""
    seed, site, first = next_site(math.prod(shape[1:]))
    return CounterGenerator(xp, site_seed(seed, site), first)


def next_site(row_length):
    """Take a site number for a mask whose rows (samples) hold `row_length` elements each: returns
    (seed, site, first), `first` the index of its first element in the global batch's mask."""
    global _sites
    block = _rows.get()
    if block is None:
        site, _sites = _sites, _sites + 1
        return _seed, site, 0
    site, block.site = block.site, block.site + 1
    return _seed, site, block.offset * row_length


def current_site():
    """The next site number drawn here (the current batch_rows block's, else the run's)."""
    block = _rows.get()
    return _sites if block is None else block.site


def row_offset():
    """The global batch row where the current rows start (0 outside any batch_rows block)."""
    block = _rows.get()
    return 0 if block is None else block.offset


def _set_site(site):
    global _sites
    block = _rows.get()
    if block is None:
        _sites = site
    else:
        block.site = site


class batch_rows:
    """Context manager: the masks drawn inside it are rows `offset`, offset + 1, ... of the
    global batch's (in the thread that entered it: a context variable).

    Args:
        offset: the first row of the slice run inside, in the global batch.
        site: where the block's site numbers start. None: the current site, and on exit the
            enclosing counter moves past the block's sites (one slice per process: MPI). Given:
            the block counts on its own and leaves the enclosing counter alone, so that several
            slices of one batch, in threads or one after another, all start there; call
            `advance_sites(blocks)` after them.

        with batch_rows(4):          # rows 4.. of the batch; sites taken from the run's counter
            model(x[4:8], y[4:8])
    """

    def __init__(self, offset, site=None):
        self.offset, self.start = int(offset), site
        self.site = site

    def __enter__(self):
        self.site = current_site() if self.start is None else int(self.start)
        self.token = _rows.set(self)
        return self

    def __exit__(self, *exc):
        _rows.reset(self.token)  # the enclosing block (or none) is current again
        if self.start is None:
            _set_site(self.site)


def advance_sites(blocks, fix="run it on the whole batch"):
    """After the slices of one batch ran in `blocks` (batch_rows given the same site), move the
    current counter to where they ended; they must have drawn the same number of masks (else a
    RuntimeError ending with `fix`, what the caller's user can do)."""
    ends = {b.site for b in blocks}
    if len(ends) != 1:
        raise RuntimeError(f"the slices of one batch drew different numbers of dropout masks (sites ended at "
                           f"{sorted(ends)}): each slice must run the same layers, and a model whose random draws "
                           f"depend on its rows cannot be split; {fix}")
    _set_site(ends.pop())


# ---------------------------------------------------------------- checkpoints
def get_state():
    """A JSON-serialisable snapshot: the NumPy generator's state, the keyed numbers' seed and
    next site under "dropout" (with their format), plus the GPU generator's seed and counter
    under "device" once it has been used."""
    state = dict(get_rng(np).bit_generator.state)
    state["dropout"] = {"format": KEYED_FORMAT, "seed": _seed, "site": _sites}
    if "device" in _generators:
        state["device"] = _generators["device"].state
    return state


def has_keyed_state(state):
    """True if a `get_state` snapshot holds the keyed dropout numbers' place (written since they
    replaced per-slice streams); an older one cannot continue a run's dropout masks exactly."""
    return "dropout" in state


def set_state(state):
    """Restore a snapshot from `get_state`. One without "device", from before the GPU generator
    was saved, leaves the GPU's stream as it is; one without "dropout", from before the keyed
    masks, restarts the sites at 0 (its masks were drawn another way: `has_keyed_state`)."""
    global _seed, _sites
    state = dict(state)
    device = state.pop("device", None)
    keyed = state.pop("dropout", None)
    if keyed is not None:
        if keyed.get("format") != KEYED_FORMAT:
            raise ValueError(f"random state: dropout numbers of format {keyed.get('format')!r}, this version "
                             f"knows format {KEYED_FORMAT}; upgrade tinygrad_lm to continue this run")
        _seed, _sites = int(keyed["seed"]), int(keyed["site"])
    else:
        _sites = 0
    get_rng(np).bit_generator.state = state
    if device is not None:  # the array module is set again by get_rng on the next draw
        _generators["device"] = CounterGenerator(backend.cupy or np, device["seed"], device["counter"])


manual_seed(0)

"""Ops that move or select elements without arithmetic: reshape, permute/transpose, indexing,
concat, stack, split, cast (dtype/device change), and masked_fill / where (selection by a
condition: the condition is data, not a differentiable input, so gradients flow to the selected
values only; masked_fill is what causal attention uses to put -inf on future positions).

Their backward puts each gradient element back where its element came from: reshape and
permute invert themselves, indexing scatters (adding, so repeated integer indices accumulate),
concat/stack/split slice or join along their axis.
Scatter-add (`scatter_add`, `segment_sum`, at the end) is indexing's backward, g[index] +=
values with repeats summed.
On NumPy it is `np.add.at`, the textbook one-liner. On a GPU `add.at` is an atomic add: the
order in which repeated indices land changes from run to run, so float sums (and training)
are not reproducible. There the same sum is done by a deterministic segment sum:

    order  = argsort(ids)                      rows with equal ids become one run
    cs     = [0; cumsum(values[order])]        prefix sums in float64, (N + 1, C)
    lo, hi = searchsorted(sorted ids, each id) the run [lo, hi) holding each row's id
    g[ids] = cs[hi] - cs[lo]                   every row of a run writes the same run total

All writes of one id carry the same value, so which write lands last does not matter, and
nothing here needs the number of runs on the host (no sync). The float64 prefix sums keep
the subtraction exact to about 1e-16 of the prefix's size.
Leaves out: in-place assignment (`x[i] = v`), gather/scatter with explicit index tensors (use
integer-array indexing), flip/roll/pad.
"""
import numpy as np

from .. import backend
from ..backend import get_array_module
from ..tensor import Function, Tensor, unbroadcast


class Reshape(Function):
    def __init__(self, *shape):  # reshape(2, 3) or reshape((2, 3)); one dimension may be -1
        self.shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape

    def forward(self, x):
        self.x_shape = x.shape
        try:
            return x.reshape(self.shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} ({x.size} elements) "
                             f"into {self.shape}") from None

    def backward(self, gy):
        return gy.reshape(self.x_shape)


Tensor.reshape = Tensor.view = lambda self, *shape: Reshape(*shape)(self)


class Permute(Function):
    def __init__(self, *axes):  # permute(2, 0, 1) or permute((2, 0, 1)), as numpy.transpose(x, axes)
        self.axes = tuple(axes[0]) if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes

    def forward(self, x):
        if sorted(a % max(x.ndim, 1) for a in self.axes) != list(range(x.ndim)):
            raise ValueError(f"permute: axes {self.axes} are not a permutation of the {x.ndim} axes of shape {x.shape}")
        return x.transpose(self.axes)

    def backward(self, gy):
        return gy.transpose(tuple(np.argsort([a % gy.ndim for a in self.axes]).tolist()))  # host ints, not an array


Tensor.permute = lambda self, *axes: Permute(*axes)(self)


class Transpose(Function):
    """Swap two axes (PyTorch's `transpose(dim0, dim1)`): its own inverse."""

    def __init__(self, axis0=-2, axis1=-1):
        self.axis0, self.axis1 = axis0, axis1

    def forward(self, x):
        return x.swapaxes(self.axis0, self.axis1)

    def backward(self, gy):
        return gy.swapaxes(self.axis0, self.axis1)


Tensor.transpose = lambda self, axis0=-2, axis1=-1: Transpose(axis0, axis1)(self)
Tensor.T = property(lambda self: Permute(*reversed(range(self.ndim)))(self))  # all axes reversed


def _raw_index(index):
    """Replace Tensors inside an index by their arrays."""
    items = tuple(i.data if isinstance(i, Tensor) else i for i in (index if isinstance(index, tuple) else (index,)))
    return items if isinstance(index, tuple) else items[0]


def _index_on(index, xp):
    """The index with its arrays (and lists) on `xp`'s device: a CuPy tensor indexed by a
    NumPy array would otherwise mix host and device arrays."""
    if isinstance(index, tuple):
        return tuple(_index_on(i, xp) for i in index)
    if isinstance(index, (list, np.ndarray)):
        return xp.asarray(index)
    return index


def _is_basic(index):
    """True for indices made only of ints, slices, None and Ellipsis (views, no repeats)."""
    items = index if isinstance(index, tuple) else (index,)
    return all(i is None or i is Ellipsis or isinstance(i, (int, np.integer, slice)) for i in items)


class GetItem(Function):
    def __init__(self, index):
        self.index = _raw_index(index)

    def forward(self, x):
        self.x_shape, self.x_dtype = x.shape, x.dtype
        if backend.device_of(x) != "cpu":
            self.index = _index_on(self.index, get_array_module(x))
        try:
            return x[self.index]
        except IndexError as e:
            raise IndexError(f"getitem: {e} (tensor shape {x.shape})") from None

    def backward(self, gy):
        if not _is_basic(self.index):  # advanced indexing may repeat an element: accumulate
            return scatter_add(self.x_shape, self.index, gy)  # np.add.at; deterministic on a GPU
        g = get_array_module(gy).zeros(self.x_shape, dtype=gy.dtype)
        g[self.index] = gy
        return g


Tensor.__getitem__ = lambda self, index: GetItem(index)(self)  # ints, slices, None, ..., int/bool arrays


class Concat(Function):
    def __init__(self, axis):
        self.axis = axis

    def forward(self, *xs):
        xp = get_array_module(*xs)
        self.sizes = [x.shape[self.axis] for x in xs]
        try:
            return xp.concatenate(xs, axis=self.axis)
        except ValueError:
            raise ValueError(f"concat: shapes {[x.shape for x in xs]} must match except along axis {self.axis}") from None

    def backward(self, gy):
        xp = get_array_module(gy)
        cuts = np.cumsum(self.sizes)[:-1].tolist()
        return tuple(xp.split(gy, cuts, axis=self.axis))


def concat(tensors, axis=0):
    """Join tensors along an existing axis (`torch.cat`)."""
    return Concat(axis)(*tensors)


cat = concat


class Stack(Function):
    def __init__(self, axis):
        self.axis = axis

    def forward(self, *xs):
        xp = get_array_module(*xs)
        shapes = {x.shape for x in xs}
        if len(shapes) > 1:
            raise ValueError(f"stack: all tensors must have the same shape, got {[x.shape for x in xs]}")
        self.n = len(xs)
        return xp.stack(xs, axis=self.axis)

    def backward(self, gy):
        xp = get_array_module(gy)
        return tuple(xp.take(gy, i, axis=self.axis) for i in range(self.n))


def stack(tensors, axis=0):
    """Join same-shaped tensors along a new axis."""
    return Stack(axis)(*tensors)


class Split(Function):
    """Multi-output: one forward returns every piece (views); backward joins their grads."""

    def __init__(self, sections, axis=0):
        self.sections, self.axis = sections, axis

    def forward(self, x):
        xp = get_array_module(x)
        n = x.shape[self.axis]
        if isinstance(self.sections, int):
            if self.sections <= 0:
                raise ValueError(f"split: split size must be positive, got {self.sections}")
            sizes = [self.sections] * (n // self.sections) + ([n % self.sections] if n % self.sections else [])
        else:
            sizes = list(self.sections)
            if sum(sizes) != n:
                raise ValueError(f"split: sizes {sizes} sum to {sum(sizes)}, but axis {self.axis} "
                                 f"of shape {x.shape} has {n} elements")
        self.sizes, self.x_shape, self.dtype = sizes, x.shape, x.dtype
        return tuple(xp.split(x, np.cumsum(sizes)[:-1].tolist(), axis=self.axis))

    def backward(self, *gys):
        xp = get_array_module(*[g for g in gys if g is not None])
        parts = []
        for g, size in zip(gys, self.sizes):
            if g is None:  # this piece was unused: its gradient is zero
                shape = list(self.x_shape)
                shape[self.axis] = size
                g = xp.zeros(shape, dtype=self.dtype)
            parts.append(g)
        return xp.concatenate(parts, axis=self.axis)


Tensor.split = lambda self, split_size_or_sections, axis=0: Split(split_size_or_sections, axis)(self)


class Cast(Function):
    def __init__(self, device, dtype):
        self.device, self.dtype = device, dtype

    def forward(self, x):
        self.src_device, self.src_dtype = backend.device_of(x), x.dtype
        y = backend.to_device(x, self.device) if self.device else x
        return y.astype(self.dtype) if self.dtype is not None else y

    def backward(self, gy):
        return backend.to_device(gy, self.src_device).astype(self.src_dtype, copy=False)


def _to(x, device=None, dtype=None):
    """x on `device` with `dtype`: x itself when both already hold, else a Cast (differentiable)."""
    device = backend.check_device(device)
    dtype = None if dtype is None else np.dtype(dtype)
    same_device, same_dtype = device is None or device == x.device, dtype is None or dtype == x.dtype
    if same_device and same_dtype:
        return x
    if dtype is not None and x.requires_grad and not np.issubdtype(dtype, np.floating):
        raise TypeError(f"cannot cast a tensor that requires grad to non-float dtype {dtype}")
    return Cast(None if same_device else device, None if same_dtype else dtype)(x)


Tensor.to = _to


# ---------------------------------------------------------------- selection by a condition: masked_fill, where
class MaskedFill(Function):
    def __init__(self, mask, value):
        self.mask, self.value = mask.data if isinstance(mask, Tensor) else mask, value  # data, not an input

    def forward(self, x):
        xp = get_array_module(x)
        mask = xp.asarray(self.mask, dtype=bool)
        try:
            out = xp.where(mask, xp.asarray(self.value, dtype=x.dtype), x)
        except ValueError:
            raise ValueError(f"masked_fill: mask of shape {mask.shape} cannot be broadcast "
                             f"to tensor shape {x.shape}") from None
        if out.shape != x.shape:
            raise ValueError(f"masked_fill: mask of shape {mask.shape} would broadcast tensor shape "
                             f"{x.shape} to {out.shape}; the mask must broadcast to the tensor's shape")
        self.mask = mask
        return out

    def backward(self, gy):
        return gy * ~self.mask


Tensor.masked_fill = lambda self, mask, value: MaskedFill(mask, value)(self)  # value where mask is True


class Where(Function):
    def __init__(self, cond):
        self.cond = cond.data if isinstance(cond, Tensor) else cond  # data, not an input

    def forward(self, a, b):
        xp = get_array_module(a, b)
        self.cond = xp.asarray(self.cond, dtype=bool)
        self.a_shape, self.b_shape = a.shape, b.shape
        try:
            return xp.where(self.cond, a, b)
        except ValueError:
            raise ValueError(f"where: condition {self.cond.shape}, a {a.shape} and b {b.shape} "
                             "cannot be broadcast together") from None

    def backward(self, gy):
        zero = gy.dtype.type(0)
        ga = unbroadcast(get_array_module(gy).where(self.cond, gy, zero), self.a_shape)
        gb = unbroadcast(get_array_module(gy).where(self.cond, zero, gy), self.b_shape)
        return ga, gb


def where(cond, a, b):
    """Elementwise `a if cond else b` (cond a bool array or Tensor; a, b Tensors or numbers)."""
    return Where(cond)(a, b)


# ---------------------------------------------------------------- scatter-add: the backward of indexing
def segment_sum(ids, values, n_rows):
    """Sum the rows of `values` (N, C) that share an id: out[k] = sum of values[i] with ids[i] == k.

    Args:
        ids: (N,) integer array, each in 0..n_rows-1.
        values: (N, C) array on the same device.
        n_rows: rows of the result.
    Returns:
        (n_rows, C) array in values' dtype; rows no id names are zero. Deterministic on every
        backend (no atomics).
    """
    xp = get_array_module(ids, values)
    out = xp.zeros((n_rows,) + values.shape[1:], dtype=values.dtype)
    if ids.size == 0:
        return out
    order = xp.argsort(ids)
    sorted_ids = ids[order]  # (N,)
    cs = xp.zeros((ids.shape[0] + 1,) + values.shape[1:], dtype=np.float64)  # (N + 1, C)
    xp.cumsum(values[order], axis=0, dtype=np.float64, out=cs[1:])
    lo = xp.searchsorted(sorted_ids, sorted_ids, side="left")  # (N,): first row of each row's run
    hi = xp.searchsorted(sorted_ids, sorted_ids, side="right")  # (N,): one past its last row
    out[sorted_ids] = (cs[hi] - cs[lo]).astype(values.dtype)  # equal values for equal ids
    return out


def scatter_add(shape, index, values):
    """A zero array of `shape` with `values` added at `index` (repeats accumulate): the gradient
    of `x[index]` for an advanced (integer or boolean array) index. NumPy: `np.add.at`; a GPU:
    `segment_sum` (deterministic), through `_scatter_add_segments`."""
    if get_array_module(values) is not np:
        return _scatter_add_segments(shape, index, values)
    g = np.zeros(shape, dtype=values.dtype)
    np.add.at(g, index, values)
    return g


def _scatter_add_segments(shape, index, values):
    """`scatter_add` as a segment sum over rows (index a single integer array on axis 0) or over
    flat element positions (any other advanced index)."""
    xp = get_array_module(values)
    if not isinstance(index, tuple) and getattr(index, "dtype", None) is not None \
            and np.issubdtype(index.dtype, np.integer):
        ids = index.reshape(-1) % shape[0]  # negative ids count from the end, as in indexing
        rows = values.reshape(ids.shape[0], -1)  # (N, row size)
        return segment_sum(ids, rows, shape[0]).reshape(shape)
    positions = xp.arange(int(np.prod(shape))).reshape(shape)[index].reshape(-1)  # flat target of each value
    return segment_sum(positions, values.reshape(-1, 1), int(np.prod(shape))).reshape(shape)

"""Ops that move elements without arithmetic: reshape, permute/transpose, indexing, concat,
stack, split, and cast (dtype/device change).

Their backward puts each gradient element back where its element came from: reshape and
permute invert themselves, indexing scatters (adding, so repeated integer indices accumulate),
concat/stack/split slice or join along their axis.
Leaves out: in-place assignment (`x[i] = v`), gather/scatter with explicit index tensors (use
integer-array indexing), flip/roll/pad.
"""
import numpy as np

from .. import backend
from ..backend import get_array_module
from ..tensor import Function, Tensor
from ._util import check_same_device
from .scatter import scatter_add


class Reshape(Function):
    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.x_shape = x.shape
        try:
            return x.reshape(self.shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} ({x.size} elements) "
                             f"into {self.shape}") from None

    def backward(self, gy):
        return gy.reshape(self.x_shape)


class Permute(Function):
    def __init__(self, axes):
        self.axes = axes

    def forward(self, x):
        if sorted(a % max(x.ndim, 1) for a in self.axes) != list(range(x.ndim)):
            raise ValueError(f"permute: axes {self.axes} are not a permutation of the {x.ndim} axes of shape {x.shape}")
        return x.transpose(self.axes)

    def backward(self, gy):
        return gy.transpose(tuple(np.argsort([a % gy.ndim for a in self.axes]).tolist()))  # host ints, not an array


def _raw_index(index):
    """Replace Tensors inside an index by their arrays."""
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    return index


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
        self.index = index

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


class Split(Function):
    """Multi-output: one forward returns every piece (views); backward joins their grads."""

    def __init__(self, sections, axis):
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


class Cast(Function):
    def __init__(self, device, dtype):
        self.device, self.dtype = device, dtype

    def forward(self, x):
        self.src_device, self.src_dtype = backend.device_of(x), x.dtype
        y = backend.to_device(x, self.device) if self.device else x
        return y.astype(self.dtype) if self.dtype is not None else y

    def backward(self, gy):
        return backend.to_device(gy, self.src_device).astype(self.src_dtype, copy=False)


def reshape(x, *shape):
    """x with a new shape (same elements, C order); one dimension may be -1."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return Reshape(shape)(x)


def permute(x, *axes):
    """x with its axes reordered, as `numpy.transpose(x, axes)`."""
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = tuple(axes[0])
    return Permute(tuple(axes))(x)


def transpose(x, axis0=-2, axis1=-1):
    """Swap two axes (PyTorch's `transpose(dim0, dim1)`); by default the last two."""
    axes = list(range(x.ndim))
    axes[axis0], axes[axis1] = axes[axis1], axes[axis0]
    return Permute(tuple(axes))(x)


def getitem(x, index):
    """x[index]: ints, slices, None, Ellipsis, and integer/bool arrays (or Tensors) as NumPy."""
    return GetItem(_raw_index(index))(x)


def _check_all(op, tensors):
    if not tensors:
        raise ValueError(f"{op}: needs at least one tensor")
    if len({t.device for t in tensors}) > 1:
        check_same_device(op, *tensors)


def concat(tensors, axis=0):
    """Join tensors along an existing axis (`torch.cat`)."""
    tensors = list(tensors)
    _check_all("concat", tensors)
    return Concat(axis)(*tensors)


cat = concat


def stack(tensors, axis=0):
    """Join same-shaped tensors along a new axis."""
    tensors = list(tensors)
    _check_all("stack", tensors)
    return Stack(axis)(*tensors)


def split(x, split_size_or_sections, axis=0):
    """Split x along `axis` into pieces of `split_size` (int) or of the listed sizes.

    Returns: a tuple of Tensors (views in forward; one join in backward).
    """
    return Split(split_size_or_sections, axis)(x)


def cast(x, device=None, dtype=None):
    """x on `device` with `dtype` (differentiable: the gradient goes back to x's device/dtype)."""
    device = backend.check_device(device)
    if dtype is not None:
        dtype = np.dtype(dtype)
    same_device = device is None or device == x.device
    same_dtype = dtype is None or dtype == x.dtype
    if same_device and same_dtype:
        return x
    if dtype is not None and x.requires_grad and not np.issubdtype(dtype, np.floating):
        raise TypeError(f"cannot cast a tensor that requires grad to non-float dtype {dtype}")
    return Cast(None if same_device else device, None if same_dtype else dtype)(x)

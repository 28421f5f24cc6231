"""Helpers shared by the ops: broadcasting-aware gradients and scalar promotion.

`unbroadcast` is the one place where broadcasting is undone in backward (DeZero's `sum_to`):
every binary op calls it so that `b.grad.shape == b.shape` whatever `a` was broadcast against.
"""
import numpy as np

from ..backend import get_array_module


def unbroadcast(grad, shape):
    """Sum `grad` down to `shape`, undoing NumPy broadcasting.

    Leading axes that broadcasting added are summed away, then axes where `shape` has size 1
    are summed with keepdims. Example: a (B, T, C) gradient for a (C,) bias sums axes 0 and 1.
    """
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


def as_tensor(value, like):
    """Wrap a Python scalar or array as a constant Tensor with `like`'s dtype and device.

    Keeping `like`'s dtype matters: under NumPy 2, float32 * float64-array gives float64.
    """
    from ..tensor import Tensor

    if isinstance(value, Tensor):
        return value
    xp = get_array_module(like.data)
    dtype = like.dtype if np.issubdtype(like.dtype, np.floating) or isinstance(value, int) else None
    return Tensor._wrap(xp.asarray(value, dtype=dtype), False, None, 0)


def binary_operands(a, b):
    """Promote a binary op's operands so both are Tensors (at least one already is)."""
    from ..tensor import Tensor

    if not isinstance(a, Tensor):
        a = as_tensor(a, b)
    elif not isinstance(b, Tensor):
        b = as_tensor(b, a)
    return a, b


def check_same_device(op, *tensors):
    """Raise a clear error when an op mixes NumPy (cpu) and CuPy (cuda) tensors."""
    devices = {t.device for t in tensors}
    if len(devices) > 1:
        shown = ", ".join(f"{t.device} {t.shape}" for t in tensors)
        raise RuntimeError(f"{op}: tensors are on different devices ({shown}); "
                           "move them with .to('cuda') or .to('cpu') first")


def normalize_axes(axis, ndim):
    """Axis argument (None, int or tuple) as a sorted tuple of non-negative ints."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, int):
        axis = (axis,)
    out = []
    for a in axis:
        if not -max(ndim, 1) <= a < max(ndim, 1):
            raise ValueError(f"axis {a} is out of range for a tensor with {ndim} dimensions")
        if ndim:  # a 0-d tensor accepts axis 0 or -1, as NumPy does, and reduces nothing
            out.append(a % ndim)
    return tuple(sorted(out))

"""Tensor and reverse-mode automatic differentiation, whole, in one file.

A `Tensor` wraps a raw NumPy or CuPy array (`.data`). Every differentiable operation is a
`Function` subclass with `forward` (raw arrays in, raw array out) and `backward` (gradient of
the output in, gradients of the inputs out) side by side; calling a Function on tensors runs
`forward` and, when gradients are wanted, records the Function as the new tensor's creator
(`_ctx`). The recorded creators form a DAG; `Tensor.backward` walks it once in reverse
topological order (an explicit stack, no recursion, so a chain of 100,000 ops is fine) and
hands each Function the gradient of its outputs.

Semantics follow PyTorch where the concept exists:
  * only leaf tensors (created by the user, `requires_grad=True`) keep `.grad`; call
    `retain_grad()` on an intermediate tensor to keep its gradient too;
  * gradients accumulate into `.grad` across backward calls until they are zeroed
    (`x.grad = None`, or `Module.zero_grad()` / `optimizer.zero_grad()`);
  * `backward()` frees the saved arrays of the graph it walked; pass `retain_graph=True` to
    call backward through the same graph again;
  * `with no_grad():` records nothing (used for evaluation and parameter updates).

The ops themselves live in `tinygrad_lm/engine/ops/`, one concept per file; the methods and Python
operators below are thin wrappers around them.

Leaves out: higher-order gradients (`create_graph`), in-place ops on tensors that are part of
a graph, and hooks.
"""
import contextlib

import numpy as np

from . import backend

_grad_enabled = True


@contextlib.contextmanager
def no_grad():
    """Context manager: operations inside record no graph (like `torch.no_grad`)."""
    global _grad_enabled
    previous = _grad_enabled
    _grad_enabled = False
    try:
        yield
    finally:
        _grad_enabled = previous


@contextlib.contextmanager
def enable_grad():
    """Context manager: re-enable graph recording inside a `no_grad` block."""
    global _grad_enabled
    previous = _grad_enabled
    _grad_enabled = True
    try:
        yield
    finally:
        _grad_enabled = previous


def is_grad_enabled():
    return _grad_enabled


def _is_float(dtype):
    return np.issubdtype(dtype, np.floating)


def _constant(value, like):
    """A Python number or array as a constant Tensor with `like`'s dtype (for floats and ints)
    and device: float32 * 2.0 stays float32 (NumPy 2 would make float32 * float64-array float64)."""
    xp = backend.get_array_module(like.data)
    dtype = like.dtype if np.issubdtype(like.dtype, np.floating) or isinstance(value, int) else None
    return Tensor._wrap(xp.asarray(value, dtype=dtype), False, None, 0)


def unbroadcast(grad, shape):
    """Sum `grad` down to `shape`, undoing NumPy broadcasting (DeZero's `sum_to`).

    Leading axes that broadcasting added are summed away, then axes where `shape` has size 1
    are summed with keepdims. Example: a (B, T, C) gradient for a (C,) bias sums axes 0 and 1.
    Every broadcasting op's backward calls it, so that `b.grad.shape == b.shape`.
    """
    if grad.shape == shape:
        return grad
    extra = tuple(range(grad.ndim - len(shape)))  # the leading axes broadcasting added
    grad = grad.sum(axis=extra) if extra else grad
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)  # the size-1 axes it stretched
    return (grad.sum(axis=axes, keepdims=True) if axes else grad).reshape(shape)


class GradientShapeError(RuntimeError):
    """A Function's backward returned a gradient whose shape is not its input's (a bug in that op)."""


class Function:
    """One differentiable operation: subclass it and write `forward` and `backward`.

    `forward(*arrays)` receives the raw arrays of the input tensors (in call order) and returns
    one raw array, or a tuple of them for multi-output ops (e.g. `split`). It may stash on
    `self` whatever `backward` needs (shapes, the output, indices; save as little as possible).
    `backward(*grads)` receives one gradient array per output (None for an output that
    received no gradient; single-output ops always get an array) and returns one gradient
    per input, in order; return None for an input that is not differentiable.
    """

    def __call__(self, *inputs):
        """Run forward on `inputs` and record the graph when gradients are needed.

        The one place every op passes: Python numbers and arrays among the inputs become
        constants of the first Tensor's dtype and device (so float32 stays float32), and inputs
        on different devices are refused here, by name, instead of deep inside NumPy or CuPy.
        """
        like = next((t for t in inputs if isinstance(t, Tensor)), None)
        if like is None:
            raise (TypeError if inputs else ValueError)(f"{type(self).__name__.lower()}: needs at least one tensor "
                                                        f"among its inputs, got {[type(t).__name__ for t in inputs]}")
        inputs = tuple(t if isinstance(t, Tensor) else _constant(t, like) for t in inputs)
        if len(inputs) > 1 and len({backend.device_of(t.data) for t in inputs}) > 1:
            raise RuntimeError(f"{type(self).__name__}: tensors are on different devices ("
                               f"{', '.join(f'{t.device} {t.shape}' for t in inputs)}); move them with .to('cuda') or "
                               ".to('cpu') first")
        try:
            out = self.forward(*[t.data for t in inputs])
        except ValueError as e:  # NumPy's broadcasting error, said with the op and the fix
            if "could not be broadcast" not in str(e):
                raise
            raise ValueError(f"{type(self).__name__.lower()}: inputs of shapes {', '.join(str(t.shape) for t in inputs)} "
                             f"cannot be broadcast together (trailing dimensions must match or be 1; NumPy: {e})") from None
        outs = out if isinstance(out, tuple) else (np.asarray(out) if isinstance(out, np.generic) else out,)  # 0-d: ndarray
        ctx = self if _grad_enabled and any(t.requires_grad for t in inputs) else None  # record this op for backward
        if ctx is not None:
            self.inputs, self._nout, self._out_grads = inputs, len(outs), [None] * len(outs)
        tensors = tuple(Tensor._wrap(o, ctx is not None, ctx, i) for i, o in enumerate(outs))
        return tensors if isinstance(out, tuple) else tensors[0]

    def forward(self, *xs):
        raise NotImplementedError

    def backward(self, *grads):
        raise NotImplementedError

    def __repr__(self):
        return f"<{type(self).__name__}>"


def _topological_order(root):
    """Functions reachable from `root`, each after every Function that consumes its outputs.

    Iterative post-order depth-first search with an explicit stack (no recursion limit).
    Returns the list with inputs first; backward walks it reversed.
    """
    order, visited, stack = [], set(), [(root, False)]
    while stack:
        fn, expanded = stack.pop()
        if expanded:
            order.append(fn)
            continue
        if id(fn) in visited:
            continue
        visited.add(id(fn))
        stack.append((fn, True))
        if fn.inputs is None:
            raise RuntimeError(
                "backward through a graph whose saved arrays were already freed by an earlier "
                "backward(); pass retain_graph=True to the first backward() to call it twice")
        for t in fn.inputs:
            ctx = t._ctx
            if ctx is not None and id(ctx) not in visited:
                stack.append((ctx, False))
    return order


class Tensor:
    """An n-dimensional array that remembers how it was computed, for reverse-mode autograd.

    Args:
        data: array-like (nested lists, scalars, NumPy or CuPy arrays, or a Tensor).
        requires_grad: if True, `backward()` fills `.grad` for this (leaf) tensor.
        dtype: NumPy dtype to cast to. Float data defaults to float32, except that float64
            arrays keep float64; integer data stays integer.
        device: "cpu" or "cuda"; None keeps the array where it is (NumPy for Python data).
    """

    __slots__ = ("data", "grad", "requires_grad", "_ctx", "_idx", "_retain")
    # NumPy operands on the left (np.float32(2) * t, array + t) defer to Tensor's reflected
    # operators instead of building an object array of Tensors
    __array_ufunc__ = None

    def __init__(self, data, requires_grad=False, dtype=None, device=None):
        if isinstance(data, Tensor):
            data = data.data
        xp = backend.get_array_module(data)
        if dtype is not None:
            data = xp.asarray(data, dtype=dtype)
        elif isinstance(data, (np.ndarray, np.generic)) or xp is not np:
            data = xp.asarray(data)  # arrays keep their dtype (float64 stays float64)
        else:  # Python scalars and lists: floats default to float32 like PyTorch
            data = np.asarray(data)
            if _is_float(data.dtype):
                data = data.astype(np.float32)
        if not (_is_float(data.dtype) or np.issubdtype(data.dtype, np.integer) or data.dtype == np.bool_):
            raise TypeError(f"Tensor data must be numeric or bool, got dtype {data.dtype}")
        if device is not None:
            data = backend.to_device(data, device)
        if requires_grad and not _is_float(data.dtype):
            raise TypeError(
                f"only floating-point tensors can require gradients, got dtype {data.dtype}; "
                "pass dtype=np.float32 (or float64) to make it differentiable")
        self.data = data
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self._ctx = None
        self._idx = 0
        self._retain = False

    @classmethod
    def _wrap(cls, data, requires_grad, ctx, idx):
        """Fast constructor used by Functions (no conversion or checks)."""
        t = cls.__new__(cls)
        t.data, t.grad, t.requires_grad, t._ctx, t._idx, t._retain = data, None, requires_grad, ctx, idx, False
        return t

    # ----------------------------------------------------------------- autograd
    def backward(self, grad=None, retain_graph=False):
        """Accumulate d(self)/d(leaf) into `.grad` of every leaf that requires grad.

        Args:
            grad: gradient of some scalar objective with respect to this tensor (same shape).
                May be omitted only when this tensor holds a single element (a loss).
            retain_graph: keep the saved arrays so backward can run through this graph again.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward() on a tensor that does not require grad: create the leaves with "
                "requires_grad=True, and do not call backward inside no_grad()")
        xp = backend.get_array_module(self.data)
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward() without a grad argument needs a single-element tensor (a loss), "
                    f"got shape {self.shape}; pass grad=<array of shape {self.shape}>")
            grad = xp.ones_like(self.data)
        else:
            grad = grad.data if isinstance(grad, Tensor) else xp.asarray(grad, dtype=self.dtype)
            if grad.shape != self.shape:
                raise ValueError(f"backward: grad has shape {grad.shape}, tensor has shape {self.shape}")
        if self._ctx is None:  # backward on a leaf: d(self)/d(self) = 1
            self._accumulate(grad)
            return
        order = _topological_order(self._ctx)  # first: it raises the clear error on a freed graph
        self._ctx._out_grads[self._idx] = grad
        for fn in reversed(order):
            grads, fn._out_grads = fn._out_grads, [None] * fn._nout  # taken: a retained graph starts clean
            if all(g is None for g in grads):
                continue
            in_grads = fn.backward(*grads)  # one gradient per output in, one per input out
            if not isinstance(in_grads, tuple):
                in_grads = (in_grads,)
            for i, (t, g) in enumerate(zip(fn.inputs, in_grads)):
                if g is None or not t.requires_grad:
                    continue
                if g.shape != t.data.shape:  # e.g. forgot to sum over a broadcast axis: say so here
                    raise GradientShapeError(
                        f"{type(fn).__name__}.backward returned a gradient of shape {g.shape} for its input {i} "
                        f"of shape {t.shape}; each gradient must have its input's shape (sum over the "
                        "axes that forward broadcast: tinygrad_lm.unbroadcast)")
                if t._ctx is None or t._retain:
                    t._accumulate(g)
                if t._ctx is not None:  # sum the gradients of every use of t (out of place: g may be shared)
                    prev = t._ctx._out_grads[t._idx]
                    t._ctx._out_grads[t._idx] = g if prev is None else prev + g
            if not retain_graph:
                vars(fn).clear()  # free the graph: the saved arrays go with the Function's state
                fn.inputs = None

    def _accumulate(self, g):
        g = g.astype(self.data.dtype, copy=False)  # e.g. a float64 constant's gradient into a float32 leaf
        # out of place: an op may hand the same array to several inputs (add returns gy twice)
        g = g if self.grad is None else self.grad + g
        self.grad = np.asarray(g) if isinstance(g, np.generic) else g  # 0-d: an ndarray, not a scalar

    def retain_grad(self):
        """Keep `.grad` on this non-leaf tensor after backward (leaves always keep it)."""
        self._retain = True
        return self

    @property
    def is_leaf(self):
        return self._ctx is None

    def zero_grad(self):
        self.grad = None

    # ----------------------------------------------------------------- array facts
    shape = property(lambda self: self.data.shape)
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: self.data.size)
    device = property(lambda self: backend.device_of(self.data))  # "cpu" or "cuda"

    def __len__(self):
        return len(self.data)

    def numpy(self):
        """The data as a NumPy array (copied from the GPU if needed)."""
        return backend.to_device(self.data, "cpu")

    def item(self):
        """The single element as a Python number."""
        if self.data.size != 1:
            raise ValueError(f"item() needs a single-element tensor, got shape {self.shape}")
        if backend.device_of(self.data) != "cpu":
            backend.raise_pending()  # a host read: device-side checks waiting for one are read too
        return self.data.item()

    def tolist(self):
        return self.numpy().tolist()

    def detach(self):
        """A new leaf tensor sharing this data, cut from the graph."""
        return Tensor._wrap(self.data, False, None, 0)

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        dev = ", device='cuda'" if self.device == "cuda" else ""
        return f"Tensor({self.data!r}{grad}{dev})"

    def __hash__(self):
        return id(self)

"""TEST DOUBLE for CuPy: a strict CPU stand-in, NumPy underneath, refusing what CuPy refuses.

It is not CuPy and computes nothing on a GPU. It exists so that the CuPy half of the suite
(every test parametrized over `devices()`) runs on every commit on machines without a GPU and
catches the dispatch bugs a real GPU would: a NumPy call on a device array, a host array mixed
into a device op, a Python number expected where CuPy gives a 0-d array. The real GPU run
(`scripts/gpu_check.py`) stays the authority; this catches what it can on every commit.

What it copies from CuPy's behaviour:
  * `ndarray` wraps a NumPy array; implicit conversion to NumPy (`np.asarray(x)`,
    `np.array(x)`, anything calling `__array__`) raises TypeError, as CuPy does;
  * mixing a host `numpy.ndarray` (any dimension) with a device array in an operator, a
    ufunc, an indexing or assignment, or a `cupy.*` function raises TypeError; NumPy scalars
    (`np.float32(2)`) and Python numbers are fine, as in CuPy;
  * reductions and scalar indexing return 0-d device arrays, never NumPy scalars;
  * `np.func(x)` on device arrays dispatches to `cupy.func` (`__array_function__` and
    `__array_ufunc__`), as CuPy implements NEP 18 and NEP 13;
  * `cupy.asarray(host)` / `cupy.asnumpy(dev)` / `.get()` / `.item()` / `float()` / `int()`
    move data explicitly; each of the device-to-host ones counts a host sync
    (`host_syncs`), so a test can pin how many syncs a training step makes.
What it leaves out: streams, memory pools, kernels (`RawModule`, `ElementwiseKernel`: absent,
so the fast layer's CUDA kernels are not selected under it), cuBLAS settings, and anything
the package does not call. `random` is absent too: the package's device generator is built
from plain array ops (`tinygrad_lm/engine/rng.py`).
"""
import sys
import types

import numpy as _np

__version__ = "0.0-standin"
host_syncs = 0


def _refuse_host(kind):
    raise TypeError(f"Unsupported type <class 'numpy.ndarray'> in {kind}: a host array cannot be mixed "
                    "with a device array (cupy_standin mirrors CuPy; move it with cupy.asarray)")


def _unwrap(x, kind):
    """Raw NumPy data of a device array; refuses host arrays; recurses into lists/tuples/dicts."""
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, _np.ndarray):
        _refuse_host(kind)
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v, kind) for v in x)
    if isinstance(x, dict):
        return {k: _unwrap(v, kind) for k, v in x.items()}
    return x


def _wrap(x):
    """NumPy results back on the 'device': arrays and NumPy scalars become ndarray (0-d)."""
    if isinstance(x, _np.ndarray):
        return ndarray(x)
    if isinstance(x, _np.generic):
        return ndarray(_np.asarray(x))
    if isinstance(x, (list, tuple)) and any(isinstance(v, (_np.ndarray, _np.generic)) for v in x):
        return type(x)(_wrap(v) for v in x)
    return x


def _wrapped_ids(index, shape):
    """Integer-array indices taken modulo their axis's size: CuPy wraps out-of-bounds ids where
    NumPy raises (CuPy's documented difference), so a bad id shows up where CuPy shows it."""
    items = index if isinstance(index, tuple) else (index,)
    if any(i is None or i is Ellipsis for i in items):
        return index  # axis bookkeeping the package never needs with integer arrays
    out = tuple(i % shape[axis] if isinstance(i, _np.ndarray) and i.dtype.kind in "iu" and shape[axis] else i
                for axis, i in enumerate(items))
    return out if isinstance(index, tuple) else out[0]


def _sync(n=1):
    global host_syncs
    host_syncs += n


class ndarray:
    """A device array of the stand-in: NumPy data that will not silently become host data."""

    __slots__ = ("_a",)

    def __init__(self, a):
        self._a = a

    # -- what CuPy refuses
    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to "
                        "construct a NumPy array explicitly. (cupy_standin mirrors CuPy)")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        kind = f"ufunc {ufunc.__name__}"
        out = kwargs.pop("out", None)
        if out is not None and not isinstance(out, tuple):  # cupy.exp(x, out=y): one array, not a tuple
            out = (out,)
        kwargs = _unwrap(kwargs, kind)
        if out is not None:
            kwargs["out"] = tuple(_unwrap(o, kind + " out=") for o in out)
        result = getattr(ufunc, method)(*[_unwrap(x, kind) for x in inputs], **kwargs)
        if out is not None:  # the device arrays given as out=, now written
            return out[0] if len(out) == 1 else out
        return _wrap(result)

    def __array_function__(self, func, types_, args, kwargs):
        return _dispatch(func.__name__, args, kwargs)

    def __iter__(self):
        raise TypeError("Iteration over a device array is not supported here (cupy_standin): it would "
                        "sync once per element; index or move it to the host explicitly")

    # -- explicit transfers (each a host sync)
    def get(self):
        _sync()
        return self._a.copy()

    def item(self):
        _sync()
        return self._a.item()

    def tolist(self):
        _sync()
        return self._a.tolist()

    def __float__(self):
        _sync()
        return float(self._a)

    def __int__(self):
        _sync()
        return int(self._a)

    def __bool__(self):
        _sync()
        return bool(self._a)

    def __index__(self):
        raise TypeError("a device array cannot be used as a Python index (cupy_standin mirrors CuPy)")

    # -- plain facts
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: ndarray(self._a.T))
    device = property(lambda self: "standin-device")

    def __len__(self):
        return len(self._a)

    def __repr__(self):
        return f"standin_array({self._a!r})"

    def __getitem__(self, index):
        return _wrap(self._a[_wrapped_ids(_unwrap(index, "indexing"), self._a.shape)])

    def __setitem__(self, index, value):
        self._a[_unwrap(index, "indexing")] = _unwrap(value, "assignment")

    def __getattr__(self, name):  # methods: reshape, sum, astype, transpose, ...
        if name.startswith("__") or name == "_a":  # never NumPy's __array_interface__ & co: no back door
            raise AttributeError(name)
        attr = getattr(self._a, name)
        if not callable(attr):
            return _wrap(attr)

        def method(*args, **kwargs):
            out = kwargs.get("out")
            result = attr(*_unwrap(args, f"ndarray.{name}"), **_unwrap(kwargs, f"ndarray.{name}"))
            return out if isinstance(out, ndarray) else _wrap(result)
        return method




def _binary(name):
    def op(self, other):
        return _wrap(getattr(self._a, name)(_unwrap(other, f"operator {name}")))
    op.__name__ = name
    return op


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or", "xor",
              "lshift", "rshift", "lt", "le", "gt", "ge", "eq", "ne"):
    for _form in (f"__{_name}__", f"__r{_name}__", f"__i{_name}__"):
        if hasattr(_np.ndarray, _form):
            setattr(ndarray, _form, _binary(_form))
for _form in ("__neg__", "__pos__", "__abs__", "__invert__"):
    setattr(ndarray, _form, (lambda f: lambda self: _wrap(getattr(self._a, f)()))(_form))
ndarray.__hash__ = None


def _inplace(name):
    def op(self, other):
        getattr(self._a, name)(_unwrap(other, f"operator {name}"))
        return self
    return op


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "and", "or", "xor", "lshift", "rshift"):
    setattr(ndarray, f"__i{_name}__", _inplace(f"__i{_name}__"))


# ------------------------------------------------------------------ module-level functions
def asarray(a, dtype=None, order=None):
    """Host or device data -> device array (the explicit host-to-device copy)."""
    if isinstance(a, ndarray):
        return a if dtype is None or a.dtype == dtype else ndarray(a._a.astype(dtype))
    return ndarray(_np.array(_unwrap_lenient(a), dtype=dtype, order=order or "K", copy=True))


def array(a, dtype=None, copy=True, order="K", ndmin=0):
    if isinstance(a, ndarray):
        return ndarray(_np.array(a._a, dtype=dtype, copy=True, order=order, ndmin=ndmin))
    return ndarray(_np.array(_unwrap_lenient(a), dtype=dtype, copy=True, order=order, ndmin=ndmin))


def _unwrap_lenient(a):  # lists of device arrays are allowed by cupy.array
    if isinstance(a, (list, tuple)):
        return type(a)(_unwrap_lenient(v) for v in a)
    return a._a if isinstance(a, ndarray) else a


def ascontiguousarray(a, dtype=None):
    if not isinstance(a, ndarray):
        _refuse_host("ascontiguousarray")
    return ndarray(_np.ascontiguousarray(a._a, dtype=dtype))


def asnumpy(a, stream=None):
    """Device -> host (a host sync); NumPy input is returned as a NumPy array, as CuPy does."""
    if isinstance(a, ndarray):
        _sync()
        return a._a.copy()
    return _np.asarray(a)


def get_array_module(*args):
    return sys.modules[__name__] if any(isinstance(a, ndarray) for a in args) else _np


_CREATORS = {"zeros", "ones", "empty", "full", "arange", "eye", "linspace", "tri", "identity"}


def _dispatch(name, args, kwargs):
    func = getattr(_np, name)
    if name in _CREATORS:
        return _wrap(func(*args, **kwargs))
    out = kwargs.get("out")
    result = func(*_unwrap(args, f"cupy.{name}"), **_unwrap(kwargs, f"cupy.{name}"))
    return out if isinstance(out, ndarray) else _wrap(result)


def __getattr__(name):
    """`cupy.X`: NumPy's types and constants as they are, its functions on device arrays."""
    if name.startswith("__"):
        raise AttributeError(name)
    attr = getattr(_np, name)  # AttributeError for what NumPy lacks too
    if isinstance(attr, type) or not callable(attr):  # dtypes (cupy.float32 is numpy.float32), pi, inf
        return attr
    if isinstance(attr, _np.ufunc):
        return _Ufunc(attr)
    return lambda *args, **kwargs: _dispatch(name, args, kwargs)


class _Ufunc:
    """`cupy.add`, `cupy.exp`, ...: NumPy's ufunc on device arrays, with `.at` and `.reduce`."""

    def __init__(self, ufunc):
        self.ufunc, self.__name__ = ufunc, ufunc.__name__

    def __call__(self, *args, **kwargs):
        return ndarray.__array_ufunc__(None, self.ufunc, "__call__", *args, **kwargs)

    def __getattr__(self, method):  # at, reduce, reduceat, accumulate, outer
        return lambda *args, **kwargs: ndarray.__array_ufunc__(None, self.ufunc, method, *args, **kwargs)


# a few of CuPy's submodules, as far as the package touches them
cuda = types.SimpleNamespace(
    runtime=types.SimpleNamespace(getDeviceCount=lambda: 1),
    get_device_id=lambda: 0,
    Device=lambda i=0: types.SimpleNamespace(use=lambda: None, synchronize=lambda: None),
    Stream=types.SimpleNamespace(null=types.SimpleNamespace(synchronize=lambda: None)),
)


def install(monkeypatch):
    """Make this module `tinygrad_lm.engine.backend.cupy` with a 'GPU' present, for one test (pytest's
    monkeypatch undoes it). Returns the module."""
    from tinygrad_lm.engine import backend

    module = sys.modules[__name__]
    monkeypatch.setattr(backend, "cupy", module)
    monkeypatch.setattr(backend, "gpu_available", True)
    return module

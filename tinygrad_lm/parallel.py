"""Data parallelism across CPU cores inside one process: one slice of the batch per thread.

A CPU training step is a chain of NumPy calls. BLAS spreads the matrix products over the cores,
but every other call (GELU, softmax, LayerNorm, AdamW...) runs on one core, so on a small
model half of a 2-core machine sits idle for half of the step. `forward_backward` cuts the
batch into one slice per thread instead, and each thread runs forward and backward of its own
slice with single-threaded BLAS: everything, not just the products, runs on all cores. NumPy
releases Python's GIL inside its loops and BLAS calls, so the threads overlap except for
the Python bookkeeping between calls. `loss_backward_split` does it for any mean loss over
batch rows (the fine-tuning loop uses it), `backward_split` for any function of batch-first
tensors (a block, a layer), and `optimizer_step` shares the parameters' updates out over the
same threads.

The result is the full batch's gradient: slice i's mean loss L_i over its n_i counted targets
is back-propagated with weight n_i / N, so the leaves' .grad receive the gradient of the mean
over all N targets, as one `loss.backward()` on the whole batch would give (up to float
rounding from the order of the sums). Each thread collects its gradients apart
(`tensor.collect_grads`) and they are added in slice order after the threads finish, and each
slice's dropout draws from its own generator seeded from the global one in slice order
(`rng.fork`): a run is reproducible, bit for bit, whatever the thread scheduling.

BLAS is limited to one thread per caller through OpenBLAS's own setter (the BLAS NumPy wheels
ship on Linux). Elsewhere `blas_threads` does nothing and each thread's products may start BLAS
threads of their own: there, set OPENBLAS_NUM_THREADS / MKL_NUM_THREADS=1 before starting Python,
or keep threads=1. `python scripts/bench_train.py --speed` and `scripts/bench_layers.py` time
the step and the block with and without the split.
Leaves out: processes (no pickling of models), GPUs, models whose forward has side effects
beyond the autograd graph.
"""
import contextlib
import ctypes
import queue
import sys
import threading

import numpy as np

from . import rng as _rng
from .backend import get_array_module
from .tensor import Tensor, collect_grads

_blas = None  # (set, get) functions of the OpenBLAS NumPy loaded, found on first use
_SET_NAMES = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads", "openblas_set_num_threads64_",
              "openblas_set_num_threads")
_GET_NAMES = ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads", "openblas_get_num_threads64_",
              "openblas_get_num_threads")


def _find_openblas():
    """The thread-count functions of the OpenBLAS library loaded in this process, or None."""
    global _blas
    if _blas is None:
        _blas = False
        if sys.platform.startswith("linux"):
            try:
                with open("/proc/self/maps") as maps:
                    paths = sorted({line.split()[-1] for line in maps if "openblas" in line.lower()})
            except OSError:
                paths = []
            for path in paths:
                try:
                    lib = ctypes.CDLL(path)
                except OSError:
                    continue
                set_fn = next((getattr(lib, n) for n in _SET_NAMES if hasattr(lib, n)), None)
                get_fn = next((getattr(lib, n) for n in _GET_NAMES if hasattr(lib, n)), None)
                if set_fn is not None and get_fn is not None:
                    set_fn.argtypes, get_fn.restype = [ctypes.c_int], ctypes.c_int
                    _blas = (set_fn, get_fn)
                    break
    return _blas or None


@contextlib.contextmanager
def blas_threads(n):
    """Run the block with BLAS limited to n threads (OpenBLAS on Linux; elsewhere a no-op)."""
    blas = _find_openblas()
    if blas is None:
        yield False
        return
    set_fn, get_fn = blas
    previous = get_fn()
    set_fn(n)
    try:
        yield True
    finally:
        set_fn(previous)


class _Worker:
    """A daemon thread that runs the functions put in its inbox, one at a time."""

    def __init__(self):
        self.inbox, self.outbox = queue.SimpleQueue(), queue.SimpleQueue()
        threading.Thread(target=self._loop, daemon=True, name="tinygrad_lm-worker").start()

    def _loop(self):
        _inside.active = True  # a nested run_in_threads from here runs its functions in turn
        while True:
            fn = self.inbox.get()
            try:
                fn()
                self.outbox.put(None)
            except BaseException as e:  # handed to the caller, which re-raises it
                self.outbox.put(e)


_workers = []
_run_lock = threading.Lock()
_inside = threading.local()  # .active: this thread is running one of run_in_threads's functions


def run_in_threads(fns):
    """Call fns[0] in this thread and the others on persistent worker threads, all at once;
    return when all are done, re-raising the first exception (in list order) if any failed.
    The workers live for the whole process, so their memory arenas and caches stay warm.
    Called from inside one of those functions (nested), it runs its functions one after another
    in the calling thread instead of waiting for workers that are busy."""
    if getattr(_inside, "active", False):
        for fn in fns:
            fn()
        return
    with _run_lock:
        while len(_workers) < len(fns) - 1:
            _workers.append(_Worker())
        for worker, fn in zip(_workers, fns[1:]):
            worker.inbox.put(fn)
        errors = [None] * len(fns)
        _inside.active = True
        try:
            fns[0]()
        except BaseException as e:
            errors[0] = e
        finally:
            _inside.active = False
        for i, worker in enumerate(_workers[:len(fns) - 1], start=1):
            while True:  # wait for every worker, even through Ctrl-C, so no reply is left queued
                try:
                    errors[i] = worker.outbox.get()
                    break
                except BaseException as e:  # interrupted while waiting: remember it, keep waiting
                    errors[0] = errors[0] or e
    for e in errors:
        if e is not None:
            raise e


def for_each_in_threads(fn, n, threads=2):
    """Call fn(j) for every j in range(n), the indices dealt round-robin to `threads` threads
    (this one and the workers); with threads <= 1, in order in this thread. fn must only write
    to its own j's slots: the calls run at the same time."""
    threads = max(1, min(int(threads), n))

    def run(first):  # j = first, first + threads, ...
        for j in range(first, n, threads):
            fn(j)

    run_in_threads([lambda k=k: run(k) for k in range(threads)])


def optimizer_step(optimizer, threads=2):
    """`optimizer.step()` with the parameters shared out over threads (elementwise updates,
    each parameter's state touched by one thread: the result equals the sequential step).
    With threads <= 1 it is just `optimizer.step()`."""
    if threads <= 1:
        optimizer.step()
        return
    jobs, i = [], 0
    for group in optimizer.param_groups:
        for p in group["params"]:
            if p.grad is not None:
                jobs.append((group, p, optimizer.state[i]))
            i += 1
    bins, sizes = [[] for _ in range(threads)], [0] * threads
    for job in sorted(jobs, key=lambda j: -j[1].data.size):  # largest first, onto the lightest bin
        k = sizes.index(min(sizes))
        bins[k].append(job)
        sizes[k] += job[1].data.size

    def run(jobs_of_bin):
        for group, p, state in jobs_of_bin:
            optimizer._update(group, p, p.grad, state)

    with blas_threads(1):
        run_in_threads([lambda b=b: run(b) for b in bins if b] or [lambda: None])


def _split(n, parts):
    """Slice bounds cutting range(n) into `parts` nearly equal runs."""
    edges = [round(i * n / parts) for i in range(parts + 1)]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]


def _in_slices(n, work):
    """Run work(i) for i in range(n) at once on n threads, slice i with its own generator (forked
    from the global one in slice order) and its own gradient sink; then add the sinks into the
    leaves' .grad in slice order, so nothing depends on how the threads were scheduled."""
    generators = _rng.fork(n)
    sinks = [None] * n

    def run(i):
        with _rng.local_generator(generators[i]), collect_grads() as sinks[i]:
            work(i)

    with blas_threads(1):
        run_in_threads([lambda i=i: run(i) for i in range(n)])
    merged = {}
    for sink in sinks:
        for key, (tensor, g) in sink.items():
            merged[key] = (tensor, g) if key not in merged else (tensor, merged[key][1] + g)
    for tensor, g in merged.values():
        tensor._accumulate(g)


def loss_backward_split(loss_fn, n_rows, threads=2, count=None):
    """Back-propagate a batch's mean loss with its rows split across threads.

    Args:
        loss_fn: loss_fn(rows) -> the mean loss (a Tensor) over the batch rows of slice `rows`.
        n_rows: the batch size B.
        threads: number of slices and threads (the calling thread takes the first slice); 1, or
            B < threads, runs loss_fn(slice(0, B)).backward() in this thread.
        count: count(rows) -> how many terms slice `rows`'s mean averages (default: its number of
            rows); the slices' gradients are weighted by count / total, so they add up to the
            gradient of the mean over the whole batch.
    Returns:
        the batch's mean loss as a Python float (the gradients are in the leaves' .grad).
    """
    threads = max(1, min(int(threads), n_rows))
    if threads == 1:
        loss = loss_fn(slice(0, n_rows))
        loss.backward()
        return float(loss.item())
    slices = _split(n_rows, threads)
    counts = [count(s) if count is not None else s.stop - s.start for s in slices]
    total = max(sum(counts), 1)
    losses = [None] * threads

    def work(i):
        loss = loss_fn(slices[i])
        losses[i] = float(loss.item())
        if counts[i]:  # weight n_i / N: the slices' gradients add up to the batch mean's
            loss.backward(np.asarray(counts[i] / total, dtype=loss.dtype))

    _in_slices(threads, work)
    return sum(c * l for c, l in zip(counts, losses) if c) / total


def forward_backward(model, idx, targets, threads=2, ignore_index=-1):
    """Forward and backward of `model(idx, targets)` with the batch split across threads.

    Args:
        model: called as model(idx_slice, targets_slice) -> (logits, loss), loss the mean over
            the slice's targets that are not ignore_index (GPT's forward).
        idx, targets: (B, T) integer arrays (NumPy to split; with threads=1 also CuPy).
        threads: number of slices and threads (the calling thread takes the first slice);
            1, or a batch smaller than `threads`, runs the plain forward and backward.
    Returns:
        the batch's mean loss as a Python float (the gradients are in the leaves' .grad).
    """
    xp = get_array_module(targets)
    return loss_backward_split(lambda rows: model(idx[rows], targets[rows])[1], len(idx), threads,
                               count=lambda rows: int(xp.count_nonzero(targets[rows] != ignore_index)))


def backward_split(fn, inputs, grad, threads=2):
    """`fn(*inputs).backward(grad)` with the batch (axis 0 of every input) split across threads.

    For any function of batch-first Tensors whose rows do not interact (a Transformer block,
    a layer): each thread runs fn on its rows of every input and back-propagates its rows of
    `grad`. Parameters receive the summed gradient and each input that requires grad gets its
    rows' gradients, as from one call on the whole batch (up to float rounding).
    Returns:
        the output of fn on the whole batch, as a raw array (rows in order).
    """
    grad = grad.data if isinstance(grad, Tensor) else grad
    B = inputs[0].shape[0]
    threads = max(1, min(int(threads), B))
    slices = _split(B, threads)
    # each slice gets leaves of its own, so no slicing op has to scatter gradients back
    pieces = [[Tensor(t.data[s], requires_grad=t.requires_grad) for t in inputs] for s in slices]
    outputs = [None] * threads

    def work(i):
        y = fn(*pieces[i])
        y.backward(grad[slices[i]])
        outputs[i] = y.data

    _in_slices(threads, work)
    xp = get_array_module(outputs[0])
    for j, t in enumerate(inputs):
        if t.requires_grad:
            t._accumulate(xp.concatenate([piece[j].grad for piece in pieces]))
    return xp.concatenate(outputs)

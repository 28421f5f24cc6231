"""Forward hooks under the batch split: each hook sees each forward once, with the whole batch.

`DataParallel` (data_parallel.py) runs a replica of the model on each slice of rows, in its own
thread. Were the replicas to call the model's forward hooks, a hook would fire once per slice,
from several threads at once, each time seeing a few rows: `run_with_cache` would keep one
slice's activations, a counter would count N forwards, and a hook's state would need a lock.
Instead, per slice:

  * `record(module, replica, calls)`: each replica module whose original has forward hooks gets
    one hook of its own instead (its `_forward_hooks` is a new dict), which appends
    (original module, inputs, output) to the slice's list `calls`, in the order the forwards end;
  * `replay(slices_calls, weights)`, in the calling thread once every slice has finished its
    forward: the k-th recorded call of every slice is joined into one and each hook of the
    original module is called once, in registration order, as `hook(module, inputs, output)`.

Joining (`join`): a tensor or array whose axis 0 is each slice's rows is concatenated along
axis 0 (the whole batch, B rows, in order); a 0-d tensor (a mean loss) becomes the weighted mean
DataParallel returns (weights n_i / N); tuples and lists are joined item by item; anything else
(a setting, None, a tensor without a batch axis) is the first slice's. Joined tensors are new
leaves (no creator): a hook sees values, not the slices' graphs.
A hook that returns a replacement cannot be honoured: the slices' forwards are over when it
runs. That is an error that says so and gives the fix (`--threads 1`, or a model not wrapped in
DataParallel). So is a forward whose slices called their hooked modules in different orders
(control flow that depends on the data). Modules without hooks cost nothing.
Leaves out: a tensor whose axis 0 happens to equal every slice's row count without being the
batch axis (it is concatenated too), and `viz.record_modules`' graph stamps (the hook sees
joined copies, so a split forward's graph is not drawn by module).
"""
from ..engine.backend import get_array_module
from ..engine.tensor import Tensor


def hooked(module, modules=None):
    """Whether any module of the tree `module` has a forward hook (the split then records calls);
    `modules`, when given, is the tree's modules, already listed by the caller."""
    return any(m._forward_hooks for m in (module.modules() if modules is None else modules))


def record(module, replica, calls):
    """Give each module of `replica` (a replicate() of `module`, same tree order) whose original
    has forward hooks one recording hook instead, appending (original, inputs, output) to `calls`."""
    for original, copy in zip(module.modules(), replica.modules()):
        if original._forward_hooks:
            def keep(_, inputs, output, original=original):
                calls.append((original, inputs, output))
            object.__setattr__(copy, "_forward_hooks", {0: keep})


def join(values, rows, weights):
    """One value from the slices' `values`: see the module docstring.

    Args:
        values: the same argument or output from each slice, in slice order.
        rows: each slice's row count.
        weights: each slice's loss weight n_i / N (0-d tensors).
    """
    first = values[0]
    if isinstance(first, (tuple, list)) and all(type(v) is type(first) and len(v) == len(first) for v in values):
        return type(first)(join([v[j] for v in values], rows, weights) for j in range(len(first)))
    data = [v.data if isinstance(v, Tensor) else v for v in values]
    if not all(hasattr(d, "ndim") and hasattr(d, "shape") for d in data):
        return first
    xp = get_array_module(data[0])
    if all(d.ndim >= 1 and d.shape[0] == n for d, n in zip(data, rows)):  # (rows_i, ...) -> (B, ...)
        joined = xp.concatenate(data)
    elif all(d.ndim == 0 for d in data) and isinstance(first, Tensor):  # a mean: weighted as DataParallel's loss
        joined = xp.asarray(sum(w * d for w, d in zip(weights, data) if w), dtype=data[0].dtype)
    else:
        return first
    return Tensor(joined) if isinstance(first, Tensor) else joined


def replay(slices_calls, rows, weights):
    """Call each original module's forward hooks once per recorded forward, with the slices joined.

    Args:
        slices_calls: per slice, the list `record` filled: [(original module, inputs, output)].
        rows, weights: as in `join`.
    Raises RuntimeError when the slices' calls differ or a hook returns a replacement.
    """
    first = slices_calls[0]
    for calls in slices_calls[1:]:
        if len(calls) != len(first) or any(a[0] is not b[0] for a, b in zip(calls, first)):
            raise RuntimeError("the batch's slices called the hooked modules in different orders (a forward whose "
                               "path depends on the data), so their hooks cannot see one joined forward; run with "
                               "--threads 1 (or call the model itself, not a DataParallel wrapper)")
    for k, (module, inputs, output) in enumerate(first):
        parts = [calls[k] for calls in slices_calls]
        joined_inputs = join([p[1] for p in parts], rows, weights)
        joined_output = join([p[2] for p in parts], rows, weights)
        for hook in tuple(module._forward_hooks.values()):
            if hook(module, joined_inputs, joined_output) is not None:
                raise RuntimeError(f"a forward hook on {type(module).__name__} returned a replacement output, but "
                                   "with the batch split over threads the forward is over when hooks run (they "
                                   "see the whole batch once, joined); run with --threads 1 to replace outputs "
                                   "(or call the model itself, not a DataParallel wrapper)")


__all__ = ["hooked", "record", "join", "replay"]

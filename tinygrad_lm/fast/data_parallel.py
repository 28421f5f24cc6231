"""Data parallelism across CPU cores inside one process: each batch split over threads.

A CPU training step is a chain of NumPy calls. BLAS spreads the matrix products over the cores,
but every other call (GELU, softmax, LayerNorm, AdamW...) runs on one core, so on a small
model half of a 2-core machine sits idle for half of the step. `DataParallel(model, threads)`
cuts each batch into one slice of rows per thread instead, and each thread runs forward and
backward of its slice with single-threaded BLAS: everything, not just the products, runs on
all cores. NumPy releases the GIL inside its loops and BLAS calls, so the threads overlap
except for the Python bookkeeping between calls. `split_optimizer_step` shares the
parameters' updates out over the same threads.

`train` and `finetune` use it by default: `--threads auto` gives it every core this process
may run on, at most one per row (run/cores.py); `--threads 1` turns it off.
The training loop does not change: `logits, loss = model(x, y)`, `loss.backward()`,
`optimizer.step()` run the same lines with or without the split. How:
  * each thread runs a replica of the model: the same module tree and the same parameter
    arrays (no copies), but Parameter objects of its own, so each thread's backward fills its
    own `.grad` and the autograd core needs no locks and knows nothing of threads;
  * `model(...)` is one Function (`_SplitBatch`) whose inputs are the real parameters: its
    forward runs the replicas on their rows in threads and joins the outputs (batch-first
    outputs are concatenated; a 0-d loss is the weighted mean of the slices' losses), and its
    backward runs each slice's backward in its thread and returns the replicas' gradients
    summed in slice order, which `loss.backward()` puts into the real parameters' `.grad`.
Slice i's loss, a mean over its n_i counted targets (entries of `targets`/`labels` that are not
-1), is weighted n_i / N, so the gradient is the whole batch's mean's, as one backward over
the batch gives, up to the float rounding of the order of the sums. Slice i runs inside
`rng.batch_rows(its first row)`, so its dropout masks are its rows of the masks one thread
draws over the whole batch (rng.py's keyed numbers): a run with dropout is the same run with
1, 2 or N threads, up to float rounding. Sums run in slice order, so it is reproducible bit
for bit whatever the scheduling. A Dropout with a generator of its own is refused (its stream
would follow the slices).
`python scripts/bench_train.py --speed` times the step with and without the split.
Given a `ThreadChoice` (`--threads auto`, thread_choice.py), the slices run one after another
on the calling thread while that times faster (a busy machine): the same numbers, bit for bit.
Forward hooks (nn/hooks.py, `--diagnostics`, `run_with_cache`) see each forward once, from the
calling thread, with the whole batch: the replicas record the calls of hooked modules and
split_hooks.py replays them joined after the threads; a hook that would replace an output is
refused under the split (`--threads 1` honours it).
Leaves out: processes and GPUs (threads are CPU-only), models with side effects beyond the
autograd graph and forward hooks, and `retain_graph=True` through a split call.
"""
import inspect
import time

from ..engine import rng
from ..engine.backend import get_array_module
from ..nn import Parameter
from .slices import check_no_own_generators, is_batch_first, slice_weights, split_rows
from ..engine.tensor import Function, Tensor
from .blas import blas_threads
from . import split_hooks
from .workers import run_in_threads


def replicate(module, params=None):
    """A copy of a module tree that shares every array but has Parameter objects of its own.

    Returns (replica, pairs) with pairs a list of (original Parameter, replica Parameter); a
    Parameter shared by two modules (tied weights) stays shared in the replica.
    """
    params = {} if params is None else params
    # copy.copy and Parameter(...) spelled out at their core: a new object of the same class with the
    # same attributes, and Parameters wrapped without re-checking arrays the originals checked
    # (measured 3.6x faster on the default model, 0.52 against 1.91 ms a replica; it runs per call)
    new = object.__new__(type(module))
    attributes = new.__dict__
    attributes.update(module.__dict__)  # the same attributes (arrays, settings), a new object
    attributes["_params"], attributes["_modules"] = own_params, own_modules = {}, {}
    for name, p in module._params.items():
        if p is not None and id(p) not in params:
            params[id(p)] = (p, Parameter._wrap(p.data, p.requires_grad, None, 0))
        own_params[name] = attributes[name] = None if p is None else params[id(p)][1]
    for name, m in module._modules.items():
        own_modules[name] = attributes[name] = replicate(m, params)[0]
    return new, list(params.values())


class _SplitBatch(Function):
    """One call of a DataParallel model: replicas forward in threads, backward in threads
    (or one after another when `choice` says so; it is then told the step's time)."""

    def __init__(self, runs, weights, output_kinds, choice=None, parallel=True, forward_seconds=0.0):
        self.runs, self.weights, self.kinds = runs, weights, output_kinds
        self.choice, self.parallel, self.forward_seconds = choice, parallel, forward_seconds

    def forward(self, *arrays):  # the inputs are the real tensors; the replicas already share their data
        outs = [r["out"] for r in self.runs]
        joined = []
        for j, kind in enumerate(self.kinds):
            if kind == "concat":
                joined.append(get_array_module(outs[0][j].data).concatenate([o[j].data for o in outs]))
            elif kind == "mean":  # slices with no counted target (weight 0) would add 0 * nan
                xp = get_array_module(outs[0][j].data)
                joined.append(xp.asarray(sum(w * o[j].data for w, o in zip(self.weights, outs) if w),
                                         dtype=outs[0][j].dtype))
        return tuple(joined)

    def backward(self, *grads):
        slots = [j for j, kind in enumerate(self.kinds) if kind is not None]

        def back(i):
            run, w = self.runs[i], self.weights[i]
            pairs = []
            for g, j in zip(grads, slots):
                t = run["out"][j]
                if g is None or not t.requires_grad:
                    continue
                if self.kinds[j] == "concat":
                    pairs.append((t, g[run["rows"]]))
                elif w:
                    pairs.append((t, g * t.dtype.type(w)))
            for k, (t, g) in enumerate(pairs):
                t.backward(g, retain_graph=k < len(pairs) - 1)

        start = time.perf_counter()
        with blas_threads(1):
            run_in_threads([lambda i=i: back(i) for i in range(len(self.runs))], self.parallel)
        if self.choice is not None:  # a training step's forward and backward: auto's timing
            self.choice.record(self.forward_seconds + time.perf_counter() - start)
        result = []
        for t in self.inputs:
            if not t.requires_grad:
                result.append(None)
                continue
            pieces = [r["leaves"][id(t)].grad for r in self.runs]
            if isinstance(t, Parameter):  # the replicas' gradients, summed in slice order
                pieces = [g for g in pieces if g is not None]
                result.append(None if not pieces else sum(pieces[1:], pieces[0]))
            else:  # a batch-first input: its rows' gradients, joined in order
                xp = get_array_module(t.data)
                result.append(xp.concatenate([g if g is not None else xp.zeros_like(leaf.data)
                                              for g, leaf in zip(pieces, (r["leaves"][id(t)] for r in self.runs))]))
        self.runs = None
        return tuple(result)


class DataParallel:
    """Call `module` with every batch-first argument split over `threads` CPU threads.

    Args:
        module: a Module called as module(*args, **kwargs) -> a Tensor or a tuple of Tensors
            (and Nones). Batch-first outputs (ndim >= 1) come back concatenated; a 0-d output
            (a mean loss) comes back as the weighted mean of the slices' values.
        threads: number of slices and threads (the calling thread takes the first slice).
    Every other attribute (parameters, state_dict, train/eval, generate, config...) is the
    module's own, so the wrapper stands in for the model in a training loop; `.module` is the
    model itself (for saving, sampling, and the fused/reference swap).
    """

    def __init__(self, module, threads=2, choice=None):
        if int(threads) < 1:
            raise ValueError(f"DataParallel: threads must be >= 1, got {threads}")
        self.module, self.threads, self.choice = module, int(threads), choice
        self._signature = inspect.signature(module.forward)

    def __getattr__(self, name):  # only called for names the wrapper itself lacks
        return getattr(self.module, name)

    def __repr__(self):
        return f"DataParallel(threads={self.threads},\n  {self.module!r})"

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        parallel = self.choice is None or self.choice.parallel  # auto on a busy machine: maybe one after another
        bound = self._signature.bind(*args, **kwargs)
        batch = [v for v in bound.arguments.values() if is_batch_first(v)]
        if not batch:
            raise ValueError("DataParallel: no array argument to split (the batch must be axis 0 of an array)")
        B = len(batch[0])
        threads = min(self.threads, B)
        if threads == 1:
            return self.module(*args, **kwargs)
        slices = split_rows(B, threads)
        weights = _weights(bound.arguments, slices)
        named = list(self.module.named_modules())  # one walk of the tree for both checks (run serially, per call)
        check_no_own_generators(self.module, "DataParallel", named)
        runs = [self._prepare(bound, rows, B) for rows in slices]
        offset, site = rng.row_offset(), rng.current_site()  # dropout: slice i draws rows offset + its start..
        blocks = [rng.batch_rows(offset + rows.start, site) for rows in slices]
        if split_hooks.hooked(self.module, [m for _, m in named]):  # hooks see each forward once, joined: the replicas record their calls
            for run in runs:
                split_hooks.record(self.module, run["model"], run.setdefault("calls", []))

        def work(i):
            run = runs[i]
            with blocks[i]:
                out = run["model"](*run["args"], **run["kwargs"])
            run["tuple"] = isinstance(out, tuple)
            run["out"] = out if run["tuple"] else (out,)

        with blas_threads(1):
            run_in_threads([lambda i=i: work(i) for i in range(threads)], parallel)
        rng.advance_sites(blocks, "run it with threads=1 (--threads 1)")  # past the masks the slices drew
        if "calls" in runs[0]:  # in this thread, after every slice: each hook once, on the whole batch
            split_hooks.replay([run["calls"] for run in runs], [s.stop - s.start for s in slices], weights)
        first = runs[0]["out"]
        kinds = [None if o is None else "mean" if o.ndim == 0 else "concat" for o in first]
        # the model's parameters in parameters() order, as replicate listed them (no second walk of the tree)
        inputs = [t for t in _tensor_args(bound.arguments) if t.requires_grad] + runs[0]["params"]
        joined = iter(_SplitBatch(runs, weights, kinds, self.choice, parallel, time.perf_counter() - start)(*inputs))
        outs = tuple(None if kind is None else next(joined) for kind in kinds)
        return outs if runs[0]["tuple"] else outs[0]

    def _prepare(self, bound, rows, B):
        """A replica, its slice of every batch-first argument, and its leaves: `leaves` maps each
        real parameter and batch-first input Tensor (by id) to its counterpart in this slice."""
        model, pairs = replicate(self.module)
        leaves = {id(p): q for p, q in pairs}

        def cut(v):
            if not is_batch_first(v) or len(v) != B:
                return v
            if isinstance(v, Tensor):
                leaf = Tensor(v.data[rows], requires_grad=v.requires_grad)
                leaves[id(v)] = leaf
                return leaf
            return v[rows]

        args = [cut(v) for v in bound.args]
        kwargs = {k: cut(v) for k, v in bound.kwargs.items()}
        return {"model": model, "leaves": leaves, "rows": rows, "args": args, "kwargs": kwargs,
                "params": [p for p, _ in pairs]}


def _tensor_args(arguments):
    return [v for v in arguments.values() if isinstance(v, Tensor) and v.ndim >= 1]


def _weights(arguments, slices):
    targets = arguments.get("targets", arguments.get("labels"))
    return slice_weights(targets.data if isinstance(targets, Tensor) else targets, slices)


def split_optimizer_step(optimizer, threads=2, choice=None):
    """Make `optimizer.step()` share the parameters' updates out over threads; returns optimizer.

    The updates are elementwise and each parameter's state is touched by one thread, so the
    result equals the sequential step exactly. Parameters are dealt largest first onto the
    thread with the least work. With threads <= 1 the optimizer is returned unchanged.
    """
    if threads <= 1:
        return optimizer

    def step():
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
            run_in_threads([lambda b=b: run(b) for b in bins if b] or [lambda: None],
                           choice is None or choice.parallel)

    optimizer.step = step  # an instance attribute: it shadows Optimizer.step for this object only
    return optimizer

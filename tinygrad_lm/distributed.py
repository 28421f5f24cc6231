"""Data-parallel training over MPI: N processes, on one host or many, each on its rows of every batch.

    mpiexec -n 2 python -m tinygrad_lm train --dist mpi        (needs: pip install -e .[dist])

One step with N ranks, the way llm.c and ChainerMN do it:
  1. every rank draws the same batch (same seed, same batch stream) and keeps its own rows,
     the very slices `--threads N` cuts in one process (fast/slices.py); its dropout masks are
     those rows of the whole batch's (`rng.batch_rows`), so the masks do not depend on N;
  2. forward and backward on those rows. The rank's mean loss enters the whole batch's mean with
     weight n_r / N (its share of the counted targets), so its backward starts from that weight;
  3. `group.all_reduce_grads(model)`: every gradient packed into one flat buffer, summed over the
     ranks by one Allreduce, unpacked. Each rank now holds the gradient of the whole batch's
     mean loss, the one a single process computes;
  4. clipping and AdamW run on every rank on equal gradients, so the weights stay equal without
     being sent again.
Rank 0 broadcasts the initial weights, checks that every rank has its config, alone locks the
run folder (a refusal is raised on every rank) and alone writes logs and checkpoints; every rank reads the checkpoint to resume. The loss each rank sees is the
whole batch's (`Sharded` sums the weighted losses with a one-number Allreduce), so all ranks log
the same value, evaluate together and stop together on a NaN.

With two ranks the sums have two terms, and float addition of two terms does not depend on their
order: a 2-rank run gives the weights of `--threads 2` bit for bit. With more ranks MPI picks the
order of the sum, and runs agree with one process to float rounding.

GPUs: CuPy buffers are summed by NCCL (`cupy.cuda.nccl`, its unique id sent over MPI) when CuPy
has NCCL, otherwise copied to the host and summed by MPI. Each rank uses GPU (local rank mod the
number of GPUs).
Interrupts: Ctrl-C, SIGTERM or SIGHUP on any rank only sets a flag (loop.Run's handler), which rides in
the gradient buffer, so every rank stops after the same step and rank 0 saves a checkpoint that
resumes exactly. A second Ctrl-C, or an error on any rank, prints one message and ends every
rank (MPI_Abort), so no process is left waiting in a collective.

Leaves out: overlapping the Allreduce with backward (PyTorch DDP's gradient buckets), sharding
the optimizer state (ZeRO), tensor and pipeline parallelism, and ranks joining or leaving.
"""
import inspect
import json
import os
import sys
import time

import numpy as np

from .engine import rng
from .engine.backend import get_array_module
from .fast.slices import check_no_own_generators, is_batch_first, slice_weights, split_rows
from .engine.tensor import Function, Tensor

INSTALL_HINT = "pip install -e .[dist] in a checkout (mpi4py and the mpich wheel), or pip install mpi4py mpich"


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError(f"--dist mpi needs mpi4py and an MPI library ({e}): {INSTALL_HINT}") from None
    return MPI


def init(device="cpu"):
    """Join the MPI job this process was started in (`mpiexec -n N ...`); returns its Group.

    On the CPU each rank keeps BLAS to one thread: ranks are placed one per core, and BLAS
    threads of their own would fight the other ranks for the cores (--threads still splits a
    rank's rows over threads, as in one process).
    """
    global _group
    if _group is not None:  # already joined (the command line joins before it parses the config)
        return _group
    MPI = _mpi()
    if device != "cuda":
        from .fast.blas import set_blas_threads

        set_blas_threads(1)
    _group = Group(MPI.COMM_WORLD, device)
    return _group


_group = None  # the Group of this process once init() ran: the command line ends every rank on an error


def current():
    """This process's Group, or None when it is not (yet) a rank of an MPI job."""
    return _group


class Group:
    """The ranks of one MPI job: `rank`, `size`, and the collective steps the training loop needs.

    Args:
        comm: an mpi4py communicator (MPI.COMM_WORLD).
        device: "cpu" or "cuda": where the gradients live.
    """

    def __init__(self, comm, device="cpu"):
        self.comm, self.rank, self.size, self.device = comm, comm.Get_rank(), comm.Get_size(), device
        self.stop_requested = False  # this rank got Ctrl-C or SIGTERM (set by loop.Run's handler)
        self.stopping = False  # some rank did: set by all_reduce_grads, the same on every rank
        self._nccl = _nccl_communicator(comm) if device == "cuda" else None

    # ----------------------------------------------------------------- collectives
    def all_reduce_(self, buf):
        """Sum a flat, contiguous array over the ranks, in place; returns it."""
        if get_array_module(buf) is np:
            self.comm.Allreduce(_mpi().IN_PLACE, buf, op=_mpi().SUM)
        elif self._nccl is not None:
            import cupy
            from cupy.cuda import nccl

            kind = {np.dtype(np.float32): nccl.NCCL_FLOAT32, np.dtype(np.float64): nccl.NCCL_FLOAT64}[buf.dtype]
            self._nccl.allReduce(buf.data.ptr, buf.data.ptr, buf.size, kind, nccl.NCCL_SUM,
                                 cupy.cuda.get_current_stream().ptr)
        else:  # CuPy without NCCL: through host memory
            import cupy

            host = cupy.asnumpy(buf)
            self.comm.Allreduce(_mpi().IN_PLACE, host, op=_mpi().SUM)
            buf[...] = cupy.asarray(host)
        return buf

    def all_reduce_grads(self, model):
        """Sum every parameter's gradient over the ranks with one Allreduce of one flat buffer.

        Buffer layout: [every gradient, flattened, in parameter order | one has-a-gradient flag per
        parameter | this rank's stop flag]. A parameter no rank gave a gradient keeps grad None (as
        in one process); the summed stop flag sets `self.stopping` on every rank.
        """
        params = [p for p in model.parameters() if p.requires_grad]
        dtypes = {p.dtype for p in params}
        if len(dtypes) != 1:
            raise TypeError(f"all_reduce_grads: parameters of several dtypes {sorted(map(str, dtypes))}; "
                            "move the model to one dtype first (model.to(dtype=...))")
        xp = get_array_module(params[0].data)
        sizes = [p.data.size for p in params]
        buf = xp.zeros(sum(sizes) + len(params) + 1, dtype=params[0].dtype)
        start = 0
        for p, n in zip(params, sizes):
            if p.grad is not None:
                buf[start:start + n] = p.grad.reshape(-1)
            start += n
        buf[start:start + len(params)] = xp.asarray([p.grad is not None for p in params], dtype=buf.dtype)
        buf[-1] = self.stop_requested
        self.all_reduce_(buf)
        flags = buf[start:start + len(params)]
        start = 0
        for i, (p, n) in enumerate(zip(params, sizes)):
            p.grad = buf[start:start + n].reshape(p.shape) if flags[i] > 0 else None  # (n,) -> p's shape
            start += n
        self.stopping = bool(buf[-1] > 0)

    def broadcast_parameters(self, model, root=0):
        """Copy rank `root`'s parameter values into every rank's parameters (one Bcast)."""
        params = model.parameters()
        xp = get_array_module(params[0].data)
        buf = xp.concatenate([p.data.reshape(-1).astype(np.float64) for p in params])  # (total,) float64
        host = buf if xp is np else xp.asnumpy(buf)
        self.comm.Bcast(host, root=root)
        start = 0
        for p in params:
            n = p.data.size
            p.data[...] = xp.asarray(host[start:start + n]).reshape(p.shape).astype(p.dtype)  # in place
            start += n

    def check_same_config(self, config, batch_size=None):
        """Raise ValueError on every rank when the ranks were given different configs (a dict), or
        when `batch_size` rows do not split evenly over the ranks."""
        if batch_size is not None and batch_size % self.size:
            raise ValueError(f"--batch-size {batch_size} does not split evenly over {self.size} ranks; use a multiple "
                             f"of {self.size} (it is the global batch: each rank takes batch_size / {self.size} rows)")
        mine = json.dumps(config, sort_keys=True, default=str)
        everyone = self.comm.allgather(mine)
        differ = [r for r, c in enumerate(everyone) if c != everyone[0]]
        if differ:
            theirs = json.loads(everyone[differ[0]])
            keys = _differing_keys(json.loads(everyone[0]), theirs)
            raise ValueError(f"the ranks disagree on the config: rank {differ[0]} has "
                             + ", ".join(f"{k}={b!r} where rank 0 has {a!r}" for k, a, b in keys[:5])
                             + "; launch every rank with the same flags")

    def barrier(self):
        self.comm.Barrier()

    def abort(self, message, code=1):
        """Print `message` and end every rank of the job (MPI_Abort): none is left waiting."""
        sys.stderr.write(message.rstrip() + "\n")
        sys.stderr.flush()
        sys.stdout.flush()
        time.sleep(0.5)  # let the launcher pass the message on before MPI_Abort tears the job down
        self.comm.Abort(code)
        os._exit(code)  # MPI_Abort may return to its caller before the launcher kills it

    def fail(self, error, code=1, what="error"):
        """After an error on this rank: report it once and end the job. A rank other than 0 waits
        a moment first, so that an error every rank meets alike is printed by rank 0 alone."""
        if self.rank != 0 and self.size > 1:
            time.sleep(2.0)
        self.abort(f"{what} on rank {self.rank} of {self.size}: {type(error).__name__}: {error}", code)


def _differing_keys(a, b, prefix=""):
    out = []
    for k in sorted(set(a) | set(b)):
        x, y = a.get(k), b.get(k)
        if isinstance(x, dict) and isinstance(y, dict):
            out += _differing_keys(x, y, f"{prefix}{k}.")
        elif x != y:
            out.append((prefix + k, x, y))
    return out


def _nccl_communicator(comm):
    """A NCCL communicator over the MPI job's ranks, or None when CuPy has no NCCL."""
    import cupy

    local = comm.Split_type(_mpi().COMM_TYPE_SHARED).Get_rank()  # this rank's index on its host
    cupy.cuda.Device(local % cupy.cuda.runtime.getDeviceCount()).use()
    try:
        from cupy.cuda import nccl
    except ImportError:
        return None
    if not getattr(nccl, "available", True):
        return None
    uid = nccl.get_unique_id() if comm.Get_rank() == 0 else None
    return nccl.NcclCommunicator(comm.Get_size(), comm.bcast(uid, root=0), comm.Get_rank())


class _WholeBatchMean(Function):
    """This rank's mean loss in; the whole batch's mean loss out, the same number on every rank.

    forward: sum over ranks of weight_r * loss_r (weight_r = n_r / N); backward: gy * weight_r
    into this rank's graph, as `--threads` does for each slice. A rank with no counted target
    (weight 0) sends no gradient into its graph, whose mean is 0/0.
    """

    def __init__(self, group, weight):
        self.group, self.weight = group, weight

    def forward(self, loss):
        xp = get_array_module(loss)
        part = xp.asarray(self.weight * loss)  # the product --threads forms, in the dtype NumPy gives it
        if not self.weight:
            part = xp.zeros_like(part)  # 0, not 0 * NaN
        total = self.group.all_reduce_(part.reshape(1))  # (1,): the sum over ranks
        return xp.asarray(total.reshape(()), dtype=loss.dtype)  # (1,) -> 0-d, in the loss's dtype

    def backward(self, gy):
        return gy * gy.dtype.type(self.weight) if self.weight else None


class Sharded:
    """`model(...)` on this rank's rows of the batch, every 0-d output (the loss) the whole batch's.

    Args:
        module: the model (or a fast-path wrapper of it), called as module(*args, **kwargs).
        group: the Group.
    Batch-first arguments (axis 0 of length B) are cut to this rank's rows; B must divide by the
    number of ranks. Batch-first outputs (the logits) come back for this rank's rows only. The
    forward runs inside `rng.batch_rows(this rank's first row)`, so its dropout masks are its
    rows of the masks one process draws over the whole batch.
    Every other attribute is the model's own, so the wrapper stands in for it in the loop.
    """

    def __init__(self, module, group):
        self.module, self.group = module, group
        self._signature = inspect.signature(module.forward)

    def __getattr__(self, name):  # only called for names the wrapper itself lacks
        return getattr(self.module, name)

    def __call__(self, *args, **kwargs):
        bound = self._signature.bind(*args, **kwargs)
        batch = [v for v in bound.arguments.values() if is_batch_first(v)]
        if not batch:
            raise ValueError("Sharded: no array argument to split (the batch must be axis 0 of an array)")
        B, size, rank = len(batch[0]), self.group.size, self.group.rank
        if B % size:
            raise ValueError(f"a batch of {B} rows does not split evenly over {size} ranks; "
                             f"use a --batch-size divisible by {size}")
        slices = split_rows(B, size)
        targets = bound.arguments.get("targets", bound.arguments.get("labels"))
        weight = slice_weights(targets.data if isinstance(targets, Tensor) else targets, slices)[rank]
        if size > 1:
            check_no_own_generators(self.module, "--dist mpi")

        def cut(v):
            return v[slices[rank]] if is_batch_first(v) and len(v) == B else v

        with rng.batch_rows(rng.row_offset() + slices[rank].start):  # dropout: this rank's rows of the batch's masks
            out = self.module(*[cut(v) for v in bound.args], **{k: cut(v) for k, v in bound.kwargs.items()})
        outs = out if isinstance(out, tuple) else (out,)
        outs = tuple(_WholeBatchMean(self.group, weight)(o) if o is not None and o.ndim == 0 else o for o in outs)
        return outs if isinstance(out, tuple) else outs[0]

    def __repr__(self):
        return f"Sharded(rank {self.group.rank} of {self.group.size},\n  {self.module!r})"

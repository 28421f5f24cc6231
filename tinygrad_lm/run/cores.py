"""How many cores a run uses: the CPU threads it splits each batch over: `--threads auto` (the default) or `--threads N`.

`train`, `finetune` (both tasks) and MLM pretraining split every batch over threads on the fast
path (fast/data_parallel.py). `auto` asks for every core this process may run on, as PyTorch,
llm.c (OpenMP) and NumPy's BLAS do without being asked:

    cores    len(os.sched_getaffinity(0)) (the cores `taskset`, a container or a batch system
             leave to this process), os.cpu_count() where the platform has no affinity call
    ranks    under `--dist mpi`, the cores are shared by the ranks on this host: each takes
             cores // ranks (at least 1), so `mpiexec -n 2` on 2 cores runs 1 thread per rank
    work     never so many threads that one gets less than MIN_WORK (parameters x tokens) a step:
             a tiny model's step is faster on one thread
    rows     never more threads than rows to split: the rows of one micro-batch of this rank
             (--batch-size, divided over the MPI ranks; with --grad-accum, one micro-batch's)
    paths    --reference (the textbook step) and --device cuda (one GPU stream) run on one
             thread, and `auto` says so at start

An explicit `--threads N` wins (N > 1 with --reference or a GPU is refused, config.py). The
run's start prints one line: `threads: 2 (auto)`, `threads: 1 (auto: --reference runs the
textbook step on one thread)`, `threads: 3`. The saved config keeps what was asked ("auto" or
N), so a checkpoint resumed on another machine uses that machine's cores.
Leaves out: hyper-threads (a sibling counts as a core, as sched_getaffinity lists it), cgroup
CPU quotas (a container limited by quota rather than by cpuset sees all the host's cores), and
sharing the cores with other processes than this run's MPI ranks.
"""
import argparse
import numbers
import os

AUTO = "auto"
ACCEPTED = "a positive integer or auto"  # what --threads takes, for every error that names it


def available_cores():
    """The number of cores this process may run on: its affinity mask's, else os.cpu_count()."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows: no affinity call
        return os.cpu_count() or 1


def valid(value):
    """Whether `value` is a thread setting: "auto" or an int >= 1 (not a bool, not "2")."""
    if value == AUTO and isinstance(value, str):
        return True
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1


def parse(text):
    """The argparse type of --threads (and a TOML value): "auto", or an integer >= 1."""
    if isinstance(text, str) and text.strip().lower() == AUTO:
        return AUTO
    try:
        value = int(text) if isinstance(text, str) or valid(text) else None
    except ValueError:
        value = None
    if value is None or value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not {ACCEPTED}; pass --threads N with N >= 1 (the batch "
                                         "split over N threads), or --threads auto (every core, the default)")
    return value


def ranks_on_host(group):
    """How many ranks of the MPI job `group` (distributed.Group, or None) run on this host.

    Collective: every rank must call it. MPI-3's shared-memory split groups the ranks that share
    this node; without it, the launcher's local-size variable (Open MPI, MPICH), else every rank."""
    if group is None:
        return 1
    try:
        from mpi4py import MPI

        local = group.comm.Split_type(MPI.COMM_TYPE_SHARED)
        try:
            return local.Get_size()
        finally:
            local.Free()
    except Exception:  # an MPI without Split_type: ask the launcher
        for name in ("OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "MV2_COMM_WORLD_LOCAL_SIZE"):
            if os.environ.get(name, "").strip().isdigit():
                return max(1, int(os.environ[name]))
        return group.size


# auto splits a batch only where each thread gets at least this much work a step: parameters x
# tokens (rows x context). Measured on 2 cores (BENCHMARKS.md, issue #26): 2 threads took 1.31x one
# thread's step at 13M a thread (2 layers, 64 wide, 8 x 32 tokens) and 0.92x at 41M (64 x 12 x 64)
MIN_WORK = 40_000_000


def row_work(model):
    """The work of one batch row, in parameters x tokens: `model`'s parameter count times its
    context length (config.block_size), or None where the model has no such config."""
    block = getattr(getattr(model, "config", None), "block_size", None)
    return None if not block else int(block) * sum(int(p.data.size) for p in model.parameters())


def resolve(run, rows, ranks=1, cores=None, work=None):
    """(threads, line): how many threads the run splits each batch over, and its start line.

    Args:
        run: the run's RunConfig (threads, reference, device).
        rows: rows of one micro-batch of this process (--batch-size over the MPI ranks).
        ranks: MPI ranks sharing this host's cores (`ranks_on_host`).
        cores: cores this process may use (default: `available_cores()`).
        work: one row's work (`row_work`); auto gives each thread at least MIN_WORK of it.
    """
    if run.threads != AUTO:  # an explicit N wins (config.py refused N > 1 with --reference or a GPU)
        n = int(run.threads)
        used = min(n, max(1, rows))
        note = f" ({used} used: a micro-batch of this run has {rows} row{'s' * (rows != 1)})" if used < n else ""
        return n, f"threads: {n}{note}"
    if run.reference:
        return 1, "threads: 1 (auto: --reference runs the textbook step on one thread)"
    if run.device != "cpu":
        return 1, f"threads: 1 (auto: --device {run.device} runs each op in parallel on the device)"
    cores = available_cores() if cores is None else cores
    share = max(1, cores // max(1, ranks))
    n = max(1, min(share, rows))
    small = work is not None and n > 1 and rows * work // MIN_WORK < n  # too little work to split that many ways
    why = []
    if ranks > 1:
        why.append(f"{cores} core{'s' * (cores != 1)} shared by {ranks} MPI ranks on this host")
    if small:
        n = max(1, rows * work // MIN_WORK)
        why.append(f"a step of this model is too small to split further: at least {MIN_WORK:,} parameters x "
                   "tokens a thread")
    elif n < share:
        why.append(f"a micro-batch of this run has {rows} row{'s' * (rows != 1)}")
    if not why and n == 1:
        why.append("this process may run on 1 core")
    return n, f"threads: {n} (auto" + (": " + "; ".join(why) if why else "") + ")"


def batch_split(cfg, group=None, model=None):
    """(options, line) of a TrainConfig or FinetuneConfig run: `fast.speed_up`'s keyword arguments
    {"threads": N, "choose": auto?} and the start line. N is `resolve`'s, with the run's micro-batch
    rows (--batch-size, this rank's share of them under MPI) and the ranks on this host; with
    `auto`, the slices run on threads only while that is faster (fast/thread_choice.py: a busy
    machine)."""
    ranks, size = ranks_on_host(group), (1 if group is None else group.size)
    n, line = resolve(cfg.run, max(1, cfg.optim.batch_size // size), ranks, work=None if model is None else
                      row_work(model))
    return {"threads": n, "choose": cfg.run.threads == AUTO and n > 1}, line


__all__ = ["AUTO", "ACCEPTED", "available_cores", "valid", "parse", "ranks_on_host", "resolve", "batch_split", "row_work", "MIN_WORK"]

"""Benchmark forward + backward of one pre-LN Transformer block against PyTorch.

Times `tinygrad_lm.nn.Block(C, n_head)` (default B=12, T=64, C=128, 4 heads, float32: the
nanoGPT CPU recipe's block) for one forward and one backward from a fixed output gradient,
and beside it the same block in PyTorch eager (when importable), twice: with
`F.scaled_dot_product_attention(is_causal=True)` and with attention spelled out
(q k^T, masked_fill, softmax, @ v). GELU is the tanh approximation on both sides. Rounds of
the three are interleaved in one process so machine noise hits them alike; the min and the
median over the timed steps are printed with the ratio ours / PyTorch. Target: ratio <= 1.3.
Our block runs twice too: the reference path (nn.Block as written) and the fast path
(`fast.fuse(block)`). With --threads > 1 a further side runs the fused block with the batch
split across that many threads (`fast.DataParallel`, single-threaded BLAS per thread), the way
`train --threads N` runs a training step.

Each round first runs untimed steps of a side for 0.15 s, then times `--inner` steps: right
after a switch, the other library's idle BLAS/OpenMP threads are still spinning on the same 2
cores (OpenBLAS and libgomp both busy-wait after a call), which made the first steps of a side
up to 2x slower on the 2-core machine and would make the comparison a measurement of the
switching, not of either library.

`--profile` then runs a few more steps with every `Function` subclass's forward and backward
wrapped in timers and prints where the time goes, per op, per step.

`--step-profile` profiles the default command's whole training step instead (`python -m
tinygrad_lm train`'s model and settings from TrainConfig(), the fast path, each batch split over
--split-threads threads, auto by default, BLAS on one thread as train runs it): the step's
phases on the calling thread (forward, backward, clipping, the optimizer; inside forward and
backward, the threaded region and the serial work around it), then every Function's forward
and backward summed over the threads. Times are CPU time of the thread that ran them
(time.thread_time), so other processes on a shared machine inflate them less than wall time;
the phases are also given in wall time. Last come the step's matrix products alone (its shapes,
its threads) and the limit that sets: this run's NumPy GEMM rate at 2048^2 and the step time that
60% of it (issue #26's target) would mean, against the products' own time.

    python scripts/bench_layers.py                 # threads 2, 15 rounds of 4 steps
    python scripts/bench_layers.py --profile
    python scripts/bench_layers.py --threads 1 --batch 4 --no-torch
    python scripts/bench_layers.py --step-profile              # the default command's step
"""
import argparse
import os
import sys


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=12, help="B")
    p.add_argument("--seq", type=int, default=64, help="T")
    p.add_argument("--embd", type=int, default=128, help="C")
    p.add_argument("--heads", type=int, default=4, help="n_head")
    p.add_argument("--repeats", type=int, default=15, help="interleaved rounds")
    p.add_argument("--inner", type=int, default=4, help="timed steps per side per round (after 0.15 s of untimed ones)")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps per side first")
    p.add_argument("--threads", type=int, default=2, help="BLAS/OpenMP threads (both sides)")
    p.add_argument("--no-torch", action="store_true", help="time tinygrad_lm only")
    p.add_argument("--no-tune-allocator", action="store_true",
                   help="skip tinygrad_lm.fast.tune_allocator() (which the fast training loops call)")
    p.add_argument("--profile", action="store_true", help="per-Function forward/backward times")
    p.add_argument("--profile-steps", type=int, default=20, help="steps timed by --profile")
    p.add_argument("--step-profile", action="store_true",
                   help="profile the default command's whole training step (threads split, phases, Functions)")
    p.add_argument("--split-threads", default="auto",
                   help="with --step-profile: train's --threads (N or auto: the cores, at most the batch rows)")
    return p.parse_args()


ARGS = parse_args()
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)  # before NumPy (and PyTorch) load their BLAS

import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import tinygrad_lm  # noqa: E402
from tinygrad_lm import Tensor, fast, nn  # noqa: E402
from tinygrad_lm.fast.blas import blas_threads  # noqa: E402

try:
    import torch
except ImportError:
    torch = None
if ARGS.no_torch:
    torch = None


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_info():
    lines = [f"platform: {platform.platform()}",
             f"cpu:      {cpu_model()} ({os.cpu_count()} logical cores)",
             f"python:   {platform.python_version()}",
             f"numpy:    {np.__version__}",
             f"torch:    {torch.__version__ if torch is not None else 'not used'}",
             f"threads:  {ARGS.threads} (OMP/OPENBLAS/MKL_NUM_THREADS"
             f"{', torch.set_num_threads' if torch is not None else ''})",
             load_line("load:    ")]
    return "\n".join(lines)


def load_line(prefix, window=1.0):
    """How busy the cores are just before we start (other processes skew every timing).

    Measured from /proc/stat over `window` seconds (the load average lags by a minute);
    elsewhere the 1-minute load average stands in.
    """
    def cpu_times():
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        return sum(fields), fields[3] + fields[4]  # total, idle + iowait

    try:
        total0, idle0 = cpu_times()
        time.sleep(window)
        total1, idle1 = cpu_times()
        busy = 1.0 - (idle1 - idle0) / max(1, total1 - total0)
        text, noisy = f"cores {100 * busy:.0f}% busy in the {window:.0f} s before the run", busy > 0.1
    except (OSError, ValueError, IndexError):
        try:
            load = os.getloadavg()[0]
        except OSError:
            return f"{prefix} unknown"
        text, noisy = f"1-min load average {load:.2f}", load > 0.5
    warn = "  (other processes are running: timings are unreliable)" if noisy else ""
    return f"{prefix} {text} on {os.cpu_count()} cores{warn}"


# ---------------------------------------------------------------- the two sides
def ours_step_fn(B, T, C, nh, fused):
    """A closure running one forward + backward of our Block; grads are reset first (untimed)."""
    tinygrad_lm.manual_seed(0)
    block = nn.Block(C, nh)
    if fused:
        fast.fuse(block)
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((B, T, C)).astype(np.float32), requires_grad=True)
    gy = rng.standard_normal((B, T, C)).astype(np.float32)
    params = block.parameters()

    def reset():
        x.grad = None
        for p in params:
            p.grad = None

    def step():
        block(x).backward(grad=gy)

    split = fast.DataParallel(block, ARGS.threads)

    def split_step():  # the batch split across threads, as `train --threads N` runs
        with blas_threads(1):
            split(x).backward(grad=gy)

    return block, reset, step, split_step


def torch_step_fn(block_state, B, T, C, nh, manual):
    """The same block in PyTorch (weights copied by name), SDPA or hand-written attention."""
    import torch.nn as tnn
    import torch.nn.functional as tF

    class Attention(tnn.Module):
        def __init__(self):
            super().__init__()
            self.c_attn = tnn.Linear(C, 3 * C)
            self.c_proj = tnn.Linear(C, C)
            self.register_buffer("causal", torch.ones(T, T, dtype=torch.bool).tril())

        def forward(self, x):
            q, k, v = self.c_attn(x).split(C, dim=2)  # 3 x (B, T, C)
            q, k, v = (a.view(B, T, nh, C // nh).transpose(1, 2) for a in (q, k, v))  # (B, nh, T, hs)
            if manual:
                att = (q @ k.transpose(-2, -1)) * (1.0 / (C // nh) ** 0.5)  # (B, nh, T, T)
                att = att.masked_fill(~self.causal, float("-inf")).softmax(dim=-1)
                y = att @ v  # (B, nh, T, hs)
            else:
                y = tF.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.c_proj(y.transpose(1, 2).reshape(B, T, C))

    class MLP(tnn.Module):
        def __init__(self):
            super().__init__()
            self.c_fc, self.c_proj = tnn.Linear(C, 4 * C), tnn.Linear(4 * C, C)

        def forward(self, x):
            return self.c_proj(tF.gelu(self.c_fc(x), approximate="tanh"))

    class Block(tnn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1, self.attn = tnn.LayerNorm(C), Attention()
            self.ln_2, self.mlp = tnn.LayerNorm(C), MLP()

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    block = Block()
    missing, unexpected = block.load_state_dict({k: torch.from_numpy(v) for k, v in block_state.items()},
                                                strict=False)
    assert not unexpected and missing == (["attn.causal"] if "attn.causal" in block.state_dict() else []), \
        (missing, unexpected)  # every weight copied by name; only the mask buffer is ours alone
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.standard_normal((B, T, C)).astype(np.float32), requires_grad=True)
    gy = torch.tensor(rng.standard_normal((B, T, C)).astype(np.float32))

    def reset():
        x.grad = None
        block.zero_grad(set_to_none=True)

    def step():
        block(x).backward(gy)

    def output():
        with torch.no_grad():
            return block(x).numpy()

    return output, reset, step


def timed(reset, step):
    reset()
    t0 = time.perf_counter()
    step()
    return (time.perf_counter() - t0) * 1e3


# ---------------------------------------------------------------- profile
def function_classes():
    """Every Function subclass the package defines (ops and fused), found by walking subclasses."""
    import tinygrad_lm.fast  # noqa: F401
    import tinygrad_lm.engine.ops  # noqa: F401

    seen, stack = [], [tinygrad_lm.Function]
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            if sub not in seen:
                seen.append(sub)
                stack.append(sub)
    return seen


def profile(reset, step, steps):
    """Run `steps` steps with every Function's forward/backward timed; print a table."""
    totals = defaultdict(float)
    calls = defaultdict(int)
    patched = []

    def wrap(cls, phase, fn):
        key = (f"{cls.__module__.replace('tinygrad_lm.', '')}.{cls.__name__}", phase)

        def timed_method(self, *args):
            t0 = time.perf_counter()
            try:
                return fn(self, *args)
            finally:
                totals[key] += time.perf_counter() - t0
                calls[key] += 1

        return timed_method

    for cls in function_classes():
        for phase in ("forward", "backward"):
            fn = cls.__dict__.get(phase)
            if fn is not None:
                patched.append((cls, phase, fn))
                setattr(cls, phase, wrap(cls, phase, fn))
    try:
        wall = 0.0
        for _ in range(steps):
            reset()
            t0 = time.perf_counter()
            step()
            wall += time.perf_counter() - t0
    finally:
        for cls, phase, fn in patched:
            setattr(cls, phase, fn)

    per_step = 1e3 / steps
    inside = sum(totals.values())
    print(f"\nper-Function time over {steps} profiled steps (ms per step; timers add a little overhead)")
    print(f"  {'Function':<40} {'phase':<9} {'calls':>5} {'ms':>8} {'share':>6}")
    for (name, phase), t in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<40} {phase:<9} {calls[(name, phase)] // steps:>5} {t * per_step:>8.3f} "
              f"{100 * t / wall:>5.1f}%")
    print(f"  {'inside Functions':<56} {inside * per_step:>8.3f} {100 * inside / wall:>5.1f}%")
    print(f"  {'outside (graph walk, wrappers, Python)':<56} {(wall - inside) * per_step:>8.3f} "
          f"{100 * (wall - inside) / wall:>5.1f}%")
    print(f"  {'total step':<56} {wall * per_step:>8.3f}")


def step_profile(steps):
    """Where the default command's training step spends its time (see the module docstring)."""
    import threading
    from dataclasses import replace

    from tinygrad_lm.fast import data_parallel
    from tinygrad_lm.models.gpt import GPT
    from tinygrad_lm.optim import AdamW, clip_grad_norm_, param_groups
    from tinygrad_lm.run.data import build_tokenizer, load_corpus, micro_batches
    from tinygrad_lm.run.train import TrainConfig

    cfg = TrainConfig()
    text, name = load_corpus(cfg.data)
    model_cfg = replace(cfg.model, vocab_size=build_tokenizer(cfg.tokenizer, text, cfg.vocab_size, name=name).vocab_size)
    B = cfg.optim.batch_size
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = min(cores, B) if ARGS.split_threads == "auto" else int(ARGS.split_threads)  # train's --threads
    fast.tune_allocator()
    tinygrad_lm.manual_seed(cfg.run.seed)
    model = GPT(model_cfg)
    opt = AdamW(param_groups(model.named_parameters(), cfg.optim.weight_decay), lr=cfg.optim.lr,
                betas=(cfg.optim.beta1, cfg.optim.beta2))
    model, opt = fast.speed_up(model, opt, threads)
    rng = np.random.default_rng(0)
    batches = [{"idx": rng.integers(0, model_cfg.vocab_size, (B, model_cfg.block_size)),
                "targets": rng.integers(0, model_cfg.vocab_size, (B, model_cfg.block_size))} for _ in range(4)]

    phases = defaultdict(lambda: [0.0, 0.0])  # name -> [wall, cpu of the calling thread], summed
    regions = []  # per threaded region: (wall, [cpu of each function])
    functions = defaultdict(float)  # (Function, phase) -> CPU seconds, summed over threads
    lock = threading.Lock()

    def timed_phase(name, fn):
        w, c = time.perf_counter(), time.thread_time()
        out = fn()
        phases[name][0] += time.perf_counter() - w
        phases[name][1] += time.thread_time() - c
        return out

    original_run = data_parallel.run_in_threads

    def run_timed(fns, parallel=True):
        cpu = [0.0] * len(fns)

        def wrap(i, fn):
            def run():
                c = time.thread_time()
                try:
                    fn()
                finally:
                    cpu[i] = time.thread_time() - c
            return run
        w = time.perf_counter()
        original_run([wrap(i, fn) for i, fn in enumerate(fns)], parallel)
        regions.append((time.perf_counter() - w, cpu))

    def wrap_function(cls, phase, fn):
        key = (cls.__name__, phase)

        def timed_method(self, *args):
            c = time.thread_time()
            try:
                return fn(self, *args)
            finally:
                spent = time.thread_time() - c
                with lock:
                    functions[key] += spent
        return timed_method

    def one_step(i):
        batch = batches[i % len(batches)]
        with blas_threads(1):  # as train: BLAS on one thread (the command line's default)
            timed_phase("zero_grad", opt.zero_grad)
            _, loss = timed_phase("forward", lambda: model(**next(iter(micro_batches(batch, 1)))[0]))
            timed_phase("backward", lambda: (loss * 1.0).backward())
            timed_phase("loss.item()", loss.item)
            timed_phase("clip_grad_norm_", lambda: clip_grad_norm_(model.parameters(), cfg.optim.grad_clip))
            timed_phase("optimizer.step()", opt.step)

    for i in range(5):  # warm up
        one_step(i)
    phases.clear()
    patched = []
    data_parallel.run_in_threads = run_timed
    for cls in function_classes():
        for phase in ("forward", "backward"):
            fn = cls.__dict__.get(phase)
            if fn is not None and cls is not data_parallel._SplitBatch:  # it holds the replicas' Functions
                patched.append((cls, phase, fn))
                setattr(cls, phase, wrap_function(cls, phase, fn))
    try:
        wall = time.perf_counter()
        for i in range(steps):
            one_step(i)
        wall = time.perf_counter() - wall
    finally:
        data_parallel.run_in_threads = original_run
        for cls, phase, fn in patched:
            setattr(cls, phase, fn)

    per = 1e3 / steps
    print(f"bench_layers --step-profile: the default command's training step, {steps} steps")
    print("command:  " + " ".join([os.path.basename(sys.executable)] + sys.argv))
    print(machine_info())
    print(f"model:    {model_cfg}, batch {B}, fast path, split over {threads} threads "
          f"({ARGS.split_threads}), BLAS on 1 thread")
    print(f"\n  {'phase (calling thread)':<44} {'wall ms':>8} {'CPU ms':>8}")
    n_regions = len(regions) // steps if threads > 1 else 0
    names = ["forward", "backward", "optimizer.step()"][:n_regions]
    region_of = {name: regions[k::n_regions] for k, name in enumerate(names)} if n_regions else {}
    for name, (w, c) in phases.items():
        print(f"  {name:<44} {w * per:8.2f} {c * per:8.2f}")
        if name in region_of:
            rs = region_of[name]
            region_wall = sum(r[0] for r in rs) * per
            cpus = [sum(r[1][t] for r in rs) * per for t in range(len(rs[0][1]))]
            print(f"    {'in the threads (wall; CPU of each thread)':<42} {region_wall:8.2f} "
                  + " ".join(f"{c_:6.2f}" for c_ in cpus))
            print(f"    {'around them (split, join, gradient sum)':<42} {w * per - region_wall:8.2f} "
                  f"{c * per - cpus[0]:8.2f}")
    print(f"  {'total':<44} {wall * per:8.2f}")
    inside = sum(functions.values())
    print(f"\n  Functions, CPU ms per step summed over the {threads} threads (divide by {threads} for one thread's share)")
    print(f"  {'Function':<32} {'phase':<9} {'CPU ms':>8} {'share':>6}")
    for (fname, phase), t in sorted(functions.items(), key=lambda kv: -kv[1]):
        print(f"  {fname:<32} {phase:<9} {t * per:8.3f} {100 * t / inside:5.1f}%")
    print(f"  {'inside Functions':<42} {inside * per:8.3f}")
    step_cpu = [sum(r[1][t] for r in regions) / steps for t in range(threads)] if regions else None
    floor, flop = gemm_floor(model_cfg, B, threads, wall / steps, step_cpu)
    share_limit(floor, flop, wall / steps)


def gemm_floor(cfg, B, threads, step_seconds, step_cpu=None, repeats=30):
    """The step's matrix products alone, at their shapes, each thread its slice's with BLAS on one
    thread, run as the split runs them: the time NumPy's GEMMs set as a floor for the step."""
    from tinygrad_lm.fast.data_parallel import run_in_threads
    from tinygrad_lm.fast.slices import split_rows

    T, C, nh, V, L = cfg.block_size, cfg.n_embd, cfg.n_head, cfg.vocab_size, cfg.n_layer
    rng = np.random.default_rng(0)

    def arr(*shape):
        return rng.standard_normal(shape, dtype=np.float32)

    def products(b):
        """One slice's products of b rows: (function, FLOP) for each, forward and backward."""
        N, hs, ops = b * T, C // nh, []
        for width_in, width_out in [(C, 3 * C), (C, C), (C, 4 * C), (4 * C, C)] * L + [(C, V)]:  # Linear layers
            x, w, gy = arr(N, width_in), arr(width_out, width_in), arr(N, width_out)
            ops += [lambda x=x, w=w: x @ w.T, lambda gy=gy, w=w: gy @ w, lambda gy=gy, x=x: gy.T @ x]
        qkv = arr(b, T, 3 * C).reshape(b, T, 3, nh, hs)  # strided q, k views, as the attention kernel reads them
        q, k, p = qkv[:, :, 0].transpose(0, 2, 1, 3), qkv[:, :, 1].transpose(0, 2, 1, 3), arr(b, nh, T, T)
        for _ in range(L):  # attention: forward k q^T and P v, backward four products of the same size
            ops += [lambda: k @ q.swapaxes(-1, -2), lambda: p.swapaxes(-1, -2) @ k, lambda: p @ k,
                    lambda: k @ q.swapaxes(-1, -2), lambda: p.swapaxes(-1, -2) @ k, lambda: p @ q]
        return ops

    slices = [products(s.stop - s.start) for s in split_rows(B, threads)]
    cpu = [0.0] * len(slices)  # CPU time of each thread over the timed repeats

    def run_slice(i, ops, timed):
        def run():
            c = time.thread_time()
            for op in ops:
                op()
            if timed:
                cpu[i] += time.thread_time() - c
        return run

    times = []
    with blas_threads(1):
        for r in range(repeats + 3):
            t = time.perf_counter()
            fns = [run_slice(i, ops, r >= 3) for i, ops in enumerate(slices)]
            run_in_threads(fns) if threads > 1 else fns[0]()
            if r >= 3:
                times.append(time.perf_counter() - t)
    floor = statistics.median(times)
    flop = 6 * B * T * (12 * L * C * C + C * V) + 12 * L * B * T * T * C
    print(f"\n  the step's matrix products alone (the same shapes and threads, BLAS on 1 thread each): median "
          f"{floor * 1e3:.2f} ms wall ({flop / floor / 1e9:.1f} GFLOP/s over {flop / 1e9:.3f} GFLOP), CPU of each "
          f"thread " + " ".join(f"{c / repeats * 1e3:.2f}" for c in cpu) + " ms; "
          f"{100 * floor / step_seconds:.0f}% of the profiled step's {step_seconds * 1e3:.2f} ms (wall, with timers)")
    if step_cpu:
        print("  the step's CPU of each thread in its threaded regions: " + " ".join(f"{c * 1e3:.2f}" for c in step_cpu)
              + " ms; the matrix products alone are " + " ".join(f"{100 * g / repeats / c:.0f}%" for g, c in
                                                                  zip(cpu, step_cpu)) + " of it")
    return floor, flop


def share_limit(floor, flop, step_seconds, target=0.60, n=2048, repeats=15):
    """What issue #26's share-of-GEMM target asks of the step, from this run's own figures: NumPy's
    float32 GEMM rate at n^2 (BLAS on --threads threads, bench_train.py --speed's yardstick), the
    step time that `target` of it means, and what that leaves beside the matrix products alone."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    out, times = np.empty((n, n), dtype=np.float32), []
    with blas_threads(ARGS.threads):
        for r in range(repeats + 2):
            t = time.perf_counter()
            np.matmul(a, b, out=out)
            if r >= 2:
                times.append(time.perf_counter() - t)
    rate = 2 * n ** 3 / statistics.median(times)
    budget = flop / (target * rate)
    print(f"\n  the limit: NumPy float32 GEMM {n}^2 @ {n}^2 on {ARGS.threads} BLAS threads, this run: median "
          f"{rate / 1e9:.1f} GFLOP/s; the matrix products alone reach {100 * flop / floor / rate:.0f}% of it")
    print(f"    {100 * target:.0f}% of it is a step of {flop / 1e9:.3f} GFLOP / ({target:.2f} x {rate / 1e9:.1f} GFLOP/s) = "
          f"{budget * 1e3:.2f} ms: {(budget - floor) * 1e3:.2f} ms beside the products' {floor * 1e3:.2f} ms for "
          f"everything else (LayerNorm, GELU, softmax, the loss, AdamW, the graph, the threads' joins), which took "
          f"{(step_seconds - floor) * 1e3:.2f} ms of the profiled step")


# ---------------------------------------------------------------- main
def main():
    B, T, C, nh = ARGS.batch, ARGS.seq, ARGS.embd, ARGS.heads
    print("bench_layers: forward + backward of one pre-LN Transformer block")
    print("command:  " + " ".join([os.path.basename(sys.executable)] + sys.argv))
    print(machine_info())
    print(f"shape:    B={B}, T={T}, C={C}, n_head={nh}, float32; {ARGS.warmup} warm-up steps, then "
          f"{ARGS.repeats} interleaved rounds of 0.15 s untimed + {ARGS.inner} timed steps per side")

    allocator = "default glibc allocator" if ARGS.no_tune_allocator else f"tune_allocator() -> {fast.tune_allocator()}"
    print(f"memory:   {allocator} (the training loops call tune_allocator; it applies to PyTorch too)")
    _, ref_reset, ref_step, _ = ours_step_fn(B, T, C, nh, fused=False)
    block, ours_reset, ours_step, ours_split_step = ours_step_fn(B, T, C, nh, fused=True)
    sides = [("tinygrad_lm reference", ref_reset, ref_step), ("tinygrad_lm fast", ours_reset, ours_step)]
    if ARGS.threads > 1:
        sides.append((f"tinygrad_lm fast, {ARGS.threads} thr", ours_reset, ours_split_step))
    if torch is not None:
        torch.set_num_threads(ARGS.threads)
        state = block.state_dict()
        with tinygrad_lm.no_grad():
            y_ours = block(Tensor(np.random.default_rng(0).standard_normal((B, T, C)).astype(np.float32))).data
        for manual, label in ((False, "PyTorch (F.sdpa is_causal)"), (True, "PyTorch (manual attention)")):
            output, r, s = torch_step_fn(state, B, T, C, nh, manual)
            sides.append((label, r, s))
            print(f"check:    max |ours - {label}| on the block output = {np.abs(y_ours - output()).max():.1e}")

    for _, reset, step in sides:
        for _ in range(ARGS.warmup):
            timed(reset, step)
    times = {label: [] for label, _, _ in sides}
    for _ in range(ARGS.repeats):
        for label, reset, step in sides:  # interleaved: noise hits every side alike
            # untimed steps for 0.15 s first: the previous side's idle BLAS/OpenMP threads stop
            # busy-waiting (OpenBLAS spins ~0.1 s after its last call) and this side warms up
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < 0.15:
                timed(reset, step)
            times[label] += [timed(reset, step) for _ in range(ARGS.inner)]

    print(f"\n  {'':<30} {'min ms':>8} {'median ms':>10}   (over {len(times[sides[0][0]])} steps)")
    for label, ts in times.items():
        print(f"  {label:<30} {min(ts):>8.2f} {statistics.median(ts):>10.2f}")
    if torch is not None:
        theirs = [label for label in times if label.startswith("PyTorch")]
        fastest = min(min(times[label]) for label in theirs)
        for name in [label for label in times if label.startswith("tinygrad_lm")]:
            ours = times[name]
            print()
            for label in theirs:
                ratio_min = min(ours) / min(times[label])
                ratio_med = statistics.median(ours) / statistics.median(times[label])
                print(f"  ratio {name} / {label}: {ratio_min:.2f}x (min), {ratio_med:.2f}x (median)")
            verdict = "meets" if min(ours) / fastest <= 1.3 else "misses"
            print(f"  {name}: target <= 1.3x the faster PyTorch variant, by min: {verdict} ({min(ours) / fastest:.2f}x)")

    if ARGS.profile:
        profile(ours_reset, ours_step, ARGS.profile_steps)


if __name__ == "__main__":
    if ARGS.step_profile:
        step_profile(ARGS.profile_steps)
    else:
        main()

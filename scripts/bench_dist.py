"""Benchmark data-parallel training over MPI ranks against threads in one process.

Times the training step of `train` (forward, backward, the gradient Allreduce, clipping, AdamW)
on the default model (4 layers, 4 heads, 128 wide, block 64, batch 12, float32, fast path) four
ways, each a fresh process, in interleaved rounds so that load on a shared machine hits every
side alike:

    threads 1   one process, one thread          (python -m tinygrad_lm train)
    threads 2   one process, the batch over 2 threads  (train --threads 2)
    ranks 1     mpiexec -n 1 ... --dist mpi      (the Allreduce with nobody else)
    ranks 2     mpiexec -n 2 ... --dist mpi      (each rank 6 rows)

and prints ms/step, tokens/s, and for the ranks the Allreduce's time and bytes per step.
`--model-sizes` also times one rank's step for the larger configs of the README and
BENCHMARKS.md (nanoGPT's shakespeare-char model, GPT-2 small), for the scaling model in
BENCHMARKS.md.

    python scripts/bench_dist.py
    python scripts/bench_dist.py --rounds 5 --steps 30 --model-sizes
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {  # name: (n_layer, n_head, n_embd, block_size, batch_size, vocab_size)
    "default": (4, 4, 128, 64, 12, 65),
    "shakespeare-char": (6, 6, 384, 256, 12, 65),
    "gpt2-small": (12, 12, 768, 256, 4, 50257),
}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the four sides")
    p.add_argument("--steps", type=int, default=20, help="timed steps per side and round (after 3 warm-up steps)")
    p.add_argument("--model-sizes", action="store_true", help="also one rank's step for the larger configs")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # config name: time steps in this process
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--dist", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args()


def worker(args):
    """Time `args.steps` training steps of config `args.worker`; print one JSON line (rank 0)."""
    import numpy as np

    import tinygrad_lm
    from tinygrad_lm import distributed, fast
    from tinygrad_lm.models.gpt import GPT, GPTConfig
    from tinygrad_lm.optim import AdamW, clip_grad_norm_, param_groups

    n_layer, n_head, n_embd, block, batch, vocab = CONFIGS[args.worker]
    group = distributed.init() if args.dist else None
    tinygrad_lm.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=vocab, block_size=block, n_layer=n_layer, n_head=n_head, n_embd=n_embd))
    optimizer = AdamW(param_groups(model.named_parameters(), 0.1), lr=1e-3, betas=(0.9, 0.99))
    raw = model
    if group:
        group.broadcast_parameters(raw)
    model, optimizer = fast.speed_up(model, optimizer, threads=args.threads)
    if group:
        model = distributed.Sharded(model, group)
    rng = np.random.default_rng(0)
    steps, reduce_ms = [], []
    for i in range(3 + args.steps):
        x = rng.integers(0, vocab, (batch, block))
        y = rng.integers(0, vocab, (batch, block))
        t0 = time.perf_counter()
        _, loss = model(x, y)
        optimizer.zero_grad()
        loss.backward()
        if group:
            t1 = time.perf_counter()
            group.all_reduce_grads(raw)
            reduce_ms.append((time.perf_counter() - t1) * 1e3)
        clip_grad_norm_(raw.parameters(), 1.0)
        optimizer.step()
        steps.append((time.perf_counter() - t0) * 1e3)
    steps, reduce_ms = steps[3:], reduce_ms[3:]
    if group is None or group.rank == 0:
        n = sum(p.data.size for p in raw.parameters())
        print(json.dumps({"ms_per_step": statistics.median(steps), "tokens_per_step": batch * block,
                          "params": n, "reduce_ms": statistics.median(reduce_ms) if reduce_ms else None,
                          "reduce_bytes": (n + len(raw.parameters()) + 1) * 4 if group else None}), flush=True)


def mpiexec():
    """The mpiexec beside this Python (the mpich wheel's), else the one on the PATH, else None."""
    here = Path(sys.executable).with_name("mpiexec")
    return str(here) if here.exists() else shutil.which("mpiexec")


def run_side(config, threads=1, ranks=None, steps=20):
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", config, "--threads", str(threads),
           "--steps", str(steps)]
    if ranks is not None:
        cmd = [mpiexec(), "-n", str(ranks)] + cmd + ["--dist"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if done.returncode:
        sys.exit(f"side {cmd} failed:\n{done.stdout}{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    args = parse_args()
    if args.worker:
        return worker(args)
    if mpiexec() is None:
        sys.exit("mpiexec not found: pip install -e .[dist] (mpi4py and the mpich wheel)")
    sides = {"threads 1": dict(threads=1), "threads 2": dict(threads=2), "ranks 1": dict(ranks=1),
             "ranks 2": dict(ranks=2)}
    results = {name: [] for name in sides}
    load = os.getloadavg()[0]
    for _ in range(args.rounds):
        for name, kw in sides.items():
            results[name].append(run_side("default", steps=args.steps, **kw))
    print(f"default model, batch 12 x 64 tokens, float32, fast path; median over {args.rounds} rounds "
          f"x {args.steps} steps; load average before: {load:.2f}, after: {os.getloadavg()[0]:.2f}")
    print(f"{'side':10s} {'ms/step':>8s} {'tokens/s':>9s} {'allreduce ms':>12s} {'allreduce bytes':>15s}")
    for name, rs in results.items():
        ms = statistics.median(r["ms_per_step"] for r in rs)
        red = [r["reduce_ms"] for r in rs if r["reduce_ms"] is not None]
        print(f"{name:10s} {ms:8.1f} {rs[0]['tokens_per_step'] / ms * 1e3:9.0f} "
              f"{(f'{statistics.median(red):.3f}' if red else '-'):>12s} "
              f"{(str(rs[0]['reduce_bytes']) if rs[0]['reduce_bytes'] else '-'):>15s}")
    if args.model_sizes:
        print("\none rank's step (mpiexec -n 1 --dist mpi), for the scaling model:")
        print(f"{'config':18s} {'params':>12s} {'tokens/step':>11s} {'ms/step':>9s} {'grad bytes':>12s}")
        for name in CONFIGS:
            r = run_side(name, ranks=1, steps=max(3, args.steps // 4) if name != "default" else args.steps)
            print(f"{name:18s} {r['params']:12,d} {r['tokens_per_step']:11d} {r['ms_per_step']:9.1f} "
                  f"{r['reduce_bytes']:12,d}")


if __name__ == "__main__":
    main()

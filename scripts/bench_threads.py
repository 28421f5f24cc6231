"""Time the default command's training step with `--threads 1`, explicit N and `auto`, idle and loaded.

What it measures: the step of `python -m tinygrad_lm train` with its defaults (the model, data,
tokenizer and batch a user's first command gets), for each side `--threads 1`, `--threads 2`
(every explicit count from 1 to the cores this process may run on) and the default, `auto`.
Each measurement is a real subprocess, `python -m tinygrad_lm train --max-iters W+S
--log-interval 1 --eval-interval 100000 --eval-iters 1 --sample-tokens 0 --quiet` in a fresh
--out-dir, so the figures are what a user gets; its ms/step are read from the run's log.jsonl
(one record per step, evaluation time left out), the first W steps (warm-up) dropped, and
start-up (imports, tokenizing, building the model) is never timed.

Loads, each a phase of its own:
  idle    nothing started by this script (other programs still run: /proc/loadavg is printed)
  busy    one CPU-bound process beside the run (`python -c "while True: pass"`), started before
          the phase's first run and killed after its last, so every side meets the same load
Sides alternate round by round (their order rotated each round), so a change in the machine's
load hits every side alike. Printed per load: each side's median ms/step over all its timed
steps (and each round's median), then the ratios the issue sets targets for:
  busy   auto / --threads 1                  target <= 1.10 (auto must not hurt on a loaded machine)
  idle   auto / best explicit --threads N    target <= 1.05 (auto is as good as the best choice)
Extra train flags go after `--` (e.g. `-- --reference` for the textbook step); `--env` sets
variables for every run, and a side may set its own after a colon (`auto:OPENBLAS_NUM_THREADS=2`
lets BLAS run two threads of its own on that side: how fast/blas.py's default was chosen).

    python scripts/bench_threads.py                           # 3 rounds x 20 steps, about 3 minutes
    python scripts/bench_threads.py --rounds 5 --steps 40 --loads busy
    python scripts/bench_threads.py --sides auto,auto:OPENBLAS_NUM_THREADS=2 -- --reference
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASK_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def available_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def parse_args(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_sides = ",".join([str(n) for n in range(1, max(2, available_cores()) + 1)] + ["auto"])
    p.add_argument("--sides", default=default_sides,
                   help=f"comma-separated --threads values to time (default: {default_sides})")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds per load (default: 3)")
    p.add_argument("--steps", type=int, default=20, help="timed steps per run (default: 20)")
    p.add_argument("--warmup", type=int, default=5, help="first steps of each run left out (default: 5)")
    p.add_argument("--loads", default="idle,busy", help="idle, busy or both (default: idle,busy)")
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="set for every run")
    args = p.parse_args(argv)
    args.extra, args.sides, args.loads = extra, args.sides.split(","), args.loads.split(",")
    if any(load not in ("idle", "busy") for load in args.loads):
        p.error(f"--loads takes idle and/or busy, got {','.join(args.loads)}")
    if min(args.rounds, args.steps) < 1 or args.warmup < 0:
        p.error("--rounds and --steps must be >= 1, --warmup >= 0")
    return args


def loadavg():
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return "n/a"


def child_env(settings):
    """This checkout first on the path; BLAS's thread count left to the command unless --env sets it."""
    env = {k: v for k, v in os.environ.items() if k not in ASK_VARIABLES}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    env.update(dict(s.split("=", 1) for s in settings))
    return env


def step_times(side, args, env, folder):
    """ms of each timed step of one `train --threads side` run (warm-up dropped). A side may carry
    environment variables of its own after a colon: `auto:OPENBLAS_NUM_THREADS=2`."""
    threads, *settings = side.split(":")
    env = {**env, **dict(s.split("=", 1) for s in settings)}
    out = Path(folder) / f"run-{len(os.listdir(folder))}"
    cmd = [sys.executable, "-m", "tinygrad_lm", "train", "--threads", threads, "--max-iters",
           str(args.warmup + args.steps), "--log-interval", "1", "--eval-interval", "100000", "--eval-iters", "1",
           "--sample-tokens", "0", "--quiet", "--overwrite", "--out-dir", str(out), *args.extra]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(cmd)}\n{done.stdout}{done.stderr}")
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if line.strip()]
    times = [r["ms_per_step"] for r in records if "ms_per_step" in r]
    return times[args.warmup:]


def measure(load, args, env, folder):
    """{side: [per-round lists of ms]} for one load, sides alternating round by round."""
    burner = None
    if load == "busy":
        burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        print(f"  {load}: loadavg before {loadavg()}", flush=True)
        times = {side: [] for side in args.sides}
        for r in range(args.rounds):
            order = args.sides[r % len(args.sides):] + args.sides[:r % len(args.sides)]
            for side in order:
                times[side].append(step_times(side, args, env, folder))
            print(f"    round {r + 1}: " + " | ".join(f"--threads {s} {statistics.median(times[s][-1]):.1f} ms"
                                                        for s in args.sides), flush=True)
        print(f"  {load}: loadavg after  {loadavg()}", flush=True)
        return times
    finally:
        if burner is not None:
            burner.kill()
            burner.wait()


def report(load, times):
    medians = {side: statistics.median([t for run in runs for t in run]) for side, runs in times.items()}
    print(f"\n{load}: median ms/step over every timed step (rounds' medians in brackets)")
    for side, runs in times.items():
        rounds = ", ".join(f"{statistics.median(run):.1f}" for run in runs)
        print(f"  --threads {side:>4}  {medians[side]:7.1f} ms  [{rounds}]")
    explicit = {s: m for s, m in medians.items() if s.isdigit()}
    if "auto" in medians and "1" in medians:
        target = " (target under load: <= 1.10)" if load == "busy" else ""
        print(f"  auto / --threads 1:       {medians['auto'] / medians['1']:.3f}{target}")
    if "auto" in medians and explicit:
        best = min(explicit, key=explicit.get)
        target = " (target idle: <= 1.05)" if load == "idle" else ""
        print(f"  auto / best explicit (--threads {best}): {medians['auto'] / explicit[best]:.3f}{target}")


def main():
    args = parse_args()
    env = child_env(args.env)
    print(f"bench_threads: {available_cores()} cores for this process; sides {', '.join(args.sides)}; "
          f"{args.rounds} rounds x {args.steps} timed steps (+{args.warmup} warm-up); extra flags: "
          f"{' '.join(args.extra) or 'none'}; env: {' '.join(args.env) or 'BLAS left to the command'}")
    with tempfile.TemporaryDirectory(prefix="bench_threads_") as folder:
        results = {load: measure(load, args, env, folder) for load in args.loads}
    for load, times in results.items():
        report(load, times)


if __name__ == "__main__":
    main()

"""Time the default `train` step and `sample` on an idle and on a busy machine, for the
command line's BLAS default and the behaviour before it.

Modes (each a real `python -m tinygrad_lm ...` subprocess, so the figures are what a user gets):
  new     the command as it runs now: BLAS on one thread (fast/blas.py, `default_blas_threads`)
  old     the behaviour before: BLAS on one thread per core (OPENBLAS_NUM_THREADS=<cores>)
  split   `train --threads <cores>`: each batch split over threads, BLAS on one thread each
Loads:
  idle    nothing else started by this script (other programs on the machine still run:
          /proc/loadavg is printed before and after every measurement)
  busy    one competing process spinning on a core (`python -c "while True: pass"`)

Training: ms/step is read from the run's log.jsonl (`--log-interval 5`; the first record,
the warm-up, is left out; evaluation never runs). Sampling: the wall time of
`sample --ckpt CKPT --max-new-tokens 30` (start-up and loading included, as a user waits for
it), from a checkpoint this script trains first. The measurements are interleaved, repeat by
repeat, so a change in the machine's load hits every mode alike.

    python scripts/bench_load.py                       # 2 repeats, 30 steps each
    python scripts/bench_load.py --repeats 3 --steps 50 --modes new,old
"""
import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASK_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
MODES = ("new", "old", "split")
LOADS = ("idle", "busy")


def loadavg():
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return "n/a (no /proc/loadavg)"


def child_env(mode, cores):
    """The environment of a measured command: this checkout first on the path; BLAS's count
    left to the command (new, split) or set to one thread per core (old)."""
    env = {k: v for k, v in os.environ.items() if k not in ASK_VARIABLES}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    if mode == "old":
        env["OPENBLAS_NUM_THREADS"] = str(cores)
    return env


def run(cmd, env):
    """Run a command; returns its wall time in seconds, or exits with its output if it failed."""
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"bench_load: {' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return seconds


def train_ms_per_step(mode, cores, steps, out_dir):
    """ms/step of `train` in this mode, from its log.jsonl, the first log record left out."""
    cmd = [sys.executable, "-m", "tinygrad_lm", "train", "--max-iters", str(steps), "--log-interval", "5",
           "--eval-interval", str(10 * steps), "--eval-iters", "1", "--sample-tokens", "0", "--quiet",
           "--out-dir", str(out_dir), "--overwrite"]
    if mode == "split":
        cmd += ["--threads", str(cores)]
    run(cmd, child_env(mode, cores))
    records = [json.loads(line) for line in (out_dir / "log.jsonl").read_text().splitlines()]
    per_step = [r["ms_per_step"] for r in records if "ms_per_step" in r][1:]
    return statistics.mean(per_step)


def sample_seconds(mode, cores, ckpt, tokens):
    cmd = [sys.executable, "-m", "tinygrad_lm", "sample", "--ckpt", str(ckpt), "--max-new-tokens", str(tokens),
           "--seed", "1"]
    return run(cmd, child_env(mode, cores))


class Busy:
    """One process spinning on a core while the block runs."""

    def __enter__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(0.5)  # let it reach its loop
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=30, help="training steps per measurement (default: 30)")
    p.add_argument("--repeats", type=int, default=2, help="rounds over every mode and load (default: 2)")
    p.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}")
    p.add_argument("--sample-tokens", type=int, default=30, help="tokens sampled (0 skips sampling; default: 30)")
    args = p.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown or args.steps < 10 or args.repeats < 1:
        p.error(f"modes must be among {', '.join(MODES)} (got {', '.join(unknown) or 'them'}), "
                f"--steps >= 10, --repeats >= 1")
    cores = os.cpu_count() or 1
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip() or "unknown"
    except OSError:
        commit = "unknown"
    print(f"bench_load: commit {commit}, {cores} cores, Python {sys.version.split()[0]}, {args.steps} steps x "
          f"{args.repeats} repeats, modes {', '.join(modes)}")
    print(f"loadavg at start: {loadavg()}")
    train_times = {(m, load): [] for m in modes for load in LOADS}
    sample_times = {(m, load): [] for m in modes if m != "split" for load in LOADS}
    with tempfile.TemporaryDirectory(prefix="bench_load_") as tmp:
        tmp = Path(tmp)
        ckpt = None
        if sample_times and args.sample_tokens > 0:  # a checkpoint to sample from: a short default run
            run([sys.executable, "-m", "tinygrad_lm", "train", "--max-iters", "10", "--eval-iters", "1",
                 "--sample-tokens", "0", "--quiet", "--out-dir", str(tmp / "ckpt")], child_env("new", cores))
            ckpt = tmp / "ckpt" / "ckpt.npz"
        for rep in range(args.repeats):
            for load in LOADS:
                for mode in modes:
                    before = loadavg()
                    with Busy() if load == "busy" else contextlib.nullcontext():
                        ms = train_ms_per_step(mode, cores, args.steps, tmp / "run")
                        s = sample_seconds(mode, cores, ckpt, args.sample_tokens) if (
                            ckpt and mode != "split") else None
                    train_times[mode, load].append(ms)
                    if s is not None:
                        sample_times[mode, load].append(s)
                    shown = f" | sample {args.sample_tokens} tokens {s:5.2f} s" if s is not None else ""
                    print(f"repeat {rep + 1} {load:4s} {mode:5s}: train {ms:7.1f} ms/step{shown} | loadavg "
                          f"before {before} after {loadavg()}", flush=True)
    print("\nmedian over repeats (all values in brackets):")
    print(f"{'mode':6s} {'load':5s} {'train ms/step':>14s}   {'sample s':>9s}")
    for mode in modes:
        for load in LOADS:
            t = train_times[mode, load]
            line = f"{mode:6s} {load:5s} {statistics.median(t):14.1f}   "
            s = sample_times.get((mode, load), [])
            line += f"{statistics.median(s):9.2f}" if s else f"{'-':>9s}"
            print(line + f"   [train {', '.join(f'{v:.1f}' for v in t)}"
                  + (f"; sample {', '.join(f'{v:.2f}' for v in s)}]" if s else "]"))
    print(f"loadavg at end: {loadavg()}")


if __name__ == "__main__":
    main()

"""Kernel choices, measured: each fused Function's NumPy spelling against the obvious one.

The fused Functions' docstrings justify some unusual NumPy spellings by speed; this script
times each choice beside the alternative it replaced, at the sizes of the CPU recipe's model
(B=12, T=64, C=128, 4 heads), so the claims can be checked on any machine:

  1. row sums (LayerNorm, attention): `a @ ones` (a BLAS mat-vec) against `a.sum(axis=-1)`;
  2. the attention softmax's max over keys: over axis -2 of the transposed (B, nh, S, T)
     scores (the layout fused/attention.py uses) against over axis -1 of (B, nh, T, S);
  3. the embedding backward: sort + `add.reduceat` (fused/embedding.py) against `np.add.at`;
  4. GELU forward + backward: the Function as shipped (64 Ki-element blocks) against the same
     Function run on the whole array at once (block = array size).

Timing: time.perf_counter, min and median over many reps, the two sides of each row
alternated rep by rep so background load hits both alike.

Usage:
    python scripts/bench_kernels.py
    python scripts/bench_kernels.py --threads 1 --reps 500
"""
import argparse
import os
import sys


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2, help="BLAS/OpenMP threads (set before NumPy loads)")
    p.add_argument("--reps", type=int, default=300, help="timed reps per side")
    return p.parse_args()


ARGS = parse_args()
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)  # before NumPy loads its BLAS

import platform  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import tinygrad_lm  # noqa: E402
from tinygrad_lm.fused.embedding import Embedding  # noqa: E402
from tinygrad_lm.fused.rows import rowsum  # noqa: E402
from tinygrad_lm.ops import unary  # noqa: E402


def alternate(a, b, reps):
    """(min, median) in microseconds of a and of b, run alternately."""
    for _ in range(10):
        a(), b()
    ta, tb = [], []
    for _ in range(reps):
        for fn, times in ((a, ta), (b, tb)):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return [(np.min(t) * 1e6, np.median(t) * 1e6) for t in (ta, tb)]


def row(name, shipped, other, a, b):
    (amin, amed), (bmin, bmed) = alternate(a, b, ARGS.reps)
    print(f"  {name:<36} {shipped:<26} {amin:8.1f} {amed:8.1f}   {other:<24} {bmin:8.1f} {bmed:8.1f}"
          f"   {bmin / amin:5.2f}x")


def embedding_backward(ids, gy, V):
    fn = Embedding(ids)
    fn.weight_shape, fn.dtype = (V, gy.shape[-1]), gy.dtype
    return fn.backward(gy)


def add_at(ids, gy, V):
    gw = np.zeros((V, gy.shape[-1]), gy.dtype)
    np.add.at(gw, ids.reshape(-1), gy.reshape(-1, gy.shape[-1]))
    return gw


def gelu_fwd_bwd(x, gy, block):
    saved, unary._GELU_BLOCK = unary._GELU_BLOCK, block
    try:
        fn = unary.GELU()
        fn.forward(x)
        return fn.backward(gy)
    finally:
        unary._GELU_BLOCK = saved


def main():
    tinygrad_lm.tune_allocator()  # what the training loops do
    rng = np.random.default_rng(0)
    print("# bench_kernels: the fused Functions' NumPy spellings against the obvious ones")
    print(f"command : {' '.join([os.path.basename(sys.executable)] + sys.argv)}")
    print(f"machine : {platform.platform()} | {os.cpu_count()} CPUs | python {platform.python_version()} | "
          f"numpy {np.__version__} | threads {ARGS.threads}")
    print(f"load    : {os.getloadavg()[0]:.2f} (1-minute average)")
    print(f"\n  {'kernel (float32)':<36} {'shipped':<26} {'min us':>8} {'med us':>8}   {'alternative':<24} "
          f"{'min us':>8} {'med us':>8}   alt/shipped")

    scores = rng.standard_normal((12, 4, 64, 64)).astype(np.float32)
    np.testing.assert_allclose(rowsum(scores)[..., 0], scores.sum(axis=-1), rtol=1e-4, atol=1e-4)
    row("row sums of (12, 4, 64, 64)", "rowsum (BLAS mat-vec)", "a.sum(axis=-1)",
        lambda: rowsum(scores), lambda: scores.sum(axis=-1, keepdims=True))
    acts = rng.standard_normal((12, 64, 128)).astype(np.float32)
    row("row sums of (12, 64, 128)", "rowsum (BLAS mat-vec)", "a.sum(axis=-1)",
        lambda: rowsum(acts), lambda: acts.sum(axis=-1, keepdims=True))
    row("max over keys, (12, 4, 64, 64)", "axis -2 (keys, transposed)", "axis -1 (usual layout)",
        lambda: scores.max(axis=-2, keepdims=True), lambda: scores.max(axis=-1, keepdims=True))

    for V in (65, 1024):
        ids = rng.integers(0, V, (12, 64))
        gy = rng.standard_normal((12, 64, 128)).astype(np.float32)
        np.testing.assert_allclose(embedding_backward(ids, gy, V), add_at(ids, gy, V), rtol=1e-4, atol=1e-4)
        row(f"embedding backward, V={V}, 768 ids", "sort + add.reduceat", "np.add.at",
            lambda: embedding_backward(ids, gy, V), lambda: add_at(ids, gy, V))

    x = rng.standard_normal((12, 64, 512)).astype(np.float32)
    gy = rng.standard_normal((12, 64, 512)).astype(np.float32)
    np.testing.assert_allclose(gelu_fwd_bwd(x, gy, unary._GELU_BLOCK), gelu_fwd_bwd(x, gy, x.size), rtol=1e-6)
    row("GELU fwd+bwd, (12, 64, 512)", f"blocks of {unary._GELU_BLOCK}", "whole array",
        lambda: gelu_fwd_bwd(x, gy, unary._GELU_BLOCK), lambda: gelu_fwd_bwd(x, gy, x.size))


if __name__ == "__main__":
    main()

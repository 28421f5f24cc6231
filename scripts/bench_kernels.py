"""Kernel choices, measured: each fast kernel against its reference twin, and each unusual
NumPy spelling inside the kernels against the obvious one.

The files of `tinygrad_lm/fast/` say what they change against the reference path and why; this
script times those claims at the sizes of the CPU recipe's model (B=12, T=64, C=128, 4 heads),
so they can be checked on any machine:

  0. forward + backward of every fast kernel (`fast.functional`) against the reference function
     (`functional`, composed from primitive ops) it replaces, on the same inputs;

  1. row sums (LayerNorm, attention): `a @ ones` (a BLAS mat-vec) against `a.sum(axis=-1)`;
  2. the attention softmax's max over keys: over axis -2 of the transposed (B, nh, S, T)
     scores (the layout fast/attention.py uses) against over axis -1 of (B, nh, T, S);
  3. the embedding backward: sort + `add.reduceat` (fast/embedding.py) against `np.add.at`;
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
from tinygrad_lm import Tensor, fast  # noqa: E402
from tinygrad_lm.engine import functional as F  # noqa: E402
from tinygrad_lm.fast import functional as FAST  # noqa: E402
from tinygrad_lm.fast import gelu as fast_gelu  # noqa: E402
from tinygrad_lm.fast.embedding import EmbeddingKernel  # noqa: E402
from tinygrad_lm.fast.rows import rowsum  # noqa: E402


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
    fn = EmbeddingKernel(ids)
    fn.weight_shape, fn.dtype = (V, gy.shape[-1]), gy.dtype
    return fn.backward(gy)


def add_at(ids, gy, V):
    gw = np.zeros((V, gy.shape[-1]), gy.dtype)
    np.add.at(gw, ids.reshape(-1), gy.reshape(-1, gy.shape[-1]))
    return gw


def gelu_fwd_bwd(x, gy, block):
    saved, fast_gelu._GELU_BLOCK = fast_gelu._GELU_BLOCK, block
    try:
        fn = fast_gelu.GELUKernel()
        fn.forward(x)
        return fn.backward(gy)
    finally:
        fast_gelu._GELU_BLOCK = saved


def fwd_bwd(fn, arrays):
    """A closure: fn on fresh leaves made from `arrays` (float ones require grad), then backward
    from a fixed output gradient; returns the first leaf's gradient."""
    gy = {}

    def run():
        leaves = [Tensor(a, requires_grad=True) if a.dtype.kind == "f" else a for a in arrays]
        y = fn(*leaves)
        if "g" not in gy:
            gy["g"] = np.random.default_rng(1).standard_normal(y.shape).astype(y.dtype)
        y.backward(gy["g"])
        return leaves[0].grad if isinstance(leaves[0], Tensor) else leaves[1].grad

    return run


def kernels_against_references(rng):
    """Row 0 of the docstring: each fast kernel against its reference function."""
    f32 = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    x, ids, targets = f32(12, 64, 128), rng.integers(0, 65, (12, 64)), rng.integers(0, 65, (12, 64))
    cases = [
        ("linear (12,64,128)x(384,128)", "linear", [x, f32(384, 128), f32(384)]),
        ("embedding V=65, 768 ids", "embedding", [ids, f32(65, 128)]),
        ("layer_norm (12,64,128)", "layer_norm", [x, f32(128), f32(128)]),
        ("cross_entropy (768, 65)", "cross_entropy", [f32(12, 64, 65), targets]),
        ("attention (12,4,64,32) causal", "scaled_dot_product_attention", [f32(12, 4, 64, 32)] * 3),
        ("gelu (12, 64, 512)", "gelu", [f32(12, 64, 512)]),
    ]
    for name, fn_name, arrays in cases:
        ref, fused = fwd_bwd(getattr(F, fn_name), arrays), fwd_bwd(getattr(FAST, fn_name), arrays)
        np.testing.assert_allclose(fused(), ref(), rtol=2e-3, atol=2e-4)  # the same gradient, float32
        row(name, "fast kernel", "reference (ops)", fused, ref)


def main():
    fast.tune_allocator()  # what the fast training loops do
    rng = np.random.default_rng(0)
    print("# bench_kernels: fast kernels against their reference twins, and their NumPy spellings")
    print(f"command : {' '.join([os.path.basename(sys.executable)] + sys.argv)}")
    print(f"machine : {platform.platform()} | {os.cpu_count()} CPUs | python {platform.python_version()} | "
          f"numpy {np.__version__} | threads {ARGS.threads}")
    print(f"load    : {os.getloadavg()[0]:.2f} (1-minute average)")
    print(f"\n  {'kernel (float32)':<36} {'shipped':<26} {'min us':>8} {'med us':>8}   {'alternative':<24} "
          f"{'min us':>8} {'med us':>8}   alt/shipped")
    kernels_against_references(rng)

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
    block = fast_gelu._GELU_BLOCK
    np.testing.assert_allclose(gelu_fwd_bwd(x, gy, block), gelu_fwd_bwd(x, gy, x.size), rtol=1e-6)
    row("GELU fwd+bwd, (12, 64, 512)", f"blocks of {block}", "whole array",
        lambda: gelu_fwd_bwd(x, gy, block), lambda: gelu_fwd_bwd(x, gy, x.size))


if __name__ == "__main__":
    main()

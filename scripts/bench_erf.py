"""How erf is computed on NumPy, measured: the numbers quoted in tinygrad_lm/engine/ops/erf.py.

Times, on one array of float32 GELU-sized inputs (standard normal / sqrt(2)), the choices
ops/erf.py weighed, and reports each one's worst error against `math.erf` in float64:
  * `erf_array` as shipped (two fitted polynomials, Horner's rule, in the input's dtype);
  * the same fit summed in the Chebyshev basis by Clenshaw's recurrence (numpy.polynomial's
    `chebval`, which computes in float64);
  * `np.frompyfunc(math.erf, 1, 1)` (exact, one Python call per element);
and, for scale, the GELUs forward + backward: the tanh approximation (GPT-2's) and the exact one.
Timing: time.perf_counter, the minimum over --reps runs.

Usage:
    python scripts/bench_erf.py
    python scripts/bench_erf.py --n 100000 --reps 20
"""
import argparse
import math
import time

import numpy as np
from numpy.polynomial import chebyshev

from tinygrad_lm import Tensor
from tinygrad_lm.engine import functional as F
from tinygrad_lm.engine.ops.erf import _FAR, _NEAR, erf_array


def best_ms(fn, reps):
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * min(times)


def clenshaw_erf(x):
    """erf_array's split and layout, with the polynomials summed in the Chebyshev basis."""
    near, far = (chebyshev.poly2cheb(c) for c in (_NEAR, _FAR))
    a = np.abs(x)
    an = np.minimum(a, 2.0)
    out = an * chebyshev.chebval(an * an / 2 - 1, near).astype(x.dtype)
    idx = np.nonzero(a > 2.0)
    af = np.minimum(a[idx], 6.0)
    out[idx] = 1 - np.exp(-af * af) * chebyshev.chebval((af - 4) / 2, far)
    return np.copysign(out, x)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1 << 20, help="elements in the array")
    ap.add_argument("--reps", type=int, default=5, help="runs per timing; the minimum is reported")
    args = ap.parse_args()
    x32 = (np.random.default_rng(0).standard_normal(args.n) / math.sqrt(2)).astype(np.float32)
    x64 = np.linspace(-8, 8, 200001)
    exact64 = np.array([math.erf(v) for v in x64])
    slow = np.frompyfunc(math.erf, 1, 1)
    rows = [("erf_array (Horner, shipped)", erf_array), ("Chebyshev basis, Clenshaw", clenshaw_erf),
            ("np.frompyfunc(math.erf)", lambda x: slow(x).astype(x.dtype))]
    print(f"{args.n} float32 elements, best of {args.reps}")
    for name, fn in rows:
        err = np.abs(fn(x64) - exact64).max()
        print(f"  {name:30s} {best_ms(lambda: fn(x32), args.reps):8.1f} ms   max |error| float64 {err:.1e}")

    def gelu_step(approximate):
        t = Tensor(x32 * math.sqrt(2), requires_grad=True)
        F.gelu(t, approximate=approximate).sum().backward()

    for approximate in ("tanh", "none"):
        print(f"  F.gelu(approximate={approximate!r}) fwd+bwd {best_ms(lambda: gelu_step(approximate), args.reps):8.1f} ms")


if __name__ == "__main__":
    main()

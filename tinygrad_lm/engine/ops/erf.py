"""The error function erf and the exact GELU built on it, x Phi(x) (BERT's activation).

    erf(x)  = 2/sqrt(pi) * integral_0^x exp(-t^2) dt,     d erf/dx = 2/sqrt(pi) exp(-x^2)
    gelu(x) = x Phi(x),  Phi(x) = (1 + erf(x / sqrt(2))) / 2,   d gelu/dx = Phi(x) + x phi(x)
    with phi(x) = exp(-x^2 / 2) / sqrt(2 pi), the standard normal density.

NumPy has no erf (SciPy has, but the package depends on NumPy only), so `erf_array` computes
it from two polynomials whose coefficients are fitted once, at import, by interpolating
Python's own `math.erf` / `math.erfc` at Chebyshev nodes (`numpy.polynomial.chebyshev`, whose
interpolant is close to the best polynomial of its degree), then rewritten in powers of u:
  * |x| <= 2:     erf(x) = x * P(x^2 / 2 - 1),                  P of degree 18
  * 2 < |x| <= 6: erf(x) = 1 - exp(-x^2) * Q((|x| - 4) / 2),    Q of degree 20 (exp(x^2) erfc(x)
                  is smooth and slowly varying on [2, 6], so a polynomial fits it well)
  * |x| > 6:      erf(x) = +-1 (1 - erf(6) is 2e-17, below float64's resolution near 1)
u stays in [-1, 1] and no coefficient exceeds 0.7, so Horner's rule in the input's dtype loses
nothing: against `math.erf` the result is within 3e-15 in float64 over [-8, 8] (tests/test_bert.py
checks 1e-14), and finite differences of it with step 1e-6 agree with the exact derivative to
a few 1e-9, which float64 gradient checks need (Abramowitz & Stegun's 7.1.26, good to 1.5e-7,
would not do). Why not `np.frompyfunc(math.erf, 1, 1)`: exact, but one Python call per element.
It is about 4x faster than the same polynomials summed by numpy.polynomial's `chebval` and 7x
faster than frompyfunc, and the exact GELU's forward + backward costs about twice the tanh
approximation's (`python scripts/bench_erf.py`; the figures are in BENCHMARKS.md, "erf").
The backward of both ops needs exp only, so it is exact whatever erf's rounding.
Leaves out: erfc's relative accuracy in the far tail (gelu(x) for x < -8.5 is 0, as in
PyTorch's float32, where the true value is below 1e-15 |x|), complex arguments.
References: Hendrycks & Gimpel 2016 (GELU); Abramowitz & Stegun 7.1 (erf); Trefethen,
"Approximation Theory and Approximation Practice" (Chebyshev interpolation).
"""
import math

import numpy as np
from numpy.polynomial import chebyshev

from ..backend import get_array_module
from ..tensor import Function, Tensor

_SPLIT, _END = 2.0, 6.0  # the near series covers |x| <= 2, the far one 2 < |x| <= 6
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _near(u):
    """erf(x) / x at x = 2 sqrt((u + 1) / 2), u in [-1, 1] (x^2 = 2 (u + 1)); 2/sqrt(pi) at x = 0."""
    x = _SPLIT * math.sqrt((u + 1.0) / 2.0)
    return math.erf(x) / x if x > 0.0 else _TWO_OVER_SQRT_PI


def _far(u):
    """exp(x^2) erfc(x) at x = 4 + 2u, u in [-1, 1] (x in [2, 6])."""
    x = (_SPLIT + _END) / 2.0 + (_END - _SPLIT) / 2.0 * u
    return math.erfc(x) * math.exp(x * x)


def _fit(f, degree):
    """Coefficients in powers of u (Python floats, lowest first) of f interpolated on [-1, 1] at
    Chebyshev nodes. Python floats keep a float32 array float32 in Horner's rule."""
    return [float(c) for c in chebyshev.cheb2poly(chebyshev.chebinterpolate(np.vectorize(f), degree))]


_NEAR = _fit(_near, 18)
_FAR = _fit(_far, 20)


def _horner(coefs, u):
    """sum_k coefs[k] u^k by Horner's rule, elementwise on the array u (in u's dtype)."""
    out = u * coefs[-1] + coefs[-2]
    for c in coefs[-3::-1]:
        out *= u
        out += c
    return out


def erf_array(x):
    """erf of a float NumPy/CuPy array, elementwise, in its dtype (within 3e-15 of math.erf in float64).

    The near polynomial runs on the whole array (|x| clipped at 2, so no gather of the elements
    below 2, which are most of them: of GELU inputs x / sqrt(2), 95% for standard normal x);
    the few beyond 2 are then overwritten by the far formula.
    """
    xp = get_array_module(x)
    a = xp.abs(x)
    an = xp.minimum(a, _SPLIT)  # NaN stays NaN here, and is not > 2 below
    out = an * _horner(_NEAR, an * an * (2.0 / _SPLIT ** 2) - 1.0)  # u = x^2 / 2 - 1
    far = xp.nonzero(a > _SPLIT)
    af = xp.minimum(a[far], _END)  # beyond 6, erf is 1 to float64's resolution
    u = (af - (_SPLIT + _END) / 2.0) * (2.0 / (_END - _SPLIT))  # u = (|x| - 4) / 2
    out[far] = 1.0 - xp.exp(-af * af) * _horner(_FAR, u)
    return xp.copysign(out, x)  # erf is odd


class Erf(Function):
    """y = erf(x); dy/dx = 2/sqrt(pi) exp(-x^2). Forward saves x."""

    def forward(self, x):
        self.x = x
        return erf_array(x)

    def backward(self, gy):
        xp = get_array_module(gy)
        return gy * (_TWO_OVER_SQRT_PI * xp.exp(-self.x * self.x))


class GELUErf(Function):
    """The exact GELU, y = x Phi(x) with Phi(x) = (1 + erf(x / sqrt(2))) / 2 (BERT's "gelu").

    dy/dx = Phi(x) + x phi(x),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi).
    Forward saves x and Phi(x); backward adds x phi(x) (exp only).
    """

    def forward(self, x):
        self.x = x
        self.cdf = 0.5 * (1.0 + erf_array(x * _INV_SQRT_2))  # Phi(x)
        return x * self.cdf

    def backward(self, gy):
        xp = get_array_module(gy)
        x = self.x
        return gy * (self.cdf + x * (_INV_SQRT_2PI * xp.exp(-0.5 * x * x)))


Tensor.erf = lambda self: Erf()(self)
erf = Tensor.erf


def gelu_erf(x):
    """The exact GELU x Phi(x), elementwise (`F.gelu(x, approximate="none")`, PyTorch's default)."""
    return GELUErf()(x)

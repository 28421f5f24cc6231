"""Hypothesis strategies for gradient tests: shapes, broadcasting partners, arrays, tensors, and
input domains that keep finite differences away from the points where an op has no derivative.

What this file implements:
  * shapes: `shapes()` (0-d included), `broadcastable_shapes(shape)` (a partner that broadcasts
    against `shape` and leaves it unchanged: fewer dims, size-1 sides, 0-d);
  * data: `arrays(shape)` (float64 by default), `tensors(shape)` (leaves with requires_grad);
  * element domains, passed as `elements=`: `positive()` (log, sqrt, x ** 0.5), `away_from(points)`
    (relu at 0, abs at 0, clip at its bounds), `probabilities()` (log p and log 1 - p),
    `token_ids(vocab)` (integer ids for embeddings and cross-entropy).
Every strategy shrinks towards the simplest case that still fails: fewer and smaller axes, a
partner equal to `shape` but for one size-1 side, values near 0 (or the domain's low end).

What it leaves out: complex dtypes, and NaN/inf inputs (a gradient check needs finite values);
ties between elements (max, sort) are avoided with `arrays(..., unique=True)` and a discrete
`elements` strategy, not by a domain here.

Follows `hypothesis.extra.numpy` (which it builds on) for names and arguments, and the domain
advice of PyTorch's gradcheck notes: check away from kinks, poles and the edges of a domain.
"""
import hypothesis.extra.numpy as hnp
import numpy as np
from hypothesis import strategies as st

from ..engine.backend import check_device, to_device
from ..engine.tensor import Tensor


def shapes(min_dims=0, max_dims=4, min_side=1, max_side=5):
    """Array shapes: tuples of `min_dims`..`max_dims` sides, each `min_side`..`max_side`.

    The default includes 0-d shapes `()` and size-1 sides, where broadcasting bugs live; keep
    `max_side` small (each element costs two forward passes in a gradient check).
    """
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def broadcastable_shapes(shape, min_dims=0):
    """Shapes that broadcast against `shape` without changing it: `np.broadcast_shapes(shape, s)
    == shape`. Leading axes may be dropped (down to `min_dims` dims, so 0-d is included) and any
    side may become 1; shrinks towards `shape` itself with a single side turned into 1.

    Args:
        shape: the shape to broadcast against, a tuple of ints.
        min_dims: fewest dims of the drawn shape (0 allows a 0-d partner).
    """
    shape = tuple(int(n) for n in shape)
    if not 0 <= min_dims <= len(shape):
        raise ValueError(f"broadcastable_shapes: min_dims={min_dims} must be between 0 and len(shape)={len(shape)}")

    @st.composite
    def partner(draw):
        drop = draw(st.integers(0, len(shape) - min_dims))  # 0 first: shrinks to keeping every axis
        return tuple(draw(st.sampled_from([n, 1])) for n in shape[drop:])  # n first: shrinks to keeping it

    return partner()


def _default_elements(dtype):
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.floating):
        # bounded and finite: finite differences with eps=1e-6 stay accurate on [-2, 2]
        return st.floats(-2.0, 2.0, allow_nan=False, allow_infinity=False, allow_subnormal=False,
                         width=min(64, 8 * dtype.itemsize))
    if np.issubdtype(dtype, np.integer):
        return st.integers(-10, 10) if np.issubdtype(dtype, np.signedinteger) else st.integers(0, 10)
    if dtype == np.bool_:
        return st.booleans()
    raise TypeError(f"arrays: no default elements for dtype {dtype}; pass elements=")


def arrays(shape, dtype=np.float64, elements=None, unique=False):
    """NumPy arrays of `shape` (a tuple or a strategy of tuples) and `dtype` (float64 by default).

    Args:
        shape: a shape, or a strategy such as `shapes()`.
        dtype: the array's dtype; float64 is what a gradient check needs.
        elements: a strategy for one element; by default floats in [-2, 2] (finite, no
            subnormals), integers in [-10, 10] or booleans, by dtype. Use the domains below
            (`positive()`, `away_from(0)`, ...) for ops with restricted inputs.
        unique: all elements distinct (max and sort have no ties; use a discrete `elements`
            such as `st.integers(-40, 40).map(lambda i: i / 10)` so eps never swaps two).
    """
    return hnp.arrays(np.dtype(dtype), shape, elements=_default_elements(dtype) if elements is None else elements,
                      unique=unique)


def tensors(shape, dtype=np.float64, elements=None, requires_grad=True, device="cpu", unique=False):
    """Tensors built from `arrays(shape, dtype, elements, unique)`: leaves that require grad
    (float dtypes only; integer tensors never do) on `device` ("cpu" or "cuda")."""
    device = check_device(device)
    grad = requires_grad and np.issubdtype(np.dtype(dtype), np.floating)
    return arrays(shape, dtype, elements, unique).map(
        lambda a: Tensor(to_device(a, device), requires_grad=grad))


def _check_interval(name, min_value, max_value):
    if not (np.isfinite(min_value) and np.isfinite(max_value) and min_value < max_value):
        raise ValueError(f"{name}: need finite min_value < max_value, got [{min_value}, {max_value}]")


def positive(min_value=0.1, max_value=4.0):
    """Floats in [min_value, max_value], min_value > 0: inputs of log, sqrt, 1/x and x ** p.

    Stays `min_value` away from the pole at 0, where finite differences (and float64) break down.
    """
    _check_interval("positive", min_value, max_value)
    if min_value <= 0:
        raise ValueError(f"positive: min_value must be > 0, got {min_value}")
    return st.floats(min_value, max_value, allow_nan=False, allow_infinity=False)


def away_from(points, margin=0.1, min_value=-2.0, max_value=2.0):
    """Floats in [min_value, max_value] at least `margin` from every one of `points`: inputs of
    relu and abs (points=0), clip (its bounds), or a step function (its jumps).

    A finite difference with step eps straddling a kink measures the average of two slopes, so
    keep margin well above eps (1e-6); 0.1 leaves room for hypothesis to shrink.
    """
    _check_interval("away_from", min_value, max_value)
    if margin <= 0:
        raise ValueError(f"away_from: margin must be > 0, got {margin}")
    pts = sorted(float(p) for p in np.atleast_1d(points))
    pieces, lo = [], min_value  # the allowed intervals between the forbidden neighbourhoods
    for p in pts:
        if p - margin > lo:
            pieces.append((lo, p - margin))
        lo = max(lo, p + margin)
    if lo < max_value:
        pieces.append((lo, max_value))
    if not pieces:
        raise ValueError(f"away_from: nothing in [{min_value}, {max_value}] is {margin} away from {pts}; "
                         "widen the range or lower the margin")
    # one_of shrinks towards its first piece; the piece nearest 0 first keeps shrunk values small
    pieces.sort(key=lambda ab: min(abs(ab[0]), abs(ab[1])) if ab[0] * ab[1] > 0 else 0.0)
    return st.one_of(*[st.floats(a, b, allow_nan=False, allow_infinity=False) for a, b in pieces])


def probabilities(margin=0.01):
    """Floats in [margin, 1 - margin]: inputs of log p and log(1 - p), away from both poles."""
    if not 0 < margin < 0.5:
        raise ValueError(f"probabilities: margin must be in (0, 0.5), got {margin}")
    return st.floats(margin, 1.0 - margin, allow_nan=False, allow_infinity=False)


def token_ids(vocab):
    """Integers in [0, vocab): ids for embeddings and cross-entropy targets (use with an integer
    dtype: `arrays(shape, np.int64, token_ids(vocab))`)."""
    if int(vocab) < 1:
        raise ValueError(f"token_ids: vocab must be >= 1, got {vocab}")
    return st.integers(0, int(vocab) - 1)

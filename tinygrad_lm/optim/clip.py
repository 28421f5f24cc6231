"""Gradient clipping by global L2 norm: `clip_grad_norm_` (like torch.nn.utils.clip_grad_norm_).

The total norm is sqrt(sum over every parameter of sum(grad**2)). Each parameter's sum of squares
is one BLAS dot product in the gradient's dtype (what PyTorch does too: float32 grads give the
norm to float32 precision, which is all clipping needs); the per-parameter sums are added in float64,
and if the total overflows it is computed again with every square in float64. When it
exceeds `max_norm`, every gradient is multiplied by max_norm / (total + eps). The scaling is out
of place (`p.grad = p.grad * scale`): a gradient array may be a read-only broadcast view or be
shared by two parameters, and an in-place `*=` would then fail or scale the shared array twice.

Leaves out: norms other than L2 (`norm_type`) and foreach kernels.
"""
import math

from ..engine.backend import get_array_module


def clip_grad_norm_(params, max_norm, eps=1e-6, error_if_nonfinite=False):
    """Scale all gradients together so their global L2 norm is at most `max_norm`.

    Args:
        params: a Tensor or an iterable of Tensors (e.g. `model.parameters()`); parameters whose
            `.grad` is None are skipped, and a Tensor listed twice is counted once.
        max_norm: the largest allowed total norm (> 0).
        eps: added to the total norm in the scale factor, max_norm / (total + eps).
        error_if_nonfinite: raise RuntimeError when the total norm is nan or inf (otherwise the
            norm is returned as is and the gradients are left unscaled when it is nan).
    Returns:
        the total norm of the gradients before clipping, as a Python float (0.0 if no grads).
    """
    max_norm = float(max_norm)
    if not max_norm > 0.0:
        raise ValueError(f"max_norm must be > 0, got {max_norm}")
    if hasattr(params, "data") and hasattr(params, "grad"):
        params = [params]
    unique, seen = [], set()
    for p in params:
        if p.grad is not None and id(p) not in seen:
            seen.add(id(p))
            unique.append(p)
    if not unique:
        return 0.0
    total = math.sqrt(float(_sum_of_squares(unique, exact=False)))  # the one sync on GPU
    if not math.isfinite(total):  # a float32 sum can overflow where float64 does not: redo it
        total = math.sqrt(float(_sum_of_squares(unique, exact=True)))
    if not math.isfinite(total):
        if error_if_nonfinite:
            raise RuntimeError(f"the total gradient norm is {total}; gradients were not clipped")
        if math.isnan(total):
            return total
    if total > max_norm:
        scale = max_norm / (total + eps)  # a Python float: float32 grads stay float32
        for p in unique:
            p.grad = p.grad * scale
    return total


def _sum_of_squares(params, exact):
    """Sum of every grad's squares, kept on the device; exact=True squares in float64."""
    total = None
    for p in params:
        xp = get_array_module(p.grad)
        if exact:
            s = xp.sum(xp.square(p.grad, dtype=xp.float64))
        else:
            s = xp.vdot(p.grad, p.grad).astype(xp.float64)  # one BLAS pass in the grad's dtype
        total = s if total is None else total + s
    return total

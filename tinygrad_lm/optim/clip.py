"""Gradient clipping by global L2 norm: `clip_grad_norm_` (like torch.nn.utils.clip_grad_norm_).

The total norm is sqrt(sum over every parameter of sum(grad**2)), accumulated in float64 so
float32 gradients of a large model neither lose precision nor overflow while squaring. When it
exceeds `max_norm`, every gradient is multiplied by max_norm / (total + eps). The scaling is out
of place (`p.grad = p.grad * scale`): a gradient array may be a read-only broadcast view or be
shared by two parameters, and an in-place `*=` would then fail or scale the shared array twice.

Leaves out: norms other than L2 (`norm_type`) and foreach kernels.
"""
import math

from ..backend import get_array_module


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
    squares = None  # stays on the device until the one float() at the end (a single sync on GPU)
    for p in unique:
        xp = get_array_module(p.grad)
        s = xp.sum(xp.square(p.grad, dtype=xp.float64))
        squares = s if squares is None else squares + s
    total = math.sqrt(float(squares))
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

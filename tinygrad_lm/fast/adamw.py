"""Fast twin of `optim.Adam` / `optim.AdamW`: the same update, in place, with one scratch array.

The reference update (`optim/adam.py`) writes the textbook lines on whole arrays, and each line
allocates a temporary the size of the parameter (grad * grad, m_hat, v_hat, sqrt, the
quotient...). Here every step is an in-place NumPy call into the moment buffers or one scratch
array, and both bias corrections are folded into two scalars:
    lr * m_hat / (sqrt(v_hat) + eps) = (lr * sqrt(b2) / b1) * m / (sqrt(v) + eps * sqrt(b2))
with b1 = 1 - beta1^t, b2 = 1 - beta2^t: one pass over the parameter fewer. The result equals
the reference up to float rounding (tests/test_fast.py pins it over several steps).
On a GPU (every parameter, gradient and moment a contiguous float32 CuPy array) `step` is
one multi-tensor kernel launch over all parameters (`fast/cuda/adamw.py`), the same update
with the same folded scalars; this file's per-parameter update is its oracle.
Leaves out: multi-tensor updates on the CPU (NumPy has no kernel launches to save).
"""
import math

from ..engine.backend import get_array_module
from ..optim import Adam, AdamW
from ..optim.optimizer import Optimizer
from . import cuda
from .cuda import adamw as cuda_adamw


def fused_adam_update(self, group, p, grad, state):
    """`Adam._update` in place: p, the moments and one scratch array, no other temporaries."""
    lr, eps, wd, beta1, beta2, t, m, v = self._next_step(group, p, state)
    xp, w = get_array_module(p.data), p.data
    g = grad
    if wd != 0.0:
        if self.decoupled:
            w *= 1.0 - lr * wd  # AdamW: shrink the weights before the Adam step
        else:
            g = grad + wd * w  # Adam: L2 gradient, a new array (grad is read-only)
    tmp = xp.empty_like(w)  # the one scratch array of this update
    xp.multiply(g, 1.0 - beta1, out=tmp)
    m *= beta1
    m += tmp  # m = beta1*m + (1-beta1)*g
    xp.multiply(g, g, out=tmp)
    tmp *= 1.0 - beta2
    v *= beta2
    v += tmp  # v = beta2*v + (1-beta2)*g^2
    bias1, bias2 = 1.0 - beta1 ** t, 1.0 - beta2 ** t
    root2 = math.sqrt(bias2)
    xp.sqrt(v, out=tmp)
    tmp += eps * root2
    xp.divide(m, tmp, out=tmp)
    tmp *= lr * root2 / bias1
    w -= tmp


def multi_tensor_step(self):
    """`Optimizer.step`, as one CUDA launch over every parameter when they are all on a GPU in
    float32; otherwise the per-parameter loop with `fused_adam_update`."""
    items = [(group, p, i) for i, (group, p) in enumerate((g, p) for g in self.param_groups for p in g["params"])
             if p.grad is not None]
    arrays = [a for _, p, _ in items for a in (p.data, p.grad)]
    if not items or not cuda.enabled(*arrays) or not all(a.flags.c_contiguous for a in arrays):
        return Optimizer.step(self)
    rows = []
    for group, p, i in items:
        lr, eps, wd, beta1, beta2, t, m, v = self._next_step(group, p, self.state[i])  # moments made here
        rows.append(cuda_adamw.scalars_for(lr, eps, wd, beta1, beta2, t, self.decoupled))
    ws, ms, vs = ([p.data for _, p, _ in items], [self.state[i]["exp_avg"] for _, _, i in items],
                  [self.state[i]["exp_avg_sq"] for _, _, i in items])
    tables = getattr(self, "_multi_tensor", None)
    if tables is None or tables.key != cuda_adamw.key(ws, ms, vs):  # built once per set of arrays
        tables = self._multi_tensor = cuda_adamw.MultiTensorAdamW(ws, ms, vs)
    tables.step([p.grad for _, p, _ in items], rows)


class FusedAdam(Adam):
    """`optim.Adam` with the in-place update (same state, state_dict and hyperparameters)."""

    _update = fused_adam_update
    step = multi_tensor_step


class FusedAdamW(AdamW):
    """`optim.AdamW` with the in-place update (same state, state_dict and hyperparameters)."""

    _update = fused_adam_update
    step = multi_tensor_step

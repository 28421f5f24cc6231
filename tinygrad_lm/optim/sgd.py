"""Stochastic gradient descent with optional momentum, Nesterov momentum and L2 weight decay.

Implements `SGD` with PyTorch's conventions (torch.optim.SGD with dampening=0):

    g   = grad + weight_decay * p            (L2 penalty folded into the gradient)
    buf = g                                  on the first step
    buf = momentum * buf + g                 afterwards
    d   = g + momentum * buf  if nesterov  else  buf      (d = g when momentum == 0)
    p   = p - lr * d

Leaves out: dampening, `maximize`, and decoupled weight decay (use AdamW for that).
"""
from ..engine.backend import get_array_module
from .optimizer import Optimizer, finite_at_least_zero


class SGD(Optimizer):
    """SGD with momentum (PyTorch's buffer convention).

    Args:
        params: iterable of Tensors or of param-group dicts (see `Optimizer`).
        lr: learning rate (>= 0).
        momentum: momentum factor (>= 0); 0 means plain SGD and keeps no state.
        weight_decay: L2 penalty coefficient added to the gradient (>= 0).
        nesterov: use Nesterov momentum (needs momentum > 0).
    """

    state_names = ("momentum_buffer",)

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov))

    def _check_group(self, group):
        super()._check_group(group)
        if not finite_at_least_zero(group["momentum"]):
            raise ValueError(f"invalid momentum {group['momentum']!r}: must be a finite number >= 0")
        if group["nesterov"] and group["momentum"] <= 0.0:
            raise ValueError("nesterov=True needs momentum > 0")

    def _update(self, group, p, grad, state):
        lr, momentum, wd = float(group["lr"]), float(group["momentum"]), float(group["weight_decay"])
        xp = get_array_module(p.data)
        g = grad
        if wd != 0.0:
            g = grad + wd * p.data  # new array: grad stays untouched
        if momentum != 0.0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = xp.array(g, dtype=p.data.dtype, copy=True)
            else:
                buf *= momentum
                buf += g
            g = g + momentum * buf if group["nesterov"] else buf
        p.data -= lr * g

"""Adam (L2-coupled weight decay) and AdamW (decoupled weight decay), both bias-corrected.

Implements the update of Kingma & Ba (2015), in the order torch.optim.Adam / AdamW apply it,
for step t = 1, 2, ... of one parameter p with gradient g:

    Adam:   g = g + weight_decay * p               (L2 penalty folded into the gradient)
    AdamW:  p = p * (1 - lr * weight_decay)        (decoupled: shrink p, g is left alone)
    m = beta1 * m + (1 - beta1) * g                 (first moment, "exp_avg")
    v = beta2 * v + (1 - beta2) * g * g             (second moment, "exp_avg_sq")
    m_hat = m / (1 - beta1**t),  v_hat = v / (1 - beta2**t)
    p = p - lr * m_hat / (sqrt(v_hat) + eps)

The update below is those lines as written, on whole arrays (the same code runs on NumPy and
CuPy); `tinygrad_lm/fast/adamw.py` computes the same update in place with one scratch array.
Hyperparameters are turned into Python floats first: under NumPy 2's promotion rules a Python
float keeps float32 arrays in float32, where a NumPy float64 scalar would not.

Leaves out: AMSGrad, `maximize`, foreach multi-tensor kernels and capturable (CUDA graph)
state. Which parameters get weight decay is the caller's choice: see `param_groups`.
"""
from ..engine.backend import get_array_module
from .optimizer import Optimizer, finite_at_least_zero


class Adam(Optimizer):
    """Adam with bias correction and L2-coupled weight decay (like torch.optim.Adam).

    Args:
        params: iterable of Tensors or of param-group dicts (see `Optimizer`).
        lr: learning rate (>= 0).
        betas: (beta1, beta2), decay rates of the first and second moment, each in [0, 1).
        eps: added to sqrt(v_hat) in the denominator (>= 0).
        weight_decay: L2 penalty coefficient added to the gradient (>= 0).
    """

    state_names = ("exp_avg", "exp_avg_sq")
    decoupled = False  # AdamW sets True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def _check_group(self, group):
        super()._check_group(group)
        betas = group["betas"]
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"invalid betas {betas!r}: need two values, each in [0, 1)")
        if not finite_at_least_zero(group["eps"]):
            raise ValueError(f"invalid eps {group['eps']!r}: must be a finite number >= 0")

    def _next_step(self, group, p, state):
        """This update's hyperparameters as floats, and the parameter's state advanced by a step:
        (lr, eps, weight_decay, beta1, beta2, t, m, v); m and v start at zero."""
        if not state:
            xp = get_array_module(p.data)
            state.update(step=0, exp_avg=xp.zeros_like(p.data), exp_avg_sq=xp.zeros_like(p.data))
        state["step"] += 1
        return (float(group["lr"]), float(group["eps"]), float(group["weight_decay"]), float(group["betas"][0]),
                float(group["betas"][1]), state["step"], state["exp_avg"], state["exp_avg_sq"])

    def _update(self, group, p, grad, state):
        lr, eps, wd, beta1, beta2, t, m, v = self._next_step(group, p, state)
        xp = get_array_module(p.data)
        if wd != 0.0 and self.decoupled:
            p.data *= 1.0 - lr * wd  # AdamW: shrink the weights; the gradient never sees the decay
        elif wd != 0.0:
            grad = grad + wd * p.data  # Adam: the L2 penalty's gradient (a new array: grad is read-only)
        m *= beta1
        m += (1.0 - beta1) * grad  # first moment: a running mean of the gradient
        v *= beta2
        v += (1.0 - beta2) * grad * grad  # second moment: a running mean of its square
        m_hat = m / (1.0 - beta1 ** t)  # bias corrections: both start at 0
        v_hat = v / (1.0 - beta2 ** t)
        p.data -= lr * m_hat / (xp.sqrt(v_hat) + eps)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), like torch.optim.AdamW.

    Each step first shrinks the weights, p = p * (1 - lr * weight_decay), then takes the plain
    bias-corrected Adam step; the gradient never sees the decay.

    Args:
        params: iterable of Tensors or of param-group dicts (see `Optimizer`); give biases and
            LayerNorm weights weight_decay=0 with `param_groups(model.named_parameters(), wd)`.
        lr: learning rate (>= 0).
        betas: (beta1, beta2), each in [0, 1).
        eps: added to sqrt(v_hat) in the denominator (>= 0).
        weight_decay: decoupled decay coefficient (>= 0); 0.01 like PyTorch.
    """

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

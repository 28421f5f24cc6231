"""Finite-difference gradient checking, for the package's tests and for users' own ops.

`gradcheck(fn, inputs)` compares the gradients that autograd computes with central
differences (f(x + eps) - f(x - eps)) / 2 eps, element by element, in float64.

The outputs are reduced to one number with a fixed random weighting L = sum_i <y_i, R_i>,
R_i ~ N(0, 1) drawn from `seed`. Never with a plain sum: softmax rows and layernorm outputs
sum to constants, so a plain sum has zero gradient whatever the backward returns, and a
broken backward passes (DeZero's softmax check has exactly this hole).

Leaves out: complex numbers, second derivatives, and randomness inside `fn` (use p=0 dropout
or eval mode: every evaluation must compute the same function).
"""
import numpy as np

from .backend import to_device
from .tensor import Tensor, no_grad


def _as_outputs(out):
    if isinstance(out, Tensor):
        return (out,)
    if isinstance(out, (tuple, list)) and all(isinstance(o, Tensor) for o in out):
        return tuple(out)
    raise TypeError(f"gradcheck: fn must return a Tensor or a tuple of Tensors, got {type(out).__name__}")


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0, params=None):
    """Check autograd's gradients of `fn` against central finite differences, in float64.

    Args:
        fn: callable taking the inputs positionally and returning a Tensor or tuple of Tensors.
        inputs: Tensors (or arrays); float ones are copied to float64 leaves, and every one
            with `requires_grad=True` is checked. Non-float inputs pass through unchanged.
        eps: finite-difference step.
        atol, rtol: element passes when |analytic - numeric| <= atol + rtol * |numeric|.
        seed: seed of the random output weighting R.
        params: optional extra float64 tensors that `fn` closes over (a module's
            `parameters()`, or a dict name -> Tensor such as `dict(module.named_parameters())`);
            they are perturbed in place, restored, and checked too.
    Returns:
        True when every gradient matches.
    Raises:
        AssertionError naming the input, the worst element, and the analytic and numeric values.
    """
    inputs = list(inputs)
    checked = []  # (name, tensor) pairs to check
    args = []
    for i, x in enumerate(inputs):
        if not isinstance(x, Tensor):
            x = Tensor(np.asarray(x))
        if np.issubdtype(x.dtype, np.floating):
            x = Tensor(x.data.astype(np.float64), requires_grad=x.requires_grad)
            if x.requires_grad:
                checked.append((f"input {i}", x))
        args.append(x)
    named = params.items() if isinstance(params, dict) else enumerate(params or [])
    for name, p in named:
        if p.dtype != np.float64:
            raise TypeError(f"gradcheck: param {name} is {p.dtype}; move the module to float64 first "
                            "(module.to(dtype=numpy.float64)) so finite differences are accurate")
        if p.requires_grad:
            p.grad = None
            checked.append((f"param {name}", p))
    if not checked:
        raise ValueError("gradcheck: no input or param requires grad, so there is nothing to check")

    outputs = _as_outputs(fn(*args))
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal(o.shape) for o in outputs]

    # analytic: d/dx of L = sum_i <y_i, R_i> is backward with grad R_i from each output
    differentiable = [(o, r) for o, r in zip(outputs, weights) if o.requires_grad]
    for k, (o, r) in enumerate(differentiable):
        o.backward(grad=to_device(r.astype(o.dtype), o.device), retain_graph=k < len(differentiable) - 1)

    def objective():
        with no_grad():
            outs = _as_outputs(fn(*args))
        return sum(float((to_device(o.data, "cpu").astype(np.float64) * r).sum()) for o, r in zip(outs, weights))

    for name, x in checked:
        analytic = np.zeros(x.shape) if x.grad is None else to_device(x.grad, "cpu").astype(np.float64)
        numeric = np.zeros(x.shape)
        flat = x.data.reshape(-1)  # a view: perturbing it perturbs x
        if not np.shares_memory(flat, x.data) and flat.size > 0:
            x.data = x.data.copy()
            flat = x.data.reshape(-1)
        for j in range(flat.size):
            orig = flat[j].item()
            flat[j] = orig + eps
            f_plus = objective()
            flat[j] = orig - eps
            f_minus = objective()
            flat[j] = orig
            numeric.reshape(-1)[j] = (f_plus - f_minus) / (2 * eps)
        err = np.abs(analytic - numeric)
        bound = atol + rtol * np.abs(numeric)
        if np.any(err > bound) or not np.all(np.isfinite(analytic)):
            worst = np.unravel_index(np.argmax(np.where(np.isfinite(err), err - bound, np.inf)), x.shape)
            raise AssertionError(
                f"gradcheck failed for {name} (shape {x.shape}): worst element {tuple(int(w) for w in worst)} "
                f"has analytic grad {analytic[worst]:.10g} but numeric grad {numeric[worst]:.10g} "
                f"(abs error {err[worst]:.3g} > atol {atol} + rtol {rtol} * |numeric|); "
                f"{int(np.sum(err > bound))} of {err.size} elements differ")
    return True

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

from .backend import get_array_module, to_device
from .tensor import GradientShapeError, Tensor, no_grad


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
            x = Tensor(get_array_module(x).asarray(x))  # a CuPy array stays on its GPU
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
    try:
        for k, (o, r) in enumerate(differentiable):
            o.backward(grad=to_device(r.astype(o.dtype), o.device), retain_graph=k < len(differentiable) - 1)
    except GradientShapeError as e:  # a wrong-shaped gradient is a wrong gradient: fail the check
        raise AssertionError(f"gradcheck failed: {e}") from None

    def objective():
        with no_grad():
            outs = _as_outputs(fn(*args))
        return sum(float((to_device(o.data, "cpu").astype(np.float64) * r).sum()) for o, r in zip(outs, weights))

    for name, x in checked:
        analytic = np.zeros(x.shape) if x.grad is None else to_device(x.grad, "cpu").astype(np.float64)
        numeric = np.zeros(x.shape)
        flat = x.data.reshape(-1)  # a view: perturbing it perturbs x
        if not get_array_module(flat).shares_memory(flat, x.data) and flat.size > 0:
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
        problem = mismatch(analytic, numeric, atol, rtol, ("analytic grad", "numeric grad"))
        if problem:
            raise AssertionError(f"gradcheck failed for {name} (shape {x.shape}): {problem}")
    return True


def mismatch(got, want, atol, rtol, labels=("got", "want")):
    """Describe where `got` misses `want`, or return "" when every element passes.

    An element passes when |got - want| <= atol + rtol * |want| and got is finite. The text names
    the worst element (the largest excess over that bound, a non-finite `got` first), both
    values and the count of failing elements, in one line short enough for a Hypothesis report.

    Args:
        got, want: NumPy arrays of the same shape.
        atol, rtol: the tolerances.
        labels: how to call the two values in the text.
    """
    err = np.abs(got - want)
    bound = atol + rtol * np.abs(want)
    bad = ~(err <= bound) | ~np.isfinite(got)  # a NaN in err counts as a failure
    if not bad.any():
        return ""
    worst = np.unravel_index(np.argmax(np.where(np.isfinite(err), err - bound, np.inf)), got.shape)
    return (f"worst element {tuple(int(w) for w in worst)} has {labels[0]} {got[worst]:.10g} but "
            f"{labels[1]} {want[worst]:.10g} (abs error {err[worst]:.3g} > atol {atol} + rtol {rtol} * "
            f"|{labels[1].split()[0]}|); {int(bad.sum())} of {bad.size} elements differ")

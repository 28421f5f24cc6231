"""Assertions for property-based tests of ops: gradients against finite differences, and a fast
op against its reference twin.

What this file implements:
  * `check_gradients(fn, *inputs)`: `tinygrad_lm.engine.gradcheck` with defaults chosen for inputs that
    Hypothesis draws (float64 copies, a fixed random output weighting, relative plus absolute
    tolerance), taking inputs as positional arguments and plain float arrays as leaves;
  * `check_against(fn, reference_fn, *inputs)`: the same inputs through both, then the values of
    every output and the gradients of every float input (and, optionally, of two matching
    parameter lists) compared, after back-propagating the same random output gradient.
Both raise AssertionError with a one-line message that names the input (or output), its shape,
the worst element and both values, so a shrunk Hypothesis report reads at a glance.

What it leaves out: second derivatives, complex numbers, and randomness inside `fn` (give both
sides of `check_against` generators seeded alike).

Follows PyTorch's `torch.autograd.gradcheck` (central differences, atol + rtol * |numeric|)
and llm.c's habit of checking each fast kernel against its CPU reference.
"""
import numpy as np

from ..engine.backend import get_array_module, to_device
from ..engine.gradcheck import gradcheck, mismatch
from ..engine.tensor import Tensor

# Why these defaults: inputs drawn in [-2, 2] or the domains of strategies.py keep the float64
# objective's rounding error near 1e-10 and the O(eps^2) truncation error near 1e-11, so 1e-6
# absolute plus 1e-4 relative leaves a margin of 10,000 and still catches a gradient that is
# wrong by one part in a thousand.
ATOL, RTOL, EPS = 1e-6, 1e-4, 1e-6


def _leaf(x):
    """Tensors as they are; a float array becomes a leaf that requires grad; other arrays pass."""
    if isinstance(x, Tensor):
        return x
    a = get_array_module(x).asarray(x)
    return Tensor(a, requires_grad=bool(np.issubdtype(a.dtype, np.floating)))


def check_gradients(fn, *inputs, atol=ATOL, rtol=RTOL, eps=EPS, seed=0, params=None):
    """Assert that autograd's gradients of `fn` match central finite differences, in float64.

    Args:
        fn: callable taking the inputs positionally, returning a Tensor or a tuple of Tensors.
        *inputs: Tensors (those with requires_grad are checked) or arrays (float arrays become
            leaves that require grad; integer arrays, such as token ids, pass through).
        atol, rtol: an element passes when |analytic - numeric| <= atol + rtol * |numeric|.
        eps: the finite-difference step.
        seed: seed of the random weighting that reduces the outputs to one number.
        params: tensors `fn` closes over (a list, or a dict name -> Tensor), checked too.
    Returns:
        True.
    Raises:
        AssertionError naming the input, its shape, the worst element, and both gradients.
    """
    return gradcheck(fn, [_leaf(x) for x in inputs], eps=eps, atol=atol, rtol=rtol, seed=seed, params=params)


def _float64_leaves(inputs):
    out = []
    for x in inputs:
        a = x.data if isinstance(x, Tensor) else get_array_module(x).asarray(x)
        is_float = np.issubdtype(a.dtype, np.floating)
        out.append(Tensor(a.astype(np.float64), requires_grad=True) if is_float else Tensor(a))
    return out


def _outputs(out, who):
    if isinstance(out, Tensor):
        return (out,)
    if isinstance(out, (tuple, list)) and out and all(isinstance(o, Tensor) for o in out):
        return tuple(out)
    raise TypeError(f"check_against: {who} must return a Tensor or a tuple of Tensors, got {type(out).__name__}")


def _named(params):
    if params is None:
        return []
    return list(params.items()) if isinstance(params, dict) else list(enumerate(params))


def _compare(what, got, want, atol, rtol):
    got, want = (to_device(a, "cpu").astype(np.float64) for a in (got, want))
    if got.shape != want.shape:
        raise AssertionError(f"check_against: {what} has shape {got.shape} but the reference's is {want.shape}")
    problem = mismatch(got, want, atol, rtol, ("value", "reference value"))
    if problem:
        raise AssertionError(f"check_against: {what} (shape {got.shape}) differs from the reference: {problem}")


def check_against(fn, reference_fn, *inputs, atol=1e-12, rtol=1e-10, seed=0, params=None):
    """Assert that `fn` computes what `reference_fn` computes: values and gradients, in float64.

    Each side gets its own float64 leaves made from `inputs` (float arrays or Tensors require
    grad; integer arrays pass as constant Tensors), every output is compared, the same random
    output gradient is back-propagated through both, and each float input's gradient compared.

    Args:
        fn: the op under test (a fused kernel, say).
        reference_fn: its oracle, called the same way.
        *inputs: arrays or Tensors.
        atol, rtol: an element passes when |fn's - reference's| <= atol + rtol * |reference's|;
            the defaults allow only rounding differences from a changed order of operations.
        seed: seed of the random output gradient.
        params: for two modules with separate but equal parameters, a pair
            `(fn_params, reference_params)` of lists or dicts whose gradients are compared
            pairwise too (cleared before the runs).
    Returns:
        True.
    Raises:
        AssertionError naming the output, input or parameter that differs, its shape, the worst
        element and both values.
    """
    if params is not None and (len(params) != 2 or len(_named(params[0])) != len(_named(params[1]))):
        raise ValueError("check_against: params must be a pair (fn_params, reference_params) of equal length")
    pairs = list(zip(*(_named(p) for p in params))) if params is not None else []
    runs = []
    for side, f in enumerate((fn, reference_fn)):
        for pair in pairs:
            pair[side][1].grad = None
        leaves = _float64_leaves(inputs)
        outs = _outputs(f(*leaves), "fn" if side == 0 else "reference_fn")
        runs.append((leaves, outs))
    (leaves, outs), (ref_leaves, ref_outs) = runs
    if len(outs) != len(ref_outs):
        raise AssertionError(f"check_against: fn returned {len(outs)} outputs, the reference {len(ref_outs)}")
    rng = np.random.default_rng(seed)
    for k, (o, r) in enumerate(zip(outs, ref_outs)):
        _compare(f"output {k}", o.data, r.data, atol, rtol)
    weights = [rng.standard_normal(o.shape) for o in outs]
    for these in (outs, ref_outs):  # the same d(objective)/d(output) on both sides
        live = [(o, w) for o, w in zip(these, weights) if o.requires_grad]
        for k, (o, w) in enumerate(live):
            o.backward(to_device(w.astype(o.dtype), o.device), retain_graph=k < len(live) - 1)
    for i, (a, b) in enumerate(zip(leaves, ref_leaves)):
        if a.requires_grad:
            zero = np.zeros(a.shape)
            _compare(f"gradient of input {i}", zero if a.grad is None else a.grad,
                     zero if b.grad is None else b.grad, atol, rtol)
    for (name, p), (_, q) in pairs:
        zero = np.zeros(p.shape)
        _compare(f"gradient of param {name}", zero if p.grad is None else p.grad,
                 zero if q.grad is None else q.grad, atol, rtol)
    return True

"""The `Optimizer` base class: parameter groups, per-parameter state, zero_grad, state_dict; and
`clip_grad_norm_`, gradient clipping by global L2 norm (torch.nn.utils.clip_grad_norm_).

Implements what every optimizer shares, with PyTorch's names and layout so habits transfer:
  * `params` is an iterable of Tensors, or of dicts `{"params": [...], **overrides}` (parameter
    groups); each group dict holds its own hyperparameters ("lr", "weight_decay", ...), which a
    training loop may change between steps (`for g in opt.param_groups: g["lr"] = lr`);
  * per-parameter state lives in `self.state`, a list of dicts aligned with the parameters in
    group order (index i is the i-th parameter of the first group, then the second, ...), never
    keyed by a set or by id, so the order is the same on every run;
  * `state_dict()` / `load_state_dict()` use PyTorch's layout: `{"state": {i: {...}},
    "param_groups": [group dicts with "params" replaced by integer indices]}`, with state arrays
    returned as NumPy copies (ready for `np.savez`) and put back on each parameter's device and
    dtype on load, so a resumed run continues bit for bit.

Subclasses implement `_update(group, p, grad, state)` on raw arrays; `step()` walks the groups
and skips parameters whose `.grad` is None. Gradients are treated as read-only (they may be
broadcast views or shared between parameters); `p.data` and the state buffers are updated in
place, so references to them stay valid.

Clipping: The total norm is sqrt(sum over every parameter of sum(grad**2)). Each parameter's sum of squares
is one BLAS dot product in the gradient's dtype (what PyTorch does too: float32 grads give the
norm to float32 precision, which is all clipping needs); the per-parameter sums are added in float64,
and if the total overflows it is computed again with every square in float64. When it
exceeds `max_norm`, every gradient is multiplied by max_norm / (total + eps). The scaling is out
of place (`p.grad = p.grad * scale`): a gradient array may be a read-only broadcast view or be
shared by two parameters, and an in-place `*=` would then fail or scale the shared array twice.

Leaves out: closures in `step()`, sparse gradients, `set_to_none=False` in `zero_grad`,
hooks, multi-tensor ("foreach") kernels, and norms other than L2 in clipping (`norm_type`).
"""
import math
import numbers

import numpy as np

from ..engine.backend import device_of, get_array_module, to_device


def _to_numpy_copy(array):
    """A NumPy copy of a NumPy or CuPy array (never a view of optimizer state)."""
    if device_of(array) == "cuda":
        return to_device(array, "cpu")  # a fresh host copy
    return np.array(array, copy=True)


def finite_at_least_zero(value):
    """Whether a hyperparameter is a real number in [0, inf): not NaN, inf, a bool or a string."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and 0 <= value < math.inf


class Optimizer:
    """Base class: holds parameter groups and per-parameter state; subclasses write `_update`.

    Args:
        params: iterable of Tensors, or of dicts `{"params": iterable of Tensors, **overrides}`.
            A dict's other keys override `defaults` for that group.
        defaults: dict of hyperparameters (name -> value) every group starts from.
    Raises:
        TypeError: `params` is a single Tensor, or a group entry is not a Tensor.
        ValueError: no parameters at all, a parameter listed twice, or an unknown group key.
    """

    # names of the per-parameter arrays a subclass keeps in its state (checked on load)
    state_names = ()

    def __init__(self, params, defaults):
        if hasattr(params, "data") and hasattr(params, "grad"):
            raise TypeError("params must be an iterable of Tensors or of param-group dicts, got a single "
                            "Tensor; wrap it in a list: [tensor]")
        self.defaults = dict(defaults)
        self.param_groups = []
        self.state = []
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)
        if not self.state:
            raise ValueError("optimizer got an empty parameter list (every group is empty)")

    def add_param_group(self, group):
        """Append a parameter group (a dict with "params" and optional hyperparameter overrides).

        Args:
            group: `{"params": Tensor or iterable of Tensors, **overrides}`; missing
                hyperparameters are taken from the optimizer's defaults.
        """
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError(f"a parameter group must be a dict with a 'params' key, got {type(group).__name__}")
        params = group["params"]
        params = [params] if hasattr(params, "data") else list(params)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for p in params:
            if not (hasattr(p, "data") and hasattr(p, "grad")):
                raise TypeError(f"optimizer params must be Tensors, got {type(p).__name__}")
            if id(p) in seen:
                raise ValueError("a parameter appears twice in the optimizer's parameter groups "
                                 "(tied weights must be listed once)")
            seen.add(id(p))
        unknown = set(group) - set(self.defaults) - {"params"}
        if unknown:
            raise ValueError(f"unknown hyperparameter(s) {sorted(unknown)} in parameter group; "
                             f"{type(self).__name__} takes {sorted(self.defaults)}")
        full = {**self.defaults, **{k: v for k, v in group.items() if k != "params"}, "params": params}
        self._check_group(full)
        self.param_groups.append(full)
        self.state.extend({} for _ in params)

    def _check_group(self, group):
        """Validate one group's hyperparameters (subclasses extend); raise ValueError if wrong."""
        if not finite_at_least_zero(group["lr"]):
            raise ValueError(f"invalid learning rate {group['lr']!r}: must be a finite number >= 0")
        if not finite_at_least_zero(group.get("weight_decay", 0.0)):
            raise ValueError(f"invalid weight_decay {group['weight_decay']!r}: must be a finite number >= 0")

    # ----------------------------------------------------------------- training loop
    def zero_grad(self):
        """Set every parameter's `.grad` to None (gradients accumulate until this is called)."""
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def step(self):
        """Update every parameter that has a gradient, one group at a time (raw arrays, no graph)."""
        i = 0
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self._update(group, p, p.grad, self.state[i])
                i += 1

    def _update(self, group, p, grad, state):
        """Apply one update to parameter `p` in place. Subclasses implement this.

        Args:
            group: the parameter's group dict (hyperparameters as plain Python numbers).
            p: the Tensor; update `p.data` in place.
            grad: `p.grad`, a raw array; read only, never modify it.
            state: this parameter's state dict; create buffers lazily with `xp.zeros_like(p.data)`.
        """
        raise NotImplementedError

    # ----------------------------------------------------------------- checkpoints
    def state_dict(self):
        """Snapshot of the optimizer, in PyTorch's layout, safe to save with `np.savez`.

        Returns:
            `{"state": {index: {name: NumPy array copy, "step": int, ...}},
              "param_groups": [group dict with "params" replaced by a list of integer indices]}`;
            only parameters that have state (have been stepped) appear under "state".
        """
        state = {}
        for i, s in enumerate(self.state):
            if s:
                state[i] = {k: (_to_numpy_copy(v) if hasattr(v, "shape") else v) for k, v in s.items()}
        groups, start = [], 0
        for group in self.param_groups:
            n = len(group["params"])
            groups.append({**{k: v for k, v in group.items() if k != "params"},
                           "params": list(range(start, start + n))})
            start += n
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore hyperparameters and per-parameter state from `state_dict()` output.

        Everything is validated before anything changes. Keys of "state" may be ints or strings
        (a JSON round trip turns them into strings). Arrays are copied onto each parameter's
        device and dtype, and the saved groups' hyperparameters replace the current ones.

        Args:
            state_dict: a dict as returned by `state_dict()`.
        Raises:
            ValueError: a different number of groups or of parameters in a group, a state index
                out of range, missing or unexpected state arrays, or a state array whose shape
                differs from its parameter's (the message names the index and both shapes).
        """
        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            raise ValueError("optimizer state_dict must be a dict with exactly the keys 'state' and 'param_groups'")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"loaded state_dict has {len(saved_groups)} parameter group(s), "
                             f"this optimizer has {len(self.param_groups)}")
        index_map = {}  # saved param index -> current flat index
        flat = []  # current parameters in state order
        for gi, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"parameter group {gi}: loaded state_dict has {len(saved['params'])} "
                                 f"parameter(s), this optimizer has {len(group['params'])}")
            for saved_index, p in zip(saved["params"], group["params"]):
                index_map[int(saved_index)] = len(flat)
                flat.append(p)
        new_state = [{} for _ in flat]
        for key, entry in state_dict["state"].items():
            if int(key) not in index_map:
                raise ValueError(f"loaded state_dict has state for parameter {key}, which is in no parameter group")
            i = index_map[int(key)]
            p = flat[i]
            arrays = {k for k, v in entry.items() if hasattr(v, "shape") and k != "step"}
            if self.state_names and arrays != set(self.state_names):
                raise ValueError(f"parameter {i}: loaded state has arrays {sorted(arrays)}, "
                                 f"{type(self).__name__} expects {sorted(self.state_names)}")
            for name, value in entry.items():
                if name == "step":
                    new_state[i][name] = int(value)
                elif hasattr(value, "shape"):
                    if tuple(value.shape) != tuple(p.data.shape):
                        raise ValueError(f"parameter {i}: loaded state '{name}' has shape {tuple(value.shape)}, "
                                         f"the parameter has shape {tuple(p.data.shape)}")
                    xp = get_array_module(p.data)
                    moved = to_device(value, device_of(p.data))
                    new_state[i][name] = xp.array(moved, dtype=p.data.dtype, copy=True)
                else:
                    new_state[i][name] = value
        new_groups = []
        for saved, group in zip(saved_groups, self.param_groups):
            hyper = {k: (tuple(v) if isinstance(v, list) else v) for k, v in saved.items() if k != "params"}
            self._check_group({**group, **hyper})
            new_groups.append(hyper)
        for hyper, group in zip(new_groups, self.param_groups):
            group.update(hyper)
        self.state = new_state

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            hyper = ", ".join(f"{k}={v}" for k, v in group.items() if k != "params")
            lines.append(f"  group {i}: {len(group['params'])} params, {hyper}")
        return "\n".join(lines + [")"])


# ---------------------------------------------------------------- gradient clipping (the step's last act before the update)
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
    unique = list({id(p): p for p in params if p.grad is not None}.values())  # a tied parameter once, in order
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
    xp = get_array_module(params[0].grad)
    if exact:
        return sum(xp.sum(xp.square(p.grad, dtype=xp.float64)) for p in params)
    return sum(xp.vdot(p.grad, p.grad).astype(xp.float64) for p in params)  # one BLAS pass each, in the grad's dtype

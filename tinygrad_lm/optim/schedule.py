"""Learning-rate schedule: linear warmup then cosine decay (nanoGPT's `get_lr`).

Implements the pure function `cosine_warmup_lr(step, max_lr, warmup_steps, max_steps, min_lr)`
and a small scheduler object `CosineWarmupLR` that applies it to an optimizer's groups, with
`step()` and `state_dict()` like torch's LR schedulers. The formula, for an integer step >= 0:

    step <  warmup_steps:             lr = max_lr * (step + 1) / (warmup_steps + 1)
    warmup_steps <= step < max_steps: r  = (step - warmup_steps) / (max_steps - warmup_steps)
                                      lr = min_lr + 0.5 * (1 + cos(pi * r)) * (max_lr - min_lr)
    step >= max_steps:                lr = min_lr

So warmup never starts at 0 (step 0 gets max_lr / (warmup_steps + 1)), step == warmup_steps
gets exactly max_lr, and the cosine reaches min_lr at step == max_steps and stays there.

Leaves out: other schedule shapes (linear, step, one-cycle) and per-epoch scheduling.
"""
import math
import numbers


def _check(max_lr, warmup_steps, max_steps, min_lr):
    integers = all(isinstance(n, numbers.Integral) for n in (warmup_steps, max_steps))
    if not (integers and 0 <= warmup_steps <= max_steps and 0.0 <= min_lr <= max_lr):
        raise ValueError(f"the schedule needs integers 0 <= warmup_steps <= max_steps and 0 <= min_lr <= max_lr, got "
                         f"warmup_steps={warmup_steps!r}, max_steps={max_steps!r}, min_lr={min_lr!r}, max_lr={max_lr!r}")


def cosine_warmup_lr(step, max_lr, warmup_steps, max_steps, min_lr=0.0):
    """The learning rate at `step` under linear warmup then cosine decay (formula in the module doc).

    Args:
        step: the optimisation step, an integer >= 0 (0 for the first update).
        max_lr: the peak learning rate, reached at step == warmup_steps.
        warmup_steps: number of linear warmup steps (>= 0).
        max_steps: the step at which the cosine reaches min_lr (>= warmup_steps).
        min_lr: the floor, in [0, max_lr] (nanoGPT uses max_lr / 10).
    Returns:
        the learning rate, a Python float.

    Example (max_lr=1.0, warmup 4, max_steps 10, min_lr 0.1):
        steps 0..3 -> 0.2, 0.4, 0.6, 0.8; step 4 -> 1.0; step 7 -> 0.55; steps >= 10 -> 0.1
    """
    _check(max_lr, warmup_steps, max_steps, min_lr)
    step = int(step)
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if step < warmup_steps:
        return max_lr * (step + 1) / (warmup_steps + 1)
    if step >= max_steps:
        return float(min_lr)
    ratio = (step - warmup_steps) / (max_steps - warmup_steps)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (max_lr - min_lr)


class CosineWarmupLR:
    """Sets every group's "lr" to `cosine_warmup_lr` of the current step (torch-style scheduler).

    Each group's peak is the "lr" it had when the scheduler was made; its floor is
    peak * min_lr_ratio. Construction sets the lr for step 0; call `step()` after each
    `optimizer.step()` to move to the next step.

    Args:
        optimizer: an `Optimizer`.
        warmup_steps: linear warmup steps (>= 0).
        max_steps: step at which the cosine reaches the floor (>= warmup_steps).
        min_lr_ratio: floor as a fraction of each group's peak lr, in [0, 1] (0.1 like nanoGPT).
    """

    def __init__(self, optimizer, warmup_steps, max_steps, min_lr_ratio=0.1):
        if not 0.0 <= min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio must be in [0, 1], got {min_lr_ratio!r}")
        self.optimizer = optimizer
        self.warmup_steps, self.max_steps, self.min_lr_ratio = warmup_steps, max_steps, float(min_lr_ratio)
        self.base_lrs = [float(g["lr"]) for g in optimizer.param_groups]
        for lr in self.base_lrs:
            _check(lr, warmup_steps, max_steps, lr * self.min_lr_ratio)
        self.last_step = 0
        self._apply()

    def lr_at(self, step):
        """The list of per-group learning rates at `step`."""
        return [cosine_warmup_lr(step, lr, self.warmup_steps, self.max_steps, lr * self.min_lr_ratio)
                for lr in self.base_lrs]

    def _apply(self):
        for group, lr in zip(self.optimizer.param_groups, self.lr_at(self.last_step)):
            group["lr"] = lr

    def step(self):
        """Advance one step and set the groups' learning rates for it."""
        self.last_step += 1
        self._apply()

    def get_last_lr(self):
        """The learning rates currently set, one per group."""
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self):
        """The scheduler's state (plain Python numbers; JSON-safe)."""
        return {"last_step": self.last_step, "base_lrs": list(self.base_lrs), "warmup_steps": self.warmup_steps,
                "max_steps": self.max_steps, "min_lr_ratio": self.min_lr_ratio}

    def load_state_dict(self, state_dict):
        """Restore from `state_dict()` and set the groups' learning rates for the restored step."""
        if len(state_dict["base_lrs"]) != len(self.optimizer.param_groups):
            raise ValueError(f"scheduler state has {len(state_dict['base_lrs'])} group lr(s), the optimizer has "
                             f"{len(self.optimizer.param_groups)} group(s)")
        self.last_step = int(state_dict["last_step"])
        self.base_lrs = [float(lr) for lr in state_dict["base_lrs"]]
        self.warmup_steps, self.max_steps = int(state_dict["warmup_steps"]), int(state_dict["max_steps"])
        self.min_lr_ratio = float(state_dict["min_lr_ratio"])
        self._apply()

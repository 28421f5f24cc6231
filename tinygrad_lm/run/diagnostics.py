"""Training diagnostics (`--diagnostics`): at every logged step, how each parameter moved and what each block put out.

At each step the loop logs (every --log-interval steps and the last), one more record goes to
log.jsonl, `{"step": s, "diagnostics": {...}}`, and one summary line is printed (both just before
the step's own record and progress line: the optimizer step that measures comes first):

    params   per parameter (dotted name): grad_norm ||g||, weight_norm ||w|| before the update,
             update_norm ||w_after - w_before||, update_ratio = update_norm / weight_norm (null
             when ||w|| = 0). g is the gradient the update used: after --grad-clip and, over
             MPI, summed over the ranks. A parameter with no gradient this step (frozen) is left out.
    layers   the same per layer: "embeddings", each block (`transformer.h.0`, ...), "head" (the
             final norm and what follows it; a tied output matrix is the token embedding's, so
             it counts under embeddings); a layer's norms are sqrt of its parameters' summed
             squares, its ratio ||dw_layer|| / ||w_layer||
    blocks   per block, over every entry of its output (B, T, C), padding left out: mean, std
             (population), and saturation (below)
    grad_norm  the global gradient norm (what --grad-clip compares with max_norm, after clipping)

The update-to-data ratio is Karpathy's health check (makemore part 3, "about 1e-3 is healthy"):
much below, the layer barely learns; much above, its weights are being rewritten every step.

Saturation. A block's output is a residual stream, unbounded, so no value of it is "saturated".
What can saturate is the block's nonlinearity: GELU (the MLP's, GPT-2's tanh form or BERT's erf
form) is flat on its negative side. For x < -3 its slope is below 0.012 in magnitude (and its
output above -0.0041), so almost no gradient flows back through such a unit. `saturation` is
the share of the block's GELU inputs below -3 (GELU_FLAT), read as the output of the Linear that
feeds GELU (`mlp.c_fc`, BERT's `intermediate.dense`). It is makemore part 3's tanh saturation
(|tanh| > 0.97) carried to GELU's one flat side; a block with no GELU input found records null.

How, without a line in the training step:
  * the optimizer's `step` is wrapped (an instance attribute, as `fast.split_optimizer_step`
    does; PyTorch's `register_step_pre_hook`/`post_hook` idea): on a logged step it copies the
    weights, runs the real step, and measures the parameters; other steps pass straight through.
    The step number is counted from the run's start step, and a step is logged under
    Run.log_step's rule (`logs`): every log_interval steps and the last;
  * forward hooks on each block (and on the Linear before its GELU) add up count, sum, sum of
    squares and saturated count, but only in training-mode forwards of a logged step (the
    evaluations run in eval mode and are skipped). A hook sees each forward once, with the whole
    batch, also with --threads N (fast/split_hooks.py joins the slices' rows before it calls the
    hooks, in the calling thread), so no lock is needed. The sums are exact sums (`math.fsum`) of
    per-token sums: the same whatever --threads, given the same activations. Gradient
    accumulation's micro-batches add up one partial each. Over MPI the sums are all-reduced, so the
    stats are the whole batch's on every rank (rank 0 alone writes them);
  * `diagnostics_for(...)` returns None when --diagnostics is off: nothing is attached, and the
    training step is unchanged. `detach()` removes the hooks and gives the optimizer its step back.
Leaves out: per-head attention statistics (see viz/ and run_with_cache), histograms, and gradient
statistics of activations (backward hooks).
"""
import math

import numpy as np

from ..engine.backend import get_array_module, to_device
from ..nn import ModuleList

GELU_FLAT = -3.0  # GELU inputs below this count as saturated: |GELU'(x)| < 0.012 there (0.0119 at -3)
GELU_INPUTS = ("mlp.c_fc", "intermediate.dense")  # in a block: the Linear whose output GELU takes (GPT-2, BERT)


def logs(step, log_interval, max_iters):
    """Whether `step` (steps done) gets a log record: Run.log_step's rule, every log_interval and the last."""
    return step % log_interval == 0 or step == max_iters


def find_blocks(model):
    """[(dotted name, module)] of the model's stack of blocks: the children of its first ModuleList
    (GPT's `transformer.h`, BERT's `bert.encoder.layer`, and the classifiers' same bodies)."""
    for name, module in model.named_modules():
        if isinstance(module, ModuleList):
            return [(f"{name}.{i}", block) for i, block in enumerate(module)]
    raise ValueError(f"--diagnostics: {type(model).__name__} has no stack of blocks (a ModuleList) to watch")


def _submodule(module, dotted):
    for part in dotted.split("."):
        module = getattr(module, part, None)
    return module


def _norm(a):
    """The L2 norm of an array, summed in float64, as a Python float."""
    xp = get_array_module(a)
    return float(xp.sqrt(xp.sum(xp.square(a, dtype=xp.float64))))


def _exact_sum(x):
    """The sum of a float64 array as a Python float: each token's sum over the last axis, then
    `math.fsum` of those (exact): the same for a batch and for its rows joined from slices."""
    return math.fsum(to_device(get_array_module(x).sum(x, axis=-1), "cpu").reshape(-1).tolist())  # (tokens,)


def short_name(name):
    """A layer's label: a block's last two parts (`transformer.h.0` -> `h.0`), other names as they are."""
    parts = name.split(".")
    return ".".join(parts[-2:]) if len(parts) > 2 else name


def layer_names(param_names, block_names):
    """{parameter name: its layer}: the block it lies in, else "embeddings" before the first block's
    parameters (in `param_names`' order) and "head" after them."""
    out, seen_block = {}, False
    for name in param_names:
        block = next((b for b in block_names if name.startswith(b + ".")), None)
        seen_block = seen_block or block is not None
        out[name] = block or ("head" if seen_block else "embeddings")
    return out


class Diagnostics:
    """Watches one training run: wraps `optimizer.step` and hooks the model's blocks (see the module docstring).

    Args:
        model: the model itself (not the fast path's wrappers): its parameter names and blocks.
        optimizer: the object whose `step()` the loop calls (the fast path's, when it runs).
        run: the loop.Run: `record` (log.jsonl) and `print`.
        start_step: steps done when the run starts (a resumed run's step).
        max_iters, log_interval: the run's, for the rule of the logged steps.
        group: the distributed.Group over MPI, else None.
    """

    def __init__(self, model, optimizer, run, start_step, max_iters, log_interval, group=None):
        self.model, self.optimizer, self.run, self.group = model, optimizer, run, group
        self.done, self.max_iters, self.log_interval = start_step, max_iters, log_interval
        self.blocks = find_blocks(model)
        self.layer_of = layer_names([name for name, _ in model.named_parameters()], [name for name, _ in self.blocks])
        self._gelu_inputs = {}  # block -> what its GELU took in the forward under way (the block's hook reads it)
        self._partials = {name: [] for name, _ in self.blocks}  # block -> [(n, sum, sum sq, n GELU, n flat)]
        self._handles = []
        for name, block in self.blocks:
            self._handles.append(block.register_forward_hook(self._block_hook(name)))
            gelu_input = next((m for m in (_submodule(block, d) for d in GELU_INPUTS) if m is not None), None)
            if gelu_input is not None:
                self._handles.append(gelu_input.register_forward_hook(self._gelu_input_hook(name)))
        self._real_step, self._own_step = optimizer.step, "step" in vars(optimizer)
        optimizer.step = self.step  # an instance attribute: shadows the class's step for this object

    # ---- activations: forward hooks, active in training-mode forwards of a logged step only
    def _watching(self, module):
        return module.training and logs(self.done + 1, self.log_interval, self.max_iters)

    def _gelu_input_hook(self, name):
        def hook(module, inputs, output):
            if self._watching(module):  # kept for the block's hook, which knows the padding mask
                self._gelu_inputs[name] = output.data
        return hook

    def _block_hook(self, name):
        def hook(module, inputs, output):
            if not self._watching(module):
                return
            x = output.data  # (B, T, C)
            xp = get_array_module(x)
            mask = inputs[1] if len(inputs) > 1 else None  # GPT and BERT blocks: (x, attention_mask, ...)
            real = None if mask is None else xp.asarray(getattr(mask, "data", mask)).astype(bool)  # (B, T)
            x = (x if real is None else x[real]).astype(xp.float64)  # (B, T, C) or (real tokens, C)
            gelu_in = self._gelu_inputs.pop(name, None)  # (B, T, H): what GELU took in this forward
            if gelu_in is not None and real is not None:
                gelu_in = gelu_in[real]  # (real tokens, H)
            part = (x.size, _exact_sum(x), _exact_sum(xp.square(x)),
                    0 if gelu_in is None else gelu_in.size,
                    0 if gelu_in is None else int((gelu_in < GELU_FLAT).sum()))
            self._partials[name].append(part)
        return hook

    def _activation_stats(self):
        """{block: {mean, std, saturation}} of the logged step's training forwards; the sums reset."""
        sums = np.array([[math.fsum(column) for column in zip(*parts)] if parts else [0.0] * 5
                         for parts in self._partials.values()], dtype=np.float64)  # (blocks, 5)
        for parts in self._partials.values():
            parts.clear()
        if self.group is not None:  # each rank saw its rows: the whole batch's sums on every rank
            sums = self.group.all_reduce_(sums.reshape(-1)).reshape(len(self.blocks), 5)  # (blocks * 5,) -> (blocks, 5)
        out = {}
        for (name, _), (n, total, squares, n_gelu, n_flat) in zip(self.blocks, sums):
            mean = total / n if n else None
            std = math.sqrt(max(squares / n - mean * mean, 0.0)) if n else None
            out[name] = {"mean": mean, "std": std, "saturation": n_flat / n_gelu if n_gelu else None}
        return out

    # ---- parameters: the wrapped optimizer step
    def step(self):
        """The optimizer's step; on a logged step also measure and record (see the module docstring)."""
        step = self.done + 1
        if not logs(step, self.log_interval, self.max_iters):
            self._real_step()
            self.done = step
            return
        updated = {id(p) for group in self.optimizer.param_groups for p in group["params"]}
        params = [(name, p) for name, p in self.model.named_parameters() if id(p) in updated and p.grad is not None]
        grads = [_norm(p.grad) for _, p in params]  # before the update: the gradient it uses
        before = [p.data.copy() for _, p in params]  # copies: the fused AdamW updates in place
        self._real_step()
        self.done = step
        stats = {}
        for (name, p), g, w in zip(params, grads, before):
            weight, update = _norm(w), _norm(p.data.astype(np.float64) - w)
            stats[name] = {"grad_norm": g, "weight_norm": weight, "update_norm": update,
                           "update_ratio": update / weight if weight else None}
        record = {"grad_norm": math.sqrt(math.fsum(s["grad_norm"] ** 2 for s in stats.values())), "params": stats,
                  "layers": _by_layer(stats, self.layer_of), "blocks": self._activation_stats()}
        self.run.record({"step": step, "diagnostics": record})
        self.run.print(summary_line(step, record))

    def detach(self):
        """Remove the hooks and give the optimizer its own step back (twice is harmless)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        if self.optimizer.step == self.step:
            if self._own_step:
                self.optimizer.step = self._real_step
            else:
                del self.optimizer.step


def _by_layer(stats, layer_of):
    """The per-parameter norms combined per layer: sqrt of summed squares; ratio of the sums."""
    layers = {}
    for name, s in stats.items():
        acc = layers.setdefault(layer_of[name], {"grad_norm": [], "weight_norm": [], "update_norm": []})
        for key in acc:
            acc[key].append(s[key] ** 2)
    out = {}
    for layer, acc in layers.items():
        norms = {key: math.sqrt(math.fsum(v)) for key, v in acc.items()}
        norms["update_ratio"] = norms["update_norm"] / norms["weight_norm"] if norms["weight_norm"] else None
        out[layer] = norms
    return out


def summary_line(step, record):
    """One printed line for a diagnostics record: the global grad norm, the range of the layers'
    update/data ratios, the blocks' output std, and the most saturated block."""
    ratios = sorted(v["update_ratio"] for v in record["layers"].values() if v["update_ratio"] is not None)
    blocks = record["blocks"]
    stds = [b["std"] for b in blocks.values() if b["std"] is not None]
    line = f"  diagnostics @ {step} | grad norm {record['grad_norm']:#.3g}"
    if ratios:
        line += (f" | update/data median {ratios[len(ratios) // 2]:.1e} "
                 f"(layers {ratios[0]:.1e} to {ratios[-1]:.1e})")
    if stds:
        line += f" | block output std {' '.join(f'{s:.2f}' for s in stds)}"
    saturated = [(b["saturation"], name) for name, b in blocks.items() if b["saturation"] is not None]
    if saturated:
        share, name = max(saturated)
        line += f" | GELU input < {GELU_FLAT:g}: max {share:.1%} ({short_name(name)})"
    return line


def diagnostics_for(cfg, model, optimizer, run, start_step, group=None):
    """A Diagnostics watching this run when `cfg.run.diagnostics` is on, else None (nothing attached).
    It detaches itself when the run closes, however the loop ends (a NaN stop included)."""
    if not cfg.run.diagnostics:
        return None
    diagnostics = Diagnostics(model, optimizer, run, start_step, cfg.optim.max_iters, cfg.run.log_interval, group)
    run.on_close.append(diagnostics.detach)
    return diagnostics


__all__ = ["Diagnostics", "GELU_FLAT", "diagnostics_for", "find_blocks", "layer_names", "logs", "short_name",
           "summary_line"]

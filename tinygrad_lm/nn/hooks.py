"""Looking inside a forward pass: the handle a forward hook returns, and `run_with_cache`.

`Module.register_forward_hook(fn)` (nn/module.py) calls fn(module, inputs, output) after each
forward of that module, as PyTorch does. `run_with_cache` (TransformerLens's name) puts one on
every submodule for the length of one forward and keeps each output under the module's dotted
name (`transformer.h.1.ln_1`), plus each attention layer's weights (its softmax, before
attention dropout) under `<layer>.weights`: they are the input of the layer's attention
dropout module (`weights_dropout` says which), which the fused kernel reports too.
The cached values are copies cut from the graph (`Tensor`s with no creator), so nothing done
with them flows back into the model, and the hooks are gone when it returns, also when the
forward raises.
A model run with its batch split over CPU threads (`fast.DataParallel`, `train --threads N` or
the default `auto`) calls each hook once per forward too, from the calling thread, with the whole
batch joined from the slices (fast/split_hooks.py); there a hook may look but not replace.
Leaves out: global hooks, pre-hooks, backward hooks, and caching only some names (filter the dict).
"""
import itertools

from ..engine.tensor import Tensor

_ids = itertools.count()


class RemovableHandle:
    """What `register_forward_hook` returns: `remove()` detaches the hook (twice is harmless);
    `with module.register_forward_hook(fn):` detaches it at the end of the block."""

    def __init__(self, hooks, hook):
        self.hooks, self.id = hooks, next(_ids)
        hooks[self.id] = hook

    def remove(self):
        self.hooks.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


def _detached(value):
    """A copy of a module's output that no gradient reaches: Tensors (also inside tuples) copied."""
    if isinstance(value, Tensor):
        return Tensor(value.data.copy())
    if isinstance(value, tuple):
        return tuple(_detached(v) for v in value)
    return value


def weights_dropout(module):
    """The name of the submodule whose input is `module`'s attention weights, or None: GPT-2's
    `attn_dropout`, BERT's `dropout`; a user's own attention layer can name its own with a
    `weights_dropout` attribute."""
    from .attention import CausalSelfAttention, SelfAttention

    if isinstance(module, CausalSelfAttention):
        return "attn_dropout"
    if isinstance(module, SelfAttention):
        return "dropout"
    return getattr(module, "weights_dropout", None)


def run_with_cache(model, forward):
    """(forward(), cache): run `forward` (a call of `model`) with every submodule's output kept.

    cache maps each submodule's dotted name (as `model.named_modules()` gives it) to a detached
    copy of its output, and `<attention layer>.weights` to its attention weights (B, nh, T, S).
    A module called more than once in the forward keeps its last output; one the forward never
    calls has no entry (a ModuleList, which is only iterated; a loss given no targets).
    """
    cache, handles = {}, []

    def keep(name):
        return lambda module, inputs, output: cache.__setitem__(name, _detached(output))

    def keep_weights(name):
        return lambda module, inputs, output: cache.__setitem__(name, _detached(inputs[0]))

    try:
        for name, module in model.named_modules():
            if name:  # the model's own output is what run_with_cache returns
                handles.append(module.register_forward_hook(keep(name)))
            dropout = weights_dropout(module)
            if dropout is not None:
                key = f"{name}.weights" if name else "weights"
                handles.append(getattr(module, dropout).register_forward_hook(keep_weights(key)))
        output = forward()
    finally:
        for handle in handles:
            handle.remove()
    return output, cache


__all__ = ["RemovableHandle", "run_with_cache"]

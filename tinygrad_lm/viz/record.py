"""Which module computed which part of an autograd graph: `record_modules(model)`.

A forward hook sees a module's inputs and output, not the ops in between. While
`with record_modules(model):` is open, every module of `model` (the model itself included)
carries a hook that stamps the Function that created its output with a `ModuleCall`: the
module's dotted name (`transformer.h.0`), the module, its positional input tensors and the
call's number (hooks fire when a forward returns, so an inner call always has a smaller number
than the call around it). The stamps live on the graph's own Functions: they go when the graph
goes (`backward()` frees every Function's state), so there is no global table and nothing
leaks into the next step. `draw_graph(..., by_module=True)` (graph.py) reads them back: the ops
of one call are those reached walking back from its output until its inputs (`call_ops`).
Parameter names come from the same stamps (`parameter_names`).
TorchView's `draw_graph` draws module boxes too, but it watches every op as it runs; here a
module's hook is all there is, which decides what is left out:
  * a tensor passed to a module by keyword is invisible to its hook (positional arguments only),
    so the ops that computed it are counted inside that module;
  * a module whose output has no creator (a constant table, a forward run under no_grad) leaves
    no stamp and is not drawn; a module that returns its input unchanged (dropout at p = 0 or in
    eval mode) is drawn as a pass-through, placed in the call that computed its input (one that
    passes on its caller's own argument is drawn beside that caller, not inside it);
  * one hook per module object: a module registered under two names is recorded under its first.
"""
import contextlib
import itertools

from ..engine.tensor import Tensor

STAMPS = "_module_calls"  # the Function attribute the stamps live in: [(ModuleCall, output index), ...]


class ModuleCall:
    """One forward call of a module, as its hook saw it: name, module, input tensors, call number."""

    __slots__ = ("name", "module", "inputs", "number")

    def __init__(self, name, module, inputs, number):
        self.name, self.module, self.inputs, self.number = name, module, inputs, number

    @property
    def title(self):
        """The dotted name, or the class name for the model itself (whose name is "")."""
        return self.name or type(self.module).__name__

    def is_input(self, fn, idx):
        """Whether output `idx` of `fn` is one of this call's inputs (the module passed it through)."""
        return any(t._ctx is fn and t._idx == idx for t in self.inputs)

    def __repr__(self):
        return f"<ModuleCall {self.title} #{self.number}>"


def _output_tensors(output):
    """The Tensors in a module's output: the output itself, or those in a tuple/list (GPT's (logits, loss))."""
    if isinstance(output, Tensor):
        return [output]
    if isinstance(output, (tuple, list)):
        return [t for t in output if isinstance(t, Tensor)]
    return []


def _stamping_hook(name, numbers):
    def hook(module, inputs, output):
        call = ModuleCall(name, module, tuple(t for t in inputs if isinstance(t, Tensor)), next(numbers))
        for t in _output_tensors(output):
            if t._ctx is not None and t._ctx.inputs is not None:  # a creator whose graph is still alive
                vars(t._ctx).setdefault(STAMPS, []).append((call, t._idx))
        # returns None: the output is left as it is
    return hook


@contextlib.contextmanager
def record_modules(model):
    """Context manager: stamp the graph built inside the block with `model`'s module calls.

    Use it around the forward whose graph you will draw, and draw before `backward()`:

        with record_modules(model):
            logits, loss = model(idx, targets)
        dot = draw_graph(loss, by_module=True)

    The hooks are removed when the block ends, also when it raises.
    """
    if not hasattr(model, "named_modules"):
        raise TypeError(f"record_modules: expects a Module (a model), got {type(model).__name__}")
    numbers, handles, seen = itertools.count(), [], set()
    try:
        for name, module in model.named_modules():
            if id(module) not in seen:  # one hook per module object, under its first name
                seen.add(id(module))
                handles.append(module.register_forward_hook(_stamping_hook(name, numbers)))
        yield model
    finally:
        for handle in handles:
            handle.remove()


def stamps(fn):
    """The (ModuleCall, output index) stamps on a Function (empty when nothing was recorded)."""
    return getattr(fn, STAMPS, ())


def recorded_calls(functions):
    """The calls stamped on these Functions, in the order they ended."""
    calls = {id(call): call for fn in functions for call, _ in stamps(fn)}
    return sorted(calls.values(), key=lambda c: c.number)


def call_ops(call, outputs):
    """The Functions one call computed: walking back from its `outputs` ((fn, idx) pairs) until
    the call's input tensors or the leaves; a dict id(fn) -> fn, empty for a pass-through."""
    inputs = {id(t) for t in call.inputs}
    ops, stack = {}, [fn for fn, idx in outputs if not call.is_input(fn, idx)]
    while stack:
        fn = stack.pop()
        if id(fn) in ops:
            continue
        ops[id(fn)] = fn
        stack.extend(t._ctx for t in fn.inputs if t._ctx is not None and id(t) not in inputs)
    return ops


def parameter_names(calls):
    """id(parameter) -> its dotted names (a tied parameter has several), from the recorded calls in order."""
    names = {}
    for call in calls:
        for pname, p in call.module._params.items():
            if p is not None:
                full = f"{call.name}.{pname}" if call.name else pname
                if full not in names.setdefault(id(p), []):
                    names[id(p)].append(full)
    return names


__all__ = ["ModuleCall", "record_modules"]

"""`Module`, `Parameter` and the containers, with PyTorch's names and semantics.

A Module registers every `Parameter` and sub-Module assigned to it as an attribute, in
assignment order (a dict, never a set), so `parameters()`, `named_parameters()` and
`state_dict()` always list the same names in the same order. Names are dotted paths
("transformer.h.0.attn.c_attn.weight") as in PyTorch, so state dicts are interchangeable.
Forward hooks (`register_forward_hook`, PyTorch's contract) let a user look at or replace a
module's output without editing its forward; `nn/hooks.py` builds `run_with_cache` on them.
Leaves out: forward pre-hooks, backward hooks, persistent buffers in state dicts (buffers here are derived, not learned,
and are rebuilt by the constructor), `apply`, and parameter sharing across devices.
"""
import numpy as np

from ..engine import backend
from ..engine.tensor import Tensor
from .hooks import RemovableHandle


class Parameter(Tensor):
    """A Tensor that is a learnable weight of a Module (requires grad by default)."""

    __slots__ = ()

    def __init__(self, data, requires_grad=True):
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self):
        return f"Parameter(shape={self.shape}, dtype={self.dtype}, device='{self.device}')"


class Module:
    """Base class of every layer and model: subclass it and write `forward`."""

    def __init__(self):
        object.__setattr__(self, "_params", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_forward_hooks", {})  # handle id -> fn(module, inputs, output)

    def __setattr__(self, name, value):
        if "_params" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}.__init__ must call super().__init__() "
                               f"before assigning attribute {name!r}")
        for registry in (self._params, self._modules, self._buffers):
            registry.pop(name, None)
        if isinstance(value, Parameter):
            self._params[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def register_buffer(self, name, array):
        """Keep a raw array that moves with `.to()` but is neither learned nor saved."""
        self._buffers[name] = True
        object.__setattr__(self, name, array)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")

    def __call__(self, *args, **kwargs):
        output = self.forward(*args, **kwargs)
        for hook in tuple(self._forward_hooks.values()):  # register_forward_hook: look without editing forward
            result = hook(self, args, output)
            output = output if result is None else result  # a hook that returns a value replaces the output
        return output

    def register_forward_hook(self, hook):
        """Call `hook(module, inputs, output)` after every forward of this module; returns a handle
        whose `remove()` detaches it (also a context manager). `inputs` is the tuple of positional
        arguments; a hook that returns something other than None replaces the output (PyTorch's
        contract). Hooks run in registration order, each seeing the output the previous one left."""
        if not callable(hook):
            raise TypeError(f"register_forward_hook: hook must be callable as hook(module, inputs, output), "
                            f"got {type(hook).__name__}")
        return RemovableHandle(self._forward_hooks, hook)

    # ----------------------------------------------------------------- traversal
    def named_modules(self, prefix=""):
        """Yield (dotted name, module) for self and every descendant, depth first."""
        stack = [(prefix, self)]
        while stack:
            name, mod = stack.pop()
            yield name, mod
            children = [(f"{name}.{n}" if name else n, m) for n, m in mod._modules.items()]
            stack.extend(reversed(children))

    def modules(self):
        return [m for _, m in self.named_modules()]

    def children(self):
        return list(self._modules.values())

    def named_parameters(self, prefix="", remove_duplicate=True):
        """Yield (dotted name, Parameter) in registration order.

        A Parameter shared by two modules (tied embeddings) is listed once, under its first
        name, unless remove_duplicate=False (state dicts list it under every name, as PyTorch).
        """
        seen = set()
        for mod_name, mod in self.named_modules(prefix):
            for name, p in mod._params.items():
                if p is None or (remove_duplicate and id(p) in seen):  # bias=False leaves None; tied: once
                    continue
                seen.add(id(p))
                yield (f"{mod_name}.{name}" if mod_name else name), p

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def num_params(self):
        return sum(p.size for p in self.parameters())

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    # ----------------------------------------------------------------- modes and devices
    def train(self, mode=True):
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self):
        return self.train(False)

    def to(self, device=None, dtype=None):
        """Move/cast every parameter and buffer in place (references stay valid); returns self.
        `dtype` must be a floating type (parameters take gradients); integer buffers keep theirs."""
        device = backend.check_device(device)
        if dtype is not None and not np.issubdtype(np.dtype(dtype), np.floating):
            raise TypeError(f"to(dtype={dtype!r}): parameters must be floating (float32 or float64), got "
                            f"{np.dtype(dtype)}")
        for m in self.modules():
            for p in m._params.values():
                data = backend.to_device(p.data, device) if device else p.data
                p.data = data.astype(dtype) if dtype is not None else data
                if p.grad is not None:
                    p.grad = None  # a stale grad on the old device/dtype would poison the next step
            for name in m._buffers:
                buf = getattr(m, name)
                buf = backend.to_device(buf, device) if device else buf
                if dtype is not None and np.issubdtype(buf.dtype, np.floating):
                    buf = buf.astype(dtype)
                object.__setattr__(m, name, buf)
        return self

    # ----------------------------------------------------------------- state dicts
    def state_dict(self):
        """name -> NumPy array copy of every parameter (PyTorch's naming)."""
        return {name: backend.to_device(p.data, "cpu").copy()
                for name, p in self.named_parameters(remove_duplicate=False)}

    def load_state_dict(self, state, strict=True):
        """Copy arrays from `state` (name -> array) into the parameters, keeping device and dtype.

        With strict=True (default) any missing key, unexpected key or shape mismatch raises
        one KeyError/ValueError listing all of them by name; with strict=False only shape
        mismatches raise, and the (missing, unexpected) key lists are returned.
        """
        own = dict(self.named_parameters(remove_duplicate=False))
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        mismatched = [f"{k}: checkpoint {tuple(np.shape(state[k]))} vs model {own[k].shape}"
                      for k in own if k in state and tuple(np.shape(state[k])) != own[k].shape]
        problems = []
        if strict and missing:
            problems.append(f"missing keys: {missing}")
        if strict and unexpected:
            problems.append(f"unexpected keys: {unexpected}")
        if mismatched:
            problems.append(f"shape mismatches: {mismatched}")
        if problems:
            raise ValueError(f"load_state_dict into {type(self).__name__} failed: " + "; ".join(problems))
        for k, p in own.items():
            if k in state:
                arr = backend.to_device(np.asarray(backend.to_device(state[k], "cpu")), p.device)
                p.data = arr.astype(p.dtype, copy=True)
        return missing, unexpected

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, m in self._modules.items():
            lines.append(f"  ({name}): " + repr(m).replace("\n", "\n  "))
        return lines[0] + ")" if len(lines) == 1 else "\n".join(lines) + "\n)"

    def extra_repr(self):
        return ""


class ModuleList(Module):
    """A list of Modules, registered under the names "0", "1", ... (GPT-2's `h.{i}`)."""

    def __init__(self, modules=()):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module):
        setattr(self, str(len(self._modules)), module)
        return self

    def __getitem__(self, i):
        return list(self._modules.values())[i]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class ModuleDict(Module):
    """A dict of Modules, registered under their keys (nanoGPT's `transformer` container)."""

    def __init__(self, modules=None):
        super().__init__()
        for name, m in (modules or {}).items():
            setattr(self, name, m)

    def __getitem__(self, name):
        return self._modules[name]

    def __contains__(self, name):
        return name in self._modules

    def keys(self):
        return self._modules.keys()

    def items(self):
        return self._modules.items()


"""The module calls recorded on a graph, nested, and what each op is drawn as at a given depth.

`record_modules` (record.py) leaves each call's stamp on the Function that created its output.
`Nesting(functions, depth)` reads the stamps of a graph's Functions back and works out:

    ops[call]      the Functions the call computed (walking back from its output to its inputs)
    owner[op]      the innermost call that computed an op: the first one to end among those
                   whose ops hold it (a forward hook fires when its forward returns, so inner
                   calls end, and are numbered, before the call around them)
    parent[call]   the call around it: the first call to end after it whose ops hold the op that
                   made its output (for a pass-through, the op that made the tensor it passed)
    level[call]    0 for an outermost call (usually the model), its parent's level + 1 below

and, for the picture, `shown[call]`: the call drawn as one node in its place (itself, or the
collapsed call around it), or None for an opened call, drawn as a box (a Graphviz cluster)
around its children and its own ops. The rule, with depth d: a call at level d is collapsed,
and so is a call above d that calls no module (a layer: GPT's lm_head, its loss); a call above
d with modules inside is opened. With the GPT as level 0 and d = 2 its loss reads
wte, wpe -> + -> drop -> h.0 -> h.1 -> ln_f -> lm_head -> loss_fn (the `+` is the Transformer's own op).
Leaves out: anything about one call's several runs (each run is a call of its own).
"""
from .record import call_ops, stamps


class Nesting:
    def __init__(self, functions, depth):
        """functions: a graph's Functions, inputs first (as graph.py walks them); depth: a level >= 0."""
        self.outputs = {}  # call -> its stamped outputs, [(fn, output index), ...]
        for fn in functions:
            for call, idx in stamps(fn):
                self.outputs.setdefault(call, []).append((fn, idx))
        self.calls = sorted(self.outputs, key=lambda c: c.number)  # inner calls first
        self.ops = {c: call_ops(c, self.outputs[c]) for c in self.calls}
        self.owner = {}  # id(fn) -> innermost call
        for c in self.calls:
            for key in self.ops[c]:
                self.owner.setdefault(key, c)
        self.parent, self.children = {}, {c: [] for c in self.calls}
        for i, c in enumerate(self.calls):
            anchor = id(self._anchor(c))
            self.parent[c] = next((p for p in self.calls[i + 1:] if anchor in self.ops[p]), None)
            if self.parent[c] is not None:
                self.children[self.parent[c]].append(c)
        self.level, self.shown = {}, {}
        for c in reversed(self.calls):  # a parent ends after its children: it is settled first
            p = self.parent[c]
            self.level[c] = 0 if p is None else self.level[p] + 1
            if p is not None and self.shown[p] is not None:
                self.shown[c] = self.shown[p]  # inside a collapsed call: drawn as that call
            elif self.level[c] >= depth or not self.children[c]:
                self.shown[c] = c  # collapsed: one node
            else:
                self.shown[c] = None  # opened: a box around its children and its own ops

    def _anchor(self, call):
        """The op that made the call's output: one it computed, else (a pass-through) its input's creator."""
        outs = self.outputs[call]
        return next((fn for fn, idx in outs if not call.is_input(fn, idx)), outs[0][0])

    def node_of(self, fn):
        """The collapsed call an op is drawn inside, or None when the op is drawn as itself."""
        owner = self.owner.get(id(fn))
        return None if owner is None else self.shown[owner]

    def box_of_op(self, fn):
        """The opened call whose box an op drawn as itself sits in (None: outside every box)."""
        return self.owner.get(id(fn))

    def passes_through(self, call):
        """The (fn, idx) of the tensor a collapsed pass-through call hands on unchanged, or None."""
        if self.shown[call] is not call or self.ops[call]:
            return None
        return self.outputs[call][0]

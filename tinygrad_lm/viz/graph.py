"""The autograd graph behind a tensor, as Graphviz DOT text: `draw_graph(tensor, by_module=False, depth=2)`.

Every non-leaf Tensor remembers the Function that made it (`_ctx`) and every Function its input
tensors (`inputs`): that is the graph `backward()` walks, and the one drawn here, as PyTorchViz's
`make_dot` draws PyTorch's, in the direction the data flows (inputs at the top):

    op nodes       grey rounded boxes, labelled with the Function's class (MatMul, Add, Softmax)
    leaf tensors   boxes: parameters in blue, labelled with their dotted names when the forward
                   ran inside `record_modules(model)` (record.py); other leaves in yellow ("leaf"
                   requires grad, "leaf (no grad)" is a constant or an input)
    intermediate   ellipses, labelled "(B, T, C) float32"; the tensor drawn in green
    tensors

`by_module=True` draws each module call as one node instead of its ops, nested to `depth`
(nesting.py says which call is collapsed and which is opened into a box around its children);
the tensors between the nodes become edge labels (their shapes), the parameters inside a node
are left out, and a module that passes its input through (dropout at p = 0) is a node of its own.
Draw before `backward()`: backward frees the graph as it goes (say `retain_graph=True` to keep it).
The text is deterministic: node ids are given in the order of one walk from the tensor, inputs
first, so the same computation gives the same text. `render` (render.py) turns it into a picture.
Leaves out: the saved arrays themselves, backward's gradients, and graphs that cross threads
(`DataParallel` draws as its one `_SplitBatch` op, with no module calls: draw the model unwrapped).
"""
from ..engine.tensor import Tensor
from ..nn import Parameter
from .nesting import Nesting
from .record import parameter_names, recorded_calls

FREED = ("draw_graph: the graph behind this tensor was freed by backward(); draw before backward() "
         "(or pass retain_graph=True to backward() to keep it)")
NO_GRAPH = ("draw_graph: this tensor has no graph: it does not require grad and no Function made it (computed "
            "under no_grad(), from inputs that need no gradient, or detached); compute it with gradients enabled, "
            "from parameters or tensors with requires_grad=True")
NOT_RECORDED = ("draw_graph(by_module=True): no module calls were recorded on this graph; run the forward inside "
                "`with tinygrad_lm.viz.record_modules(model):` and draw its result before backward() (a model "
                "wrapped in DataParallel runs its modules in graphs of its threads: record and draw the model itself)")

OP = 'shape=box, style="rounded,filled", fillcolor=lightgrey'
PARAMETER = "shape=box, style=filled, fillcolor=lightblue"
LEAF = "shape=box, style=filled, fillcolor=lightyellow"
INTERMEDIATE = "shape=ellipse"
OUTPUT = "shape=ellipse, style=filled, fillcolor=palegreen"
MODULE = "shape=box, style=filled, fillcolor=wheat, penwidth=2"
PASS_THROUGH = "shape=box, style=dashed"


def functions(tensor):
    """The Functions behind `tensor`, each after those that made its inputs: an iterative
    post-order walk (no recursion limit), inputs visited in order, so the order is stable."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"draw_graph: expects a Tensor (e.g. a loss), got {type(tensor).__name__}")
    if tensor._ctx is None:
        if not tensor.requires_grad:
            raise ValueError(NO_GRAPH)
        return []  # a leaf that requires grad: its whole graph is itself
    order, seen, stack = [], set(), [(tensor._ctx, False)]
    while stack:
        fn, expanded = stack.pop()
        if expanded:
            order.append(fn)
            continue
        if id(fn) in seen:
            continue
        if fn.inputs is None:
            raise RuntimeError(FREED)
        seen.add(id(fn))
        stack.append((fn, True))
        stack.extend((t._ctx, False) for t in reversed(fn.inputs) if t._ctx is not None and id(t._ctx) not in seen)
    return order


def _quote(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _facts(t):
    """'(2, 8, 32) float32', with the device when it is not the CPU."""
    device = "" if t.device == "cpu" else f" {t.device}"
    return f"{tuple(t.shape)} {t.dtype}{device}"


class _Dot:
    """DOT text being written: nodes (each in a box or outside all) and edges, in the order given."""

    def __init__(self):
        self.ids, self.counts, self.members, self.edges = {}, {}, {}, []

    def node(self, key, prefix, label, style, box=None):
        """The id of node `key`, declared on first use as `prefix` + a running number."""
        if key not in self.ids:
            self.counts[prefix] = self.counts.get(prefix, -1) + 1
            self.ids[key] = f"{prefix}{self.counts[prefix]}"
            self.members.setdefault(box, []).append(f"{self.ids[key]} [label={_quote(label)}, {style}];")
        return self.ids[key]

    def edge(self, src, dst, label=None):
        self.edges.append(f"{src} -> {dst}" + ("" if label is None else f" [label={_quote(label)}]") + ";")

    def text(self, boxes=None, titles=None):
        """The DOT text; `boxes` maps a box to the boxes inside it (None: the top), `titles` names them."""
        lines = ["digraph autograd {", '  node [fontname="Helvetica", fontsize=10];',
                 '  edge [fontname="Helvetica", fontsize=9];']
        stack, opened = [(None, 1, False)], 0
        while stack:  # the boxes, nested, each closed after what it holds
            box, indent, close = stack.pop()
            pad = "  " * indent
            if close:
                lines.append(pad + "}")
                continue
            if box is not None:
                lines += [f"{pad}subgraph cluster_{opened} {{", f"{pad}  label={_quote(titles[box])};"]
                stack.append((box, indent, True))
                indent, opened = indent + 1, opened + 1
            lines += ["  " * indent + line for line in self.members.get(box, [])]
            stack.extend((inner, indent, False) for inner in reversed((boxes or {}).get(box, [])))
        return "\n".join(lines + ["  " + e for e in self.edges] + ["}", ""])


def _tensor_label(t, names, root):
    if t is root or t._ctx is not None:
        return _facts(t)
    if id(t) in names:
        return " = ".join(names[id(t)]) + "\n" + _facts(t)
    kind = "parameter" if isinstance(t, Parameter) else "leaf" if t.requires_grad else "leaf (no grad)"
    return f"{kind}\n{_facts(t)}"


def _tensor_style(t, root):
    if t is root:
        return OUTPUT
    if t._ctx is not None:
        return INTERMEDIATE
    return PARAMETER if isinstance(t, Parameter) else LEAF


def _tensor(dot, t, names, root):
    return dot.node(id(t), "t", _tensor_label(t, names, root), _tensor_style(t, root))


def _op_graph(root, fns, names):
    """Every Function and tensor as a node: tensor -> op -> tensor."""
    dot = _Dot()
    for fn in fns:
        op = dot.node(id(fn), "f", type(fn).__name__, OP)
        for t in fn.inputs:
            if id(t) not in dot.ids and t._ctx is not None:  # an intermediate: its maker's output edge first
                dot.edge(dot.ids[id(t._ctx)], _tensor(dot, t, names, root))
            dot.edge(_tensor(dot, t, names, root), op)
    out = _tensor(dot, root, names, root)
    if root._ctx is not None:
        dot.edge(dot.ids[id(root._ctx)], out)
    return dot.text()


def _module_graph(root, fns, names, nest):
    """Each collapsed call as one node, the ops outside them as op nodes, opened calls as boxes."""
    dot, drawn, passes = _Dot(), set(), {}
    opened, boxes = [c for c in nest.calls if nest.shown[c] is None], {}
    for c in opened:  # in the order they ran (siblings end in that order)
        boxes.setdefault(nest.parent[c], []).append(c)
    titles = {c: f"{c.name} ({type(c.module).__name__})" if c.name else c.title for c in opened}

    def call_node(c):
        ops = len(nest.ops[c])
        what = f"{ops} op{'s' * (ops != 1)}" if ops else "passes its input through"
        return dot.node(c, "m", f"{c.title}\n{type(c.module).__name__}, {what}", MODULE if ops else PASS_THROUGH,
                        nest.parent[c])

    def node_of(fn):
        collapsed = nest.node_of(fn)
        return call_node(collapsed) if collapsed is not None else dot.node(id(fn), "f", type(fn).__name__, OP,
                                                                           nest.box_of_op(fn))

    for c in nest.calls:  # the module nodes numbered in the order they ran; pass-throughs: what each hands on
        if nest.shown[c] is c:
            call_node(c)
        handed = nest.passes_through(c)
        if handed is not None:
            passes.setdefault((id(handed[0]), handed[1]), []).append(c)

    def source(t):
        """The node a non-leaf tensor comes from: its maker's node, then the pass-throughs it went through."""
        src = node_of(t._ctx)
        for c in passes.get((id(t._ctx), t._idx), []):
            dst = call_node(c)
            if (src, dst, id(t)) not in drawn:
                drawn.add((src, dst, id(t)))
                dot.edge(src, dst, str(tuple(t.shape)))
            src = dst
        return src

    def link(t, dst_node, into_call):
        if t._ctx is None:  # a leaf: into an op, or into a module that took it as an argument
            if into_call is not None and all(t is not x for x in into_call.inputs):
                return  # a module's own parameter, or a constant inside it
            src = _tensor(dot, t, names, root)
        else:
            if node_of(t._ctx) == dst_node:
                return  # inside one node
            src = source(t)
        if src != dst_node and (src, dst_node, id(t)) not in drawn:
            drawn.add((src, dst_node, id(t)))
            dot.edge(src, dst_node, str(tuple(t.shape)))

    for fn in fns:
        dst, into_call = node_of(fn), nest.node_of(fn)
        for t in fn.inputs:
            link(t, dst, into_call)
    out = _tensor(dot, root, names, root)
    dot.edge(source(root), out)
    return dot.text(boxes, titles)


def draw_graph(tensor, by_module=False, depth=2):
    """The autograd graph behind `tensor` as Graphviz DOT text (a str), to save or `render`.

    Args:
        tensor: what to draw back from, usually a loss; a leaf that requires grad is one node,
            a tensor with no graph at all (made under no_grad) an error.
        by_module: draw each module call as one node (needs the forward run inside
            `with record_modules(model):`) instead of every op.
        depth: with by_module, how deep to open module calls: the outermost recorded call (the
            model) is level 0; calls at level `depth`, and layers above it, are single nodes.
            2 shows a GPT's embeddings, blocks, head and loss (and a BertForMaskedLM's layers);
            3 opens the blocks (ln_1, attn, ln_2, mlp); 0 draws the whole model as one node.
    Returns:
        str: DOT text (`dot -Tsvg graph.dot -o graph.svg` draws it; see render).
    """
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 0:
        raise ValueError(f"draw_graph: depth must be an integer >= 0 (0: the model as one node), got {depth!r}")
    fns = functions(tensor)
    calls = recorded_calls(fns)
    names = parameter_names(calls)
    if not by_module or not fns:
        return _op_graph(tensor, fns, names)
    if not calls:
        raise ValueError(NOT_RECORDED)
    return _module_graph(tensor, fns, names, Nesting(fns, depth))


__all__ = ["draw_graph"]

"""viz.draw_graph: the autograd graph as DOT text, per op and per module call; viz.render.

The DOT text is parsed line by line (every line must be a node, an edge, a box or a setting, every
edge between declared nodes), and its structure compared with the graph itself, walked here
independently of the package: one node per Function and per tensor, one edge per input use.
"""
import os
import re
import shutil
import sys

import numpy as np
import pytest

from tinygrad_lm import Tensor, fast, manual_seed, no_grad
from tinygrad_lm.models.gpt import GPT, GPTConfig
from tinygrad_lm.nn import Linear, Module
from tinygrad_lm.viz import GraphvizNotFound, draw_graph, record_modules, render
from tinygrad_lm.viz.graph import FREED

LABEL = r'"((?:[^"\\]|\\.)*)"'
NODE = re.compile(rf"^(\w+) \[label={LABEL}, (.*)\];$")
EDGE = re.compile(rf"^(\w+) -> (\w+)(?: \[label={LABEL}\])?;$")
BOX = re.compile(r"^subgraph (cluster_\d+) \{$")
SETTING = re.compile(rf"^(node|edge) \[.*\];$|^label={LABEL};$")


def _unquote(text):
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), text)


class Dot:
    """A parsed DOT text: nodes (id -> label), edges [(src, dst, label)], box of each node, box titles."""

    def __init__(self, text):
        lines = text.splitlines()
        assert lines[0] == "digraph autograd {" and lines[-1] == "}", text[:200]
        self.nodes, self.styles, self.edges, self.box, self.titles = {}, {}, [], {}, {}
        boxes = [None]
        for line in (line.strip() for line in lines[1:-1]):
            if m := NODE.match(line):
                assert m.group(1) not in self.nodes, f"node {m.group(1)} declared twice"
                self.nodes[m.group(1)], self.styles[m.group(1)] = _unquote(m.group(2)), m.group(3)
                self.box[m.group(1)] = boxes[-1]
            elif m := EDGE.match(line):
                self.edges.append((m.group(1), m.group(2), m.group(3) and _unquote(m.group(3))))
            elif m := BOX.match(line):
                boxes.append(m.group(1))
            elif line == "}":
                assert len(boxes) > 1, "a } closes nothing"
                boxes.pop()
            elif m := SETTING.match(line):
                if m.group(2) is not None:
                    self.titles[boxes[-1]] = _unquote(m.group(2))
            else:
                raise AssertionError(f"not a DOT line of ours: {line!r}")
        assert boxes == [None], "unclosed subgraph"
        for src, dst, _ in self.edges:
            assert src in self.nodes and dst in self.nodes, f"edge {src} -> {dst} between undeclared nodes"

    def named(self, first_line):
        """The one node whose label starts with this line."""
        found = [n for n, label in self.nodes.items() if label.split("\n")[0] == first_line]
        assert len(found) == 1, (first_line, found)
        return found[0]

    def into(self, node):
        return [self.nodes[src] for src, dst, _ in self.edges if dst == node]

    def out_of(self, node):
        return [self.nodes[dst] for src, dst, _ in self.edges if src == node]

    def has_edge(self, src, dst):
        return any(e[:2] == (src, dst) for e in self.edges)


def walk(root):
    """Functions and distinct tensors behind root, the test's own walk: (functions, tensors by id)."""
    fns, tensors, stack = {}, {id(root): root}, [root._ctx]
    while stack:
        fn = stack.pop()
        if id(fn) in fns:
            continue
        fns[id(fn)] = fn
        for t in fn.inputs:
            tensors[id(t)] = t
            if t._ctx is not None:
                stack.append(t._ctx)
    return fns, tensors


def small_gpt(dropout=0.0, fused=False):
    np.random.seed(0)
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8, dropout=dropout))
    return fast.fuse(model) if fused else model


def gpt_loss(model, record=True):
    rng = np.random.default_rng(1)
    idx, targets = rng.integers(0, 11, (2, 8)), rng.integers(0, 11, (2, 8))
    manual_seed(2)  # the same dropout masks each time
    if not record:
        return model(idx, targets)[1]
    with record_modules(model):
        return model(idx, targets)[1]


# ----------------------------------------------------------------- every op
def test_expression_graph_is_exactly_its_ops_and_tensors():
    rng = np.random.default_rng(0)
    a, b, c = (Tensor(rng.standard_normal(s), requires_grad=True) for s in ((2, 3), (3, 4), (4,)))
    out = (a @ b + c).relu().sum()
    dot = Dot(draw_graph(out))
    ops = sorted(label for label in dot.nodes.values() if "(" not in label)
    assert ops == ["Add", "MatMul", "ReLU", "Sum"]
    assert len(dot.nodes) == 4 + 7  # 4 ops; a, b, c, a@b, +c, relu, sum
    assert len(dot.edges) == 10  # 5 input uses, 4 op -> result, sum -> out
    assert dot.into(dot.named("MatMul")) == ["leaf\n(2, 3) float64", "leaf\n(3, 4) float64"]  # in input order
    assert dot.into(dot.named("Add")) == ["(2, 4) float64", "leaf\n(4,) float64"]
    (matmul_out,) = [d for s, d, _ in dot.edges if s == dot.named("MatMul")]
    assert dot.out_of(matmul_out) == ["Add"]
    assert dot.into(dot.named("Sum")) == ["(2, 4) float64"]
    (result,) = [d for s, d, _ in dot.edges if s == dot.named("Sum")]
    assert dot.nodes[result] == "() float64" and dot.out_of(result) == []
    assert "palegreen" in dot.styles[result]  # the tensor drawn, in green
    leaves = [n for n, label in dot.nodes.items() if label.startswith("leaf")]
    assert len(leaves) == 3 and all("shape=box" in dot.styles[n] for n in leaves)  # leaves: boxes
    assert "shape=ellipse" in dot.styles[matmul_out]  # intermediates: ellipses


def test_a_tensor_used_twice_has_two_edges_and_constants_are_no_grad_leaves():
    x = Tensor(np.ones(3), requires_grad=True)
    dot = Dot(draw_graph((x * x * 2.0).sum()))
    muls = [n for n, label in dot.nodes.items() if label == "Mul"]
    assert len(muls) == 2
    first = [m for m in muls if "leaf\n(3,) float64" in dot.into(m)][0]
    assert dot.into(first) == ["leaf\n(3,) float64", "leaf\n(3,) float64"]
    assert "leaf (no grad)\n() float64" in sum((dot.into(m) for m in muls), [])


@pytest.mark.parametrize("fused", [False, True])
def test_full_gpt_loss_graph_has_one_node_per_function_and_tensor(fused):
    model = small_gpt(fused=fused)
    loss = gpt_loss(model)
    fns, tensors = walk(loss)
    dot = Dot(draw_graph(loss))
    op_nodes = [n for n, label in dot.nodes.items() if "(" not in label]
    assert len(op_nodes) == len(fns) and len(dot.nodes) == len(fns) + len(tensors)
    intermediates = sum(t._ctx is not None for t in tensors.values())  # each drawn with its maker's edge
    assert len(dot.edges) == sum(len(fn.inputs) for fn in fns.values()) + intermediates
    assert sorted(dot.nodes[n] for n in op_nodes) == sorted(type(fn).__name__ for fn in fns.values())


def test_parameters_are_named_from_the_recording_tied_ones_under_both_names():
    model = small_gpt()
    labels = set(Dot(draw_graph(gpt_loss(model))).nodes.values())
    assert "transformer.wte.weight = lm_head.weight\n(11, 8) float32" in labels
    assert "transformer.h.1.attn.c_attn.weight\n(24, 8) float32" in labels
    assert "transformer.ln_f.bias\n(8,) float32" in labels
    unnamed = set(Dot(draw_graph(gpt_loss(model, record=False))).nodes.values())
    assert "parameter\n(11, 8) float32" in unnamed and not any("transformer." in label for label in unnamed)


def test_text_is_the_same_for_the_same_computation():
    model = small_gpt()
    assert draw_graph(gpt_loss(model)) == draw_graph(gpt_loss(model))
    assert draw_graph(gpt_loss(model), by_module=True) == draw_graph(gpt_loss(model), by_module=True)


def test_a_long_chain_needs_no_recursion():
    x = Tensor(np.ones(2), requires_grad=True)
    y = x
    for _ in range(3 * sys.getrecursionlimit()):
        y = y.relu()
    dot = Dot(draw_graph(y))
    assert sum(label == "ReLU" for label in dot.nodes.values()) == 3 * sys.getrecursionlimit()


# ----------------------------------------------------------------- by module
CHAIN = ["transformer.drop", "transformer.h.0", "transformer.h.1", "transformer.ln_f", "lm_head", "loss_fn"]


@pytest.mark.parametrize("fused,dropout", [(False, 0.0), (False, 0.1), (True, 0.0), (True, 0.1)])
def test_gpt_by_module_reads_embeddings_blocks_head_loss(fused, dropout):
    model = small_gpt(dropout, fused)
    loss = gpt_loss(model)
    dot = Dot(draw_graph(loss, by_module=True))
    modules = [label.split("\n")[0] for label in dot.nodes.values() if "\n" in label and "(" not in label]
    assert sorted(modules) == sorted(["transformer.wte", "transformer.wpe"] + CHAIN)
    add = dot.named("Add")  # the Transformer's own op, token + position embeddings
    assert dot.has_edge(dot.named("transformer.wte"), add) and dot.has_edge(dot.named("transformer.wpe"), add)
    path = [add] + [dot.named(name) for name in CHAIN] + [dot.named("() float32")]
    assert all(dot.has_edge(a, b) for a, b in zip(path, path[1:]))
    assert len(dot.edges) == 2 + len(path) - 1  # nothing else: parameters stay inside their modules
    assert dot.titles[dot.box[add]] == "transformer (Transformer)"
    assert dot.titles[dot.box[dot.named("transformer.h.0")]] == "transformer (Transformer)"
    assert dot.titles[dot.box[dot.named("lm_head")]] == "GPT"
    ops = {name: int(re.search(r", (\d+) ops?$", dot.nodes[dot.named(name)]).group(1))
           for name in modules if "passes" not in dot.nodes[dot.named(name)]}
    assert ops["transformer.h.0"] == ops["transformer.h.1"] > ops["transformer.ln_f"] >= 1
    if dropout == 0.0:  # dropout at p = 0 hands its input on: drawn as a pass-through
        assert "passes its input through" in dot.nodes[dot.named("transformer.drop")]
    else:
        assert ops["transformer.drop"] == 1
    assert np.isclose(loss.item(), gpt_loss(model, record=False).item())  # recording changes nothing computed


def test_depth_opens_the_blocks_and_zero_is_the_model_as_one_node():
    model = small_gpt()
    loss = gpt_loss(model)
    dot = Dot(draw_graph(loss, by_module=True, depth=3))
    for part in ("ln_1", "attn", "ln_2", "mlp"):
        node = dot.named(f"transformer.h.1.{part}")
        assert dot.titles[dot.box[node]] == "transformer.h.1 (Block)"
    residual = [n for n in dot.into(dot.named("transformer.h.0.ln_2")) if n == "Add"]
    assert residual  # the block's residual add is the Block's own op
    whole = Dot(draw_graph(loss, by_module=True, depth=0))
    (model_node,) = [n for n, label in whole.nodes.items() if label.startswith("GPT\n")]
    assert whole.nodes[model_node] == f"GPT\nGPT, {len(walk(loss)[0])} ops"
    assert whole.edges == [(model_node, whole.named("() float32"), None)]


class TwoLayers(Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = Linear(3, 5), Linear(5, 2)

    def forward(self, x):
        return self.fc2(self.fc1(x).relu())


def test_inputs_reach_modules_and_ops_outside_every_module_stay_ops():
    np.random.seed(0)
    model, x = TwoLayers(), Tensor(np.ones((4, 3), dtype=np.float32))
    with record_modules(model):
        y = model(x)
    loss = (y * y).mean()  # outside the model
    dot = Dot(draw_graph(loss, by_module=True, depth=1))
    fc1, fc2, relu = dot.named("fc1"), dot.named("fc2"), dot.named("ReLU")
    assert dot.into(fc1) == ["leaf (no grad)\n(4, 3) float32"]  # the input, not fc1's parameters
    assert dot.has_edge(fc1, relu) and dot.has_edge(relu, fc2)
    assert dot.titles[dot.box[relu]] == "TwoLayers" and dot.box[dot.named("Mul")] is None
    assert dot.into(dot.named("Mul")) == ["fc2\nLinear, 3 ops"]  # y used twice: one edge per tensor
    assert dot.out_of(dot.named("Mean")) == ["() float32"]


def test_record_modules_leaves_no_hook_behind():
    model = small_gpt()
    gpt_loss(model)
    assert all(not m._forward_hooks for m in model.modules())
    with pytest.raises(ZeroDivisionError):
        with record_modules(model):
            1 / 0
    assert all(not m._forward_hooks for m in model.modules())


# ----------------------------------------------------------------- what a user gets wrong
def test_after_backward_the_error_says_draw_before_backward():
    loss = gpt_loss(small_gpt())
    loss.backward()
    with pytest.raises(RuntimeError, match=re.escape("draw before backward()")):
        draw_graph(loss)
    assert "draw before backward()" in FREED


def test_a_tensor_without_graph_is_an_error_and_a_leaf_is_one_node():
    x = Tensor(np.ones(3), requires_grad=True)
    with no_grad():
        y = (x * 2.0).sum()
    with pytest.raises(ValueError, match="no graph.*no_grad"):
        draw_graph(y)
    dot = Dot(draw_graph(x))
    assert list(dot.nodes.values()) == ["(3,) float64"] and dot.edges == []
    with pytest.raises(TypeError, match="expects a Tensor"):
        draw_graph(np.ones(3))


def test_by_module_without_recording_says_how_to_record():
    loss = gpt_loss(small_gpt(), record=False)
    with pytest.raises(ValueError, match=r"record_modules\(model\)"):
        draw_graph(loss, by_module=True)
    with pytest.raises(ValueError, match="depth"):
        draw_graph(loss, by_module=True, depth=-1)


# ----------------------------------------------------------------- rendering
def test_render_without_dot_saves_the_text_and_says_what_to_install(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    text = draw_graph((Tensor(np.ones(2), requires_grad=True) * 3.0).sum())
    with pytest.raises(GraphvizNotFound, match="apt-get install graphviz.*brew install graphviz") as info:
        render(text, tmp_path / "g.svg")
    assert (tmp_path / "g.dot").read_text() == text and "g.dot" in str(info.value)
    with pytest.raises(ValueError, match=r"\.svg"):
        render(text, tmp_path / "g.jpeg")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        render(text, tmp_path / "missing" / "g.svg")


@pytest.mark.skipif(sys.platform == "win32", reason="a stand-in `dot` written as a shell script")
def test_render_hands_the_text_to_dot_and_reports_its_failure(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "dot"  # writes "<format>:<stdin>" to the -o file; fails on text containing FAIL
    fake.write_text('#!/bin/sh\ntext=$(cat)\ncase "$text" in *FAIL*) echo "syntax error in line 1" >&2; exit 1;; '
                    'esac\nprintf "%s:%s" "$1" "$text" > "$3"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir) + os.pathsep + os.environ.get("PATH", ""))
    text = draw_graph((Tensor(np.ones(2), requires_grad=True) * 3.0).sum())
    assert render(text, tmp_path / "g.png") == tmp_path / "g.png"
    assert (tmp_path / "g.png").read_text() == "-Tpng:" + text.rstrip("\n")
    with pytest.raises(RuntimeError, match="status 1: syntax error in line 1"):
        render("digraph FAIL {", tmp_path / "h.svg")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot program is not installed")
def test_render_draws_svg_and_png_with_graphviz(tmp_path):
    text = draw_graph(gpt_loss(small_gpt()), by_module=True)
    svg = render(text, tmp_path / "gpt_graph.svg").read_text()
    assert "<svg" in svg and "transformer.h.1" in svg
    assert render(text, tmp_path / "gpt_graph.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

"""The layer rule, read from the source: no module of a lower layer imports a higher one.

The package's layers, from the bottom (README, "How to read this code"):

    engine/      tensor, autograd, ops, functional, backend, rng, gradcheck (and the package's
                 own __init__, which re-exports the engine)
    nn/          layers, built on the engine
    models/      GPT, BERT, the classifiers, built from nn/
    optim/       optimizers, on the engine alone
    run/         loops, config, checkpoints, data, CLI, plot: may use everything

and beside them version.py (the package's version and the newer-format refusal; imports nothing,
and every layer that reads or writes a versioned file may use it), tokenizer/ (imports nothing of
the package but version.py), hf/ (Hugging Face folders <-> plain
config values and state dicts; no model), checkpoint.py (the package's own .npz file format,
which models read in `from_pretrained` as they read hf/, and the run writes), fast/ (the fused
twins of nn/ and optim/), distributed.py (MPI data parallel), viz/ (pictures of a model's
graph and attention, from the engine and nn/ alone) and metrics/ (pure functions of predictions
and labels: classification scores, perplexity, BLEU, chrF; imports nothing of the package).
Every import counts: module level and function level (a late import is still a dependency),
`import x` and `from x import y` alike. The test also checks that the allowed graph has no cycle,
so no import cycle can join two layers.
"""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tinygrad_lm"

# layer -> the layers it may import (itself always allowed)
ALLOWED = {
    "version": set(),  # the package's version and the newer-format refusal: every layer may quote them
    "engine": {"version"},
    "tokenizer": {"version"},
    "testing": {"engine"},
    "nn": {"engine"},
    "optim": {"engine"},
    "hf": {"tokenizer"},
    "checkpoint": {"version"},
    "models": {"engine", "nn", "hf", "checkpoint", "tokenizer", "version"},
    "fast": {"engine", "nn", "optim"},
    "distributed": {"engine", "nn", "fast"},
    "viz": {"engine", "nn"},
    "metrics": set(),
    "run": {"engine", "nn", "models", "optim", "tokenizer", "hf", "checkpoint", "fast", "distributed", "viz",
            "metrics", "version"},
    "main": {"run"},
}


def layer_of(module):
    """The layer of a dotted module name inside the package."""
    parts = module.split(".")
    if len(parts) == 1:  # tinygrad_lm itself: the package __init__, a facade over the engine
        return "engine"
    head = parts[1]
    if head == "__main__":
        return "main"
    if head in ALLOWED:
        return head
    raise AssertionError(f"{module}: in no layer; add its folder to ALLOWED in tests/test_layers.py")


def module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts), parts[-1] == "__init__"


def is_module(dotted):
    """Whether a dotted name inside the package is a module or a package (not an attribute)."""
    rel = Path(*dotted.split("."))
    return (PACKAGE.parent / rel).with_suffix(".py").is_file() or (PACKAGE.parent / rel / "__init__.py").is_file()


def imports_of(path):
    """[(line, imported module)] of every import of the package in one file, late ones included."""
    name, is_package = module_name(path)
    base = name.split(".") if is_package else name.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "tinygrad_lm"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                target = ".".join(base[:len(base) - node.level + 1] + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "tinygrad_lm":
                continue
            for alias in node.names:  # `from . import nn` imports the module tinygrad_lm.nn
                sub = f"{target}.{alias.name}"
                found.append((node.lineno, sub if is_module(sub) else target))
    return found


def all_imports():
    for path in sorted(PACKAGE.rglob("*.py")):
        name, _ = module_name(path)
        for line, target in imports_of(path):
            yield path, line, name, target


def test_no_module_imports_a_higher_layer():
    bad = []
    for path, line, name, target in all_imports():
        src, dst = layer_of(name), layer_of(target)
        if dst != src and dst not in ALLOWED[src]:
            bad.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {src} imports {dst} ({target})")
    assert not bad, "layer rule broken:\n" + "\n".join(bad)


def test_the_allowed_layer_graph_has_no_cycle():
    state = {}

    def visit(layer, trail):
        if state.get(layer) == "done":
            return
        assert state.get(layer) != "open", f"cycle: {' -> '.join(trail + [layer])}"
        state[layer] = "open"
        for lower in ALLOWED[layer]:
            visit(lower, trail + [layer])
        state[layer] = "done"

    for layer in ALLOWED:
        visit(layer, [])


def test_every_package_file_is_in_a_layer():
    for path in PACKAGE.rglob("*.py"):
        layer_of(module_name(path)[0])


@pytest.mark.parametrize("source, target", [
    ("tinygrad_lm/nn/layers.py", "from ..run import config"),  # a layer importing the run
    ("tinygrad_lm/engine/tensor.py", "    from ..nn import Module"),  # a late import counts too
    ("tinygrad_lm/hf/gpt2.py", "from ..models.gpt import GPTConfig"),  # hf/ knows no model
    ("tinygrad_lm/tokenizer/base.py", "import tinygrad_lm.engine.tensor"),  # the tokenizer imports no engine
])
def test_the_rule_catches_an_upward_import(tmp_path, monkeypatch, source, target):
    """The checker itself: one added upward import in a copy of a file is reported."""
    path = PACKAGE.parent / source
    copy = tmp_path / "copy.py"
    indented = target.startswith(" ")
    copy.write_text(path.read_text(encoding="utf-8") + ("\ndef _late():\n" + target + "\n" if indented
                                                         else "\n" + target + "\n"), encoding="utf-8")
    name, _ = module_name(path)
    real_read = Path.read_text
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: real_read(copy if self == path else self, *a, **k))
    found = [(layer_of(name), layer_of(t)) for _, t in imports_of(path)]
    assert any(dst != src and dst not in ALLOWED[src] for src, dst in found), found

"""Looking inside a model: pictures of what it computes.

    graph.py       draw_graph: the autograd graph behind a tensor as Graphviz DOT text
    record.py      record_modules: stamps a forward's graph with the module calls, for by_module
    nesting.py     which recorded call holds which op, and what is collapsed at a depth
    render.py      render: DOT text to SVG, PNG or PDF with Graphviz's `dot` program
    attention.py   attention maps (every layer x head) and the classic head patterns

Forward hooks and `run_with_cache` are the model's own (nn/module.py, nn/hooks.py); training
diagnostics are the run's (run/diagnostics.py). Pictures need matplotlib (the `plot` extra) or
Graphviz's `dot` program; the DOT text and the numbers need NumPy only.
"""
from .graph import draw_graph
from .record import record_modules
from .render import GraphvizNotFound, render

__all__ = ["draw_graph", "record_modules", "render", "GraphvizNotFound"]

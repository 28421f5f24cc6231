"""Looking inside a model: pictures of what it computes.

    graph.py       draw_graph: the autograd graph behind a tensor as Graphviz DOT text
    attention.py   attention maps (every layer x head) and the classic head patterns

Forward hooks and `run_with_cache` are the model's own (nn/module.py, nn/hooks.py); training
diagnostics are the run's (run/diagnostics.py). Pictures need matplotlib (the `plot` extra) or
Graphviz's `dot` program; the DOT text and the numbers need NumPy only.
"""

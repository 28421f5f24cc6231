"""The engine: tensors and reverse-mode autograd, and nothing above them.

    tensor.py      Tensor, Function (forward and backward side by side), backward(), no_grad
    ops/           every differentiable op: one Function each, attached to Tensor by one line
    functional.py  F.linear, F.layer_norm, F.cross_entropy, F.scaled_dot_product_attention, ...
                   written with the ops, so autograd derives their backward
    backend.py     NumPy or CuPy, picked from the arrays themselves; device moves
    rng.py         the package's seeded random numbers (init, sampling; dropout masks keyed by row)
    gradcheck.py   finite-difference gradient checks in float64

It imports nothing else of the package (a test parses the imports to keep it so).
"""

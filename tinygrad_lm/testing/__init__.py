"""Property-based gradient tests for your own ops: Hypothesis strategies, gradient and twin checks,
and a backend parametrization, the same helpers the package's own tests use.

    from hypothesis import given
    from tinygrad_lm.testing import check_gradients, positive, shapes, tensors

    @given(x=tensors(shapes(), elements=positive()))
    def test_log_backward(x):
        check_gradients(lambda t: t.log(), x)

What is here: strategies.py (shapes, broadcasting partners, arrays, tensors, input domains),
checks.py (`check_gradients`, `check_against`), backends.py (`devices()`, the `device` fixture).
README, "Property-based tests for your own op", has a whole test file and how to pick tolerances.

Needs Hypothesis and pytest (`pip install -e .[test]`) when imported; `import tinygrad_lm`
alone never imports this package. Follows `hypothesis.extra.numpy` and PyTorch's gradcheck.
"""
try:
    import hypothesis  # noqa: F401
    import pytest  # noqa: F401
except ImportError as e:  # only this package needs them; say how to get them
    raise ImportError(f"tinygrad_lm.testing needs Hypothesis and pytest ({e.name} is missing): "
                      "pip install hypothesis pytest, or pip install -e .[test] in a checkout") from None

from .backends import device, devices
from .checks import check_against, check_gradients
from .strategies import (arrays, away_from, broadcastable_shapes, positive, probabilities, shapes, tensors,
                         token_ids)

__all__ = ["shapes", "broadcastable_shapes", "arrays", "tensors", "positive", "away_from", "probabilities",
           "token_ids", "check_gradients", "check_against", "devices", "device"]

"""What one module call costs: a Module whose forward returns its input, and a Linear(4, 4).

Prints the best of 7 timeit repeats of each. Run it once per checkout with PYTHONPATH pointing
at it, alternating, to see what `Module.__call__`'s forward-hook loop costs a model with no hooks:

    PYTHONPATH=. python scripts/bench_module_call.py this
    PYTHONPATH=/tmp/old python scripts/bench_module_call.py old

Leaves out: whole steps (scripts/bench_train.py --speed --against DIR times those).
"""
import sys
import timeit

import numpy as np

from tinygrad_lm.engine.tensor import Tensor
from tinygrad_lm.nn import Linear, Module


class Identity(Module):
    def forward(self, x):
        return x


def main(label):
    m, lin, x = Identity(), Linear(4, 4), Tensor(np.ones((2, 4), dtype=np.float32))
    n = 200000
    ident = min(timeit.repeat(lambda: m(x), number=n, repeat=7)) / n * 1e9
    n2 = 20000
    linear = min(timeit.repeat(lambda: lin(x), number=n2, repeat=7)) / n2 * 1e6
    print(f"{label}: identity Module call {ident:.0f} ns, Linear(4, 4) call {linear:.2f} us")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "this checkout")

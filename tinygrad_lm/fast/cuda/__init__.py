"""Fused CUDA kernels for the fast layer, used only when the arrays are CuPy arrays on a GPU.

llm.c's split, within `fast/`: each file holds one layer's kernels as CUDA C source (a
module-level string), the launch code, and in its docstring the NumPy twin it is checked
against (the fast layer's own kernels in `fast/*.py`, themselves pinned to the reference path).

    layernorm.py      one warp per row: mean, rstd, y; backward gx per row, gw/gb by column blocks
    gelu.py           one thread per element: y and dy/dx together; backward one multiply
    cross_entropy.py  one block per row: max, log-sum-exp, loss; backward writes softmax - target
                      in place of a one-hot, scaled by a per-row factor that stays on the device
    attention.py      causal softmax over each query's row, one warp per row, forward and
                      backward; the products around it are cuBLAS (CuPy's matmul)
    adamw.py          one launch updates every parameter: pointer tables, one block per chunk
    dropout.py        the GPU generator's numbers and the scaled mask in one pass (attention
                      dropout, and fast/dropout.py's FusedDropout)
    tf32.py           opt-in TF32 matmuls (CuPy's CUPY_TF32)

`enabled(array)` is the one switch: True for a float32 CuPy array when CuPy is real (it has
`RawModule`; the test suite's CPU stand-in does not, so under it the fast layer's array code
runs) and `TINYGRAD_LM_CUDA_KERNELS` is not "0". NumPy users never import CuPy: nothing here
imports it at module level. `SOURCES` lists every kernel source by name, so that
tests/test_cuda_kernels.py can compile each one with nvcc for sm_80 and sm_90 on machines
without a GPU. `module(name)` compiles a source once per device (NVRTC, through
`cupy.RawModule`) and caches it.
Leaves out: float16/bfloat16 kernels, tiled (flash) attention, and kernels for the reference
path (a reader of it never meets this package).
"""
import os

from ...engine import backend
from .adamw import SOURCE as _ADAMW
from .attention import SOURCE as _ATTENTION
from .cross_entropy import SOURCE as _CROSS_ENTROPY
from .dropout import SOURCE as _DROPOUT
from .gelu import SOURCE as _GELU
from .layernorm import SOURCE as _LAYERNORM

SOURCES = {"layernorm": _LAYERNORM, "gelu": _GELU, "cross_entropy": _CROSS_ENTROPY, "attention": _ATTENTION,
           "adamw": _ADAMW, "dropout": _DROPOUT}
_modules = {}  # (name, device id) -> compiled RawModule


def enabled(*arrays):
    """True when every array is a float32 CuPy array and the kernels can and may run."""
    cupy = backend.cupy
    if cupy is None or not hasattr(cupy, "RawModule") or os.environ.get("TINYGRAD_LM_CUDA_KERNELS") == "0":
        return False
    return all(isinstance(a, cupy.ndarray) and a.dtype == cupy.float32 for a in arrays)


def module(name):
    """The compiled `cupy.RawModule` of SOURCES[name] on the current device (compiled once)."""
    cupy = backend.cupy
    key = (name, cupy.cuda.get_device_id())
    if key not in _modules:
        _modules[key] = cupy.RawModule(code=SOURCES[name])  # plain C kernels: CuPy's default options
    return _modules[key]


def launch(name, kernel, grid, block, args, shared_mem=0):
    """Run `kernel` of SOURCES[name] with the given grid and block shapes."""
    module(name).get_function(kernel)(grid, block, args, shared_mem=shared_mem)


def blocks(n, per_block):
    """How many blocks of `per_block` items cover n items (at least 1)."""
    return max(1, (n + per_block - 1) // per_block)

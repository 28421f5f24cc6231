"""Opt-in TF32 matmuls on NVIDIA GPUs (Ampere and later), off by default.

TF32 keeps float32's range but rounds the matmul inputs to a 10-bit mantissa (about 3 decimal
digits) on the tensor cores: several times the float32 matmul rate, with relative errors of
about 1e-3 per product instead of 1e-7. `scripts/gpu_check.py` measures both sides on the
shakespeare config (ms/iter, and the loss difference after the same steps). CuPy decides with
`CUPY_TF32` (read once per dtype, the first time a matmul needs it) or at run time with
`cupy._core._routines_linalg.set_compute_type`; this file does both, so the switch works
before or after CuPy's first matmul. PyTorch's equivalent is
`torch.backends.cuda.matmul.allow_tf32`, off by default since 1.12 for the same reason.
Leaves out: TF32 for convolutions (none here) and for our own kernels (they use plain FMA).
"""
import os

from ...engine import backend


def set_tf32(enabled):
    """Allow (True) or forbid (False) TF32 tensor cores in CuPy's float32 matmuls.

    Returns:
        True when CuPy's setting was changed now, False when CuPy is not loaded (the
        environment variable is set either way, for a CuPy imported later).
    """
    os.environ["CUPY_TF32"] = "1" if enabled else "0"
    cupy = backend.cupy
    linalg = getattr(getattr(cupy, "_core", None), "_routines_linalg", None)
    if linalg is None:
        return False
    import numpy as np

    mode = linalg.COMPUTE_TYPE_TF32 if enabled else linalg.COMPUTE_TYPE_DEFAULT
    for dtype in (np.float32, np.complex64):
        linalg.set_compute_type(dtype, mode)
    return True


def tf32_enabled():
    """What CuPy will use for float32 matmuls now (False where CuPy is not loaded)."""
    cupy = backend.cupy
    linalg = getattr(getattr(cupy, "_core", None), "_routines_linalg", None)
    if linalg is None:
        return os.environ.get("CUPY_TF32", "0") not in ("", "0")
    import numpy as np

    return linalg.get_compute_type(np.float32) == linalg.COMPUTE_TYPE_TF32

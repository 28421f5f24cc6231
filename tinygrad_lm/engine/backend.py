"""Array backend: NumPy on the CPU, CuPy on NVIDIA GPUs.

Implements the three things the rest of the package needs to stay device-agnostic:
  * a guarded CuPy import (`cupy` is None and `gpu_available` False when it is missing),
  * `get_array_module(*arrays)`: pick NumPy or CuPy from the arrays themselves, so every op
    takes `xp` from its inputs and there is no module-level switch,
  * `to_device(array, device)` and `device_of(array)`: one path for moving raw arrays that
    tensors, modules and optimizer state all share,
  * `check_later(bad, make_error)`: a validity check on GPU data (an id out of range) that does
    not stop the GPU to ask: the flag stays on the device and is read at the next moment the
    host reads device data anyway (`to_device(..., "cpu")`, so `Tensor.item()` and
    `.numpy()`), when the error is raised. Each immediate check would be a host sync per step,
    the GPU idling while Python waits. PyTorch's CUDA kernels report such errors late too
    (a device-side assert).

Leaves out: multi-GPU placement (device "cuda" always means the current CUDA device) and
any automatic fallback: asking for "cuda" without CuPy raises, it never silently runs on the CPU.
"""
import numpy as np

try:  # CuPy is optional: `pip install -e .[gpu]` (cupy-cuda12x) or cupy-cuda13x for CUDA 13.
    import cupy

    try:
        gpu_available = cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # CuPy installed, but no driver or no device on this machine
        gpu_available = False
except ImportError:
    cupy = None
    gpu_available = False

DEVICES = ("cpu", "cuda")

_NO_CUDA_HELP = (
    "device 'cuda' needs CuPy and an NVIDIA GPU. Install CuPy with "
    "`pip install -e .[gpu]` (CUDA 12, cupy-cuda12x) or `pip install cupy-cuda13x` (CUDA 13)"
)


def get_array_module(*arrays):
    """Return `cupy` if any of `arrays` is a CuPy array, else `numpy`.

    Args:
        *arrays: raw arrays (or scalars); non-arrays are ignored.
    Returns:
        the module (`numpy` or `cupy`) whose functions operate on these arrays.
    """
    if cupy is not None:
        for a in arrays:
            if isinstance(a, cupy.ndarray):
                return cupy
    return np


def device_of(array):
    """'cuda' for a CuPy array, 'cpu' for anything else."""
    if cupy is not None and isinstance(array, cupy.ndarray):
        return "cuda"
    return "cpu"


def check_device(device):
    """Validate a device name and return it normalised ("cpu" or "cuda")."""
    if device is None:
        return None
    name = str(device).lower()
    if name.startswith("cuda"):  # accept "cuda:0" like PyTorch; only the current device is used
        name = "cuda"
    if name not in DEVICES:
        raise ValueError(f"unknown device {device!r}: use 'cpu' or 'cuda'")
    if name == "cuda" and not gpu_available:
        reason = "CuPy is not installed" if cupy is None else "CuPy found no usable GPU"
        raise RuntimeError(f"{reason}: {_NO_CUDA_HELP}")
    return name


_pending_checks = []  # (0-d device bool: True when bad, callable building the exception)
_MAX_PENDING = 64  # read them all (one sync) when this many wait, so the list stays short


def check_later(bad, make_error):
    """Raise `make_error()` once `bad` (a 0-d bool array) is found True; a NumPy flag is read at
    once, a device flag at the next device-to-host read (`raise_pending`)."""
    if get_array_module(bad) is np:
        if bool(bad):
            raise make_error()
        return
    _pending_checks.append((bad, make_error))
    if len(_pending_checks) >= _MAX_PENDING:
        raise_pending()


def raise_pending():
    """Read the waiting device checks (one sync) and raise the first failed check's error."""
    if not _pending_checks:
        return
    checks = list(_pending_checks)
    _pending_checks.clear()
    xp = get_array_module(checks[0][0])
    failed = cupy.asnumpy(xp.stack([bad for bad, _ in checks])) if xp is not np else None
    for (_, make_error), bad in zip(checks, failed):
        if bad:
            raise make_error()


def to_device(array, device):
    """Return `array` as a NumPy ("cpu") or CuPy ("cuda") array; no copy when it is already there.

    Args:
        array: a NumPy or CuPy array (or anything `numpy.asarray` accepts).
        device: "cpu" or "cuda" (None keeps the array where it is).
    Returns:
        the array on the requested device.
    """
    if device not in (None, "cpu", "cuda") or device == "cuda" and not gpu_available:
        device = check_device(device)  # "cuda:0" normalised; a bad name or a missing GPU explained
    if device is None:
        return array
    if device == "cpu":
        if cupy is not None and isinstance(array, cupy.ndarray):
            raise_pending()  # the host reads device data: the deferred checks are read with it
            return cupy.asnumpy(array)
        return np.asarray(array)
    return cupy.asarray(array)

"""Set how many threads BLAS (the library behind NumPy's matrix products) may use.

When our own threads each take a core (`data_parallel.py`), a BLAS call that starts threads
of its own oversubscribes the cores, and its idle workers keep spinning on a core the next
thread needs. `blas_threads(1)` limits BLAS to the calling thread for a block. It finds the
setter of the OpenBLAS library NumPy loaded (NumPy's Linux wheels ship OpenBLAS) through
/proc/self/maps; elsewhere it does nothing and returns False: there, set
OPENBLAS_NUM_THREADS / MKL_NUM_THREADS=1 before starting Python.
Leaves out: MKL's and Apple Accelerate's setters (threadpoolctl covers them, as a dependency
this package does not take).

`default_blas_threads()` is the command line's default (cli.py calls it before `train`,
`sample` and `finetune`): BLAS on one thread unless the environment names a count. OpenBLAS's
idle workers spin on their cores waiting for the next product; on a machine where another
busy process holds a core, they fight it and our own calling thread for the cores, and a
default `train` step got several times slower than with one BLAS thread (measure it with
`python scripts/bench_load.py`). One thread costs little when the machine is idle: this
model's products are small. The batch split (`--threads auto`, the default: every core,
run/cores.py and data_parallel.py) is the way `train` uses more cores.

BLAS stays on one thread also where that split resolves to one thread (`--reference`, a batch
of one row, a 1-core share under MPI), rather than handing the idle cores to BLAS: measured on
2 cores with `python scripts/bench_threads.py --sides auto,auto:OPENBLAS_NUM_THREADS=2 --rounds 3
--steps 15 --warmup 3 -- --reference` (the reference step, alternating rounds, on a machine other
jobs kept at a load average of 3.5 to 4.3, so the figures are noisy), the median step was 235 ms
with one BLAS thread against 409 ms with two idle, and 374 against 661 ms beside a busy process
(one round at 2,997 ms); two BLAS threads won one round of six. The products of these models are
too small to pay for BLAS's thread start-up and spinning. A user who wants BLAS threads asks for
them with OPENBLAS_NUM_THREADS.
"""
import contextlib
import ctypes
import os
import sys

_blas = None  # (set, get) functions of the OpenBLAS NumPy loaded, found on first use
_SET_NAMES = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads", "openblas_set_num_threads64_",
              "openblas_set_num_threads")
_GET_NAMES = ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads", "openblas_get_num_threads64_",
              "openblas_get_num_threads")


def _find_openblas():
    """The thread-count functions of the OpenBLAS library loaded in this process, or None."""
    global _blas
    if _blas is None:
        _blas = False
        if sys.platform.startswith("linux"):
            try:
                with open("/proc/self/maps") as maps:
                    paths = sorted({line.split()[-1] for line in maps if "openblas" in line.lower()})
            except OSError:
                paths = []
            for path in paths:
                try:
                    lib = ctypes.CDLL(path)
                except OSError:
                    continue
                set_fn = next((getattr(lib, n) for n in _SET_NAMES if hasattr(lib, n)), None)
                get_fn = next((getattr(lib, n) for n in _GET_NAMES if hasattr(lib, n)), None)
                if set_fn is not None and get_fn is not None:
                    set_fn.argtypes, get_fn.restype = [ctypes.c_int], ctypes.c_int
                    _blas = (set_fn, get_fn)
                    break
    return _blas or None


@contextlib.contextmanager
def blas_threads(n):
    """Run the block with BLAS limited to n threads (OpenBLAS on Linux; elsewhere a no-op)."""
    blas = _find_openblas()
    if blas is None:
        yield False
        return
    set_fn, get_fn = blas
    previous = get_fn()
    set_fn(n)
    try:
        yield True
    finally:
        set_fn(previous)


def set_blas_threads(n):
    """Limit BLAS to n threads from now on (OpenBLAS on Linux); returns the previous count or None."""
    blas = _find_openblas()
    if blas is None:
        return None
    set_fn, get_fn = blas
    previous = get_fn()
    set_fn(n)
    return previous


ASK_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")  # how a user asks for a count


def default_blas_threads(environ=None):
    """The command line's BLAS default: one thread, unless the environment asks for a count.

    With OPENBLAS_NUM_THREADS, OMP_NUM_THREADS or MKL_NUM_THREADS set (OpenBLAS read it when
    NumPy loaded it), the count asked for is left as it is. Returns a short description of
    what BLAS runs on ("1 thread", "OPENBLAS_NUM_THREADS=4"), or None where no setter was found.
    """
    environ = os.environ if environ is None else environ
    asked = next((name for name in ASK_VARIABLES if environ.get(name, "").strip()), None)
    if asked is not None:
        return f"{asked}={environ[asked].strip()}"
    return "1 thread" if set_blas_threads(1) is not None else None

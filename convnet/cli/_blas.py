"""Choose how many threads OpenBLAS (NumPy's matrix-multiply library) uses, at run time.

On a machine whose cores are already busy (other processes), OpenBLAS's worker threads
busy-wait for each other: measured on the project's shared 2-core VMs, LeNet-5 and simple_cnn
training ran 5-10x slower with 2 BLAS threads than with 1, and even on idle cores LeNet-5 trained
faster with 1 (its matrices are small). ``--threads auto`` therefore uses one thread on machines
with at most 2 cores or when the load average says the cores are taken, and leaves OpenBLAS
alone otherwise.
An explicit ``OPENBLAS_NUM_THREADS`` in the environment always wins.
"""
from __future__ import annotations

import ctypes
import glob
import os

_SYMBOLS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
            "openblas_set_num_threads64_", "openblas_set_num_threads")


def _openblas_libraries() -> list[str]:
    found = []
    try:
        with open("/proc/self/maps") as f:
            found = sorted({line.split()[-1] for line in f if "openblas" in line.lower()})
    except OSError:  # not Linux: look next to NumPy
        import numpy

        base = os.path.dirname(os.path.dirname(numpy.__file__))
        for pattern in ("numpy.libs/*openblas*", "numpy/.dylibs/*openblas*"):
            found += glob.glob(os.path.join(base, pattern))
    return found


def _openblas_functions(action: str) -> list:
    """``openblas_<action>_num_threads`` of every loaded OpenBLAS (``action``: set or get)."""
    found = []
    for path in _openblas_libraries():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for sym in _SYMBOLS:
            fn = getattr(lib, sym.replace("set_num_threads", f"{action}_num_threads"), None)
            if fn is not None:
                found.append(fn)
                break
    return found


def set_blas_threads(n: int) -> bool:
    """Set OpenBLAS's thread count; returns False when no OpenBLAS is loaded."""
    functions = _openblas_functions("set")
    for fn in functions:
        fn(ctypes.c_int(int(n)))
    return bool(functions)


def get_blas_threads() -> int | None:
    """OpenBLAS's current thread count (None when no OpenBLAS is loaded)."""
    functions = _openblas_functions("get")
    return int(functions[0]()) if functions else None


def configure(threads: str | None) -> str | None:
    """Apply a ``--threads`` value ('auto', or a positive integer); return a note to print."""
    if threads is None or threads == "auto":
        if "OPENBLAS_NUM_THREADS" in os.environ or not hasattr(os, "getloadavg"):
            return None
        cores = os.cpu_count() or 1
        busy = os.getloadavg()[0] >= cores - 0.5
        if cores > 1 and (cores <= 2 or busy) and set_blas_threads(1):
            if busy:
                return (f"note: the {cores} cores are busy (load {os.getloadavg()[0]:.1f}); using 1 "
                        "BLAS thread to avoid OpenBLAS spin-waiting (--threads N to choose)")
        return None
    try:
        n = int(threads)
    except ValueError:
        raise ValueError(f"--threads must be 'auto' or a positive integer, got {threads!r}") from None
    if n < 1:
        raise ValueError(f"--threads must be 'auto' or a positive integer, got {threads!r}")
    if not set_blas_threads(n):
        return "note: no OpenBLAS found; --threads has no effect"
    return None

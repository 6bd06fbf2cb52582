"""Worker threads and per-thread scratch buffers shared by the NumPy kernels.

Threads: when OpenBLAS has ``k > 1`` threads, :func:`run_chunks` deals batch chunks to ``k``
Python worker threads and OpenBLAS runs single-threaded meanwhile. NumPy releases the GIL
inside ufuncs and BLAS calls, so the chunks' copies and GEMMs run in parallel, and there is no
thread wake-up and barrier per GEMM (with many small GEMMs on a busy machine those cost more
than the GEMMs). ``OPENBLAS_NUM_THREADS=1`` gives the serial path; ``CONVNET_CONV_WORKERS=0``
turns the workers off (serial chunks, multi-threaded BLAS).

Scratch: :func:`scratch` hands out reusable per-thread buffers, so repeated calls do not
page-fault fresh memory (:func:`release_scratch` frees them).
"""
from __future__ import annotations

import ctypes
import glob
import os
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Callable, Sequence

import numpy as np

__all__ = ["run_chunks", "scratch", "release_scratch", "workers", "in_worker"]

_LOCAL = threading.local()  # scratch per thread, so concurrent convs never share buffers


class _Cache(dict):
    """One thread's scratch buffers (a dict subclass, so that it can be weakly referenced)."""

    __hash__ = object.__hash__  # identity: a WeakSet member, never compared by contents


_CACHES: "weakref.WeakSet[_Cache]" = weakref.WeakSet()  # live threads' caches (release_scratch)
_CACHES_LOCK = threading.Lock()


def _scratch(name: str, shape: Sequence[int], dtype) -> np.ndarray:
    """A reusable uninitialised buffer (grown on demand, never shrunk). Callers never return
    scratch memory to users: outputs and gradients are always freshly allocated."""
    cache = _LOCAL.__dict__.get("buffers")
    if cache is None:
        cache = _LOCAL.buffers = _Cache()
        with _CACHES_LOCK:
            _CACHES.add(cache)
    size = int(np.prod(shape))
    key = (name, np.dtype(dtype))
    buf = cache.get(key)
    if buf is None or buf.size < size:
        buf = np.empty(max(size, 1), dtype=dtype)
        cache[key] = buf
    return buf[:size].reshape(shape)


def release_scratch() -> None:
    """Free the cached scratch buffers of every thread, the chunk workers' included (they are
    re-created on the next call; arrays still in use stay alive until they are dropped)."""
    with _CACHES_LOCK:
        for cache in list(_CACHES):
            cache.clear()


def _load_blas_threads():
    """``(get, set)`` for OpenBLAS's global thread count, or ``None`` if not found (then the
    chunks simply run serially). NumPy wheels ship OpenBLAS under ``numpy.libs``."""
    here = os.path.dirname(np.__file__)
    for path in sorted(glob.glob(os.path.join(here, "..", "numpy.libs", "*openblas*.so*"))):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for get_name, set_name in (("scipy_openblas_get_num_threads64_",
                                    "scipy_openblas_set_num_threads64_"),
                                   ("openblas_get_num_threads", "openblas_set_num_threads")):
            get, put = getattr(lib, get_name, None), getattr(lib, set_name, None)
            if get is not None and put is not None:
                get.restype, put.argtypes, put.restype = ctypes.c_int, [ctypes.c_int], None
                return get, put
    return None


_BLAS = _load_blas_threads()
_POOL: tuple[int, int, ThreadPoolExecutor] | None = None  # (owning pid, workers, pool)
_POOL_LOCK = threading.Lock()
_SINGLE = {"depth": 0, "saved": 1}  # nesting count of single-threaded-BLAS sections


_CPUS = os.cpu_count() or 1  # asked once per process, not on every chunked kernel call


def _workers() -> int:
    """How many chunk workers to use: OpenBLAS's thread count (1 = serial). Setting
    ``CONVNET_CONV_WORKERS=0`` turns the workers off (serial chunks, multi-threaded BLAS)."""
    if _BLAS is None or os.environ.get("CONVNET_CONV_WORKERS") == "0":
        return 1
    return max(1, min(int(_BLAS[0]()) if _SINGLE["depth"] == 0 else _SINGLE["saved"], _CPUS))


def _mark_worker() -> None:
    _LOCAL.worker = True


def _run_chunks(fn: Callable[[int, int], object], n: int, nb: int,
                starts: Sequence[int] | None = None) -> list:
    """Call ``fn(n0, m)`` for every batch chunk ``[n0, n0 + m)`` (or only those starting at
    ``starts``); return the results.

    With ``k > 1`` BLAS threads the chunks are dealt to ``k`` Python workers while OpenBLAS runs
    single-threaded: independent chunks parallelise the copies (im2col, layout changes) as well
    as the GEMMs, and there is no per-GEMM thread wake-up and barrier, which on a busy machine
    cost more than the GEMMs themselves. ``fn`` must write disjoint outputs (scratch buffers are
    per thread).
    """
    global _POOL
    starts = list(range(0, n, nb)) if starts is None else list(starts)
    # inside a worker (a conv run from a chunk) stay serial: never wait on the busy pool
    k = 1 if getattr(_LOCAL, "worker", False) else min(_workers(), len(starts))
    if k <= 1:
        return [fn(n0, min(nb, n - n0)) for n0 in starts]

    def part(sub):
        return [fn(n0, min(nb, n - n0)) for n0 in sub]

    with _POOL_LOCK:
        # a forked child inherits the pool object but not its threads: make a new one
        if _POOL is None or _POOL[0] != os.getpid() or _POOL[1] < k:
            if _POOL is not None and _POOL[0] == os.getpid():
                _POOL[2].shutdown(wait=False)  # work already queued there still finishes
            _POOL = (os.getpid(), k, ThreadPoolExecutor(k, thread_name_prefix="convnet-conv",
                                                        initializer=_mark_worker))
        if _SINGLE["depth"] == 0:
            _SINGLE["saved"] = int(_BLAS[0]())
            _BLAS[1](1)
        _SINGLE["depth"] += 1
    try:
        futures = [_POOL[2].submit(part, starts[i::k]) for i in range(k)]
        wait(futures)  # all done before an error propagates: no worker outlives the call
        return [r for f in futures for r in f.result()]
    finally:
        with _POOL_LOCK:
            _SINGLE["depth"] -= 1
            if _SINGLE["depth"] == 0:
                _BLAS[1](_SINGLE["saved"])


def in_worker() -> bool:
    """Whether the calling thread is one of the chunk workers."""
    return getattr(_LOCAL, "worker", False)


# public names (the underscored ones are kept for the kernels that grew up with them)
run_chunks, scratch, workers = _run_chunks, _scratch, _workers

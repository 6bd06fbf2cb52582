"""Kernel backends: one interface, two implementations, chosen at import.

A *kernel* takes NumPy arrays and returns NumPy arrays (no Tensor, no autograd). Autograd
functions call kernels only through :func:`get`, so a backend is the one place where the
numbers are computed:

==========  ====================================================================  ===========
backend     what it is                                                            when
==========  ====================================================================  ===========
``numpy``   the readable reference: the modules of :mod:`convnet.kernels`         always there
``numba``   compiled kernels (:mod:`convnet.backends.numba_kernels`) where they   numba installed
            measurably win; every other kernel is the NumPy one
==========  ====================================================================  ===========

The default is ``numba`` when it imports, else ``numpy``; ``CONVNET_BACKEND=numpy|numba`` in
the environment or :func:`use` chooses. Compiled kernels are cached (numba's ``cache=True``) in
``$NUMBA_CACHE_DIR``, by default ``~/.cache/convnet/numba`` (``$CONVNET_CACHE/numba`` when set),
never inside the source tree. A GPU backend would be a third entry of :data:`BACKENDS`.
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import SimpleNamespace

__all__ = ["BACKENDS", "get", "use", "name", "available", "info", "set_threads"]

# name -> modules whose public kernels make up the backend, later ones overriding earlier ones
BACKENDS = {
    "numpy": ["convnet.backends.numpy_kernels"],
    "numba": ["convnet.backends.numpy_kernels", "convnet.backends.numba_kernels"],
}

_current: SimpleNamespace | None = None
_cache: dict[str, SimpleNamespace] = {}
_errors: dict[str, str] = {}


def _cache_dir() -> Path:
    root = os.environ.get("CONVNET_CACHE") or Path.home() / ".cache" / "convnet"
    return Path(root) / "numba"


def _load(backend: str) -> SimpleNamespace:
    if backend in _cache:
        return _cache[backend]
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "numba":
        numba = configure_numba()
        if "NUMBA_NUM_THREADS" not in os.environ:
            # One thread unless asked (set_threads, NUMBA_NUM_THREADS; the CLI's --threads sets
            # OpenBLAS and the conv workers only): idle OpenMP threads spin after
            # each parallel region and starve convnet's conv workers and OpenBLAS. Measured on
            # 2 cores: LeNet-5 inference at batch 128 took 36 ms with 2 numba threads, 9 ms
            # with 1 (NumPy backend: 9 ms).
            numba.set_num_threads(1)
    kernels: dict = {}
    for module_name in BACKENDS[backend]:
        module = importlib.import_module(module_name)
        kernels.update({k: getattr(module, k) for k in module.__all__})
    ns = SimpleNamespace(name=backend, **kernels)
    _cache[backend] = ns
    return ns


def configure_numba():
    """Import numba with its cache in :func:`_cache_dir` (or ``$NUMBA_CACHE_DIR`` when set) and
    return it. Called before any compiled kernel is decorated (``numba_kernels`` calls it
    first), so every import order caches in one place, never in the source tree: numba reads
    the environment variable when first imported, and the decorators read its config."""
    os.environ.setdefault("NUMBA_CACHE_DIR", str(_cache_dir()))  # child processes inherit it
    import numba

    numba.config.CACHE_DIR = os.environ["NUMBA_CACHE_DIR"]
    return numba


def available() -> list[str]:
    """The backends that load on this machine."""
    out = []
    for b in BACKENDS:
        try:
            _load(b)
            out.append(b)
        except ImportError as e:
            _errors[b] = str(e)
    return out


def use(backend: str) -> SimpleNamespace:
    """Make ``backend`` (``'numpy'`` or ``'numba'``) the one every kernel call goes to."""
    global _current
    try:
        _current = _load(backend)
    except ImportError as e:
        raise ImportError(f"backend {backend!r} is not available here ({e}); install numba "
                          "(`pip install numba`) or use the 'numpy' backend") from None
    return _current


def get() -> SimpleNamespace:
    """The current backend: a namespace of kernels (``get().normalize_forward(...)``)."""
    if _current is None:
        _choose_default()
    return _current


def name() -> str:
    return get().name


def set_threads(n: int) -> None:
    """Threads of the compiled kernels' parallel loops (capped at numba's pool size); the
    NumPy backend has none (its BLAS threads are set by ``convnet.cli._blas``)."""
    if get().name == "numba":
        import numba

        numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))


def _choose_default() -> None:
    wanted = os.environ.get("CONVNET_BACKEND", "").strip().lower()
    if wanted:
        use(wanted)
        return
    try:
        use("numba")
    except ImportError:
        use("numpy")


def info() -> dict:
    """Backend, threads and BLAS: what ``convnet info`` prints."""
    import numpy as np

    out = {"backend": name(), "available": available(), "numpy": np.__version__}
    if name() == "numba":
        import numba

        out["numba"] = numba.__version__
        out["numba_threads"] = numba.get_num_threads()
        out["numba_threading_layer"] = _threading_layer()
        out["numba_cache"] = os.environ.get("NUMBA_CACHE_DIR", "")
    out["blas"] = _blas()
    return out


def _blas() -> dict:
    """NumPy's BLAS library, version and thread count."""
    import numpy as np

    from ..cli._blas import get_blas_threads

    blas: dict = {}
    try:
        deps = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        blas = {"name": deps.get("name"), "version": deps.get("version")}
    except Exception:  # older NumPy: no dict form of the build configuration
        pass
    blas["threads"] = get_blas_threads()
    return blas


def _threading_layer() -> str:
    import numba

    try:
        return numba.threading_layer()
    except ValueError:  # no parallel region has run yet
        return "not started"


# torch.backends' flag namespaces (cudnn, cuda, mps), for scripts that set or query them; they
# describe hardware convnet does not use and change no kernel.
from . import cuda, cudnn, mps  # noqa: E402,F401

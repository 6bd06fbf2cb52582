"""The process group: MPI start-up, rank and world size, and the collectives convnet uses.

Data-parallel training runs ``K`` copies of one script, started by an MPI launcher
(``mpiexec -n K python train.py``); each copy is a *rank* ``r`` in ``0 .. K-1``. The copies
talk only through the collectives below, which every rank must call in the same order:

===========================  ============================================================
collective                   result on every rank
===========================  ============================================================
``allreduce(a, "sum")``      ``a_0 + a_1 + ... + a_{K-1}`` (``"mean"`` divides by ``K``,
                             ``"max"`` takes the element-wise maximum)
``broadcast(a, root)``       rank ``root``'s ``a`` (arrays in place; other values pickled)
``all_gather(a)``            ``stack([a_0, ..., a_{K-1}])``, shape ``(K, *a.shape)``
``all_gather_object(v)``     ``[v_0, ..., v_{K-1}]`` (small picklable values)
``barrier()``                returns once every rank has entered it
===========================  ============================================================

Without :func:`init` (or in a single process) the world is one rank: ``get_rank() == 0``,
``get_world_size() == 1``, and every collective returns its input, so the same training
script runs unchanged with and without ``mpiexec``.

A rank that fails must take the others down with it, or they wait forever in their next
collective: :func:`init` installs an exception hook that calls ``MPI_Abort`` for uncaught
exceptions, :func:`abort_on_exit` does the same for ``sys.exit(n)``, and ``mpiexec`` ends
the job by itself when a rank is killed by a signal.

MPI comes from mpi4py, imported only by :func:`init`: ``pip install 'convnet[mpi]'``
installs mpi4py and the ``mpich`` wheel, which puts ``mpiexec`` next to the Python
interpreter. :func:`comm_seconds` is the wall time spent inside collectives, including the
time a rank waits there for slower ranks, so ``comm_seconds() / total`` bounds what
communication (and load imbalance) costs a run.
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import Any, Iterator

import numpy as np

__all__ = [
    "init", "is_initialized", "get_rank", "get_world_size", "launched_by_mpi", "barrier",
    "allreduce", "broadcast", "all_gather", "all_gather_object", "broadcast_object",
    "comm_seconds", "reset_comm_seconds", "abort", "abort_on_exit",
]

_world = None  # mpi4py's COMM_WORLD once init() has run
_MPI = None  # the mpi4py.MPI module
_comm_seconds = 0.0

INSTALL_HINT = ("pip install 'convnet[mpi]' (mpi4py and the mpich wheel, which provides "
                "mpiexec)")

# Environment variables that MPI launchers set in every process they start.
_LAUNCHER_VARS = (
    ("PMI_RANK", "PMI_SIZE"),  # MPICH's hydra (mpiexec), Intel MPI
    ("OMPI_COMM_WORLD_SIZE",),  # Open MPI's mpirun
    ("PMIX_RANK",),  # PMIx launchers (Open MPI 5, prrte)
    ("SLURM_PROCID", "SLURM_NTASKS"),  # srun (sbatch alone sets SLURM_NTASKS, not PROCID)
)


def launched_by_mpi() -> bool:
    """True when this process was started by an MPI launcher (its environment variables are
    set), so :func:`init` will find the other ranks; False for a plain ``python`` run."""
    env = os.environ
    return any(all(v in env for v in names) for names in _LAUNCHER_VARS)


def init() -> None:
    """Join the MPI world (``COMM_WORLD``); calling it again does nothing.

    Also installs an exception hook: an uncaught exception on any rank prints its traceback
    and ``convnet.distributed: rank R of K failed: <error>`` to stderr, then calls
    ``MPI_Abort`` so the launcher ends every rank at once, instead of leaving the others
    blocked forever in their next collective. (With one rank the hook only prints.)

    Raises:
        RuntimeError: mpi4py is not installed (the message says how to install it).
    """
    global _world, _MPI
    if _world is not None:
        return
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise RuntimeError(f"convnet.distributed.init: mpi4py is not installed; {INSTALL_HINT}"
                           ) from e
    _MPI, _world = MPI, MPI.COMM_WORLD
    _install_excepthook()


def is_initialized() -> bool:
    """Whether :func:`init` has run in this process."""
    return _world is not None


def get_rank() -> int:
    """This process's rank in ``0 .. world_size - 1`` (0 before :func:`init`)."""
    return 0 if _world is None else _world.Get_rank()


def get_world_size() -> int:
    """The number of ranks ``K`` (1 before :func:`init`)."""
    return 1 if _world is None else _world.Get_size()


def _install_excepthook() -> None:
    previous = sys.excepthook

    def hook(kind, value, tb):
        previous(kind, value, tb)  # the usual traceback first
        sys.stdout.flush()  # Abort ends the process without flushing Python's buffers
        rank, size = get_rank(), get_world_size()
        print(f"convnet.distributed: rank {rank} of {size} failed: "
              f"{kind.__name__}: {value}", file=sys.stderr, flush=True)
        if size > 1:
            # The other ranks wait in a collective that this rank will never enter: abort the
            # whole job (the launcher kills every rank) rather than let it hang.
            _world.Abort(1)

    sys.excepthook = hook


def abort(code: int = 1) -> None:
    """End every rank now with exit status ``code`` (``MPI_Abort``); in a world of one,
    ``sys.exit(code)``."""
    sys.stdout.flush()
    sys.stderr.flush()
    if _world is None or get_world_size() == 1:
        sys.exit(code)
    _world.Abort(code)


@contextlib.contextmanager
def abort_on_exit() -> Iterator[None]:
    """Around a rank's work: ``sys.exit(n)`` with ``n != 0`` inside the block (argparse's
    errors, a CLI's error exits) ends every rank, as an uncaught exception does.

    :func:`init`'s exception hook never sees ``SystemExit``; without this, a rank that exits
    early leaves the others blocked in their next collective (``mpiexec`` only ends the job
    by itself when a rank is killed by a signal). ``sys.exit(0)`` on one rank alone still
    hangs the others: every rank must leave the same way.
    """
    try:
        yield
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if code and get_world_size() > 1:
            if not isinstance(e.code, int):
                print(e.code, file=sys.stderr)  # what Python would print for it
            print(f"convnet.distributed: rank {get_rank()} of {get_world_size()} exited with "
                  f"status {code}", file=sys.stderr, flush=True)
            abort(code)
        raise


def comm_seconds() -> float:
    """Total wall time (s) this process has spent inside collectives since start-up or the
    last :func:`reset_comm_seconds`; waiting for slower ranks counts."""
    return _comm_seconds


def reset_comm_seconds() -> None:
    """Set the :func:`comm_seconds` counter back to 0."""
    global _comm_seconds
    _comm_seconds = 0.0


class _Timed:
    """``with _Timed():`` adds the block's wall time to the communication counter."""

    def __enter__(self):
        self.t0 = time.perf_counter()

    def __exit__(self, *exc):
        global _comm_seconds
        _comm_seconds += time.perf_counter() - self.t0


def _comm(group):
    """The communicator to use: ``group`` (an mpi4py communicator) or the world."""
    return _world if group is None else group


def _size(group) -> int:
    return get_world_size() if group is None else group.Get_size()


def _as_array(a, op: str) -> np.ndarray:
    from ..tensor import Tensor

    if isinstance(a, Tensor):
        a = a._data
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{op}: expected a NumPy array or Tensor, got {type(a).__name__}")
    return a


def _check_inplace(a: np.ndarray, op: str) -> None:
    if not (a.flags.c_contiguous and a.flags.writeable):
        raise ValueError(f"{op}: an in-place collective needs a C-contiguous writable array "
                         f"(got shape {a.shape}, contiguous={a.flags.c_contiguous}, "
                         f"writeable={a.flags.writeable})")


_OPS = ("sum", "mean", "max")


def allreduce(array, op: str = "sum", inplace: bool = False, group=None) -> np.ndarray:
    """Element-wise reduction of ``array`` over all ranks; every rank gets the result.

    ``op``: ``"sum"`` (``sum_r a_r``), ``"mean"`` (``sum_r a_r / K``, floating arrays only)
    or ``"max"``. ``array`` is a NumPy array or a Tensor (its data), the same shape and dtype
    on every rank. With ``inplace=True`` the result overwrites ``array`` (which must be
    C-contiguous and writable) and is returned; otherwise a new array is returned. ``group``
    is an mpi4py communicator (default: the world). Before :func:`init`, the result is the
    input (a copy unless ``inplace``).
    """
    name = "allreduce"
    a = _as_array(array, name)
    if op not in _OPS:
        raise ValueError(f"{name}: op must be one of {', '.join(map(repr, _OPS))}, got {op!r}")
    if op == "mean" and a.dtype.kind not in "fc":
        raise TypeError(f"{name}: op='mean' needs a floating-point array, got {a.dtype}")
    if inplace:
        _check_inplace(a, name)
    out = a if inplace else np.array(a, order="C")
    k = _size(group)
    if _world is None or k == 1:
        return out
    mpi_op = _MPI.MAX if op == "max" else _MPI.SUM
    with _Timed():
        _comm(group).Allreduce(_MPI.IN_PLACE, out, op=mpi_op)
    if op == "mean":
        out *= out.dtype.type(1.0 / k)
    return out


def broadcast(value: Any, root: int = 0, group=None) -> Any:
    """Rank ``root``'s ``value`` on every rank.

    A NumPy array (or Tensor) is overwritten in place with root's values and returned: it
    must have the same shape and dtype on every rank, and be C-contiguous and writable.
    Any other value is pickled on root and returned (ignoring the other ranks' values; see
    :func:`broadcast_object`).
    """
    from ..tensor import Tensor

    if not isinstance(value, (np.ndarray, Tensor)):
        return broadcast_object(value, root, group)
    a = _as_array(value, "broadcast")
    _check_inplace(a, "broadcast")
    _check_root(root, group, "broadcast")
    if _world is None or _size(group) == 1:
        return value
    with _Timed():
        _comm(group).Bcast(a, root=root)
    return value


def broadcast_object(obj: Any, root: int = 0, group=None) -> Any:
    """Rank ``root``'s picklable ``obj`` on every rank (small values: configs, seeds,
    metrics; arrays go faster through :func:`broadcast`)."""
    _check_root(root, group, "broadcast_object")
    if _world is None or _size(group) == 1:
        return obj
    with _Timed():
        return _comm(group).bcast(obj, root=root)


def all_gather(array, group=None) -> np.ndarray:
    """Stack every rank's ``array`` (same shape and dtype on all ranks): shape
    ``(K, *array.shape)``, row ``r`` from rank ``r``."""
    a = np.ascontiguousarray(_as_array(array, "all_gather"))
    k = _size(group)
    out = np.empty((k,) + a.shape, a.dtype)
    if _world is None or k == 1:
        out[0] = a
        return out
    with _Timed():
        _comm(group).Allgather(a, out)
    return out


def all_gather_object(obj: Any, group=None) -> list:
    """``[obj_0, ..., obj_{K-1}]``: every rank's picklable ``obj``, in rank order."""
    if _world is None or _size(group) == 1:
        return [obj]
    with _Timed():
        return _comm(group).allgather(obj)


def barrier(group=None) -> None:
    """Block until every rank has called ``barrier`` (no-op before :func:`init`)."""
    if _world is None or _size(group) == 1:
        return
    with _Timed():
        _comm(group).Barrier()


def _check_root(root: int, group, op: str) -> None:
    k = _size(group)
    if not isinstance(root, (int, np.integer)) or not 0 <= root < k:
        raise ValueError(f"{op}: root must be a rank in [0, {k - 1}], got {root!r}")

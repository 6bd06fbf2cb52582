"""`convnet train --distributed` and `--launch K`: the CLI side of data-parallel training.

``--launch K`` re-runs the same command under ``mpiexec -n K`` with ``--distributed`` (one
BLAS thread per rank unless the environment says otherwise). ``--distributed`` joins the MPI
job that mpiexec (or Slurm's ``srun``) started. Until the ranks first talk to each other
(:func:`started`), every rank checks the same arguments and reads the same files, so they fail
alike: only rank 0 prints the error and all exit with it, no collective is left waiting.
After that, a failing rank prints its error and aborts the whole job (``MPI_Abort``), so the
others stop within seconds instead of hanging in a collective.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["find_mpiexec", "launch", "join", "started", "quiet", "where", "interrupted", "stop_job", "rank",
           "world_size"]

_STATE = {"joined": False, "started": False}
INSTALL_HINT = "pip install 'convnet[mpi]' (mpi4py and MPICH), or your cluster's MPI and mpi4py"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS")


def find_mpiexec() -> str | None:
    """mpiexec beside this Python (the `mpich` wheel of the `mpi` extra), else on PATH."""
    here = Path(sys.executable).parent / "mpiexec"  # the mpich wheel installs it in the venv
    return str(here) if here.is_file() else shutil.which("mpiexec")


def _strip_launch(argv: list[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--launch":
            skip = True
        elif not a.startswith("--launch="):
            out.append(a)
    return out


def launch(args) -> int:
    """Run this `convnet train` command as ``mpiexec -n K ... --distributed``; its exit code."""
    k = int(args.launch)
    if k < 1:
        raise ValueError(f"--launch must be >= 1 (the number of processes), got {k}")
    if args.distributed:
        raise ValueError("--launch starts the ranks itself; leave out --distributed (use one "
                         "or the other: `mpiexec -n K convnet train --distributed` is the same)")
    mpiexec = find_mpiexec()
    if mpiexec is None:
        raise ValueError(f"--launch needs mpiexec, which was not found: {INSTALL_HINT}")
    if importlib.util.find_spec("mpi4py") is None:
        raise ValueError(f"--launch: mpi4py is not installed: {INSTALL_HINT}")
    argv = _strip_launch(list(args.argv))
    cmd = [mpiexec, "-n", str(k), sys.executable, "-m", "convnet", *argv, "--distributed"]
    env = dict(os.environ)
    threads = getattr(args, "threads", "auto")
    per_rank = "1" if threads in (None, "auto") else str(int(threads))
    for var in THREAD_VARIABLES:  # K ranks share the cores: one thread each unless told
        env.setdefault(var, per_rank)
    print("launching: " + " ".join(cmd[:3] + ["convnet", *argv, "--distributed"]), flush=True)
    try:
        return subprocess.call(cmd, env=env)
    except KeyboardInterrupt:  # mpiexec forwards the Ctrl-C to the ranks, which save and stop
        return 130


def join(args) -> tuple[int, int]:
    """Join the MPI job (``--distributed``): returns ``(rank, world_size)``."""
    from .. import distributed as dist

    if importlib.util.find_spec("mpi4py") is None:
        raise ValueError(f"--distributed needs MPI for Python, which is not installed: "
                         f"{INSTALL_HINT}")
    if not dist.launched_by_mpi():
        raise ValueError("--distributed: this process was not started by an MPI launcher; run "
                         "`mpiexec -n 2 convnet train --distributed ...` (or `srun` on Slurm), "
                         "or let convnet start the ranks: `convnet train --launch 2 ...`")
    dist.init()
    _STATE["joined"] = True
    if getattr(args, "threads", "auto") in (None, "auto"):
        _one_thread()
    return dist.get_rank(), dist.get_world_size()


def _one_thread() -> None:
    """Each rank computes with one thread (the ranks are the parallelism), unless the
    environment chose (OPENBLAS_NUM_THREADS / NUMBA_NUM_THREADS)."""
    from ._blas import set_blas_threads

    if "OPENBLAS_NUM_THREADS" not in os.environ:
        set_blas_threads(1)
    if "NUMBA_NUM_THREADS" not in os.environ and "numba" in sys.modules:
        try:
            sys.modules["numba"].set_num_threads(1)
        except (AttributeError, ValueError):  # a numba without threading layer control
            pass


def started() -> None:
    """Mark the point after which the ranks have talked (a barrier): errors abort the job."""
    from .. import distributed as dist

    if _STATE["joined"]:
        dist.barrier()
        _STATE["started"] = True


def rank() -> int:
    from .. import distributed as dist

    return dist.get_rank() if _STATE["joined"] else 0


def world_size() -> int:
    from .. import distributed as dist

    return dist.get_world_size() if _STATE["joined"] else 1


def where() -> str:
    """`` (rank R of K)`` for an error met by one rank of a started job, else ``''``."""
    return f" (rank {rank()} of {world_size()})" if _STATE["started"] and world_size() > 1 else ""


def quiet() -> bool:
    """True on ranks other than 0 before :func:`started`: they fail as rank 0 does, which
    prints the one error message."""
    return _STATE["joined"] and not _STATE["started"] and rank() != 0


def interrupted(message: str) -> None:
    """Ctrl-C in a job: mpiexec forwards it to every rank, but a rank blocked inside a
    collective only sees it once the collective returns, which it never will if another rank
    has already stopped. So the first rank to handle it ends the job (``MPI_Abort``, status
    130). Rank 0 says what was saved; another rank waits a moment for rank 0 to do so and
    speaks itself only when rank 0 is the one stuck."""
    import time

    if rank() != 0 and world_size() > 1:
        time.sleep(1.0)  # rank 0, if free, prints and aborts the job meanwhile
    print(message, file=sys.stderr, flush=True)
    if world_size() > 1:
        from .. import distributed as dist

        dist.abort(130)


def stop_job(status: int) -> None:
    """After an error on this rank once the job has started: abort every rank (no hang)."""
    if _STATE["joined"] and _STATE["started"] and world_size() > 1:
        from .. import distributed as dist

        sys.stderr.flush()
        sys.stdout.flush()
        dist.abort(status)

"""convnet.distributed.comm in one process: a world of one rank, launcher detection, and the
install hint when mpi4py is missing (the collectives across ranks are tested in test_mpi)."""
import sys

import numpy as np
import pytest

import convnet as cn
import convnet.distributed as dist
from convnet.distributed import comm


def test_world_of_one_before_init():
    assert not dist.is_initialized()
    assert (dist.get_rank(), dist.get_world_size()) == (0, 1)


def test_collectives_return_their_input_in_a_world_of_one(rng):
    a = rng.standard_normal((3, 4))
    for op in ("sum", "mean", "max"):
        out = dist.allreduce(a, op)
        assert out is not a and np.array_equal(out, a)
    assert dist.allreduce(a, "sum", inplace=True) is a
    t = cn.tensor(a)
    assert np.array_equal(dist.allreduce(t), a)
    assert dist.broadcast(a) is a
    assert dist.broadcast({"lr": 0.1}) == {"lr": 0.1}
    assert dist.broadcast_object([1, 2]) == [1, 2]
    gathered = dist.all_gather(a)
    assert gathered.shape == (1, 3, 4) and np.array_equal(gathered[0], a)
    assert dist.all_gather_object("x") == ["x"]
    assert dist.barrier() is None


def test_collective_errors(rng):
    a = rng.standard_normal(4)
    with pytest.raises(ValueError, match="allreduce: op must be one of 'sum', 'mean', 'max', "
                                         "got 'min'"):
        dist.allreduce(a, "min")
    with pytest.raises(TypeError, match="allreduce: op='mean' needs a floating-point array, "
                                        "got int64"):
        dist.allreduce(np.arange(3), "mean")
    with pytest.raises(ValueError, match="allreduce: an in-place collective needs a "
                                         "C-contiguous writable array"):
        dist.allreduce(np.ones((4, 4))[:, ::2], inplace=True)
    with pytest.raises(TypeError, match="allreduce: expected a NumPy array or Tensor, got list"):
        dist.allreduce([1.0, 2.0])
    with pytest.raises(ValueError, match=r"broadcast: root must be a rank in \[0, 0\], got 1"):
        dist.broadcast(a, root=1)


def test_init_without_mpi4py_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # makes `from mpi4py import MPI` fail
    with pytest.raises(RuntimeError, match=r"mpi4py is not installed; pip install "
                                           r"'convnet\[mpi\]'"):
        dist.init()
    assert not dist.is_initialized()


def test_importing_convnet_does_not_import_mpi4py():
    import subprocess

    code = "import sys, convnet, convnet.distributed; print('mpi4py' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip() == "False"


_LAUNCHER_ENV = ["PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "SLURM_PROCID",
                 "SLURM_NTASKS"]


@pytest.mark.parametrize("env,expected", [
    ({}, False),
    ({"PMI_RANK": "0", "PMI_SIZE": "2"}, True),  # MPICH's hydra
    ({"PMI_RANK": "0"}, False),
    ({"OMPI_COMM_WORLD_SIZE": "2"}, True),  # Open MPI
    ({"PMIX_RANK": "1"}, True),
    ({"SLURM_PROCID": "0", "SLURM_NTASKS": "4"}, True),  # srun
    ({"SLURM_NTASKS": "4"}, False),  # an sbatch script itself, not a task
])
def test_launched_by_mpi(monkeypatch, env, expected):
    for name in _LAUNCHER_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert dist.launched_by_mpi() is expected


def test_comm_seconds_counts_only_real_communication(rng):
    dist.reset_comm_seconds()
    dist.allreduce(rng.standard_normal(10))  # a world of one: nothing is sent
    assert dist.comm_seconds() == 0.0
    comm._comm_seconds = 1.5
    assert dist.comm_seconds() == 1.5
    dist.reset_comm_seconds()
    assert dist.comm_seconds() == 0.0


def test_abort_in_a_world_of_one_is_sys_exit():
    with pytest.raises(SystemExit) as e:
        dist.abort(4)
    assert e.value.code == 4
    with pytest.raises(SystemExit) as e:
        with dist.abort_on_exit():
            raise SystemExit(2)  # one rank: nothing to abort, the exit goes on
    assert e.value.code == 2

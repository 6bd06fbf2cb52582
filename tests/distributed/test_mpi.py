"""Data parallelism across real processes: ``mpiexec -n 2`` runs tests/distributed/mpi_worker.py
and these tests compare what the ranks wrote with a single-process run and with torch.

mpiexec comes with ``pip install 'convnet[mpi]'`` (the mpich wheel; ``make test`` installs
it), so a missing one fails these tests rather than skipping them.
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

WORKER = Path(__file__).with_name("mpi_worker.py")


def _mpiexec() -> str:
    from convnet.cli._distributed import find_mpiexec

    found = find_mpiexec()
    if found is None:
        pytest.fail("mpiexec not found next to the Python interpreter or on PATH; "
                    "pip install 'convnet[mpi]' (make test does)")
    return found


def _env() -> dict:
    env = dict(os.environ)
    # the NumPy backend (no JIT compilation in each rank) and one BLAS thread per rank: two
    # ranks share the two cores
    env.update(CONVNET_BACKEND="numpy", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1")
    for name in ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "SLURM_PROCID"):
        env.pop(name, None)  # the reference run must not think it was launched by MPI
    return env


def _run(args: list, timeout: float) -> tuple[subprocess.CompletedProcess, float]:
    """Run ``args`` in a new session; on timeout kill the whole group (mpiexec and ranks)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=_env(), start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"{' '.join(map(str, args))} still running after {timeout} s:\n{out}")
    return subprocess.CompletedProcess(args, proc.returncode, out), time.perf_counter() - t0


def _mpi(scenario: str, out: Path, timeout: float = 120):
    return _run([_mpiexec(), "-n", "2", sys.executable, str(WORKER), scenario, str(out)],
                timeout)


@pytest.fixture(scope="module")
def train_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("mpi_train")
    mpi, _ = _mpi("train", out)
    assert mpi.returncode == 0, mpi.stdout
    ref, _ = _run([sys.executable, str(WORKER), "train", str(out)], 120)
    assert ref.returncode == 0, ref.stdout
    return [dict(np.load(out / f"train_{tag}.npz")) for tag in ("rank0", "rank1", "ref")]


@pytest.mark.parametrize("model,tol", [("lenet64", 1e-6), ("lenet32", 1e-5), ("resnet", 1e-6)])
def test_two_ranks_train_like_one_process(train_runs, model, tol):
    """Global batch 16 as 2 x 8 (DistributedSampler, averaged gradients; SyncBatchNorm in
    ResNet-20) equals one process with batch 16: parameters and running statistics."""
    rank0, rank1, ref = train_runs
    keys = sorted(k for k in ref if k.startswith(model + "/"))
    assert len(keys) > 5
    for k in keys:
        np.testing.assert_array_equal(rank0[k], rank1[k], err_msg=k)  # replicas identical
        np.testing.assert_allclose(rank0[k], ref[k], rtol=tol, atol=tol, err_msg=k)
        assert rank0[k].dtype == ref[k].dtype
    if model == "resnet":
        assert any(k.endswith("running_var") for k in keys)
        assert all(int(rank0[k]) == 4 for k in keys if k.endswith("num_batches_tracked"))


def test_communication_time_is_counted(train_runs):
    rank0, _, ref = train_runs
    assert 0 < rank0["comm_seconds"] < rank0["seconds"]
    assert ref["comm_seconds"] == 0  # one process sends nothing


@pytest.fixture(scope="module")
def collective_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("mpi_collectives")
    run, _ = _mpi("collectives", out)
    assert run.returncode == 0, run.stdout
    return [dict(np.load(out / f"collectives_rank{r}.npz")) for r in (0, 1)]


def test_collectives(collective_runs):
    for r in collective_runs:  # rank r holds [1, 2] * (r + 1), broadcasts come from rank 1
        np.testing.assert_array_equal(r["sum"], [3.0, 6.0])
        np.testing.assert_array_equal(r["mean"], [1.5, 3.0])
        np.testing.assert_array_equal(r["max"], [2.0, 4.0])
        np.testing.assert_array_equal(r["broadcast"], [1, 1, 1])
        np.testing.assert_array_equal(r["gather"], [[0, 10], [1, 11]])
        np.testing.assert_array_equal(r["gather_object"], [0, 1])
        assert str(r["broadcast_object"]) == "from 1"


def test_gradients_missing_on_some_ranks_count_as_zero(collective_runs):
    for r in collective_runs:
        np.testing.assert_array_equal(r["grad_w"], [1.5, 1.5])  # (1 + 2) / 2
        np.testing.assert_array_equal(r["grad_u"], [1.5, 1.5])  # (3 + none) / 2
        assert bool(r["grad_v_is_none"])  # no rank has one: stays None


def test_distributed_data_parallel_keeps_replicas_and_buffers_equal(collective_runs):
    r0, r1 = collective_runs
    for k in ("ddp_weight", "ddp_output", "ddp_running_var"):
        np.testing.assert_array_equal(r0[k], r1[k], err_msg=k)
    np.testing.assert_array_equal(r0["ddp_running_var"], [7.0, 7.0])  # rank 0's
    assert r0["ddp_keys"].tolist() == ["module.0.weight", "module.0.bias", "module.1.weight",
                                       "module.1.bias", "module.1.running_mean",
                                       "module.1.running_var", "module.1.num_batches_tracked"]


def test_different_models_are_refused_on_every_rank(collective_runs):
    for r in collective_runs:
        assert str(r["mismatch"]) == (
            "broadcast_parameters: the ranks' tensors differ (rank 0: 2 tensors, rank 1: 2); "
            "first at tensor 1: shape (2,) float32 on rank 0, shape (3,) float32 on rank 1. "
            "Build the same model on every rank.")


def test_sync_batchnorm_across_ranks_matches_torch(collective_runs):
    """Ranks with 3 and 5 images of one batch: forward, input/affine gradients (random
    cotangent), running statistics and eval output equal torch's BatchNorm2d on all 8."""
    r0, r1 = ({k[3:]: v for k, v in r.items() if k.startswith("bn/")} for r in collective_runs)
    rng = np.random.default_rng(2)  # the worker's draws, in its order
    x = rng.standard_normal((8, 4, 5, 5)) * 3 + 1
    ct = rng.standard_normal(x.shape)
    bn = torch.nn.BatchNorm2d(4, momentum=0.3).double()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor(rng.standard_normal(4)))
        bn.bias.copy_(torch.tensor(rng.standard_normal(4)))
    xt = torch.tensor(x, requires_grad=True)
    y = bn(xt)
    y.backward(torch.tensor(ct))
    tol = dict(rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(np.concatenate([r0["y"], r1["y"]]), y.detach().numpy(), **tol)
    np.testing.assert_allclose(np.concatenate([r0["gx"], r1["gx"]]), xt.grad.numpy(), **tol)
    # the affine gradients stay local (averaged later with the other gradients): they sum up
    np.testing.assert_allclose(r0["gw"] + r1["gw"], bn.weight.grad.numpy(), **tol)
    np.testing.assert_allclose(r0["gb"] + r1["gb"], bn.bias.grad.numpy(), **tol)
    for name in ("running_mean", "running_var"):
        np.testing.assert_array_equal(r0[name], r1[name])
        np.testing.assert_allclose(r0[name], getattr(bn, name).numpy(), **tol)
    bn.eval()
    y_eval = bn(torch.tensor(x)).detach().numpy()
    np.testing.assert_allclose(np.concatenate([r0["y_eval"], r1["y_eval"]]), y_eval, **tol)


def test_an_exception_on_one_rank_ends_the_job(tmp_path):
    """Rank 1 raises while rank 0 waits in a gradient allreduce: the excepthook aborts."""
    run, seconds = _mpi("raise", tmp_path, timeout=60)
    assert run.returncode != 0
    assert "convnet.distributed: rank 1 of 2 failed: RuntimeError: boom at step 3" in run.stdout
    assert "Traceback" in run.stdout
    assert seconds < 15, run.stdout


def test_sys_exit_on_one_rank_ends_the_job_under_abort_on_exit(tmp_path):
    run, seconds = _mpi("exit", tmp_path, timeout=60)
    assert run.returncode != 0
    assert "convnet.distributed: rank 1 of 2 exited with status 3" in run.stdout
    assert seconds < 15, run.stdout


def test_a_killed_rank_ends_the_job(tmp_path):
    """Rank 1 dies by SIGKILL (no Python left to abort): the launcher must end rank 0."""
    run, seconds = _mpi("kill", tmp_path, timeout=60)
    assert run.returncode != 0
    assert seconds < 15, run.stdout

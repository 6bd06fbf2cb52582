"""`convnet train --distributed` / `--launch K` as a user runs them: real mpiexec, real ranks.

The runs are tiny (bundled digits, a few hundred images, float64 so that the ranks' sums
agree with one process to rounding); each takes a few seconds.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from convnet.training import load_weights
from tests.distributed.test_mpi import _env, _mpiexec

SMALL = ["--epochs", "2", "--limit-train", "400", "--limit-test", "200", "--dtype", "float64",
         "--workers", "0"]


def _convnet(args, timeout=120, mpi: int | None = None, launch: bool = False):
    cmd = [sys.executable, "-m", "convnet", "train", *args]
    if mpi is not None:
        cmd = [_mpiexec(), "-n", str(mpi), *cmd, "--distributed"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env(), start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"{cmd} still running after {timeout} s")
    return proc.returncode, out, err


def _weights(run: Path) -> dict:
    from convnet import models

    model = models.create("lenet5").double()
    load_weights(model, run / "model.safetensors")
    return {k: v.numpy() for k, v in model.state_dict().items()}


def _history(run: Path) -> list:
    return json.loads((run / "metrics.json").read_text())["history"]


def test_two_ranks_train_as_one_process_and_resume_with_another_world_size(tmp_path):
    one, two, mixed = tmp_path / "one", tmp_path / "two", tmp_path / "mixed"
    rc, out, err = _convnet([*SMALL, "--out", str(one)], mpi=1)
    assert rc == 0, err
    rc, out, err = _convnet([*SMALL, "--out", str(two)], mpi=2)
    assert rc == 0, err
    # one voice: rank 0 prints each line once
    assert out.count("training lenet5") == 1 and out.count("test accuracy") == 1, out
    assert "over 2 MPI ranks (32 images of each batch per rank)" in out
    w1, w2 = _weights(one), _weights(two)
    for k in w1:
        np.testing.assert_allclose(w2[k], w1[k], rtol=0, atol=1e-9, err_msg=k)
    h1, h2 = _history(one), _history(two)
    for a, b in zip(h1, h2):  # reduced metrics: the whole job's, not rank 0's half
        for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
            assert b[key] == pytest.approx(a[key], abs=1e-9), key
    assert all(h["comm_time_s"] > 0 for h in h2)
    m2 = json.loads((two / "metrics.json").read_text())
    m1 = json.loads((one / "metrics.json").read_text())
    assert m2["world_size"] == 2 and m2["test_accuracy"] == pytest.approx(m1["test_accuracy"])
    assert sum(map(sum, m2["confusion_matrix"])) == 200  # test shards add up to the test set

    # 1 epoch on 2 ranks, then resumed to 2 epochs by `--launch 1`: the same run
    first = [a if a != "2" else "1" for a in SMALL]  # --epochs 1
    rc, out, err = _convnet([*first, "--out", str(mixed)], mpi=2)
    assert rc == 0, err
    rc, out, err = _convnet(["--launch", "1", "--epochs", "2", "--resume", "--out", str(mixed)])
    assert rc == 0, err
    assert "launching:" in out and "resuming" in out
    wm = _weights(mixed)
    for k in w1:
        np.testing.assert_allclose(wm[k], w1[k], rtol=0, atol=1e-9, err_msg=k)


def test_distributed_errors_are_one_clear_line(tmp_path):
    rc, out, err = _convnet(["--distributed", "--out", str(tmp_path / "a")])
    assert rc == 2 and "not started by an MPI launcher" in err and "--launch 2" in err
    rc, out, err = _convnet([*SMALL, "--batch-size", "63", "--out", str(tmp_path / "b")], mpi=2)
    assert rc == 2
    assert err.count("error:") == 1, err  # rank 0 speaks for both
    assert "--batch-size 63 is the global batch and must split evenly over the 2 ranks" in err
    rc, out, err = _convnet(["--limit-train", "2", "--val-split", "0", "--batch-size", "3", "--out",
                             str(tmp_path / "c")], mpi=3)
    assert rc == 2 and err.count("error:") == 1, err
    assert "world size 3 is larger than the dataset (2 samples)" in err
    rc, out, err = _convnet(["--launch", "2", "--distributed", "--out", str(tmp_path / "d")])
    assert rc == 2 and "leave out --distributed" in err
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


def _rank_pid(out_dir: Path, rank: int) -> int | None:
    for pid in Path("/proc").iterdir():
        if not pid.name.isdigit():
            continue
        try:
            cmd = (pid / "cmdline").read_bytes().split(b"\0")
            env = (pid / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(out_dir).encode() in cmd and b"--distributed" in cmd and \
                f"PMI_RANK={rank}".encode() in env:
            return int(pid.name)
    return None


@pytest.mark.parametrize("how", ["kill rank 1", "ctrl-c"])
def test_a_dead_rank_or_ctrl_c_ends_the_job_within_seconds(tmp_path, how):
    out_dir = tmp_path / "run"
    cmd = [_mpiexec(), "-n", "2", sys.executable, "-m", "convnet", "train", "--distributed",
           "--epochs", "50", "--workers", "0", "--out", str(out_dir)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=_env(), start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        # wait until the first checkpoint exists and rank 1 is running
        while not (out_dir / "checkpoint.safetensors").exists() or _rank_pid(out_dir, 1) is None:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
            time.sleep(0.2)
        t0 = time.monotonic()
        if how == "ctrl-c":
            os.kill(proc.pid, signal.SIGINT)  # mpiexec forwards it to every rank
        else:
            os.kill(_rank_pid(out_dir, 1), signal.SIGKILL)
        out, _ = proc.communicate(timeout=20)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert took < 10, took
    assert proc.returncode != 0
    if how == "ctrl-c":
        assert proc.returncode == 130
        assert "Resume with:\n  convnet train --launch 2 --out" in out, out
    else:
        # whichever notices first: mpiexec (the rank's signal) or rank 0 (its collective failed)
        assert ("BAD TERMINATION" in out or "Killed" in out
                or "Fatal error in internal_Allreduce" in out), out
    # what rank 0 wrote is whole: the checkpoint of a finished epoch loads
    from convnet.training import load_checkpoint
    from convnet import models

    state = load_checkpoint(out_dir / "checkpoint.safetensors", models.create("lenet5"))
    assert state["epoch"] >= 1
    assert not [p for p in out_dir.iterdir() if p.name.startswith(".") or "tmp" in p.name]


def test_without_mpi4py_the_error_says_how_to_install_it(monkeypatch):
    import importlib.util
    from types import SimpleNamespace

    from convnet.cli import _distributed

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "mpi4py" else real(name, *a))
    with pytest.raises(ValueError, match=r"--distributed needs MPI for Python.*convnet\[mpi\]"):
        _distributed.join(SimpleNamespace(threads="auto"))
    with pytest.raises(ValueError, match=r"--launch: mpi4py is not installed.*convnet\[mpi\]"):
        _distributed.launch(SimpleNamespace(launch=2, distributed=False, argv=["train"]))


def test_a_one_process_run_resumes_on_two_ranks_and_back(tmp_path):
    run = tmp_path / "run"
    first = [a if a != "2" else "1" for a in SMALL]  # --epochs 1
    rc, out, err = _convnet([*first, "--out", str(run)])  # plain: no MPI at all
    assert rc == 0, err
    rc, out, err = _convnet(["--epochs", "2", "--resume", "--out", str(run)], mpi=2)
    assert rc == 0, err
    assert "resuming" in out and "over 2 MPI ranks" in out
    rc, out, err = _convnet(["--epochs", "3", "--resume", "--out", str(run)])
    assert rc == 0, err
    assert [h["epoch"] for h in _history(run)] == [1, 2, 3]

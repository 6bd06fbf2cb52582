"""The backend layer: one kernel interface, chosen at import, switchable, with a clean NumPy
fallback when numba is missing."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import convnet as cn
from convnet import backends
from convnet.cli.main import main

INTERFACE = {"normalize_forward", "normalize_backward", "scale_shift_forward",
             "max_pool_forward", "max_pool_backward", "avg_pool_forward", "avg_pool_backward",
             "relu_forward", "relu_backward", "conv_forward", "conv_backward"}


@pytest.fixture
def restore_backend():
    before = backends.get().name
    yield
    backends.use(before)


def _run(code, **env):
    """Run ``code`` in a fresh interpreter; ``env`` values of None remove the variable."""
    full = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=full)


def test_numpy_backend_has_the_whole_interface():
    ns = backends._load("numpy")
    assert INTERFACE <= set(vars(ns))


def test_use_switches_every_call_site(restore_backend, monkeypatch):
    calls = []
    ns = backends.use("numpy")
    original = ns.relu_forward
    monkeypatch.setattr(ns, "relu_forward", lambda x: calls.append(x.shape) or original(x))
    y = cn.tensor(np.array([-1.0, 2.0])).relu()
    assert calls == [(2,)] and y.tolist() == [0.0, 2.0]


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown backend 'cupy'; choose one of numpy, numba"):
        backends.use("cupy")


def test_environment_chooses_the_backend():
    r = _run("from convnet import backends; print(backends.name())", CONVNET_BACKEND="numpy")
    assert r.stdout.strip() == "numpy", r.stderr


def test_without_numba_everything_runs_on_numpy(tmp_path):
    # a numba that cannot be imported, as on a platform without wheels
    (tmp_path / "numba.py").write_text("raise ImportError('no numba wheel for this platform')\n")
    code = ("import convnet as cn, numpy as np; from convnet import backends; "
            "import convnet.functional as F; x = cn.tensor(np.random.rand(2, 3, 4, 4), "
            "requires_grad=True); y = F.max_pool2d(F.batch_norm(x, None, None, training=True)"
            ".relu(), 2); y.sum().backward(); print(backends.name(), backends.available())")
    r = _run(code, PYTHONPATH=str(tmp_path), CONVNET_BACKEND="")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "numpy ['numpy']"
    r = _run("from convnet import backends; backends.use('numba')", PYTHONPATH=str(tmp_path))
    assert "backend 'numba' is not available here" in r.stderr and "pip install numba" in r.stderr


def test_compiled_kernels_cache_outside_the_source_tree(tmp_path):
    code = ("import os; from convnet import backends; backends.use('numba'); "
            "print(os.environ['NUMBA_CACHE_DIR'])")
    r = _run(code, CONVNET_CACHE=str(tmp_path / "c"), NUMBA_CACHE_DIR=None)
    if "not available" in r.stderr:
        pytest.skip("numba is not installed on this platform")
    assert r.stdout.strip() == str(tmp_path / "c" / "numba")


def test_info_command(capsys):
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["backend"] == backends.name() and "numpy" in info["available"]
    assert info["blas"]["threads"] is None or info["blas"]["threads"] >= 1
    assert main(["info"]) == 0
    text = capsys.readouterr().out
    assert f"backend: {backends.name()}" in text and "1 threads" not in text


def test_compiled_kernels_stay_on_one_thread_unless_asked(restore_backend):
    """Two numba threads spun against the conv workers (LeNet-5 inference 36 vs 9 ms), so the
    backend starts with one and --threads (BLAS, conv workers) leaves it there."""
    r = _run("from convnet import backends; import numba; backends.use('numba'); "
             "from convnet.cli._blas import configure; configure('2'); "
             "print(numba.get_num_threads()); backends.set_threads(2); "
             "print(numba.get_num_threads())", NUMBA_NUM_THREADS=None)
    if "not available" in r.stderr or "No module named 'numba'" in r.stderr:
        pytest.skip("numba is not installed on this platform")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1", "2"]


def test_cache_stays_out_of_the_tree_when_numba_was_imported_first(tmp_path):
    # numba first, then a kernel module imported directly (no backends.use): the order that
    # used to cache next to the source
    code = ("import numba, numpy as np; "
            "from convnet.backends.numba_kernels.activation import relu_backward; "
            "relu_backward(np.ones(4, np.float32), np.ones(4, np.float32)); "
            "print(numba.config.CACHE_DIR)")
    r = _run(code, CONVNET_CACHE=str(tmp_path / "c"), NUMBA_CACHE_DIR=None)
    if "not available" in r.stderr or "No module named 'numba'" in r.stderr:
        pytest.skip("numba is not installed on this platform")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(tmp_path / "c" / "numba")
    assert list((tmp_path / "c" / "numba").rglob("*.nbi"))  # the index files landed there

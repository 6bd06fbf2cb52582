"""`convnet explore`: exit codes, messages, serving in a subprocess, Ctrl-C."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.request

import pytest

from convnet.cli.main import EXAMPLES, main

from ._proc import ctrl_c
from .conftest import SERVING


def test_help_lists_the_options_and_examples(capsys):
    with pytest.raises(SystemExit) as e:
        main(["explore", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for opt in ("--port", "--no-browser", "--export", "--inputs", "--threads"):
        assert opt in out
    assert EXAMPLES["explore"][0] in out


def test_missing_folder_and_missing_weights_exit_2(tmp_path, explore_runs, capsys):
    assert main(["explore", str(tmp_path / "nothing"), "--no-browser"]) == 2
    assert "no such run folder" in capsys.readouterr().err
    run = tmp_path / "noweights"
    shutil.copytree(explore_runs("lenet5"), run)
    (run / "model.safetensors").unlink()
    assert main(["explore", str(run), "--no-browser"]) == 2
    err = capsys.readouterr().err
    # (a busy machine may first print a note on BLAS threads)
    error = [ln for ln in err.splitlines() if ln.startswith("convnet explore: error: ")]
    assert len(error) == 1 and str(run) in error[0], err
    assert "model.safetensors" in err and "Traceback" not in err


def test_port_in_use_exit_2(explore_runs, capsys):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    try:
        assert main(["explore", str(explore_runs("lenet5")), "--no-browser", "--port",
                     str(port)]) == 2
    finally:
        s.close()
    err = capsys.readouterr().err
    assert f"port {port}" in err and "--port 0" in err


def test_export_exit_0_and_bad_inputs_exit_2(tmp_path, explore_runs, capsys):
    run = str(explore_runs("lenet5"))
    assert main(["explore", run, "--export", str(tmp_path / "site"), "--inputs", "1"]) == 0
    out = capsys.readouterr().out
    assert "convnet explore: wrote" in out and (tmp_path / "site" / "index.html").is_file()
    assert main(["explore", run, "--export", str(tmp_path / "x"), "--inputs", "0"]) == 2
    assert "--inputs must be >= 1" in capsys.readouterr().err


def test_serve_then_ctrl_c_stops_cleanly(explore_runs):
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "convnet", "explore",
                             str(explore_runs("lenet5")), "--port", "0", "--no-browser"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        line = proc.stdout.readline()
        m = SERVING.search(line)
        assert m, line
        with urllib.request.urlopen(m.group(1) + "api/meta", timeout=20) as r:
            assert json.loads(r.read())["model"] == "lenet5"
    finally:
        out = ctrl_c(proc)
    assert proc.returncode == 0, out
    assert "Traceback" not in out and "convnet explore: stopped" in out
    assert "GET /api/meta" not in out  # requests are not logged

"""Set-up: the Makefile's choice of interpreter, pyproject metadata, `make bench` and `make lint`.

The Makefile tests run `make -n` (print the recipes, run nothing) or the version check alone,
in a scratch copy under a PATH made of symlinks, so no virtual environment is built.
"""
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAKE = shutil.which("make")
needs_make = pytest.mark.skipif(MAKE is None, reason="make is not installed")


def fake_python(path: Path, version: str) -> None:
    """An executable that answers ``--version`` like a Python of that version."""
    path.write_text(f'#!/bin/sh\necho "Python {version}"\n')
    path.chmod(0o755)


@pytest.fixture
def scratch(tmp_path):
    """A copy of the Makefile and its helper (no .venv) and an empty bin/ to serve as PATH."""
    repo, bin_dir = tmp_path / "repo", tmp_path / "bin"
    (repo / "scripts").mkdir(parents=True)
    bin_dir.mkdir()
    shutil.copy(ROOT / "Makefile", repo)
    shutil.copy(ROOT / "scripts" / "check_python.sh", repo / "scripts")
    (repo / "pyproject.toml").touch()
    return repo, bin_dir


def make(repo, bin_dir, *args):
    env = {**os.environ, "PATH": str(bin_dir)}
    env.pop("PY", None)
    return subprocess.run([MAKE, *args], cwd=repo, env=env, capture_output=True, text=True,
                          timeout=60)


def venv_line(out: str) -> str:
    return next(line for line in out.splitlines() if "-m venv" in line)


@needs_make
def test_make_uses_python3_when_there_is_no_python3_11(scratch):
    repo, bin_dir = scratch
    (bin_dir / "python3").symlink_to(sys.executable)
    r = make(repo, bin_dir, "-n", "demo")
    assert r.returncode == 0, r.stderr
    assert venv_line(r.stdout) == "python3 -m venv .venv"
    assert "check_python.sh python3" in r.stdout       # checked before use


@needs_make
def test_make_prefers_python3_11(scratch):
    repo, bin_dir = scratch
    (bin_dir / "python3").symlink_to(sys.executable)
    (bin_dir / "python3.11").symlink_to(sys.executable)
    r = make(repo, bin_dir, "-n", "test")
    assert r.returncode == 0, r.stderr
    assert venv_line(r.stdout) == "python3.11 -m venv .venv"


@needs_make
def test_make_py_overrides_the_choice(scratch):
    repo, bin_dir = scratch
    (bin_dir / "python3.11").symlink_to(sys.executable)
    r = make(repo, bin_dir, "-n", "demo", "PY=python3.13")
    assert venv_line(r.stdout) == "python3.13 -m venv .venv"


@needs_make
def test_make_refuses_python_older_than_3_11_before_building_anything(scratch):
    repo, bin_dir = scratch
    fake_python(bin_dir / "python3", "3.10.12")
    r = make(repo, bin_dir, "demo")
    assert r.returncode != 0
    assert "'python3' is Python 3.10 but convnet needs >= 3.11" in r.stderr
    assert "make PY=" in r.stderr                      # says how to choose another
    assert not (repo / ".venv").exists()


@needs_make
def test_make_says_when_no_python_is_found(scratch):
    repo, bin_dir = scratch
    r = make(repo, bin_dir, "demo")
    assert r.returncode != 0
    assert "Python interpreter 'python3' not found" in r.stderr


@pytest.mark.parametrize("version, ok", [("3.11.0", True), ("3.12.1", True), ("3.13.0", True),
                                         ("4.0.1", True), ("3.10.13", False), ("3.9.18", False),
                                         ("2.7.18", False)])
def test_check_python_compares_versions_numerically(tmp_path, version, ok):
    fake_python(tmp_path / "py", version)
    r = subprocess.run(["sh", str(ROOT / "scripts" / "check_python.sh"), str(tmp_path / "py")],
                       capture_output=True, text=True, timeout=30)
    assert (r.returncode == 0) == ok, r.stderr
    assert (r.stderr == "") == ok


def test_check_python_accepts_the_running_interpreter():
    r = subprocess.run(["sh", str(ROOT / "scripts" / "check_python.sh"), sys.executable],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_license_is_an_spdx_string_with_a_setuptools_that_reads_it():
    # a TOML table makes setuptools >= 77 print a deprecation banner on every install
    data = pyproject()
    assert data["project"]["license"] == "MIT"
    req = next(r for r in data["build-system"]["requires"] if r.startswith("setuptools"))
    assert int(re.search(r">=\s*(\d+)", req).group(1)) >= 77


def test_ruff_is_a_dev_dependency_and_make_lint_runs_it():
    assert any(r.startswith("ruff") for r in pyproject()["project"]["optional-dependencies"]["dev"])
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^lint:.*\n\t\$\(BIN\)/ruff check convnet tests benchmarks scripts$",
                     makefile, re.M)


def test_make_bench_runs_a_script_that_lists_every_benchmark():
    makefile = (ROOT / "Makefile").read_text()
    script = re.search(r"^bench:.*\n\t\$\(BIN\)/python (\S+)", makefile, re.M).group(1)
    assert (ROOT / script).is_file()
    r = subprocess.run([sys.executable, str(ROOT / script), "--list"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    listed = {line.split()[0] for line in r.stdout.splitlines()}
    modules = {p.stem for p in (ROOT / "benchmarks").glob("*.py")}
    assert listed == modules - {"__init__", "common", "run_all"}   # none forgotten

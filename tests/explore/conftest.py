"""Browser fixtures for the explorer's tests: Playwright for Python driving Debian's Chromium
(``/usr/bin/chromium``, installed by ``apt-get install chromium``; never a downloaded browser).

Where Chromium is missing the browser tests are skipped on a developer's machine, and fail under
CI (``CI`` or ``CONVNET_REQUIRE_BROWSER`` set), so CI cannot pass without running them.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest

CHROMIUM = "/usr/bin/chromium"
# Headless, no sandbox (CI runs as root) and none of Chromium's own background traffic, so any
# request the page makes is one the explorer asked for.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _require_browser():
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        reason = "playwright is not installed (pip install -e '.[dev]')"
    else:
        if os.path.exists(CHROMIUM):
            return
        reason = f"{CHROMIUM} is missing (apt-get install chromium)"
    if os.environ.get("CI") or os.environ.get("CONVNET_REQUIRE_BROWSER"):
        pytest.fail(f"browser tests must run under CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser():
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def is_local(url: str) -> bool:
    """Only the explorer's own server (127.0.0.1), files from disk and inline data are local."""
    u = urlparse(url)
    if u.scheme in ("data", "blob", "file", "about"):
        return True
    return u.hostname == "127.0.0.1"


@pytest.fixture
def page(browser):
    """A fresh page that records console errors (``page.console_errors``), uncaught exceptions
    and every request that would leave 127.0.0.1 (``page.external_requests``; such requests are
    aborted, never sent)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.console_errors = []
    pg.external_requests = []
    pg.on("console", lambda m: pg.console_errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: pg.console_errors.append(f"uncaught: {e}"))

    def route(r):
        if is_local(r.request.url):
            r.continue_()
        else:
            pg.external_requests.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    yield pg
    context.close()


# --------------------------------------------------------------------------------------------
# Tiny runs, made by the tests themselves (session-scoped: each is trained once, on first use)
# --------------------------------------------------------------------------------------------

# `convnet train` arguments of each run: one epoch (two for LeNet-5, so its curves are lines) on
# a few bundled digits; U-Net is made narrow and shallow, it is by far the slowest to train.
RUN_ARGS = {
    "lenet5": ["--model", "lenet5", "--epochs", "2", "--limit-train", "128", "--val-split", "0.25"],
    "resnet20": ["--model", "resnet20", "--epochs", "1", "--limit-train", "64", "--val-split", "0"],
    "unet": ["--model", "unet", "--model-option", "base_channels=8", "--model-option", "depth=2",
             "--epochs", "1", "--limit-train", "32", "--val-split", "0"],
    "vit_tiny": ["--model", "vit_tiny", "--epochs", "1", "--limit-train", "64", "--val-split", "0"],
}
# Regenerating the documentation's screenshots (CONVNET_UPDATE_SCREENSHOTS=1): a LeNet-5 that
# has learned something (filters with structure, mostly right predictions, ~10 s more).
if os.environ.get("CONVNET_UPDATE_SCREENSHOTS") == "1":
    RUN_ARGS["lenet5"] = ["--model", "lenet5", "--epochs", "3", "--limit-train", "4000",
                          "--val-split", "0.1"]
LIMIT_TEST = {"lenet5": "500" if os.environ.get("CONVNET_UPDATE_SCREENSHOTS") == "1" else "32"}
_RUN_LOCK = threading.Lock()


@pytest.fixture(scope="session")
def explore_runs(tmp_path_factory):
    """``explore_runs(name)`` -> the folder of a tiny `convnet train` run of ``name`` (a key of
    RUN_ARGS), trained in this process the first time it is asked for."""
    root = tmp_path_factory.mktemp("explore_runs")
    made: dict[str, Path] = {}

    def get(name: str) -> Path:
        with _RUN_LOCK:
            if name not in made:
                from convnet.cli.main import main

                out = root / name
                status = main(["train", *RUN_ARGS[name], "--limit-test",
                               LIMIT_TEST.get(name, "32"), "--batch-size", "32", "--no-progress",
                               "--out", str(out)])
                assert status == 0, f"training the {name} run failed (status {status})"
                made[name] = out
            return made[name]

    return get


SERVING = re.compile(r"convnet explore: serving .* at (http://127\.0\.0\.1:\d+/)")


class ServerProcess:
    """`convnet explore RUN --no-browser --port 0` in a subprocess; ``.url`` is read from the
    line it prints, ``.output`` holds everything it printed (stdout and stderr)."""

    def __init__(self, run_dir: Path, *extra: str, timeout: float = 60.0):
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
               "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "convnet", "explore", str(run_dir), "--no-browser", "--port",
             "0", *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.lines: list[str] = []
        self.url: str | None = None
        found = threading.Event()

        def drain():  # keep reading, so a chatty server never blocks on a full pipe
            for line in self.proc.stdout:
                self.lines.append(line)
                m = SERVING.search(line)
                if m and self.url is None:
                    self.url = m.group(1)
                    found.set()
            found.set()

        threading.Thread(target=drain, daemon=True).start()
        found.wait(timeout)
        if self.url is None:
            self.stop()
            raise AssertionError(f"convnet explore {run_dir} printed no URL within {timeout} s:\n"
                                 f"{self.output}")

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="session")
def explore_servers(explore_runs):
    """``explore_servers(name)`` -> a running :class:`ServerProcess` for that run (one per run
    for the whole session, stopped at the end)."""
    servers: dict[str, ServerProcess] = {}

    def get(name: str) -> ServerProcess:
        if name not in servers or servers[name].proc.poll() is not None:
            servers[name] = ServerProcess(explore_runs(name))
        return servers[name]

    yield get
    for s in servers.values():
        s.stop()


def wait_ready(pg, url: str, timeout: float = 30_000):
    """Open ``url`` and wait until the explorer says it is ready (``body[data-ready="1"]``)."""
    pg.goto(url)
    pg.wait_for_selector('body[data-ready="1"]', timeout=timeout)
    return pg


def shot_path(tmp: Path, name: str) -> list[Path]:
    """Where a screenshot goes: the test's tmp folder, and docs/images/explorer_<name>.png too
    when CONVNET_UPDATE_SCREENSHOTS=1."""
    paths = [tmp / f"explorer_{name}.png"]
    if os.environ.get("CONVNET_UPDATE_SCREENSHOTS") == "1":
        paths.append(Path(__file__).resolve().parents[2] / "docs" / "images" / f"explorer_{name}.png")
    return paths

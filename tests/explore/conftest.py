"""Browser fixtures for the explorer's tests: Playwright for Python driving Debian's Chromium
(``/usr/bin/chromium``, installed by ``apt-get install chromium``; never a downloaded browser).

Where Chromium is missing the browser tests are skipped on a developer's machine, and fail under
CI (``CI`` or ``CONVNET_REQUIRE_BROWSER`` set), so CI cannot pass without running them.
"""
from __future__ import annotations

import os
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

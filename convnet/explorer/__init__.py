"""``convnet explore``: an interactive browser explorer of any model (issue 17).

A local web app, served on 127.0.0.1 only, that shows one input travelling through the network:
every layer's channels as heatmaps, the ``w^T x + b`` behind any activation, predictions,
Grad-CAM, filters, training curves and the confusion matrix.

Python API::

    ex = explore(model, dataset)            # serves in a background thread, returns at once
    ex.url; ex.stop()                       # or `with explore(...) as ex:`; ex.wait() blocks
    explore_run("runs/digits")              # a `convnet train` folder
    export_run("runs/digits", "site")       # a static site that opens from disk (file://)

``dataset``: indexable with ``len()`` giving ``(x, y)`` or ``x`` (``x`` a ``(C, H, W)`` Tensor or
array, already as the model expects it), or an ``(N, C, H, W)`` array. Without one,
``input_shape=(C, H, W)`` is required and inputs come from uploads only. Uploads are resized to
the input shape, scaled to [0, 1] and normalised by ``mean``/``std`` (when given), or turned
into an array by ``transform(PIL image) -> (C, H, W)``.
"""
from __future__ import annotations

import os
import sys
import threading

__all__ = ["explore", "explore_run", "export", "export_run", "Explorer", "Session"]


def __getattr__(name):  # Session without importing the whole back end at package import
    if name == "Session":
        from .session import Session

        return Session
    raise AttributeError(name)


def browser_plausible() -> bool:
    """Whether opening a web browser can work here (a desktop session, not SSH/CI/headless)."""
    if os.environ.get("CI") or os.environ.get("SSH_CONNECTION") and not os.environ.get("DISPLAY"):
        return False
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
                or os.environ.get("BROWSER"))


class Explorer:
    """A running explorer: ``url``, ``port``, ``session``; ``stop()``, ``wait()``; a context
    manager that stops the server on exit."""

    def __init__(self, session, port=None, open_browser=None, quiet: bool = False):
        from .server import make_server, serve_in_thread

        self.session = session
        self.server = make_server(session, port)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        self._thread = serve_in_thread(self.server)
        self._stopped = threading.Event()
        # A script that ends while serving waits for the server thread at exit; Ctrl-C there
        # would print a traceback from inside `threading`. Waiting in an exit hook of the
        # threading module (run before it joins the threads) lets wait() catch it instead.
        register = getattr(threading, "_register_atexit", None)
        if register is not None:
            try:
                register(self.wait)
            except RuntimeError:  # the interpreter is already shutting down
                pass
        if not quiet:
            print(f"convnet explore: serving {session.source.title} at {self.url} "
                  "(Ctrl-C to stop)", flush=True)
        if open_browser or (open_browser is None and browser_plausible()):
            try:
                import webbrowser

                webbrowser.open(self.url)
            except Exception:  # no browser: the printed URL is enough
                pass

    def stop(self):
        """Stop serving (idempotent); returns once the server thread has ended."""
        if not self._stopped.is_set():
            self._stopped.set()
            self.server.shutdown()
            self.server.server_close()
        self._thread.join()

    def wait(self):
        """Block until the server stops (Ctrl-C stops it cleanly)."""
        try:
            while self._thread.is_alive():
                self._thread.join(0.5)
        except KeyboardInterrupt:
            self.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        return f"Explorer({self.url!r})"


def _python_session(model, dataset, class_names, input_shape, mean, std, transform, title):
    from .session import Session
    from .sources import PythonSource

    src = PythonSource(model, dataset, class_names, input_shape, mean, std, transform, title)
    return Session(src, model)


def explore(model, dataset=None, class_names=None, *, input_shape=None, mean=None, std=None,
            transform=None, port=None, open_browser=None, title=None) -> Explorer:
    """Serve the explorer of ``model`` (any ``nn.Module``) on 127.0.0.1 and return its handle.

    The server runs in a non-daemon thread: a plain script keeps serving until Ctrl-C, a
    notebook or a test gets the :class:`Explorer` back at once. ``port=None`` tries 8000, then
    8001..8019; ``port=0`` takes any free port. A browser is opened unless
    ``open_browser=False`` or no display is available. The model is put in eval mode.
    """
    session = _python_session(model, dataset, class_names, input_shape, mean, std, transform,
                              title)
    return Explorer(session, port, open_browser)


def explore_run(run_dir, *, port=None, open_browser=None) -> Explorer:
    """Serve the explorer of a ``convnet train`` output folder."""
    from .session import Session
    from .sources import RunSource

    return Explorer(Session(RunSource(run_dir)), port, open_browser)


def export(model, out_dir, dataset=None, class_names=None, *, inputs=4, input_shape=None,
           mean=None, std=None, transform=None, title=None, log=print) -> dict:
    """Write the static site of ``model`` (see :func:`convnet.explorer.export.write_site`)."""
    from .export import write_site

    session = _python_session(model, dataset, class_names, input_shape, mean, std, transform,
                              title)
    return write_site(session, out_dir, inputs, log=log)


def export_run(run_dir, out_dir, inputs: int = 4, log=print) -> dict:
    """Write the static site of a ``convnet train`` output folder to ``out_dir``."""
    from .export import write_site
    from .session import Session
    from .sources import RunSource

    return write_site(Session(RunSource(run_dir)), out_dir, inputs, log=log)

"""``convnet explore RUN``: an interactive explorer of a trained model in the web browser.

Serves a local web app on 127.0.0.1 (never another interface) showing one input travelling
through the network: every channel of every layer, the `w^T x + b` behind any activation,
pooling and normalisation windows, predictions, Grad-CAM, filters, training curves and the
confusion matrix. `--export DIR` writes the same app, pre-computed for a few inputs, as a
static site that opens from disk without a server.
"""
from __future__ import annotations

import sys
from pathlib import Path


def add_parser(subparsers) -> None:
    from .main import add_threads_option

    p = subparsers.add_parser("explore", help="interactive explorer of a run in the browser",
                              description=__doc__)
    p.add_argument("run_dir", metavar="RUN", help="the --out folder of a `convnet train` run")
    p.add_argument("--port", type=int, default=None,
                   help="port on 127.0.0.1 (default 8000, or the next free up to 8019; 0: any "
                        "free port)")
    p.add_argument("--no-browser", action="store_true",
                   help="do not open a web browser (print the URL only)")
    p.add_argument("--export", metavar="DIR", default=None,
                   help="write a static site to DIR instead of serving (opens from disk)")
    p.add_argument("--inputs", type=int, default=4, metavar="N",
                   help="--export: test images pre-computed (default 4, of different classes)")
    add_threads_option(p)
    p.set_defaults(func=run)


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 1024:.0f} kB"


def run(args) -> int:
    from ..explorer import Explorer, browser_plausible
    from ..explorer.server import PortInUse
    from ..explorer.session import Session
    from ..explorer.sources import RunSource
    from .main import CLIError

    if args.port is not None and not 0 <= args.port <= 65535:
        raise CLIError(f"--port must be 0..65535, got {args.port}")
    if args.inputs < 1:
        raise CLIError(f"--inputs must be >= 1, got {args.inputs}")
    session = Session(RunSource(Path(args.run_dir)))
    if args.export:
        from ..explorer.export import write_site

        write_site(session, Path(args.export), args.inputs, log=print)
        return 0
    try:
        ex = Explorer(session, args.port,
                      open_browser=False if args.no_browser else browser_plausible())
    except PortInUse as e:
        raise CLIError(e.strerror) from None
    for note in getattr(session.source, "notes", []):
        print(f"note: {note}", file=sys.stderr)
    try:
        ex.wait()
    except KeyboardInterrupt:  # pragma: no cover - wait() handles it; a second Ctrl-C lands here
        ex.stop()
    ex.stop()
    print("convnet explore: stopped", flush=True)
    return 0

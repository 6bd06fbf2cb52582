"""The explorer's HTTP server: the static UI and the JSON/PNG/CNV1 API of :mod:`.session`,
on 127.0.0.1 only (``http.server.ThreadingHTTPServer``; no other interface, no request out).

:func:`dispatch` maps one request to ``(status, mime type, body)``; the server and the static
export (:mod:`.export`) both use it. Errors are ``{"error": "..."}`` JSON, never a traceback.
"""
from __future__ import annotations

import errno
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from .session import ApiError, Session

__all__ = ["dispatch", "make_server", "STATIC_DIR", "PortInUse", "DEFAULT_PORT", "HOST"]

HOST = "127.0.0.1"
DEFAULT_PORT = 8000
FALLBACK_PORTS = 19  # the default port falls back to 8001..8019
STATIC_DIR = Path(__file__).resolve().parent / "static"
MAX_UPLOAD = 20 * 1024 * 1024
MIME = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
        ".css": "text/css; charset=utf-8", ".png": "image/png", ".svg": "image/svg+xml",
        ".json": "application/json", ".ico": "image/x-icon", ".txt": "text/plain; charset=utf-8",
        ".woff2": "font/woff2"}
JSON = "application/json"
PNG = "image/png"
BIN = "application/octet-stream"


class PortInUse(OSError):
    """The requested port (or the whole default range) is taken."""


def _json(obj, status: int = 200):
    return status, JSON, json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


def _error(status: int, message: str):
    return _json({"error": message}, status)


def _int(q: dict, name: str, default=None):
    v = q.get(name, [None])[0]
    if v is None or v == "":
        if default is None:
            raise ApiError(400, f"missing query parameter {name!r}")
        return default
    try:
        return int(v)
    except ValueError:
        raise ApiError(400, f"query parameter {name}={v!r} is not an integer") from None


def static_file(name: str):
    """``(status, mime, bytes)`` of a file of the UI (no path outside ``static/``)."""
    name = unquote(name)
    if not name or "\\" in name or any(p in ("", ".", "..") or p.startswith(".")
                                        for p in name.split("/")):
        return _error(404, f"no static file {name!r}")
    path = (STATIC_DIR / name).resolve()
    if STATIC_DIR not in path.parents or not path.is_file():
        return _error(404, f"no static file {name!r}")
    return 200, MIME.get(path.suffix.lower(), BIN), path.read_bytes()


def dispatch(session: Session, method: str, target: str, body: bytes = b"",
             headers: dict | None = None):
    """One request -> ``(status, mime, body bytes)``."""
    try:
        return _route(session, method, target, body, headers or {})
    except ApiError as e:
        return _error(e.status, e.message)
    except Exception as e:  # a bug or a model failure: one line, no traceback in the body
        return _error(500, f"{type(e).__name__}: {e}")


def _header(headers: dict, name: str):
    """A request header, whatever its capitalisation."""
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)


def _route(s: Session, method: str, target: str, body: bytes, headers: dict):
    u = urlsplit(target)
    path, q = u.path, parse_qs(u.query)
    parts = [p for p in path.split("/") if p]
    if method == "POST":
        if path not in ("/api/upload", "/api/draw"):
            raise ApiError(404, f"no POST endpoint {path}")
        try:
            if path == "/api/draw":
                return _json(s.draw(body))
            name = unquote(headers.get("X-Filename") or headers.get("x-filename") or "upload")
            return _json(s.upload(body, Path(name).name or "upload"))
        except ApiError as e:
            # The page marks its own requests: a refused file is an answer it shows, not a
            # failed request (which Chromium would log as a console error); scripts get 400.
            if e.status == 400 and _header(headers, "X-Convnet-Page") == "1":
                return _json({"error": e.message, "refused": True})
            raise
    if method not in ("GET", "HEAD"):
        raise ApiError(405, f"method {method} not allowed")
    if path in ("/", "/index.html"):
        return static_file("index.html")
    if parts and parts[0] == "static":
        return static_file("/".join(parts[1:]))
    if not parts or parts[0] != "api":
        raise ApiError(404, f"no such page {path}")
    api = parts[1:]
    if api == ["meta"]:
        return _json(s.meta())
    if api == ["inputs"]:
        label = q.get("label", [None])[0]
        return _json(s.inputs(_int(q, "offset", 0), _int(q, "limit", 48),
                              None if label in (None, "") else _int(q, "label")))
    if len(api) == 2 and api[0] == "input" and api[1].endswith(".png"):
        return 200, PNG, s.input_png(api[1][:-4])
    if len(api) == 2 and api[0] == "forward":
        return _json(s.forward(api[1]))
    if len(api) == 3 and api[0] == "maps" and api[2].endswith(".png"):
        return 200, PNG, s.maps_png(api[1], api[2][:-4])
    if len(api) == 2 and api[0] == "mask" and api[1].endswith(".png"):
        return 200, PNG, s.mask_png(api[1][:-4])
    if len(api) == 2 and api[0] == "blob" and api[1].endswith(".bin"):
        return 200, BIN, s.blob(api[1][:-4])
    if len(api) == 3 and api[0] == "param" and api[2].endswith(".bin"):
        return 200, BIN, s.param(api[1], api[2][:-4])
    if api == ["gradcam-layers"]:
        return _json(s.gradcam_layers())
    if len(api) == 2 and api[0] == "gradcam":
        layer = q.get("layer", [None])[0]
        if layer in (None, ""):
            layer = s.gradcam_layers()["default"]
            if layer is None:
                raise ApiError(400, "gradcam: this model has no spatial layer")
        cls = q.get("class", [None])[0]
        if cls in (None, ""):
            top = (s.forward(api[1]).get("prediction") or {}).get("top")
            cls = top[0]["index"] if top else 0
        return 200, PNG, s.gradcam_png(api[1], layer, cls)
    if len(api) == 2 and api[0] == "filters" and api[1].endswith(".png"):
        return 200, PNG, s.filters(api[1][:-4])[0]
    if len(api) == 2 and api[0] == "filters" and api[1].endswith(".json"):
        return _json(s.filters(api[1][:-5])[1])
    if api == ["curves"]:
        return _json(s.curves())
    if api == ["confusion"]:
        return _json(s.confusion())
    if len(api) == 3 and api[0] == "confusion":
        try:
            t, p = int(api[1]), int(api[2])
        except ValueError:
            raise ApiError(400, "confusion: /api/confusion/<true>/<pred> takes class indices") \
                from None
        return _json(s.confusion_cell(t, p, _int(q, "limit", 24)))
    if len(api) == 2 and api[0] == "invariance":
        return _json(s.invariance(api[1], _int(q, "dx", 1), _int(q, "dy", 0)))
    raise ApiError(404, f"no API endpoint {path}")


class _Handler(BaseHTTPRequestHandler):
    session: Session = None  # set on the subclass made by make_server
    server_version = "convnet-explore"
    protocol_version = "HTTP/1.1"

    def _send(self, status: int, mime: str, body: bytes, head: bool = False):
        self.send_response(status)
        self.send_header("Content-Type", mime)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store" if mime == JSON else "max-age=60")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _foreign_host(self) -> bool:
        """A page of another site that re-points its own name at 127.0.0.1 (DNS rebinding)
        sends its name as Host: such requests are refused."""
        host = (self.headers.get("Host") or HOST).rsplit(":", 1)[0].strip("[]").lower()
        if host in ("127.0.0.1", "localhost"):
            return False
        self._send(*_error(403, f"requests for host {host!r} are refused (use {HOST})"))
        return True

    def do_GET(self):
        if not self._foreign_host():
            self._send(*dispatch(self.session, "GET", self.path))

    def do_HEAD(self):
        if not self._foreign_host():
            self._send(*dispatch(self.session, "GET", self.path), head=True)

    def do_POST(self):
        if self._foreign_host():
            return
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_UPLOAD:
            self.rfile.read(n)
            self._send(*_error(413, f"upload: file too large ({n} bytes; at most "
                                    f"{MAX_UPLOAD // 2**20} MB)"))
            return
        body = self.rfile.read(n) if n else b""
        self._send(*dispatch(self.session, "POST", self.path, body, dict(self.headers)))

    def log_message(self, fmt, *args):  # quiet: no line per request on stderr
        pass

    def log_error(self, fmt, *args):
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False  # a port in use must be reported, not shared

    def handle_error(self, request, client_address):
        # a browser that closes a connection mid-answer is normal; say nothing
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, BrokenPipeError, TimeoutError)):
            return
        print(f"convnet explore: error answering {client_address}: {exc}", file=sys.stderr)


def make_server(session: Session, port: int | None = None) -> ThreadingHTTPServer:
    """A server bound to 127.0.0.1. ``port=None``: 8000, else the first free of 8001..8019;
    ``port=0``: any free port; another port: that one or :class:`PortInUse`."""
    handler = type("Handler", (_Handler,), {"session": session})
    candidates = [port] if port is not None else \
        [DEFAULT_PORT + i for i in range(FALLBACK_PORTS + 1)]
    for p in candidates:
        try:
            return _Server((HOST, int(p)), handler)
        except OSError as e:
            if e.errno not in (errno.EADDRINUSE, errno.EACCES):
                raise
    if port is not None:
        raise PortInUse(errno.EADDRINUSE, f"port {port} on {HOST} is in use; choose another "
                        "with --port N, or --port 0 for any free port")
    raise PortInUse(errno.EADDRINUSE, f"ports {DEFAULT_PORT}..{DEFAULT_PORT + FALLBACK_PORTS} "
                    f"on {HOST} are all in use; use --port 0 for any free port")


def serve_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    """Serve in a non-daemon thread (a script keeps serving until Ctrl-C or ``stop``)."""
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                         name="convnet-explore-server", daemon=False)
    t.start()
    return t

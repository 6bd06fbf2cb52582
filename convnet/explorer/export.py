"""The explorer as a static site: every API answer the UI can ask for, pre-computed for a few
inputs, so the page opens from disk (file://) without a server.

Layout of the site::

    DIR/index.html       static/index.html with <script>window.CONVNET_STATIC = true</script>
                         where it has the comment <!--CONVNET_STATIC-->
    DIR/static/*         the UI's files
    DIR/data/<key>.js    one answer each: window.CONVNET_STATIC_PUT("<path>", "<mime>", "<b64>");

``key`` is the request path and query with every character outside ``[A-Za-z0-9]`` replaced
by ``_`` (``/api/forward/test-3`` -> ``data/_api_forward_test_3.js``): Chromium blocks fetch()
of file:// URLs, but loads classic scripts from them.
"""
from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path

import numpy as np

from .server import STATIC_DIR, dispatch
from .session import Session, shift_id

__all__ = ["write_site", "data_key", "MARKER", "SHIFTS", "WARN_BYTES"]

MARKER = "<!--CONVNET_STATIC-->"
STATIC_SCRIPT = "<script>window.CONVNET_STATIC = true</script>"
SHIFTS = ((1, 0), (-1, 0), (0, 1), (0, -1))  # the UI's shift buttons: one pixel each way
GRADCAM_CLASSES = 10
WARN_BYTES = 50 * 2**20


def data_key(path: str) -> str:
    """``/api/forward/test-3`` -> ``_api_forward_test_3`` (the data file's name, no ``.js``)."""
    return re.sub(r"[^A-Za-z0-9]", "_", path)


def pick_inputs(session: Session, n: int) -> list[str]:
    """The first test images of different classes (then the next ones), ``n`` in all."""
    total = len(session.source)
    if total == 0:
        raise ValueError("export: no test images to pre-compute (the run's test set is not "
                         "available here, or the dataset is empty)")
    labels = session.source.labels()
    picked: list[int] = []
    if labels is not None:
        seen = set()
        for i, y in enumerate(labels):
            if int(y) not in seen:
                seen.add(int(y))
                picked.append(i)
            if len(picked) >= n:
                break
    for i in range(total):
        if len(picked) >= n:
            break
        if i not in picked:
            picked.append(i)
    return [f"test-{i}" for i in picked[:n]]


class _Site:
    def __init__(self, session: Session, out: Path):
        self.s, self.out = session, out
        self.done: dict[str, str] = {}  # key -> path (collisions are an error)
        self.bytes = 0
        self.files = 0

    def get(self, path: str, required: bool = True):
        """Answer ``path`` through the API and write its data file; returns the body."""
        key = data_key(path)
        if key in self.done:
            if self.done[key] != path:
                raise RuntimeError(f"export: {path} and {self.done[key]} map to one file {key}")
            return None
        status, mime, body = dispatch(self.s, "GET", path)
        if status != 200:
            if required:
                raise RuntimeError(f"export: {path} answered {status}: {body[:200]!r}")
            return None
        text = (f"window.CONVNET_STATIC_PUT({json.dumps(path)}, {json.dumps(mime)}, "
                f"\"{base64.b64encode(body).decode('ascii')}\");\n")
        f = self.out / "data" / f"{key}.js"
        f.write_text(text, encoding="ascii")
        self.done[key] = path
        self.bytes += len(text)
        self.files += 1
        return body

    def json(self, path: str, required: bool = True):
        body = self.get(path, required)
        return None if body is None else json.loads(body)


def _copy_static(out: Path) -> int:
    """Copy the UI's files to ``out/static`` and write ``out/index.html``; returns bytes."""
    total = 0
    dst = out / "static"
    dst.mkdir(parents=True, exist_ok=True)
    for f in sorted(STATIC_DIR.rglob("*")):
        rel = f.relative_to(STATIC_DIR)
        if f.is_dir() or any(p.startswith(".") or p == "__pycache__" for p in rel.parts):
            continue
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, dst / rel)
        total += f.stat().st_size
    index = STATIC_DIR / "index.html"
    html = index.read_text(encoding="utf-8") if index.is_file() else \
        "<!doctype html><html><head></head><body></body></html>"
    if MARKER in html:
        html = html.replace(MARKER, STATIC_SCRIPT, 1)
    else:  # an index without the marker still works: the flag goes before </head>
        html = html.replace("</head>", STATIC_SCRIPT + "</head>", 1)
    (out / "index.html").write_text(html, encoding="utf-8")
    return total + len(html.encode())


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 1024:.0f} kB"


def write_site(session: Session, out_dir, inputs: int = 4, log=print) -> dict:
    """Pre-compute every answer the UI can ask for about ``inputs`` test images (and, without
    their tensors' blobs, their one-pixel shifts) and write the static site to ``out_dir``. Returns ``{"dir", "inputs",
    "files", "bytes"}``; prints what it wrote (``log=None``: silent)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"export: {out} exists and is not a folder")
    ids = pick_inputs(session, int(inputs))
    session.static = True
    session.static_inputs = ids
    (out / "data").mkdir(parents=True, exist_ok=True)
    site = _Site(session, out)
    static_bytes = _copy_static(out)

    meta = site.json("/api/meta")
    site.get("/api/inputs")
    site.get("/api/inputs?offset=0&limit=48")
    if session.task == "classify" and session.source.labels() is not None:
        for k in range(len(session.class_names)):  # the picker's class filter
            site.get(f"/api/inputs?offset=0&limit=48&label={k}")
    gl = site.json("/api/gradcam-layers")
    if meta["has_curves"]:
        site.get("/api/curves")
    if meta["has_confusion"]:
        session.confusion(wait=True)
        conf = site.json("/api/confusion")
        for t, row in enumerate(conf["matrix"] or []):
            for p, n in enumerate(row):
                if n:
                    cell = site.json(f"/api/confusion/{t}/{p}?limit=24")
                    for item in cell["items"]:
                        site.get(item["thumb"])
    for lay in meta["layers"]:
        for name in lay["param_names"]:
            site.get(f"/api/param/{lay['id']}/{name}.bin")
        if lay["explain"] == "conv":
            site.get(f"/api/filters/{lay['id']}.png")
            site.get(f"/api/filters/{lay['id']}.json")

    def one_input(iid: str, blobs: bool = True) -> dict:
        site.get(f"/api/input/{iid}.png")
        fwd = site.json(f"/api/forward/{iid}")
        if fwd is None:  # already written
            fwd = session.forward(iid)
        shas = [fwd["output_blob"]] + [b for r in fwd["layers"]
                                       for b in (r["input_blob"], r["output_blob"])]
        for b in shas if blobs else ():
            if b:
                site.get(f"/api/blob/{b}.bin")
        for r in fwd["layers"]:
            if r["layout"] is not None:
                site.get(f"/api/maps/{iid}/{r['id']}.png")
        if session.task == "segment":
            site.get(f"/api/mask/{iid}.png")
        return fwd

    for iid in ids:
        fwd = one_input(iid)
        for dx, dy in SHIFTS:
            one_input(shift_id(iid, dx, dy), blobs=False)  # maps only: blobs are the bulk
            site.get(f"/api/invariance/{iid}?dx={dx}&dy={dy}")
        # Grad-CAM: every usable layer x the input's most likely classes, one backward each
        pred = fwd.get("prediction") or {}
        if "probs" in pred:
            order = list(np.argsort(-np.asarray(pred["probs"]), kind="stable"))
        elif "class_fraction" in pred:
            order = list(np.argsort(-np.asarray(pred["class_fraction"]), kind="stable"))
        else:
            order = list(range(len(session.class_names)))
        layer_ids = gl["layers"]
        for k in order[:GRADCAM_CLASSES]:
            if not layer_ids:
                break
            cams = session.gradcam_many(iid, layer_ids, int(k))
            for lid, cam in cams.items():
                path = f"/api/gradcam/{iid}?layer={lid}&class={int(k)}"
                key = data_key(path)
                body = session.gradcam_overlay(iid, cam)
                text = (f"window.CONVNET_STATIC_PUT({json.dumps(path)}, \"image/png\", "
                        f"\"{base64.b64encode(body).decode('ascii')}\");\n")
                (out / "data" / f"{key}.js").write_text(text, encoding="ascii")
                site.done[key] = path
                site.bytes += len(text)
                site.files += 1

    total = site.bytes + static_bytes
    if log is not None:
        log(f"convnet explore: wrote {out}/ ({_size(total)}): index.html, static/, "
            f"{site.files} data files for {len(ids)} inputs ({', '.join(ids)}); open "
            f"{out / 'index.html'} in a browser")
        if total > WARN_BYTES:
            log(f"convnet explore: warning: the site is {_size(total)} (over "
                f"{_size(WARN_BYTES)}); export fewer inputs with --inputs N")
    return {"dir": str(out), "inputs": ids, "files": site.files, "bytes": total}

"""The explorer's state: one model, its inputs and caches. Every answer of the HTTP API is made
here as a dict (JSON) or bytes (PNG, CNV1), so the server and the static export share it.

One forward pass per input captures every module call (:mod:`.capture`); the last 8 inputs are
kept (fewer when one pass is large). Feature-map sprites are drawn per request, blobs encoded
per request; only their ids (sha1 of the CNV1 bytes) are computed with the pass. The model is
used under one lock: the hooks of a capture must not see another thread's pass.
"""
from __future__ import annotations

import hashlib
import math
import re
import threading
import time
from collections import OrderedDict

import numpy as np

from ..autograd.grad_mode import enable_grad, no_grad
from ..tensor import Tensor
from . import encode
from .capture import _first_tensor, capture, layer_table

__all__ = ["Session", "ApiError"]

CACHE_INPUTS = 8
CACHE_BYTES = 1 << 30  # captured activations kept at most (a ResNet-50 pass is ~0.1 GB)
CONFUSION_CAP = 10000
MAX_STORED_UPLOADS = 64
PALETTE = np.array([[0, 0, 0], [31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40],
                    [148, 103, 189], [140, 86, 75], [227, 119, 194], [127, 127, 127],
                    [188, 189, 34], [23, 190, 207]], dtype=np.uint8)
INPUT_ID = re.compile(r"^[a-z]+-[A-Za-z0-9-]+$")
SHIFT_ID = re.compile(r"^shift-(.+)-(m?\d+)-(m?\d+)$")


class ApiError(Exception):
    """An answer other than 200: ``status`` and a one-line message (sent as ``{error}``)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _int_token(s: str) -> int:
    return -int(s[1:]) if s.startswith("m") else int(s)


def _token(v: int) -> str:
    return f"m{-v}" if v < 0 else str(v)


def shift_id(base: str, dx: int, dy: int) -> str:
    """The id of input ``base`` moved ``dx`` pixels right and ``dy`` down (``m1`` = -1)."""
    return f"shift-{base}-{_token(dx)}-{_token(dy)}"


def shift_image(x: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """``(C, H, W)`` moved ``dx`` right and ``dy`` down; the uncovered border repeats the edge
    pixels (background for digits), so nothing wraps around."""
    c, h, w = x.shape
    p = max(abs(dx), abs(dy))
    if p == 0:
        return x.copy()
    if p >= max(h, w):
        raise ApiError(400, f"shift ({dx}, {dy}) is larger than the {h}x{w} input")
    big = np.pad(x, ((0, 0), (p, p), (p, p)), mode="edge")
    return np.ascontiguousarray(big[:, p - dy:p - dy + h, p - dx:p - dx + w])


def _softmax(v: np.ndarray) -> np.ndarray:
    e = np.exp(v.astype(np.float64) - np.max(v))
    return e / e.sum()


class _Entry:
    """One input's forward pass: per-layer arrays and their blob ids, made under the lock."""

    def __init__(self, input_id, x, label):
        self.id, self.x, self.label = input_id, x, label
        self.outputs: list = []
        self.inputs: list = []
        self.output = None
        self.blobs: dict[str, np.ndarray] = {}
        self.maps: dict[int, bytes] = {}
        self.answer: dict | None = None
        self.nbytes = 0


class Session:
    """A model and where its inputs come from (a :class:`~.sources.Source`)."""

    def __init__(self, source, model=None, *, static: bool = False):
        from ..analysis.receptive_field import model_dtype

        self.source = source
        self.model = model if model is not None else source.model
        self.model.eval()
        self.static = static
        self.lock = threading.RLock()
        self.dtype = model_dtype(self.model)
        import warnings

        with warnings.catch_warnings():  # functional resizes (U-Net's pad) warn in tracing
            warnings.simplefilter("ignore")
            try:
                layers, totals = layer_table(self.model, source.input_shape, self.dtype)
            except (ValueError, TypeError, RuntimeError) as e:
                raise type(e)(f"explore: the model does not take inputs of shape "
                              f"{tuple(source.input_shape)} (one sample): {e}") from None
        calls = totals["calls"]
        self.modules = [c.module for c in calls]
        # which call of its module each layer is (Grad-CAM hooks the k-th call)
        self.call_no, seen = [], {}
        for c in calls:
            seen[id(c.module)] = seen.get(id(c.module), 0) + 1
            self.call_no.append(seen[id(c.module)])
        self.layers = layers
        self.totals = {k: v for k, v in totals.items() if k != "calls"}
        del calls, totals  # the traced tensors hold a whole autograd graph
        with no_grad():
            out = self.model(Tensor._make(np.zeros((1, *source.input_shape), self.dtype)))
        out = _first_tensor(out)
        if out is None:
            raise TypeError(f"explore: {type(self.model).__name__} returned no Tensor")
        self.output_shape = tuple(out.shape[1:])
        task = source.task
        if getattr(source, "run_dir", None) is None:
            task = "segment" if out.ndim == 4 else "classify"
        self.task = task
        k = self.output_shape[0] if self.output_shape else 0
        names = source.class_names
        if not names or (task in ("classify", "segment") and len(names) != k and out.ndim in (2, 4)):
            names = [str(i) for i in range(k)]
        self.class_names = list(names)
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        self._stored: OrderedDict[str, np.ndarray] = OrderedDict()
        self._notes: dict[str, list] = {}
        self.static_inputs: list[str] | None = None  # the export's pre-computed inputs
        self._confusion = None
        self._confusion_lock = threading.Lock()

    # ------------------------------------------------------------------ meta and inputs
    def meta(self) -> dict:
        src = self.source
        metrics = getattr(src, "metrics", None) or {}
        return {
            "title": src.title, "model": src.model_name, "task": self.task,
            "input": {"channels": src.channels, "height": src.height, "width": src.width,
                      "mean": src.mean, "std": src.std, "drawable": bool(src.drawable)},
            "class_names": self.class_names,
            "total_params": self.totals["total_params"], "total_macs": self.totals["total_macs"],
            "receptive_field": self.totals["receptive_field"],
            "test_accuracy": metrics.get("test_accuracy"),
            "has_curves": bool(metrics.get("history")),
            "has_confusion": self.has_confusion,
            "static": self.static, "can_upload": not self.static,
            "num_inputs": len(self.static_inputs) if self.static_inputs is not None else len(src),
            "notes": list(getattr(src, "notes", []) or []),
            "top_layers": self.totals["top_layers"],
            "layers": self.layers,
        }

    @property
    def has_confusion(self) -> bool:
        if len(self.source) == 0:
            return False
        if self.task == "segment":
            return True
        return self.task == "classify" and self.source.labels() is not None

    def _label_name(self, label):
        if label is None or self.task != "classify" or not np.isscalar(label):
            return None
        return self.class_names[label] if 0 <= label < len(self.class_names) else str(label)

    def inputs(self, offset: int = 0, limit: int = 48, label: int | None = None) -> dict:
        """A page of selectable inputs: the test set in order (or the export's inputs)."""
        if limit < 0 or offset < 0:
            raise ApiError(400, "inputs: offset and limit must be >= 0")
        if self.static_inputs is not None:
            ids = list(self.static_inputs)
            labels = [self._resolve(i)[1] for i in ids]
            if label is not None:
                keep = [k for k, y in enumerate(labels) if y is not None and np.isscalar(y)
                        and int(y) == label]
                ids, labels = [ids[k] for k in keep], [labels[k] for k in keep]
        else:
            n = len(self.source)
            lab = self.source.labels()
            idx = np.arange(n)
            if label is not None:
                if lab is None:
                    raise ApiError(400, "inputs: this dataset has no per-image labels to filter by")
                idx = idx[lab == label]
            ids = [f"test-{i}" for i in idx]
            labels = [None if lab is None else int(lab[i]) for i in idx] if lab is not None \
                else [None] * len(idx)
            if lab is None and self.task == "classify":
                page = ids[offset:offset + limit]
                labels = [None] * offset + [self._resolve(i)[1] for i in page]
        page = list(zip(ids, labels))[offset:offset + limit]
        items = []
        for i, y in page:
            y = y if y is None or np.isscalar(y) else None
            items.append({"id": i, "label": None if y is None else int(y),
                          "label_name": self._label_name(y), "thumb": f"/api/input/{i}.png"})
        return {"total": len(ids), "items": items}

    def _resolve(self, input_id: str):
        """``(x (C, H, W) float32, label | None)`` of an input id."""
        if not INPUT_ID.match(input_id or ""):
            raise ApiError(400, f"bad input id {input_id!r}")
        m = SHIFT_ID.match(input_id)
        if m:
            x, y = self._resolve(m.group(1))
            dx, dy = _int_token(m.group(2)), _int_token(m.group(3))
            return shift_image(x, dx, dy), (y if y is None or np.isscalar(y) else None)
        kind, _, rest = input_id.partition("-")
        if kind == "test":
            if not rest.isdigit():
                raise ApiError(400, f"bad input id {input_id!r}")
            i = int(rest)
            if i >= len(self.source):
                raise ApiError(404, f"input {input_id}: the test set has {len(self.source)} "
                                    "images")
            return self.source.get(i)
        if kind in ("upload", "draw"):
            with self.lock:
                x = self._stored.get(input_id)
            if x is None:
                raise ApiError(404, f"input {input_id} is unknown (uploads are kept while the "
                                    "server runs; upload it again)")
            return x, None
        raise ApiError(404, f"input {input_id} is unknown")

    def input_png(self, input_id: str) -> bytes:
        x, _ = self._resolve(input_id)
        return encode.png_bytes(encode.image_uint8(x, self.source.mean, self.source.std))

    def _store(self, prefix: str, data: bytes, x: np.ndarray, notes: list) -> str:
        input_id = f"{prefix}-{hashlib.sha1(data).hexdigest()[:12]}"
        with self.lock:
            self._stored[input_id] = x
            self._stored.move_to_end(input_id)
            self._notes[input_id] = notes
            while len(self._stored) > MAX_STORED_UPLOADS:
                old, _ = self._stored.popitem(last=False)
                self._notes.pop(old, None)
        return input_id

    def upload(self, data: bytes, name: str = "upload") -> dict:
        """An uploaded image file -> ``{id, notes}``; not an image -> ApiError 400."""
        from .sources import UploadError

        if self.static:
            raise ApiError(400, "upload: not available in the static export")
        try:
            x, notes = self.source.from_upload(data, name or "upload")
        except UploadError as e:
            raise ApiError(400, str(e)) from None
        return {"id": self._store("upload", data, x, notes), "notes": notes}

    def draw(self, data: bytes) -> dict:
        """A canvas PNG (white strokes on black) -> ``{id}``."""
        from .sources import UploadError

        if self.static:
            raise ApiError(400, "draw: not available in the static export")
        try:
            x = self.source.from_drawing(data)
        except UploadError as e:
            raise ApiError(400, str(e).replace("upload:", "draw:", 1)) from None
        return {"id": self._store("draw", data, x, [])}

    # -------------------------------------------------------------------- forward pass
    def _entry(self, input_id: str) -> _Entry:
        with self.lock:
            e = self._cache.get(input_id)
            if e is not None:
                self._cache.move_to_end(input_id)
                return e
            x, label = self._resolve(input_id)
            if tuple(x.shape) != tuple(self.source.input_shape):
                raise ApiError(400, f"input {input_id} has shape {tuple(x.shape)}; the model "
                                    f"takes {tuple(self.source.input_shape)}")
            e = _Entry(input_id, x, label)
            calls, out = capture(self.model, Tensor._make(x[None].astype(self.dtype, copy=False)))
            e.outputs = [c.output for c in calls]
            e.inputs = [c.input for c in calls]
            e.output = out._data if out is not None else None
            e.nbytes = sum(a.nbytes for a in {id(a): a for a in e.outputs + e.inputs
                                               if a is not None}.values())
            e.answer = self._answer(e)
            self._cache[input_id] = e
            budget = max(1, min(CACHE_INPUTS, CACHE_BYTES // max(e.nbytes, 1)))
            while len(self._cache) > budget:
                self._cache.popitem(last=False)
            return e

    def _blob(self, e: _Entry, arr, ids: dict) -> str | None:
        if arr is None:
            return None
        key = id(arr)
        if key not in ids:
            sha = encode.blob_sha(arr)
            ids[key] = sha
            e.blobs[sha] = arr
        return ids[key]

    def _answer(self, e: _Entry) -> dict:
        ids: dict[int, str] = {}
        rows = []
        for lay, out, inp in zip(self.layers, e.outputs, e.inputs):
            row = {"id": lay["id"], "input_blob": self._blob(e, inp, ids),
                   "output_blob": self._blob(e, out, ids)}
            if out is not None and out.size:
                a = np.abs(out)
                row.update(scale=float(a.max()), min=float(out.min()), max=float(out.max()),
                           layout=encode.layout_for(out.shape[1:]))
            else:
                row.update(scale=0.0, min=0.0, max=0.0, layout=None)
            rows.append(row)
        label = e.label
        return {"id": e.id, "label": int(label) if label is not None and np.isscalar(label)
                else None, "label_name": self._label_name(label),
                "output_blob": self._blob(e, e.output, ids),
                "prediction": self._prediction(e), "layers": rows,
                "notes": self._notes.get(e.id, [])}

    def _prediction(self, e: _Entry):
        out = e.output
        if out is None:
            return None
        if self.task == "classify" and out.ndim == 2:
            logits = out[0].astype(np.float64)
            probs = _softmax(logits)
            order = np.argsort(-probs, kind="stable")[:5]
            return {"logits": [float(v) for v in logits], "probs": [float(p) for p in probs],
                    "top": [{"index": int(i), "name": self.class_names[i] if i < len(
                        self.class_names) else str(i), "prob": float(probs[i])} for i in order]}
        if self.task == "segment" and out.ndim == 4:
            mask = out[0].argmax(axis=0)
            k = out.shape[1]
            frac = np.bincount(mask.ravel(), minlength=k) / mask.size
            acc = None
            if e.label is not None and np.ndim(e.label) == 2 and np.shape(e.label) == mask.shape:
                acc = float((np.asarray(e.label) == mask).mean())
            return {"mask": f"/api/mask/{e.id}.png", "class_fraction": [float(f) for f in frac],
                    "pixel_accuracy": acc}
        return None

    def forward(self, input_id: str) -> dict:
        return self._entry(input_id).answer

    def mask_png(self, input_id: str) -> bytes:
        e = self._entry(input_id)
        if self.task != "segment" or e.output is None or e.output.ndim != 4:
            raise ApiError(404, "mask: this model does not segment")
        mask = e.output[0].argmax(axis=0)
        return encode.png_bytes(PALETTE[mask % len(PALETTE)])

    def _layer(self, layer_id) -> dict:
        try:
            i = int(layer_id)
        except (TypeError, ValueError):
            raise ApiError(400, f"bad layer id {layer_id!r}") from None
        if not 0 <= i < len(self.layers):
            raise ApiError(404, f"layer {i} does not exist ({len(self.layers)} layers)")
        return self.layers[i]

    def maps_png(self, input_id: str, layer_id) -> bytes:
        """The sprite of every channel of one layer's output for one input."""
        lay = self._layer(layer_id)
        e = self._entry(input_id)
        png = e.maps.get(lay["id"])
        if png is None:
            out = e.outputs[lay["id"]]
            row = e.answer["layers"][lay["id"]]
            if out is None or row["layout"] is None:
                raise ApiError(404, f"layer {lay['name']} has no tensor output")
            png = encode.sprite_png(out[0], row["layout"], row["scale"], 6 if self.static else 1)
            e.maps[lay["id"]] = png
        return png

    def blob(self, sha: str) -> bytes:
        with self.lock:
            entries = list(self._cache.values())
        for e in entries:
            arr = e.blobs.get(sha)
            if arr is not None:
                return encode.encode_blob(arr)
        raise ApiError(404, f"blob {sha} is not cached any more (reload the input)")

    def param(self, layer_id, name: str) -> bytes:
        lay = self._layer(layer_id)
        if name not in lay["param_names"]:
            raise ApiError(404, f"layer {lay['name']} has no parameter {name!r} (it has "
                                f"{', '.join(lay['param_names']) or 'none'})")
        m = self.modules[lay["id"]]
        t = m._parameters.get(name) if name in m._parameters else m._buffers.get(name)
        return encode.encode_blob(t._data)

    # ---------------------------------------------------------------------- Grad-CAM
    def gradcam_layers(self) -> dict:
        """Layers Grad-CAM can use: spatial outputs larger than 1x1, each tensor once (a
        container and its last child return the same one: the first, the container, is kept).
        The static export keeps the top two levels (depth <= 1) and the default."""
        ids = []
        for lay in self.layers:
            shape = lay["output_shape"]
            if lay["rf"] is None or shape is None or len(shape) != 3 or shape[1] * shape[2] < 2:
                continue
            if lay.get("same_output_as") is not None:
                first = self.layers[lay["same_output_as"]]
                if first["id"] in ids:
                    continue
            ids.append(lay["id"])
        conv = [i for i in ids if self.layers[i]["explain"] == "conv"]
        default = conv[-1] if conv else (ids[-1] if ids else None)
        if self.static:
            ids = [i for i in ids if self.layers[i]["depth"] <= 1 or i == default]
        return {"layers": ids, "default": default}

    def gradcam(self, input_id: str, layer_id, cls) -> np.ndarray:
        """Grad-CAM ``(H, W)`` in [0, 1] of class ``cls`` at one layer call: the ReLU of the
        activations weighted by their spatially averaged gradients, each unit placed at the
        centre of its receptive field. Segmentation: the target is the sum of class ``cls``'s
        logits over all pixels."""
        return self.gradcam_many(input_id, [layer_id], cls)[int(layer_id)]

    def gradcam_many(self, input_id: str, layer_ids, cls) -> dict:
        """:meth:`gradcam` of several layers from one forward and backward pass."""
        from ..analysis.gradcam import field_aligned_upsample, normalize_maps

        lays = [self._layer(i) for i in layer_ids]
        for lay in lays:
            if lay["rf"] is None or lay["output_shape"] is None or len(lay["output_shape"]) != 3:
                raise ApiError(400, f"gradcam: layer {lay['name']} (output "
                                    f"{lay['output_shape']}) is not spatial; pick a conv layer")
        try:
            k = int(cls)
        except (TypeError, ValueError):
            raise ApiError(400, f"gradcam: bad class {cls!r}") from None
        if not 0 <= k < max(len(self.class_names), 1):
            raise ApiError(400, f"gradcam: class {k} out of range (0..{len(self.class_names) - 1})")
        x, _ = self._resolve(input_id)
        # the k-th call of each module is the layer's; a hook per module counts its calls
        wanted: dict[int, dict[int, int]] = {}
        for lay in lays:
            m = self.modules[lay["id"]]
            wanted.setdefault(id(m), {})[self.call_no[lay["id"]]] = lay["id"]
        kept: dict[int, Tensor] = {}
        counts: dict[int, int] = {}

        def hook(mod, inputs, output):
            n = counts[id(mod)] = counts.get(id(mod), 0) + 1
            lid = wanted.get(id(mod), {}).get(n)
            if lid is not None:
                out = output[0] if isinstance(output, (tuple, list)) else output
                out.retain_grad()
                kept[lid] = out

        with self.lock:
            old = [(p, p.grad) for p in self.model.parameters()]
            mods = {id(self.modules[lay["id"]]): self.modules[lay["id"]] for lay in lays}
            handles = [m.register_forward_hook(hook) for m in mods.values()]
            try:
                xt = Tensor._make(x[None].astype(self.dtype, copy=False))
                xt.requires_grad = True  # gradients flow even through frozen weights
                with enable_grad():
                    scores = _first_tensor(self.model(xt))
                    if scores.ndim not in (2, 4):
                        raise ApiError(400, f"gradcam: output shape {tuple(scores.shape)} has "
                                            "no class axis")
                    cot = np.zeros(scores.shape, dtype=scores.dtype)
                    cot[:, k] = 1  # one-hot, or every pixel of class k (segmentation)
                    scores.backward(cot)
            finally:
                for h in handles:
                    h.remove()
                for p, g in old:
                    p.grad = g
        result = {}
        for lay in lays:
            act = kept.get(lay["id"])
            if act is None:
                raise ApiError(400, f"gradcam: layer {lay['name']} did not run")
            a = act._data[0].astype(np.float64)
            g = act.grad._data[0] if act.grad is not None else np.zeros_like(a)
            cam = np.maximum((g.mean(axis=(1, 2))[:, None, None] * a).sum(axis=0), 0)
            rf = lay["rf"]
            up = field_aligned_upsample(cam[None], x.shape[1:], rf["start"], rf["jump"])
            result[lay["id"]] = normalize_maps(up)[0]
        return result

    def gradcam_overlay(self, input_id: str, cam: np.ndarray) -> bytes:
        """A ``[0, 1]`` map in jet colours blended over the input, >= 224 px on its long side."""
        from PIL import Image

        x, _ = self._resolve(input_id)
        img = encode.image_uint8(x, self.source.mean, self.source.std)
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        blend = 0.5 * img.astype(np.float32) + 0.5 * encode.jet_rgb(cam).astype(np.float32)
        im = Image.fromarray((blend + 0.5).astype(np.uint8), "RGB")
        f = max(1, math.ceil(224 / max(im.size)))
        if f > 1:  # whole pixels, as the maps show them (and repeated pixels compress well)
            im = im.resize((im.size[0] * f, im.size[1] * f), Image.NEAREST)
        return encode.png_bytes(np.asarray(im), level=6 if self.static else 1)

    def gradcam_png(self, input_id: str, layer_id, cls) -> bytes:
        """The Grad-CAM overlay PNG of one layer and class (see :meth:`gradcam_overlay`)."""
        return self.gradcam_overlay(input_id, self.gradcam(input_id, layer_id, cls))

    # ----------------------------------------------------------------------- filters
    def filters(self, layer_id) -> tuple[bytes, dict]:
        """A conv layer's kernels as a sprite and its description. First-layer RGB kernels are
        colour tiles (``0.5 + 0.5 w / scale`` per channel, ``cols`` per row); otherwise row
        ``o``, column ``i`` is the kernel from input channel ``i`` to output ``o`` (at most 64
        outputs and 16 inputs shown), diverging colours. Tiles are ``kh x kw``, no gaps."""
        lay = self._layer(layer_id)
        w = getattr(self.modules[lay["id"]], "weight", None)
        if lay["explain"] != "conv" or not isinstance(w, Tensor) or w.ndim != 4:
            raise ApiError(400, f"filters: layer {lay['name']} ({lay['kind']}) is not a "
                                "convolution")
        w = w._data.astype(np.float32)
        o, i, kh, kw = w.shape
        scale = float(np.abs(w).max()) or 1.0
        rgb = i == 3 and lay["input_from"] == -1
        out_shown = min(o, 64)
        if rgb:
            cols = max(1, math.ceil(math.sqrt(out_shown)))
            rows = math.ceil(out_shown / cols)
            tiles = np.ones((rows * cols, kh, kw, 3), dtype=np.float32)
            tiles[:out_shown] = 0.5 + 0.5 * w[:out_shown].transpose(0, 2, 3, 1) / scale
            pix = tiles.reshape(rows, cols, kh, kw, 3).transpose(0, 2, 1, 3, 4)
            pix = (np.clip(pix.reshape(rows * kh, cols * kw, 3), 0, 1) * 255 + 0.5)
            png = encode.png_bytes(pix.astype(np.uint8))
            in_shown = 3
        else:
            in_shown = min(i, 16)
            rows, cols = out_shown, in_shown
            plane = w[:out_shown, :in_shown].transpose(0, 2, 1, 3).reshape(rows * kh, cols * kw)
            png = encode.png_bytes(encode.diverging_rgb(plane, scale))
        return png, {"out_channels": o, "out_shown": out_shown, "in_channels": i,
                     "in_shown": in_shown, "kh": kh, "kw": kw, "cols": cols, "rows": rows,
                     "scale": scale, "rgb": rgb}

    # ----------------------------------------------------------------------- curves
    def curves(self) -> dict:
        m = getattr(self.source, "metrics", None) or {}
        hist = m.get("history")
        if not hist:
            raise ApiError(404, "curves: no training history (metrics.json) for this model")
        best = m.get("best_epoch")
        if best is None:
            key = next((k for k in ("val_accuracy", "val_loss") if any(
                h.get(k) is not None for h in hist)), None)
            if key is not None:
                vals = [(h.get(key), h.get("epoch", n + 1)) for n, h in enumerate(hist)
                        if h.get(key) is not None]
                best = (max if key == "val_accuracy" else min)(vals)[1]
        return {"history": hist, "test_accuracy": m.get("test_accuracy"), "best_epoch": best}

    # --------------------------------------------------------------------- confusion
    def start_confusion(self):
        with self._confusion_lock:
            if self._confusion is None and self.has_confusion:
                self._confusion = _Confusion(self)
                self._confusion.start()
            return self._confusion

    def confusion(self, wait: bool = False) -> dict:
        job = self.start_confusion()
        if job is None:
            raise ApiError(404, "confusion: no labelled test set for this model")
        if wait:
            job.thread.join()
        return job.summary()

    def confusion_cell(self, true: int, pred: int, limit: int = 24) -> dict:
        job = self.start_confusion()
        if job is None:
            raise ApiError(404, "confusion: no labelled test set for this model")
        return job.cell(int(true), int(pred), int(limit))

    # --------------------------------------------------------------------- invariance
    def invariance(self, input_id: str, dx: int, dy: int) -> dict:
        """How much each layer's output changes when the input moves ``(dx, dy)`` pixels:
        ``invariance = ||b - a|| / ||a||``; ``equivariance`` the same after moving ``a``'s map
        by ``(dx, dy) / jump`` units, when whole, compared where both maps are defined."""
        sid = shift_id(input_id, int(dx), int(dy))
        a, b = self._entry(input_id), self._entry(sid)
        rows = []
        for lay, oa, ob in zip(self.layers, a.outputs, b.outputs):
            inv = eqv = None
            if oa is not None and ob is not None and oa.shape == ob.shape:
                na = float(np.linalg.norm(oa))
                inv = float(np.linalg.norm(ob - oa) / (na if na > 0 else 1.0))
                rf = lay["rf"]
                if rf is not None and oa.ndim == 4:
                    jy, jx = rf["jump"]
                    if float(dy / jy).is_integer() and float(dx / jx).is_integer():
                        eqv = _shifted_error(oa, ob, int(dy / jy), int(dx / jx), rf,
                                             a.x.shape[1:], (dy, dx))
            rows.append({"id": lay["id"], "invariance": inv, "equivariance": eqv})
        return {"shift_id": sid, "layers": rows}


def _shifted_error(a: np.ndarray, b: np.ndarray, uy: int, ux: int, rf: dict, size: tuple,
                   shift: tuple):
    """``||b - shift(a)|| / ||shift(a)||`` (a moved ``uy, ux`` units down/right), over the
    units of ``b`` whose receptive field stays clear of the image border and of the strip the
    shift uncovered (their values do not depend on padding); ``None`` if no unit is left."""
    sl_a, sl_b = [], []
    for axis, (u, n_in, d) in enumerate(zip((uy, ux), size, shift)):
        n = a.shape[2 + axis]
        r, j, st = rf["size"][axis], rf["jump"][axis], rf["start"][axis]
        centre = st + j * np.arange(n)
        ok = (centre - (r - 1) / 2 >= abs(d)) & (centre + (r - 1) / 2 <= n_in - 1 - abs(d))
        src = np.arange(n) - u  # unit of a that b's unit should equal
        ok &= (src >= 0) & (src < n)
        idx = np.nonzero(ok)[0]
        if idx.size == 0:
            return None
        sl_b.append(idx)
        sl_a.append(src[idx])
    sb = b[:, :, sl_b[0][:, None], sl_b[1][None, :]]
    sa = a[:, :, sl_a[0][:, None], sl_a[1][None, :]]
    n = float(np.linalg.norm(sa))
    return float(np.linalg.norm(sb - sa) / (n if n > 0 else 1.0))


class _Confusion:
    """Predictions on the test set (at most :data:`CONFUSION_CAP` images) in a background
    thread, in batches under the session lock so requests interleave with it."""

    def __init__(self, session: Session):
        self.s = session
        self.total = min(len(session.source), CONFUSION_CAP)
        self.done = 0
        k = len(session.class_names)
        self.k = k
        self.matrix = np.zeros((k, k), dtype=np.int64)
        self.labels = np.full(self.total, -1, dtype=np.int64)
        self.pred = np.full(self.total, -1, dtype=np.int64)
        self.prob = np.zeros(self.total, dtype=np.float64)
        self.cells = np.zeros((self.total, k, k), dtype=np.int32) \
            if session.task == "segment" else None
        self.error = None
        self.thread = threading.Thread(target=self._run, name="convnet-explore-confusion",
                                       daemon=True)

    def start(self):
        self.thread.start()

    def _run(self):
        try:
            batch = 32
            for lo in range(0, self.total, batch):
                hi = min(lo + batch, self.total)
                items = [self.s.source.get(i) for i in range(lo, hi)]
                xb = np.stack([x for x, _ in items]).astype(self.s.dtype, copy=False)
                with self.s.lock, no_grad():
                    out = _first_tensor(self.s.model(Tensor._make(xb)))._data
                for j, (_, y) in enumerate(items):
                    i = lo + j
                    if self.cells is not None:
                        pm = out[j].argmax(axis=0)
                        t = np.asarray(y).astype(np.int64)
                        ok = (t >= 0) & (t < self.k)
                        c = np.bincount(t[ok] * self.k + pm[ok], minlength=self.k * self.k)
                        self.cells[i] = c.reshape(self.k, self.k)
                        self.matrix += self.cells[i]
                    else:
                        p = _softmax(out[j])
                        self.labels[i], self.pred[i] = int(y), int(p.argmax())
                        self.prob[i] = float(p.max())
                        if 0 <= self.labels[i] < self.k:
                            self.matrix[self.labels[i], self.pred[i]] += 1
                self.done = hi
                time.sleep(0)  # let request threads take the lock between batches
        except Exception as e:  # shown by the UI instead of a silent stall
            self.error = f"{type(e).__name__}: {e}"

    def summary(self) -> dict:
        ready = self.done >= self.total or self.error is not None
        n = len(self.s.source)
        m = self.matrix
        acc = float(np.trace(m) / m.sum()) if ready and m.sum() else None
        note = f"recomputed with the loaded weights on {self.total} test " + \
               ("images" if self.cells is None else "images, pixel by pixel")
        if n > self.total:
            note += f" (the first {self.total} of {n})"
        if self.error:
            note = f"stopped after {self.done} images: {self.error}"
        return {"status": "ready" if ready else "computing", "done": self.done,
                "total": self.total, "matrix": m.tolist() if ready else None,
                "class_names": self.s.class_names, "accuracy": acc, "note": note}

    def cell(self, t: int, p: int, limit: int) -> dict:
        if not (0 <= t < self.k and 0 <= p < self.k):
            raise ApiError(400, f"confusion: classes must be in 0..{self.k - 1}")
        if self.done < self.total and self.error is None:
            return {"status": "computing", "items": []}
        n = self.done
        if self.cells is not None:
            score = self.cells[:n, t, p].astype(np.float64)
            idx = np.nonzero(score > 0)[0]
            order = idx[np.argsort(-score[idx], kind="stable")]
            prob = {int(i): float(score[i] / max(self.cells[i, t].sum(), 1)) for i in order}
        else:
            idx = np.nonzero((self.labels[:n] == t) & (self.pred[:n] == p))[0]
            order = idx[np.argsort(-self.prob[idx], kind="stable")]
            prob = {int(i): float(self.prob[i]) for i in order}
        keep = self.s.static_inputs
        items = []
        for i in order[:max(limit, 0)]:
            iid = f"test-{int(i)}"
            items.append({"id": iid, "thumb": f"/api/input/{iid}.png", "prob_pred": prob[int(i)],
                          "selectable": keep is None or iid in keep})
        return {"status": "ready", "items": items}

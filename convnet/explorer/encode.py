"""How the explorer sends tensors: PNG sprites of feature maps, CNV1 binary blobs, input images.

* Colours: a diverging map, white at 0, towards orange-red (``#c2410c``) at ``+scale`` and
  towards blue (``#1d4ed8``) at ``-scale`` (values beyond ``scale`` saturate); Grad-CAM uses a
  jet-like map of ``[0, 1]``.
* Sprites: the ``(C, H, W)`` output of a layer becomes ``C`` tiles of ``H x W`` pixels, laid out
  row-major with ``cols`` tiles per row and no gaps (see :func:`layout_for`).
* CNV1 blobs: ``b"CNV1"``, a uint32 little-endian header length ``H``, ``H`` bytes of UTF-8 JSON
  ``{"shape": [...], "dtype": "float32"}`` space-padded so the data starts at a multiple of 4
  bytes, then the float32 little-endian values in C order.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import struct

import numpy as np

__all__ = ["diverging_rgb", "jet_rgb", "png_bytes", "layout_for", "sprite_png", "blob_parts",
           "encode_blob", "decode_blob", "blob_sha", "image_uint8"]

WHITE = np.array([255.0, 255.0, 255.0], dtype=np.float32)
POSITIVE = np.array([0xC2, 0x41, 0x0C], dtype=np.float32)  # orange-red, +scale
NEGATIVE = np.array([0x1D, 0x4E, 0xD8], dtype=np.float32)  # blue, -scale


def diverging_rgb(values: np.ndarray, scale: float) -> np.ndarray:
    """``(...)`` values -> ``(..., 3)`` uint8: ``white + |t| * (colour - white)`` with
    ``t = clip(v / scale, -1, 1)`` and colour orange-red for ``t > 0``, blue for ``t < 0``."""
    v = np.asarray(values, dtype=np.float32)
    t = np.clip(v / scale, -1.0, 1.0) if scale > 0 else np.zeros_like(v)
    t = np.nan_to_num(t)[..., None]
    pos = WHITE + np.maximum(t, 0) * (POSITIVE - WHITE)
    rgb = np.where(t >= 0, pos, WHITE + (-t) * (NEGATIVE - WHITE))
    return (rgb + 0.5).astype(np.uint8)


def jet_rgb(values: np.ndarray) -> np.ndarray:
    """``[0, 1]`` -> ``(..., 3)`` uint8 on a jet-like ramp (blue, cyan, yellow, red)."""
    v = np.clip(np.nan_to_num(np.asarray(values, dtype=np.float32)), 0, 1)[..., None]
    # piecewise-linear ramps of the classic jet map: each channel a clipped triangle
    r = np.clip(1.5 - np.abs(4 * v - 3), 0, 1)
    g = np.clip(1.5 - np.abs(4 * v - 2), 0, 1)
    b = np.clip(1.5 - np.abs(4 * v - 1), 0, 1)
    return (np.concatenate([r, g, b], axis=-1) * 255 + 0.5).astype(np.uint8)


def png_bytes(pixels: np.ndarray, level: int = 1) -> bytes:
    """``(H, W)`` grey or ``(H, W, 3)`` RGB uint8 -> PNG bytes (zlib ``level``: fast by default,
    the maps are made per request; the static export packs harder)."""
    from PIL import Image

    a = np.ascontiguousarray(pixels, dtype=np.uint8)
    im = Image.fromarray(a, "L" if a.ndim == 2 else "RGB")
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=level)
    return buf.getvalue()


def layout_for(shape: tuple) -> dict:
    """How the sprite of a layer output of ``shape`` (no batch dim) is tiled.

    ``(C, H, W)`` -> mode ``channels``: C tiles H x W, ``cols = ceil(sqrt(C))`` per row;
    ``(L, D)`` -> mode ``tokens``: one L x D tile; anything else is flattened to ``F`` values,
    mode ``vector``: one tile of ``tile_h = ceil(F / tile_w)`` rows and ``tile_w = min(F, 32)``
    columns, value ``k`` at row ``k // tile_w``, column ``k % tile_w`` (unused cells white).
    ``cols``/``rows`` always count tiles.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) == 3:
        c, h, w = shape
        cols = max(1, math.ceil(math.sqrt(c)))
        return {"mode": "channels", "channels": c, "tile_h": h, "tile_w": w, "cols": cols,
                "rows": max(1, math.ceil(c / cols))}
    if len(shape) == 2:
        return {"mode": "tokens", "channels": 1, "tile_h": shape[0], "tile_w": shape[1],
                "cols": 1, "rows": 1}
    f = int(np.prod(shape)) if shape else 1
    tw = max(1, min(f, 32))
    return {"mode": "vector", "channels": 1, "tile_h": max(1, math.ceil(f / tw)), "tile_w": tw,
            "cols": 1, "rows": 1}


def sprite_png(values: np.ndarray, layout: dict, scale: float, level: int = 1) -> bytes:
    """The RGB PNG sprite of one layer output (no batch dim) tiled as ``layout`` says."""
    th, tw, cols, rows = layout["tile_h"], layout["tile_w"], layout["cols"], layout["rows"]
    if layout["mode"] == "channels":
        c = layout["channels"]
        grid = np.zeros((rows * cols, th, tw), dtype=np.float32)
        grid[:c] = values.reshape(c, th, tw)
        # (rows, cols, th, tw) -> (rows, th, cols, tw): tiles row-major, no gaps
        plane = grid.reshape(rows, cols, th, tw).transpose(0, 2, 1, 3).reshape(rows * th, cols * tw)
    elif layout["mode"] == "tokens":
        plane = values.reshape(th, tw).astype(np.float32)
    else:
        flat = np.zeros(th * tw, dtype=np.float32)
        v = values.reshape(-1)
        flat[:v.size] = v
        plane = flat.reshape(th, tw)
    return png_bytes(diverging_rgb(plane, scale), level)


def blob_parts(array: np.ndarray) -> tuple[bytes, np.ndarray]:
    """(CNV1 header bytes, float32 C-contiguous data) of ``array``; header + data is the blob."""
    data = np.ascontiguousarray(array, dtype="<f4")
    head = json.dumps({"shape": [int(s) for s in data.shape], "dtype": "float32"}).encode()
    pad = (-(8 + len(head))) % 4  # the float32 data must start 4-byte aligned
    head += b" " * pad
    return b"CNV1" + struct.pack("<I", len(head)) + head, data


def blob_sha(array: np.ndarray) -> str:
    """The blob id: sha1 of the CNV1 bytes, hashed without concatenating them."""
    head, data = blob_parts(array)
    h = hashlib.sha1(head)
    h.update(memoryview(data).cast("B"))
    return h.hexdigest()


def encode_blob(array: np.ndarray) -> bytes:
    """``array`` as CNV1 bytes (float32, little-endian, C order)."""
    head, data = blob_parts(array)
    return head + data.tobytes()


def decode_blob(blob: bytes) -> np.ndarray:
    """CNV1 bytes -> float32 array (the inverse of :func:`encode_blob`)."""
    if blob[:4] != b"CNV1":
        raise ValueError("decode_blob: not a CNV1 blob (bad magic)")
    (n,) = struct.unpack("<I", blob[4:8])
    head = json.loads(blob[8:8 + n].decode())
    if head.get("dtype") != "float32":
        raise ValueError(f"decode_blob: dtype {head.get('dtype')!r} is not float32")
    shape = tuple(head["shape"])
    return np.frombuffer(blob, dtype="<f4", offset=8 + n, count=int(np.prod(shape))).reshape(shape)


def image_uint8(x: np.ndarray, mean=None, std=None) -> np.ndarray:
    """A model input ``(C, H, W)`` -> displayable ``(H, W)`` or ``(H, W, 3)`` uint8: undo
    ``(p - mean) / std`` when known; otherwise values in [0, 1] are shown as they are and any
    other range is stretched min..max. More than 3 channels: the first 3 are shown."""
    a = np.asarray(x, dtype=np.float32)
    if mean is not None and std is not None:
        m = np.asarray(mean, dtype=np.float32).reshape(-1, 1, 1)
        s = np.asarray(std, dtype=np.float32).reshape(-1, 1, 1)
        a = a * s + m
    elif a.size and (a.min() < 0 or a.max() > 1):
        lo, hi = float(a.min()), float(a.max())
        a = (a - lo) / (hi - lo if hi > lo else 1.0)
    a = np.clip(a, 0, 1)
    if a.shape[0] == 1:
        return (a[0] * 255 + 0.5).astype(np.uint8)
    if a.shape[0] == 2:
        a = np.concatenate([a, a[:1]], axis=0)
    return (a[:3].transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8)

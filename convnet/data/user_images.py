"""A user's image file -> the pixels a trained model expects (``convnet predict``, ``explain``).

Images made by people are rarely framed like a dataset: drawing apps export black strokes on a
transparent background, a photo of a sheet is a grey, unevenly lit page with the digit somewhere
in it, a small digit sits on a large canvas. :func:`prepare_image` undoes that, in three styles:

- ``'digits'`` (MNIST runs), LeCun's MNIST procedure: find the ink, crop its bounding box, scale
  the longer side to 20 px keeping the aspect ratio, paste it in 28x28 so that its centre of
  mass lands on pixel (14, 14) (the bundled test digits: mean centre of mass (13.99, 14.00));
- ``'fashion'`` (Fashion-MNIST runs), Zalando's procedure: trim the background, scale the
  longer side to 28 px, centre the box;
- ``'resize'`` (every other run), torchvision's ``Resize(size)`` + ``CenterCrop(size)``: the
  shorter side becomes ``size``, the middle is kept (the aspect ratio is never changed).

Sizes scale with the model's: the digit box is ``round(20 * size / 28)``.

Finding the ink (``'digits'``, ``'fashion'``): transparency is composited onto white first
(:func:`read_image`). The image is inverted when its ink is darker than its background (MNIST
is light on dark); the background level is the median of the border. A quadratic surface fitted
to the background pixels is subtracted (uneven lighting of a photographed sheet), the noise
level ``sigma`` is the median absolute deviation of the remaining background, and ink is what
stands above ``max(0.4 * ink level, 5 * sigma)``, after a 3x3 mean filter. Connected pieces
smaller than 10% of the largest are specks and are ignored (JPEG noise, dust). The ink's grey
levels are stretched so the background is 0 and the stroke 1, as in MNIST.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["read_image", "prepare_image", "Prepared", "STYLES", "style_for_dataset"]

STYLES = ("digits", "fashion", "resize")
_DATASET_STYLE = {"mnist-bundled": "digits", "mnist": "digits", "fashion-mnist": "fashion"}
WORK_SIDE = 1024  # larger images are reduced to this longer side before the ink is searched
SPECK = 0.1  # ink pieces smaller than this fraction of the largest piece are ignored


def style_for_dataset(name: str) -> str:
    """The preparation matching how a dataset's images were made (``'resize'`` if unknown)."""
    return _DATASET_STYLE.get(name, "resize")


def read_image(path: str | os.PathLike, mode: str = "RGB"):
    """Open an image file as a Pillow image in ``mode`` ('L' or 'RGB').

    The EXIF orientation of photos is applied, transparency (RGBA, LA, palette or tRNS) is
    composited onto white, and 16-bit greys are scaled to 8 bits. Raises FileNotFoundError
    or ValueError, each naming the file.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        what = "a folder, not an image file" if path.is_dir() else "no such file"
        raise FileNotFoundError(f"{path}: {what}")
    try:
        with Image.open(path) as im:
            im.load()
            im = ImageOps.exif_transpose(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"{path}: not a readable image ({e})") from None
    if im.mode in ("I;16", "I;16B", "I;16L", "I") or (im.mode == "F"):
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or a.max() > 255 else 255.0
        im = Image.fromarray(np.clip(a * (255.0 / top) + 0.5, 0, 255).astype(np.uint8))
    if im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, rgba)
    return im.convert(mode)


@dataclass
class Prepared:
    """What :func:`prepare_image` produced and what it did.

    Attributes:
        pixels: ``(C, size, size)`` float32 in ``[0, 1]``, before the run's normalisation.
        inverted: colours were inverted (dark ink on a light background).
        cropped: the ink's box (or the centre) was cut out of a larger image.
        scale: model pixels per pixel of the file (0.1: a 200-px digit became 20 px).
        box: ``(left, top, right, bottom)`` of the part used, in the file's pixels.
        source_size: ``(H, W)`` of the file.
        notes: what a user should know (no ink found, a tiny image enlarged a lot).
    """

    pixels: np.ndarray
    inverted: bool
    cropped: bool
    scale: float
    box: tuple[int, int, int, int]
    source_size: tuple[int, int]
    notes: list[str] = field(default_factory=list)

    def facts(self) -> dict:
        """JSON-ready summary (``inverted``, ``cropped``, ``scale``, ``box``, ``source_size``)."""
        return {"inverted": self.inverted, "cropped": self.cropped,
                "scale": round(float(self.scale), 4), "box": list(self.box),
                "source_size": list(self.source_size)}


def prepare_image(path: str | os.PathLike, size: int, channels: int, style: str = "resize",
                  invert: str = "auto", max_upscale: float = 4.0) -> Prepared:
    """Read ``path`` and frame it as the model's training images (see the module docstring).

    Args:
        size: the model's input side (28 for MNIST).
        channels: 1 (grey) or 3 (RGB).
        style: ``'digits'``, ``'fashion'`` or ``'resize'``.
        invert: ``'auto'`` (for ``'digits'``/``'fashion'``: when the ink is darker than the
            background), ``'yes'`` or ``'no'``.
        max_upscale: enlargements beyond this factor add a note (the input will be blurry).
    """
    if style not in STYLES:
        raise ValueError(f"style must be one of {', '.join(STYLES)}, got {style!r}")
    if invert not in ("auto", "yes", "no"):
        raise ValueError(f"invert must be 'auto', 'yes' or 'no', got {invert!r}")
    im = read_image(path, "L" if channels == 1 or style != "resize" else "RGB")
    if style == "resize":
        p = _resize_crop(im, size, invert == "yes")
    else:
        p = _ink_frame(im, size, style, invert)
        if channels == 3:  # a colour model on a grey style: repeat the plane
            p.pixels = np.repeat(p.pixels, 3, axis=0)
    if p.scale > max_upscale:
        left, top, right, bottom = p.box
        p.notes.append(f"{'the ink' if p.cropped and style != 'resize' else 'the image'} is only "
                       f"{right - left}x{bottom - top} px, enlarged {p.scale:.1f}x to the model's "
                       f"{size}x{size}: expect a blurry input")
    return p


def resize_center_crop(im, size: int):
    """torchvision ``Resize(size)`` (shorter side to ``size``, antialiased bilinear) then
    ``CenterCrop(size)``: a Pillow image -> ``(size x size image, scale, (left, top))``, the
    aspect ratio kept. Training (``ImageFolder(size=int)``) and ``predict`` both use it."""
    from PIL import Image

    w, h = im.size
    scale = size / min(h, w)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    im = im.resize((nw, nh), Image.BILINEAR)
    top, left = int(round((nh - size) / 2)), int(round((nw - size) / 2))
    return im.crop((left, top, left + size, top + size)), scale, (left, top)


def _resize_crop(im, size: int, invert: bool) -> Prepared:
    """:func:`resize_center_crop` as a :class:`Prepared` input in [0, 1]."""
    w, h = im.size
    im, scale, (left, top) = resize_center_crop(im, size)
    a = np.asarray(im, dtype=np.float32) / 255
    a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
    if invert:
        a = 1 - a
    box = (int(left / scale), int(top / scale), int(round((left + size) / scale)),
           int(round((top + size) / scale)))
    return Prepared(np.ascontiguousarray(a, dtype=np.float32), invert, h != w, scale,
                    (box[0], box[1], min(box[2], w), min(box[3], h)), (h, w))


def _ink_frame(im, size: int, style: str, invert: str) -> Prepared:
    """MNIST / Fashion-MNIST framing of a grey Pillow image (see the module docstring)."""
    from PIL import Image

    w0, h0 = im.size
    shrink = min(1.0, WORK_SIDE / max(w0, h0))
    if shrink < 1:  # search the ink on a reduced copy: a 12-MP photo needs no more detail
        im = im.resize((max(1, round(w0 * shrink)), max(1, round(h0 * shrink))), Image.BOX)
    v = np.asarray(im, dtype=np.float32) / 255
    vb = _box_mean(v, 1)
    border = _border(vb)
    bg = float(np.median(border))
    if invert == "auto":
        dark, light = bg - float(vb.min()), float(vb.max()) - bg
        # no contrast at all (a blank page): fall back on the border's brightness
        inverted = dark > light if max(dark, light) > 0.05 else bg > 0.5
    else:
        inverted = invert == "yes"
    if inverted:
        v, vb, bg = 1 - v, 1 - vb, 1 - bg
    ink = _find_ink(v, vb, bg, keep_levels=style == "fashion")
    box_side = round(20 * size / 28) if style == "digits" else size
    if ink is None:  # nothing stands out: the whole image, resized into the box
        a, (t, b, lft, r) = np.clip(v, 0, 1), (0, v.shape[0], 0, v.shape[1])
        notes = ["no ink found: the whole image was used"]
    else:
        a, (t, b, lft, r) = ink
        notes = []
    crop = a[t:b, lft:r]
    ch, cw = crop.shape
    f = box_side / max(ch, cw)
    nh, nw = max(1, round(ch * f)), max(1, round(cw * f))
    patch = np.asarray(Image.fromarray(crop.astype(np.float32), "F").resize((nw, nh), Image.BILINEAR))
    patch = np.clip(patch, 0, 1)
    if style == "digits" and ink is not None and patch.max() > 0:
        patch /= patch.max()  # the stroke's core at 1: MNIST's digits all reach 255
    out = np.zeros((size, size), np.float32)
    if style == "digits" and patch.sum() > 0:  # centre of mass on pixel (size/2, size/2)
        ys, xs = np.indices(patch.shape)
        cy, cx = (patch * ys).sum() / patch.sum(), (patch * xs).sum() / patch.sum()
        oy, ox = int(round(size / 2 - cy)), int(round(size / 2 - cx))
    else:  # the box in the middle
        oy, ox = (size - nh) // 2, (size - nw) // 2
    _paste(out, patch, oy, ox)
    box = (int(lft / shrink), int(t / shrink), int(round(r / shrink)), int(round(b / shrink)))
    cropped = (b - t, r - lft) != v.shape
    return Prepared(out[None], inverted, cropped, f * shrink, box, (h0, w0), notes)


def _find_ink(v: np.ndarray, vb: np.ndarray, bg: float, keep_levels: bool = False):
    """Ink map in [0, 1] (zero off the ink) and its box (top, bottom, left, right), or None.

    ``v`` is the image with light ink, ``vb`` its 3x3 mean, ``bg`` the border's median.
    The ink's levels are stretched so its core is 1 (pen strokes), or with ``keep_levels``
    only shifted so the background is 0 (a garment's shading and pattern stay).
    """
    peak0 = float(vb.max()) - bg
    if peak0 < 0.05:
        return None
    below = vb < bg + 0.5 * peak0
    surface, bgmask = np.float32(np.median(vb[below])), below
    if below.mean() > 0.5:  # enough paper to fit its lighting
        for _ in range(3):  # keep the pixels near the current surface (not faint ink), refit
            r = vb - surface
            near_surface = below & (np.abs(r) < max(3 * _mad(r[below]), 2 / 255))
            if near_surface.mean() < 0.25:
                break
            bgmask, surface = near_surface, _fit_background(vb, near_surface)
    r = vb - surface
    sigma = _mad(r[bgmask])
    cand = r > max(5 * sigma, 0.05)
    if not cand.any():
        return None
    level = float(np.median(r[cand]))
    if level < max(6 * sigma, 0.08):
        return None
    core = r > max(0.4 * level, 5 * sigma)
    keep = _drop_specks(core)
    if not keep.any():
        return None
    # soft ink: background 0, the stroke's core 1, sharp (unfiltered) edges
    rs = v - surface
    lo = max(0.02, 2 * _mad(rs[bgmask]))  # below: background (2%, or twice the noise)
    # the stroke's level: median of its pixels above 40% of its peak (MNIST: 0.98, so a clean
    # digit keeps its greys; a photo's grey ink is brought to MNIST's white)
    rk = rs[keep]
    hi = max(float(np.median(rk[rk > 0.4 * np.quantile(rk, 0.99)])), lo + 0.05)
    rows, cols = np.nonzero(keep.any(1))[0], np.nonzero(keep.any(0))[0]
    # keep the soft edges next to the ink: dilate by one model pixel (1/20 of the box)
    rad = max(1, round(max(rows[-1] - rows[0], cols[-1] - cols[0]) / 20))
    near = _box_mean(keep.astype(np.float32), rad) > 0
    top = max(1 - bg, lo + 0.05) if keep_levels else hi
    a = np.clip((rs - lo) / (top - lo), 0, 1) * near
    nz = a > 0
    rows, cols = np.nonzero(nz.any(1))[0], np.nonzero(nz.any(0))[0]
    return a, (int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)


def _mad(x: np.ndarray) -> float:
    """Noise level: 1.4826 x median absolute deviation (the std of Gaussian noise); 0 if empty."""
    return 1.4826 * float(np.median(np.abs(x - np.median(x)))) if x.size else 0.0


def _fit_background(img: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Least-squares quadratic surface ``c0 + c1 y + c2 x + c3 y^2 + c4 xy + c5 x^2`` through
    the pixels of ``mask`` (at most ~20k of them), evaluated everywhere."""
    h, w = img.shape
    ys, xs = np.nonzero(mask)
    step = max(1, ys.size // 20000)
    ys, xs = ys[::step], xs[::step]

    def terms(y, x):
        y, x = y / max(h, 1) - 0.5, x / max(w, 1) - 0.5
        return np.stack([np.ones_like(y), y, x, y * y, x * y, x * x], axis=-1)

    coef, *_ = np.linalg.lstsq(terms(ys.astype(np.float64), xs.astype(np.float64)),
                               img[ys, xs].astype(np.float64), rcond=None)
    gy, gx = np.mgrid[0:h, 0:w]
    return (terms(gy.astype(np.float64), gx.astype(np.float64)) @ coef).astype(np.float32)


def _drop_specks(mask: np.ndarray) -> np.ndarray:
    """``mask`` without its 8-connected pieces smaller than ``SPECK`` times the largest."""
    labels, areas = _label(mask)
    if not areas.size:
        return mask
    big = np.concatenate([[False], areas >= SPECK * areas.max()])
    return big[labels]


def _label(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """8-connected components: labels ``(H, W)`` (0 = off, 1..n) and the areas ``(n,)``.

    Works on horizontal runs: a run joins every run of the row above that it touches,
    diagonals included, through a union-find over run indices.
    """
    h, w = mask.shape
    d = np.diff(np.pad(mask.astype(np.int8), ((0, 0), (1, 1))), axis=1)
    starts, ends = np.argwhere(d == 1), np.argwhere(d == -1)  # row-major, ends exclusive
    n = len(starts)
    labels = np.zeros((h, w), np.int32)
    if n == 0:
        return labels, np.zeros(0, np.int64)
    row, s, e = starts[:, 0], starts[:, 1], ends[:, 1]
    parent = list(range(n))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first = np.searchsorted(row, np.arange(h + 1))  # runs of row y: first[y]:first[y+1]
    for y in range(1, h):
        a0, a1, b0, b1 = first[y - 1], first[y], first[y], first[y + 1]
        i, j = a0, b0
        while i < a1 and j < b1:  # sweep both rows' runs left to right
            if s[i] <= e[j] and s[j] <= e[i]:  # overlap with one column of slack: 8-connected
                ri, rj = find(i), find(j)
                if ri != rj:
                    parent[max(ri, rj)] = min(ri, rj)
            if e[i] < e[j]:
                i += 1
            else:
                j += 1
    roots = np.array([find(i) for i in range(n)])
    ids, comp = np.unique(roots, return_inverse=True)
    areas = np.bincount(comp, weights=e - s, minlength=len(ids)).astype(np.int64)
    for k in range(n):
        labels[row[k], s[k]:e[k]] = comp[k] + 1
    return labels, areas


def _box_mean(a: np.ndarray, r: int) -> np.ndarray:
    """Mean over the ``(2r+1) x (2r+1)`` window around each pixel (edges replicated)."""
    k = 2 * r + 1
    p = np.pad(a.astype(np.float64), r, mode="edge")
    c = np.pad(p.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    s = c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]
    return (s / (k * k)).astype(np.float32)


def _border(a: np.ndarray) -> np.ndarray:
    """Pixels of the outer band (2% of each side, at least 1 pixel)."""
    h, w = a.shape
    by, bx = max(1, h // 50), max(1, w // 50)
    return np.concatenate([a[:by].ravel(), a[-by:].ravel(), a[:, :bx].ravel(), a[:, -bx:].ravel()])


def _paste(out: np.ndarray, patch: np.ndarray, oy: int, ox: int) -> None:
    """Add ``patch`` into ``out`` with its top-left corner at (oy, ox), clipped to ``out``."""
    h, w = out.shape
    ph, pw = patch.shape
    y0, x0 = max(0, oy), max(0, ox)
    y1, x1 = min(h, oy + ph), min(w, ox + pw)
    if y1 > y0 and x1 > x0:
        out[y0:y1, x0:x1] = patch[y0 - oy:y1 - oy, x0 - ox:x1 - ox]

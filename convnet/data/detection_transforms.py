"""Transforms for detection: each takes ``(image, target)`` and returns ``(image, target)``,
moving the boxes (and masks) with the pixels.

``image`` is a Tensor or array ``(C, H, W)`` or a PIL image (given back as the same kind);
``target`` a dict as :class:`~convnet.data.datasets.MNISTDetection` gives: ``boxes``
``(K, 4)`` xyxy pixel edges (``x2`` exclusive), ``labels`` ``(K,)`` and optionally ``area``
(recomputed from the new boxes), ``iscrowd``, ``masks`` ``(K, H, W)``; every per-object
entry is filtered with the boxes when a crop drops some. The input target is never modified
(a new dict comes back). Boxes come back in the type they came in (Tensor or array).

Randomness is drawn from :func:`convnet.data.transforms.current_rng`, as the image
transforms: per batch inside a :class:`~convnet.data.DataLoader` (reproducible), convnet's
global generator elsewhere (``cn.manual_seed``).

Digits are not flip-invariant (a mirrored 2 is not a 2 and looks like no digit), so the
pipelines for :class:`~convnet.data.datasets.MNISTDetection` should leave
:class:`RandomHorizontalFlip` out; scale and crop augmentations are safe.
"""
from __future__ import annotations

import math
import numbers
from typing import Callable, Sequence

import numpy as np

from ..tensor import Tensor
from . import transforms as T
from .transforms import current_rng

__all__ = ["Compose", "ToTensor", "Normalize", "RandomHorizontalFlip", "Resize", "RandomScale",
           "RandomCrop", "RandomIoUCrop"]

_PER_OBJECT = ("labels", "area", "iscrowd", "masks", "scores")


# ----------------------------------------------------------------------------- helpers
def _image_array(image, name: str) -> tuple[np.ndarray, str]:
    """``(C, H, W)`` array view of ``image`` and its kind ('tensor', 'array', 'pil')."""
    if isinstance(image, Tensor):
        arr, kind = image._data, "tensor"
    elif isinstance(image, np.ndarray):
        arr, kind = image, "array"
    elif T._is_pil(image):
        arr, kind = T._pil_to_chw(image), "pil"
    else:
        raise TypeError(f"{name}: image must be a Tensor, ndarray (C, H, W) or PIL image, got "
                        f"{type(image).__name__}")
    if arr.ndim != 3:
        raise ValueError(f"{name}: expected an image (C, H, W), got shape {arr.shape}")
    return arr, kind


def _image_back(arr: np.ndarray, kind: str, like):
    if kind == "tensor":
        return Tensor._make(arr)
    if kind == "pil":
        return T._chw_to_pil(arr, like)
    return arr


def _boxes(target, name: str) -> np.ndarray:
    if not isinstance(target, dict) or "boxes" not in target:
        raise TypeError(f"{name}: target must be a dict with 'boxes' (K, 4), got "
                        f"{type(target).__name__}")
    b = target["boxes"]
    b = b._data if isinstance(b, Tensor) else np.asarray(b, dtype=np.float32)
    if b.size == 0:
        b = b.reshape(0, 4)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"{name}: target['boxes'] must be (K, 4) xyxy, got shape {b.shape}")
    return b


def _like(value, arr: np.ndarray):
    """``arr`` as the same kind (Tensor or array) as ``value``."""
    return Tensor._make(np.ascontiguousarray(arr)) if isinstance(value, Tensor) else arr


def _raw(v) -> np.ndarray:
    return v._data if isinstance(v, Tensor) else np.asarray(v)


def _new_target(target: dict, boxes: np.ndarray, keep: np.ndarray | None = None,
                masks: np.ndarray | None = None) -> dict:
    """A copy of ``target`` with new ``boxes``, per-object entries filtered by ``keep``
    (boolean mask over the old objects), ``masks`` replaced and ``area`` recomputed."""
    out = dict(target)
    n_old = len(_boxes(target, "target"))
    for key in _PER_OBJECT:
        if key in out and key != "masks" and keep is not None:
            v = _raw(out[key])
            if v.ndim >= 1 and v.shape[0] == n_old:
                out[key] = _like(out[key], v[keep])
    if "masks" in out:
        m = masks if masks is not None else _raw(out["masks"])
        if keep is not None and masks is None:
            m = m[keep]
        out["masks"] = _like(target["masks"], m)
    old = target["boxes"]
    boxes = boxes.astype(_raw(old).dtype if _raw(old).dtype.kind == "f" else np.float32,
                         copy=False)
    out["boxes"] = _like(old, boxes)
    if "area" in out:
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        out["area"] = _like(target["area"], area.astype(_raw(target["area"]).dtype, copy=False))
    return out


def _crop(image, target, top: int, left: int, h: int, w: int, min_visibility: float,
          centre_rule: bool, name: str):
    """Cut ``image[:, top:top+h, left:left+w]`` (zero outside the image), shift and clip the
    boxes; keep a box when its centre lies inside (``centre_rule``) or when at least
    ``min_visibility`` of its area stays visible, and only if the clipped box is not empty."""
    arr, kind = _image_array(image, name)
    C, H, W = arr.shape
    out = np.zeros((C, h, w), arr.dtype)
    t0, l0, t1, l1 = max(top, 0), max(left, 0), min(top + h, H), min(left + w, W)
    if t1 > t0 and l1 > l0:
        out[:, t0 - top:t1 - top, l0 - left:l1 - left] = arr[:, t0:t1, l0:l1]
    boxes = _boxes(target, name).astype(np.float64)
    shifted = boxes - np.array([left, top, left, top], np.float64)
    clipped = np.stack([np.clip(shifted[:, 0], 0, w), np.clip(shifted[:, 1], 0, h),
                        np.clip(shifted[:, 2], 0, w), np.clip(shifted[:, 3], 0, h)], axis=1)
    cw, ch = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
    keep = (cw > 0) & (ch > 0)
    if centre_rule:
        cx, cy = (shifted[:, 0] + shifted[:, 2]) / 2, (shifted[:, 1] + shifted[:, 3]) / 2
        keep &= (cx > 0) & (cx < w) & (cy > 0) & (cy < h)
    else:
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        keep &= cw * ch >= min_visibility * area - 1e-9
    masks = None
    if "masks" in target:
        m = _raw(target["masks"])
        masks = np.zeros((m.shape[0], h, w), m.dtype)
        if t1 > t0 and l1 > l0:
            masks[:, t0 - top:t1 - top, l0 - left:l1 - left] = m[:, t0:t1, l0:l1]
        masks = masks[keep]
    return _image_back(out, kind, image), _new_target(target, clipped[keep], keep, masks)


def _resize(image, target, h: int, w: int, name: str, interpolation="bilinear"):
    """Resize the image to ``(h, w)`` (antialiased, as ``transforms.Resize``), scale the boxes
    by ``(w / W, h / H)`` and the masks by nearest neighbour."""
    arr, kind = _image_array(image, name)
    if h < 1 or w < 1:
        raise ValueError(f"{name}: output size must be at least 1x1, got {(h, w)}")
    H, W = arr.shape[1:]
    if kind == "pil":
        out_img = image.resize((w, h), T._pil_filter(interpolation)) if (h, w) != (H, W) \
            else image
    else:
        out_img = _image_back(T._resize_planes(arr[None], h, w, interpolation)[0], kind, image)
    sx, sy = w / W, h / H
    boxes = _boxes(target, name).astype(np.float64) * np.array([sx, sy, sx, sy])
    masks = None
    if "masks" in target:
        m = _raw(target["masks"])
        # nearest neighbour: output pixel centre (i + 0.5) / s - 0.5 rounded to a source pixel
        rows = np.minimum(((np.arange(h) + 0.5) / sy).astype(np.int64), H - 1)
        cols = np.minimum(((np.arange(w) + 0.5) / sx).astype(np.int64), W - 1)
        masks = m[:, rows][:, :, cols]
    return out_img, _new_target(target, boxes, None, masks)


# -------------------------------------------------------------------------- transforms
class Compose:
    """Apply ``transforms`` in order to ``(image, target)``."""

    def __init__(self, transforms: Sequence[Callable]) -> None:
        self.transforms = list(transforms)

    def __call__(self, image, target):
        for t in self.transforms:
            image, target = t(image, target)
        return image, target

    def __repr__(self) -> str:
        return "Compose(" + ", ".join(repr(t) for t in self.transforms) + ")"


class ToTensor:
    """Image -> float32 Tensor ``(C, H, W)`` (PIL images and ``(H, W, C)`` arrays as
    :class:`convnet.data.transforms.ToTensor` reads them, uint8 scaled to ``[0, 1]``; a
    Tensor image is kept, uint8 scaled). Target: ``boxes``/``area`` float32 Tensors,
    ``labels``/``iscrowd`` int64 Tensors, ``masks`` uint8 Tensor."""

    def __call__(self, image, target):
        image = T.ToTensor()(image)
        if image._data.dtype != np.float32:
            image = Tensor._make(image._data.astype(np.float32))
        out = dict(target)
        for key, dtype in (("boxes", np.float32), ("area", np.float32), ("labels", np.int64),
                           ("iscrowd", np.int64), ("masks", np.uint8)):
            if key in out:
                v = np.asarray(_raw(out[key]), dtype=dtype)
                out[key] = Tensor._make(v.reshape(-1, 4) if key == "boxes" else v)
        return image, out

    def __repr__(self) -> str:
        return "ToTensor()"


class Normalize:
    """``(image - mean) / std`` per channel; the target is unchanged."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self._t = T.Normalize(mean, std)
        self.mean, self.std = mean, std

    def __call__(self, image, target):
        return self._t(image), target

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"


class RandomHorizontalFlip:
    """Mirror image, boxes and masks left-right with probability ``p``: a box
    ``(x1, y1, x2, y2)`` becomes ``(W - x2, y1, W - x1, y2)``.

    Not for digit canvases (digits are not mirror-symmetric; see the module docstring).
    """

    def __init__(self, p: float = 0.5) -> None:
        if not 0 <= p <= 1:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p}")
        self.p = p

    def __call__(self, image, target):
        arr, kind = _image_array(image, "RandomHorizontalFlip")
        boxes = _boxes(target, "RandomHorizontalFlip")
        if current_rng().random() >= self.p:
            return image, target
        W = arr.shape[2]
        if kind == "pil":
            from PIL import Image

            out = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        else:
            out = _image_back(np.ascontiguousarray(arr[:, :, ::-1]), kind, image)
        flipped = np.stack([W - boxes[:, 2], boxes[:, 1], W - boxes[:, 0], boxes[:, 3]], axis=1)
        masks = np.ascontiguousarray(_raw(target["masks"])[:, :, ::-1]) \
            if "masks" in target else None
        return out, _new_target(target, flipped, None, masks)

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class Resize:
    """Resize image and boxes to ``size``: ``(h, w)``, or an int for the shorter side (aspect
    ratio kept, ``max_size`` capping the longer one), as ``transforms.Resize``. Boxes scale by
    ``(w / W, h / H)``; masks are resized by nearest neighbour."""

    def __init__(self, size, max_size: int | None = None,
                 interpolation=T.InterpolationMode.BILINEAR) -> None:
        if not isinstance(size, (numbers.Integral, Sequence)) or (
                isinstance(size, Sequence) and len(size) not in (1, 2)):
            raise TypeError(f"Resize: size should be int or sequence of 1 or 2 ints. Got {size!r}")
        self.size, self.max_size = size, max_size
        self.interpolation = T.InterpolationMode(interpolation)

    def __call__(self, image, target):
        arr, _ = _image_array(image, "Resize")
        h, w = T._resize_size(self.size, arr.shape[1], arr.shape[2], self.max_size)
        return _resize(image, target, h, w, "Resize", self.interpolation)

    def __repr__(self) -> str:
        return f"Resize(size={self.size!r}, max_size={self.max_size})"


class RandomScale:
    """Resize image and boxes by a factor drawn uniformly in ``scale`` (the same for height
    and width): ``(H, W) -> (round(s H), round(s W))``. The output size varies; follow it with
    :class:`RandomCrop` (``pad_if_needed``) or :class:`Resize` for a fixed size."""

    def __init__(self, scale: Sequence[float] = (0.75, 1.25)) -> None:
        if len(scale) != 2 or not 0 < scale[0] <= scale[1]:
            raise ValueError(f"RandomScale: scale must be (min, max) with 0 < min <= max, got "
                             f"{tuple(scale)!r}")
        self.scale = (float(scale[0]), float(scale[1]))

    def __call__(self, image, target):
        arr, _ = _image_array(image, "RandomScale")
        s = current_rng().uniform(*self.scale)
        H, W = arr.shape[1:]
        return _resize(image, target, max(1, round(s * H)), max(1, round(s * W)), "RandomScale")

    def __repr__(self) -> str:
        return f"RandomScale(scale={self.scale})"


class RandomCrop:
    """Cut an ``(h, w)`` window; boxes are shifted into it and clipped to it.

    A box survives when at least ``min_visibility`` of its area stays inside the window
    (default 0.5: a digit cut in half is dropped, since its class may no longer be readable);
    the others are dropped with their labels, areas and masks. To keep at least one object
    when the target has any, the window is drawn uniformly among the positions that contain
    one box chosen at random entirely (when that box fits in ``h x w``; otherwise among all
    positions). ``pad_if_needed`` pads an image smaller than the window with zeros at the
    bottom/right (boxes unchanged); without it a too small image is an error.
    """

    def __init__(self, size, min_visibility: float = 0.5, pad_if_needed: bool = False) -> None:
        self.size = T._pair(size, "RandomCrop")
        if not 0 <= min_visibility <= 1:
            raise ValueError(f"RandomCrop: min_visibility must be in [0, 1], got "
                             f"{min_visibility}")
        self.min_visibility, self.pad_if_needed = float(min_visibility), bool(pad_if_needed)

    def __call__(self, image, target):
        arr, _ = _image_array(image, "RandomCrop")
        boxes = _boxes(target, "RandomCrop")
        H, W = arr.shape[1:]
        h, w = self.size
        if (h > H or w > W) and not self.pad_if_needed:
            raise ValueError(f"RandomCrop: crop size {(h, w)} is larger than the image "
                             f"{(H, W)}; pass pad_if_needed=True to pad it")
        rng = current_rng()
        span_t, span_l = (0, max(H - h, 0)), (0, max(W - w, 0))
        if len(boxes):
            x1, y1, x2, y2 = boxes[int(rng.integers(len(boxes)))].tolist()
            # integer tops t with t <= y1 and t + h >= y2, inside [0, H - h]
            lo_t, hi_t = max(span_t[0], math.ceil(y2 - h)), min(span_t[1], math.floor(y1))
            lo_l, hi_l = max(span_l[0], math.ceil(x2 - w)), min(span_l[1], math.floor(x1))
            if lo_t <= hi_t and lo_l <= hi_l:
                span_t, span_l = (lo_t, hi_t), (lo_l, hi_l)
        top = int(rng.integers(span_t[0], span_t[1] + 1))
        left = int(rng.integers(span_l[0], span_l[1] + 1))
        return _crop(image, target, top, left, h, w, self.min_visibility, False, "RandomCrop")

    def __repr__(self) -> str:
        return (f"RandomCrop(size={self.size}, min_visibility={self.min_visibility}, "
                f"pad_if_needed={self.pad_if_needed})")


class RandomIoUCrop:
    """SSD's sample crop (Liu et al., 2016), with torchvision's ``RandomIoUCrop`` arguments.

    Draw a minimum IoU from ``sampler_options`` (default ``[0.0, 0.1, 0.3, 0.5, 0.7, 0.9,
    1.0]``; 1.0 leaves the sample unchanged). Then up to ``trials`` times draw a window of
    ``(r_w W, r_h H)`` with ``r`` uniform in ``[min_scale, max_scale]`` and aspect ratio
    ``w / h`` in ``[min_aspect_ratio, max_aspect_ratio]`` at a uniform position; accept it when
    some box has its centre strictly inside the window and one of those boxes has IoU with the
    window of at least the minimum. Boxes whose centre is inside are kept, clipped to the
    window; the others are dropped. The output size varies: follow with :class:`Resize`.

    Lite: where torchvision redraws the minimum IoU forever, this gives up after 50 rounds of
    ``trials`` and returns the sample unchanged (always so when the target has no boxes).
    """

    def __init__(self, min_scale: float = 0.3, max_scale: float = 1.0,
                 min_aspect_ratio: float = 0.5, max_aspect_ratio: float = 2.0,
                 sampler_options: Sequence[float] | None = None, trials: int = 40) -> None:
        if not 0 < min_scale <= max_scale <= 1:
            raise ValueError(f"RandomIoUCrop: need 0 < min_scale <= max_scale <= 1, got "
                             f"{min_scale}, {max_scale}")
        if not 0 < min_aspect_ratio <= max_aspect_ratio:
            raise ValueError(f"RandomIoUCrop: need 0 < min_aspect_ratio <= max_aspect_ratio, "
                             f"got {min_aspect_ratio}, {max_aspect_ratio}")
        self.min_scale, self.max_scale = min_scale, max_scale
        self.min_aspect_ratio, self.max_aspect_ratio = min_aspect_ratio, max_aspect_ratio
        self.options = list(sampler_options) if sampler_options is not None else \
            [0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0]
        self.trials = int(trials)

    def __call__(self, image, target):
        arr, _ = _image_array(image, "RandomIoUCrop")
        boxes = _boxes(target, "RandomIoUCrop").astype(np.float64)
        if len(boxes) == 0:
            return image, target
        H, W = arr.shape[1:]
        rng = current_rng()
        cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        for _ in range(50):
            min_iou = self.options[int(rng.integers(len(self.options)))]
            if min_iou >= 1.0:
                return image, target
            for _ in range(self.trials):
                r = self.min_scale + (self.max_scale - self.min_scale) * rng.random(2)
                w, h = int(W * r[0]), int(H * r[1])
                if h == 0 or not self.min_aspect_ratio <= w / h <= self.max_aspect_ratio:
                    continue
                r = rng.random(2)
                left, top = int((W - w) * r[0]), int((H - h) * r[1])
                if w == 0:
                    continue
                inside = (cx > left) & (cx < left + w) & (cy > top) & (cy < top + h)
                if not inside.any():
                    continue
                iw = np.clip(np.minimum(boxes[:, 2], left + w) - np.maximum(boxes[:, 0], left),
                             0, None)
                ih = np.clip(np.minimum(boxes[:, 3], top + h) - np.maximum(boxes[:, 1], top),
                             0, None)
                inter = iw * ih
                iou = inter / (areas + w * h - inter)
                if iou[inside].max() < min_iou:
                    continue
                return _crop(image, target, top, left, h, w, 0.0, True, "RandomIoUCrop")
        return image, target

    def __repr__(self) -> str:
        return (f"RandomIoUCrop(min_scale={self.min_scale}, max_scale={self.max_scale}, "
                f"sampler_options={self.options}, trials={self.trials})")

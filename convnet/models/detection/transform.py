"""Input checks and batching shared by the detectors (torchvision's ``GeneralizedRCNNTransform``,
without the resize: the canvases here are already small).

Detectors take a list of ``(C, H, W)`` images (or one ``(N, C, H, W)`` batch) and, in training,
one target dict per image: ``'boxes'`` ``(K, 4)`` in ``(x1, y1, x2, y2)`` pixels and
``'labels'`` ``(K,)`` integers. :class:`DetectionTransform` checks them, optionally normalises
the images, zero-pads them at the bottom/right to one size divisible by ``size_divisible``
(the coarsest stride, so every FPN level lines up) and returns an :class:`ImageList` that
remembers each image's own size (boxes are clipped to it).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ... import functional as F
from ... import nn
from ...creation import cat, stack
from ...tensor import Tensor
from .image_list import ImageList

__all__ = ["DetectionTransform", "concat_box_prediction_layers"]


def as_array(x) -> np.ndarray:
    """The NumPy array behind a Tensor (no copy), or ``np.asarray(x)``."""
    return x._data if isinstance(x, Tensor) else np.asarray(x)


def as_tensor(a: np.ndarray) -> Tensor:
    """Wrap an array as a constant Tensor (no copy)."""
    return Tensor._make(np.ascontiguousarray(a))


def concat_box_prediction_layers(per_level: Sequence[Tensor], channels: int) -> Tensor:
    """Per-level head outputs ``(N, A * channels, H_l, W_l)`` -> ``(N, sum_l H_l W_l A, channels)``.

    Entry ``(n, (y * W_l + x) * A + a)`` of each level is anchor ``a`` at cell ``(y, x)``: the
    order in which the anchor generator lists its anchors (cells row-major, anchors within).
    """
    out = []
    for x in per_level:
        n, ac, h, w = x.shape
        a = ac // channels
        out.append(x.reshape(n, a, channels, h, w).permute(0, 3, 4, 1, 2)
                   .reshape(n, h * w * a, channels))
    return out[0] if len(out) == 1 else cat(out, dim=1)


class DetectionTransform(nn.Module):
    """Check images and targets, normalise, pad to a common size -> ``(ImageList, targets)``.

    Args:
        size_divisible: the padded height and width are multiples of this (default 16, the
            coarsest FPN stride).
        image_mean, image_std: per-channel normalisation ``(x - mean) / std``; ``None`` (the
            default) leaves the pixels as they are.
        num_classes: labels must lie in ``[min_label, num_classes)``.
        min_label: ``1`` for Faster R-CNN (label 0 is the background), ``0`` for RetinaNet.
        name: the model's name, for error messages.
    """

    def __init__(self, size_divisible: int = 16, image_mean: Sequence[float] | None = None,
                 image_std: Sequence[float] | None = None, num_classes: int | None = None,
                 min_label: int = 0, name: str = "detector"):
        super().__init__()
        self.size_divisible = int(size_divisible)
        self.image_mean = None if image_mean is None else tuple(float(v) for v in image_mean)
        self.image_std = None if image_std is None else tuple(float(v) for v in image_std)
        self.num_classes, self.min_label, self.name = num_classes, int(min_label), name

    # ------------------------------------------------------------------ images
    def _image_list(self, images) -> list:
        op = self.name
        if isinstance(images, Tensor):
            if images.ndim != 4:
                raise ValueError(f"{op}: images must be a list of (C, H, W) Tensors or one "
                                 f"(N, C, H, W) Tensor, got a Tensor of shape {tuple(images.shape)}")
            return [images]
        if not isinstance(images, (list, tuple)) or not images:
            raise TypeError(f"{op}: images must be a non-empty list of (C, H, W) Tensors or an "
                            f"(N, C, H, W) Tensor, got {type(images).__name__}"
                            f"{' (empty)' if isinstance(images, (list, tuple)) else ''}")
        for i, im in enumerate(images):
            if not isinstance(im, Tensor):
                raise TypeError(f"{op}: images[{i}] must be a Tensor, got {type(im).__name__}")
            if im.ndim != 3:
                raise ValueError(f"{op}: images[{i}] must be (C, H, W), got shape "
                                 f"{tuple(im.shape)}")
        return list(images)

    def _normalize(self, x: Tensor) -> Tensor:
        if self.image_mean is None and self.image_std is None:
            return x
        c = x.shape[-3]
        mean = np.asarray(self.image_mean or (0.0,), dtype=x.dtype)
        std = np.asarray(self.image_std or (1.0,), dtype=x.dtype)
        if mean.size not in (1, c) or std.size not in (1, c):
            raise ValueError(f"{self.name}: image_mean/image_std have {mean.size}/{std.size} "
                             f"values for {c}-channel images")
        shape = (c, 1, 1) if x.ndim == 3 else (1, c, 1, 1)
        return (x - as_tensor(np.broadcast_to(mean, (c,)).reshape(shape))) / as_tensor(
            np.broadcast_to(std, (c,)).reshape(shape))

    def batch_images(self, images) -> ImageList:
        """Pad every image to ``(H_max, W_max)`` rounded up to ``size_divisible``, stack."""
        items = self._image_list(images)
        if len(items) == 1 and items[0].ndim == 4:
            x = self._normalize(items[0])
            n, _, h, w = x.shape
            sizes = [(h, w)] * n
            ph, pw = (-h) % self.size_divisible, (-w) % self.size_divisible
            return ImageList(F.pad(x, (0, pw, 0, ph)) if ph or pw else x, sizes)
        chans = {im.shape[0] for im in items}
        if len(chans) > 1:
            raise ValueError(f"{self.name}: all images need the same number of channels, got "
                             f"shapes {[tuple(im.shape) for im in items]}")
        sizes = [tuple(im.shape[-2:]) for im in items]
        d = self.size_divisible
        hm = -(-max(s[0] for s in sizes) // d) * d
        wm = -(-max(s[1] for s in sizes) // d) * d
        padded = []
        for im, (h, w) in zip(items, sizes):
            im = self._normalize(im)
            padded.append(F.pad(im, (0, wm - w, 0, hm - h)) if (h, w) != (hm, wm) else im)
        return ImageList(stack(padded), sizes)

    # ----------------------------------------------------------------- targets
    def check_targets(self, targets, num_images: int, dtype) -> list[dict]:
        """Validate targets; return them as ``{'boxes': Tensor (K, 4) of dtype, 'labels':
        int64 Tensor (K,)}`` (other keys are kept)."""
        op = self.name
        if not isinstance(targets, (list, tuple)):
            raise TypeError(f"{op}: targets must be a list of dicts with 'boxes' and 'labels', "
                            f"got {type(targets).__name__}")
        if len(targets) != num_images:
            raise ValueError(f"{op}: got {len(targets)} targets for {num_images} images")
        out = []
        for i, t in enumerate(targets):
            if not isinstance(t, dict) or "boxes" not in t or "labels" not in t:
                raise ValueError(f"{op}: targets[{i}] must be a dict with 'boxes' and 'labels'")
            boxes = np.asarray(as_array(t["boxes"]), dtype=dtype)
            labels = as_array(t["labels"])
            if boxes.size == 0 and boxes.ndim < 2:
                boxes = boxes.reshape(0, 4)  # an image without objects
            if boxes.ndim != 2 or boxes.shape[-1] != 4:
                raise ValueError(f"{op}: expected target boxes to be of shape (K, 4), got "
                                 f"{tuple(boxes.shape)} for targets[{i}]")
            if labels.ndim != 1 or labels.shape[0] != boxes.shape[0]:
                raise ValueError(f"{op}: targets[{i}]['labels'] must have shape "
                                 f"({boxes.shape[0]},) to match boxes {tuple(boxes.shape)}, got "
                                 f"{tuple(labels.shape)}")
            if labels.size and labels.dtype.kind not in "iu":
                raise TypeError(f"{op}: targets[{i}]['labels'] must be integers, got "
                                f"{labels.dtype}")
            if not np.isfinite(boxes).all():
                raise ValueError(f"{op}: targets[{i}]['boxes'] has NaN or infinite values")
            bad = np.flatnonzero((boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1]))
            if bad.size:
                raise ValueError(f"{op}: all bounding boxes should have positive height and "
                                 f"width (x1 < x2, y1 < y2). Found invalid box "
                                 f"{boxes[bad[0]].tolist()} for target at index {i}")
            if labels.size and self.num_classes is not None and (
                    labels.min() < self.min_label or labels.max() >= self.num_classes):
                raise ValueError(f"{op}: targets[{i}]['labels'] must lie in "
                                 f"[{self.min_label}, {self.num_classes}), got "
                                 f"{labels.tolist()}"
                                 + (" (label 0 is the background)" if self.min_label else ""))
            new = dict(t)
            new["boxes"] = as_tensor(boxes)
            new["labels"] = as_tensor(labels.astype(np.int64))
            out.append(new)
        return out

    def forward(self, images, targets=None):
        image_list = self.batch_images(images)
        if targets is not None:
            targets = self.check_targets(targets, len(image_list.image_sizes),
                                         image_list.tensors.dtype)
        return image_list, targets

    def extra_repr(self) -> str:
        s = f"size_divisible={self.size_divisible}"
        if self.image_mean is not None:
            s += f", image_mean={self.image_mean}, image_std={self.image_std}"
        return s

"""Multi-object detection canvases built from real digits (or Fashion-MNIST items).

MNIST is a classification set: one centred digit per image. Pasting several digits, each
resized to a random scale, at random positions on a larger black canvas turns it into an
object-detection set with exact ground truth: every object's box is the bounding box of its
*ink* (pixels at or above ``ink_threshold`` after resizing), not of the 28 x 28 frame.

Nothing is stored: item ``i`` is rebuilt from a generator seeded with ``(seed, split, i)``,
so any canvas can be regenerated on its own, in any order, from any thread; building 1,000
canvases takes a fraction of a second.

Conventions (torchvision's detection models and datasets):

- boxes are ``(x1, y1, x2, y2)`` in pixels, ``x2``/``y2`` exclusive edges: an object whose
  ink covers columns ``c0..c1`` has ``x1 = c0``, ``x2 = c1 + 1`` (width ``c1 - c0 + 1``), so
  ``image[:, y1:y2, x1:x2]`` is exactly its box;
- labels are ``1 + class``: digit ``d`` has label ``d + 1`` and ``0`` is the background, as
  torchvision's detectors reserve it; ``ds.classes[label]`` names a label
  (``ds.classes[0] == '__background__'``) and ``num_classes = 11`` counts the background.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ...tensor import Tensor
from ..dataset import Dataset, _raw

__all__ = ["MNISTDetection", "FashionMNISTDetection", "collate_detection", "to_coco"]

_FRAME = 28  # side of a source image (MNIST and Fashion-MNIST)


def _resize_plane(img: np.ndarray, size: int) -> np.ndarray:
    """``(28, 28)`` uint8 -> ``(size, size)`` uint8 with Pillow's antialiased bilinear
    resampler (what ``transforms.Resize`` uses), rounded back to bytes."""
    from PIL import Image

    out = Image.fromarray(img.astype(np.float32), mode="F").resize((size, size),
                                                                   Image.Resampling.BILINEAR)
    return np.clip(np.rint(np.asarray(out)), 0, 255).astype(np.uint8)


def _iou(a, b) -> float:
    """IoU of two xyxy boxes given as tuples (scalar maths: a handful per placement)."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


class MNISTDetection(Dataset):
    """Seeded canvases of ``min_objects..max_objects`` real digits with their boxes.

    Each canvas draws its object count uniformly in ``[min_objects, max_objects]``; each
    object draws a source image, a scale ``s`` uniform in ``scale`` (the 28 px frame becomes
    ``round(28 s)`` px, resized with antialiased bilinear interpolation) and a position
    (uniform over the positions that keep its ink box inside the canvas). A placement whose
    box overlaps an already placed box with IoU above ``max_overlap_iou`` is redrawn (image,
    scale and position) up to 100 times; an object that still finds no place is left out
    (never the first one, so every canvas has at least one object). Objects are composited
    with ``max`` (white ink on black), and the canvas is kept in whole grey levels
    (multiples of 1/255), so a canvas saved as a PNG reads back identically.

    Args:
        root: folder of the source IDX files (only for ``source='mnist'``/Fashion-MNIST).
        train: canvases from the source's training images (True) or its test images
            (False); the two never share a source image.
        canvas_size: ``H = W`` or ``(H, W)`` of a canvas (default 64).
        min_objects, max_objects: objects per canvas (default 1 to 4).
        scale: ``(min, max)`` factor applied to the 28 px source frame (default
            ``(0.6, 1.6)``: frames of 17 to 45 px, ink of about 12 to 32 px).
        max_overlap_iou: largest IoU allowed between two boxes of a canvas (default 0.1).
        length: number of canvases (default: the number of source images of the split).
        seed: canvases differ between seeds and between the train and test splits.
        ink_threshold: intensity in ``[0, 1]`` from which a pixel counts as an object's ink
            (default 0.2); the resized halo below it is drawn but outside the box.
        transform: ``transform(image)`` applied to the image only.
        target_transform: ``target_transform(target)`` applied to the target only.
        transforms: ``transforms(image, target) -> (image, target)``, e.g. a
            :mod:`convnet.data.detection_transforms` pipeline (exclusive with the two above,
            as torchvision's ``VisionDataset``).
        source: ``'bundled'`` (default: the 10,000 real MNIST digits shipped with convnet,
            8,000 train / 2,000 test, no download), ``'mnist'`` (the full MNIST files found
            under ``root`` or the download cache) or an already loaded classification dataset
            with ``.images`` ``(N, 1, 28, 28)`` uint8 and ``.targets`` (its split is then the
            caller's choice).
        download: passed to the MNIST reader with ``source='mnist'``.
        return_masks: add ``target['masks']``, each object's ink as a ``(K, H, W)`` uint8
            Tensor (Mask R-CNN's target layout).

    Items ``(image, target)``: ``image`` a float32 Tensor ``(1, H, W)`` in ``[0, 1]`` (what
    torchvision's detection models take); ``target`` a dict as torchvision's detection
    datasets give: ``boxes`` float32 ``(K, 4)`` xyxy, ``labels`` int64 ``(K,)`` (``1 +``
    class, 0 = background), ``image_id`` (int, the index), ``area`` float32 ``(K,)`` (box
    area), ``iscrowd`` int64 ``(K,)`` zeros.
    """

    source_name = "MNIST"
    source_classes = [str(d) for d in range(10)]
    _tries = 100

    def __init__(self, root: str | os.PathLike | None = None, train: bool = True,
                 canvas_size: int | Sequence[int] = 64, min_objects: int = 1,
                 max_objects: int = 4, scale: Sequence[float] = (0.6, 1.6),
                 max_overlap_iou: float = 0.1, length: int | None = None, seed: int = 0,
                 ink_threshold: float = 0.2, transform: Callable | None = None,
                 target_transform: Callable | None = None, transforms: Callable | None = None,
                 source="bundled", download: bool = False, return_masks: bool = False) -> None:
        name = type(self).__name__
        if isinstance(canvas_size, (int, np.integer)):
            canvas_size = (int(canvas_size), int(canvas_size))
        if len(canvas_size) != 2 or min(canvas_size) < 1:
            raise ValueError(f"{name}: canvas_size must be a positive int or (H, W), got "
                             f"{canvas_size!r}")
        self.canvas_size = (int(canvas_size[0]), int(canvas_size[1]))
        if not (isinstance(min_objects, (int, np.integer)) and min_objects >= 1):
            raise ValueError(f"{name}: min_objects must be an integer >= 1, got {min_objects!r}")
        if not isinstance(max_objects, (int, np.integer)) or max_objects < min_objects:
            raise ValueError(f"{name}: max_objects ({max_objects!r}) must be an integer >= "
                             f"min_objects ({min_objects})")
        if len(scale) != 2 or not 0 < scale[0] <= scale[1]:
            raise ValueError(f"{name}: scale must be (min, max) with 0 < min <= max, got "
                             f"{tuple(scale)!r}")
        largest = round(_FRAME * scale[1])
        if largest > min(self.canvas_size):
            raise ValueError(f"{name}: canvas {self.canvas_size[0]}x{self.canvas_size[1]} is "
                             f"smaller than the largest digit (28 px x scale {scale[1]} = "
                             f"{largest} px); enlarge canvas_size or lower scale")
        if round(_FRAME * scale[0]) < 1:
            raise ValueError(f"{name}: scale {scale[0]} makes a 28 px digit vanish")
        if not 0 <= max_overlap_iou <= 1:
            raise ValueError(f"{name}: max_overlap_iou must be in [0, 1], got {max_overlap_iou}")
        if not 0 < ink_threshold <= 1:
            raise ValueError(f"{name}: ink_threshold must be in (0, 1], got {ink_threshold}")
        if transforms is not None and (transform is not None or target_transform is not None):
            raise ValueError(f"{name}: pass either transforms or transform/target_transform, "
                             "not both")
        self.root, self.train, self.seed = root, bool(train), int(seed)
        self.min_objects, self.max_objects = int(min_objects), int(max_objects)
        self.scale = (float(scale[0]), float(scale[1]))
        self.max_overlap_iou, self.ink_threshold = float(max_overlap_iou), float(ink_threshold)
        self._ink_level = int(np.ceil(ink_threshold * 255 - 1e-9))  # ink: pixel >= this byte
        self.transform, self.target_transform, self.transforms = (transform, target_transform,
                                                                  transforms)
        self.return_masks = bool(return_masks)
        self.source = self._load_source(source, root, download)
        self._images = np.ascontiguousarray(_raw(self.source.images)[:, 0])
        if self._images.ndim != 3 or self._images.shape[1:] != (_FRAME, _FRAME) or \
                self._images.dtype != np.uint8:
            raise ValueError(f"{name}: source images must be (N, 1, 28, 28) uint8, got "
                             f"{_raw(self.source.images).shape} {_raw(self.source.images).dtype}")
        self._labels = np.asarray(_raw(self.source.targets), dtype=np.int64)
        if len(self._images) == 0:
            raise ValueError(f"{name}: the source dataset is empty")
        n = len(self._images) if length is None else length
        if not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"{name}: length must be a non-negative integer, got {length!r}")
        self.length = int(n)
        self.classes = ["__background__"] + list(self.source_classes)
        self.num_classes = len(self.classes)

    def _load_source(self, source, root, download):
        if isinstance(source, str):
            from .mnist import MNIST, BundledMNIST

            if source == "bundled":
                return BundledMNIST(train=self.train)
            if source == "mnist":
                return MNIST(root, train=self.train, download=download)
            raise ValueError(f"{type(self).__name__}: source must be 'bundled', 'mnist' or a "
                             f"dataset with .images and .targets, got {source!r}")
        if not hasattr(source, "images") or not hasattr(source, "targets"):
            raise TypeError(f"{type(self).__name__}: source dataset needs .images (N, 1, 28, 28) "
                            f"and .targets; got {type(source).__name__}")
        return source

    def __len__(self) -> int:
        return self.length

    # ------------------------------------------------------------------ generation
    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, 0 if self.train else 1, index])

    def layout(self, index: int) -> list[dict]:
        """The objects of canvas ``index``, drawn from its own seeded generator: one dict per
        object with ``source_index`` (into ``ds.source``), ``size`` (px of the resized
        frame), ``offset`` ``(top, left)`` of that frame on the canvas (may be negative: the
        faint halo may hang over the edge, never the ink), ``box`` (xyxy, ints) and
        ``label`` (``1 +`` class)."""
        return [{k: v for k, v in o.items() if k != "patch"}
                for o in self._draw(self._check_index(index))]

    def _draw(self, index: int) -> list[dict]:
        """:meth:`layout` plus each object's resized uint8 frame (``'patch'``)."""
        H, W = self.canvas_size
        rng = self._rng(index)
        count = int(rng.integers(self.min_objects, self.max_objects + 1))
        lo, hi = self.scale
        objects: list[dict] = []
        for k in range(count):
            for _ in range(self._tries):
                src = int(rng.integers(len(self._images)))
                size = max(1, round(_FRAME * rng.uniform(lo, hi)))
                patch = _resize_plane(self._images[src], size)
                rows = np.flatnonzero((patch >= self._ink_level).any(axis=1))
                cols = np.flatnonzero((patch >= self._ink_level).any(axis=0))
                if rows.size == 0:  # a digit too faint to have ink at this size
                    continue
                h, w = int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)
                y, x = int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1))
                box = (x, y, x + w, y + h)
                if all(_iou(box, o["box"]) <= self.max_overlap_iou for o in objects):
                    objects.append({"source_index": src, "size": size,
                                    "offset": (y - int(rows[0]), x - int(cols[0])), "box": box,
                                    "label": int(self._labels[src]) + 1, "patch": patch})
                    break
        return objects

    def _check_index(self, index) -> int:
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"{type(self).__name__}: index must be an int, got "
                            f"{type(index).__name__}")
        n = self.length
        if not -n <= index < n:
            raise IndexError(f"{type(self).__name__}: index {index} out of range for {n} canvases")
        return int(index) % n

    def _render(self, index: int):
        """The canvas ``(H, W)`` uint8, the objects' layout and (optionally) their masks."""
        H, W = self.canvas_size
        objects = self._draw(index)
        canvas = np.zeros((H, W), np.uint8)
        masks = np.zeros((len(objects), H, W), np.uint8) if self.return_masks else None
        for k, o in enumerate(objects):
            patch, (top, left) = o["patch"], o["offset"]
            # clip the frame to the canvas (only sub-threshold halo can fall outside)
            t0, l0 = max(top, 0), max(left, 0)
            t1, l1 = min(top + patch.shape[0], H), min(left + patch.shape[1], W)
            piece = patch[t0 - top:t1 - top, l0 - left:l1 - left]
            np.maximum(canvas[t0:t1, l0:l1], piece, out=canvas[t0:t1, l0:l1])
            if masks is not None:
                masks[k, t0:t1, l0:l1] = piece >= self._ink_level
        return canvas, objects, masks

    def __getitem__(self, index: int):
        index = self._check_index(index)
        canvas, objects, masks = self._render(index)
        image = Tensor._make((canvas[None].astype(np.float32) / np.float32(255)))
        boxes = np.asarray([o["box"] for o in objects], np.float32).reshape(-1, 4)
        target = {
            "boxes": Tensor._make(boxes),
            "labels": Tensor._make(np.asarray([o["label"] for o in objects], np.int64)),
            "image_id": index,
            "area": Tensor._make(((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
                                 .astype(np.float32)),
            "iscrowd": Tensor._make(np.zeros(len(objects), np.int64)),
        }
        if masks is not None:
            target["masks"] = Tensor._make(masks)
        if self.transforms is not None:
            return self.transforms(image, target)
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    def __repr__(self) -> str:
        split = "train" if self.train else "test"
        return (f"{type(self).__name__}(split={split}, n={self.length}, "
                f"canvas_size={self.canvas_size}, objects={self.min_objects}..{self.max_objects}, "
                f"scale={self.scale}, seed={self.seed})")


class FashionMNISTDetection(MNISTDetection):
    """:class:`MNISTDetection` with Fashion-MNIST items (10 clothing classes) as objects.

    The source is Fashion-MNIST's own train/test files, looked up as
    :class:`~convnet.data.datasets.FashionMNIST` does (``root``, the download cache,
    ``/usr/share/datasets/fashion-mnist``); without them a ``FileNotFoundError`` says where
    to put them. ``source`` may also be a loaded dataset (``.images``, ``.targets``).
    """

    source_name = "FashionMNIST"
    source_classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                      "Sneaker", "Bag", "Ankle boot"]

    def __init__(self, root=None, train: bool = True, *args, source="fashion-mnist",
                 **kwargs) -> None:
        super().__init__(root, train, *args, source=source, **kwargs)

    def _load_source(self, source, root, download):
        if isinstance(source, str):
            if source != "fashion-mnist":
                raise ValueError(f"FashionMNISTDetection: source must be 'fashion-mnist' or a "
                                 f"dataset with .images and .targets, got {source!r}")
            from .mnist import FashionMNIST

            try:
                return FashionMNIST(root, train=self.train, download=download)
            except FileNotFoundError as e:
                raise FileNotFoundError(f"FashionMNISTDetection needs the Fashion-MNIST files: "
                                        f"{e}") from None
        return super()._load_source(source, root, download)


def collate_detection(batch: Sequence):
    """``DataLoader(collate_fn=collate_detection)``: a list of ``(image, target)`` samples
    -> ``(images, targets)``.

    ``images`` is one ``(N, C, H, W)`` Tensor when every image has the same shape, else the
    list of images (detectors take either: torchvision's take a list); ``targets`` is the
    list of target dicts, unchanged (their box counts differ, so they cannot be stacked).
    """
    if len(batch) == 0:
        raise ValueError("collate_detection: empty batch")
    for s in batch:
        if not isinstance(s, (tuple, list)) or len(s) != 2:
            raise TypeError("collate_detection: samples must be (image, target) pairs, got "
                            f"{type(s).__name__}")
    images = [s[0] for s in batch]
    targets = [s[1] for s in batch]
    arrays = [_raw(im) for im in images]
    if all(isinstance(im, (Tensor, np.ndarray)) for im in images) and \
            len({a.shape for a in arrays}) == 1:
        return Tensor._make(np.stack(arrays)), targets
    return images, targets


def _numpy(x) -> np.ndarray:
    return np.asarray(_raw(x))


def to_coco(dataset, path: str | os.PathLike, image_dir: str | os.PathLike | None = None,
            classes: Sequence[str] | None = None) -> dict:
    """Write ``dataset``'s annotations as a COCO-format JSON file; return the dict written.

    ``dataset[i]`` must give ``(image (C, H, W), target)`` with ``target['boxes']`` xyxy
    pixels and ``target['labels']`` (``1 +`` class); the items are read as they come (a
    random ``transforms`` is drawn once per item). The file holds:

    - ``images``: ``{id, file_name, width, height}`` with ``id = target['image_id']`` (the
      index when absent) and ``file_name = '{id:06d}.png'``;
    - ``annotations``: ``{id (1, 2, ...), image_id, category_id = label, bbox [x, y, w, h],
      area = w * h, iscrowd = 0}``;
    - ``categories``: ``{id, name}`` for labels ``1 .. len(classes) - 1`` (``classes``
      defaults to ``dataset.classes``, whose entry 0 is the background).

    The JSON is written atomically (a reader never sees half a file). With ``image_dir``,
    each canvas is also saved there as its 8-bit PNG ``file_name``, so COCO tools that load
    images work on the export.
    """
    from ...io.atomic import atomic_write_text

    classes = list(classes if classes is not None else getattr(dataset, "classes", []))
    if len(classes) < 2:
        raise ValueError("to_coco: need class names (classes[0] the background); the dataset "
                         "has no .classes, pass classes=")
    if image_dir is not None:
        from PIL import Image

        image_dir = Path(image_dir)
        image_dir.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i in range(len(dataset)):
        image, target = dataset[i]
        img = _numpy(image)
        if img.ndim != 3:
            raise ValueError(f"to_coco: item {i}: expected an image (C, H, W), got shape "
                             f"{img.shape}")
        boxes, labels = _numpy(target["boxes"]).reshape(-1, 4), _numpy(target["labels"])
        if len(boxes) != len(labels):
            raise ValueError(f"to_coco: item {i}: {len(boxes)} boxes but {len(labels)} labels")
        bad = (labels < 1) | (labels >= len(classes))
        if bad.any():
            raise ValueError(f"to_coco: item {i}: labels {labels[bad].tolist()} outside "
                             f"1..{len(classes) - 1}")
        image_id = int(target.get("image_id", i))
        file_name = f"{image_id:06d}.png"
        images.append({"id": image_id, "file_name": file_name,
                       "width": int(img.shape[2]), "height": int(img.shape[1])})
        for (x1, y1, x2, y2), label in zip(boxes.tolist(), labels.tolist()):
            w, h = x2 - x1, y2 - y1
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": int(label), "bbox": [x1, y1, w, h],
                                "area": w * h, "iscrowd": 0})
        if image_dir is not None:
            plane = img if img.dtype == np.uint8 else np.rint(np.clip(img, 0, 1) * 255)
            plane = plane.astype(np.uint8)
            pil = Image.fromarray(plane[0]) if plane.shape[0] == 1 else \
                Image.fromarray(np.ascontiguousarray(plane.transpose(1, 2, 0)))
            pil.save(image_dir / file_name)
    coco = {
        "info": {"description": f"{type(dataset).__name__} exported by convnet"},
        "images": images, "annotations": annotations,
        "categories": [{"id": k, "name": classes[k], "supercategory": "object"}
                       for k in range(1, len(classes))],
    }
    atomic_write_text(path, json.dumps(coco))
    return coco

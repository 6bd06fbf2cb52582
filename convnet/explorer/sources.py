"""Where the explorer's model and inputs come from: a run folder, or a model + dataset given
from Python; uploads and canvas drawings become model inputs here too.

Every source answers the same questions: the input shape and normalisation, the class names,
``len()`` and ``get(i) -> (x (C, H, W) float32, label | None)`` over its test images,
``labels()`` (all labels at once, cheaply when the dataset stores them), and
``from_upload(bytes, name) -> (x, notes)`` / ``from_drawing(png) -> x``.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from ..tensor import Tensor

__all__ = ["Source", "RunSource", "PythonSource", "UploadError"]


class UploadError(ValueError):
    """An uploaded file that cannot be used (HTTP 400)."""


def _array(x) -> np.ndarray:
    if isinstance(x, Tensor):
        x = x._data
    return np.asarray(x, dtype=np.float32)


def _label(y):
    if y is None:
        return None
    if isinstance(y, Tensor):
        y = y._data
    a = np.asarray(y)
    if a.ndim == 0:
        return int(a)
    return a  # a per-pixel mask (segmentation)


def _stored_labels(ds):
    """All labels of ``ds`` without loading its images, when it keeps them (``targets``,
    ``labels``; a ``Subset`` of such a dataset); ``None`` otherwise."""
    indices = getattr(ds, "indices", None)
    base = getattr(ds, "dataset", None)
    if indices is not None and base is not None:
        inner = _stored_labels(base)
        return None if inner is None else inner[np.asarray(indices, dtype=np.int64)]
    for attr in ("targets", "labels"):
        t = getattr(ds, attr, None)
        if t is not None:
            a = np.asarray(t._data if isinstance(t, Tensor) else t)
            if a.ndim == 1 and len(a) == len(ds):
                return a.astype(np.int64)
    return None


class Source:
    """Common behaviour; subclasses fill the attributes in ``__init__``."""

    title = "model"
    model_name = "model"
    task = "classify"
    channels = height = width = 0
    mean = std = None
    class_names: list = []
    drawable = False
    dataset = None
    metrics = None
    run_dir = None
    notes: list = []

    @property
    def input_shape(self) -> tuple:
        return (self.channels, self.height, self.width)

    def __len__(self) -> int:
        return 0 if self.dataset is None else len(self.dataset)

    def get(self, i: int):
        """``(x (C, H, W) float32, label | None)`` of test image ``i``."""
        if self.dataset is None or not 0 <= i < len(self):
            raise IndexError(f"test image {i} does not exist ({len(self)} test images)")
        item = self.dataset[i]
        if isinstance(item, (tuple, list)) and len(item) == 2:
            x, y = item
        else:
            x, y = item, None
        x = _array(x)
        if x.ndim == 4 and x.shape[0] == 1:
            x = x[0]
        return x, _label(y)

    def labels(self) -> np.ndarray | None:
        """All test labels (int, one per image) or ``None`` (no dataset, or per-pixel labels)."""
        if self.dataset is None or self.task == "segment":
            return None
        if not hasattr(self, "_labels"):
            lab = _stored_labels(self.dataset)
            if lab is None and len(self) <= 20000:
                got = [self.get(i)[1] for i in range(len(self))]
                lab = None if any(g is None or not np.isscalar(g) and np.ndim(g) for g in got) \
                    else np.asarray(got, dtype=np.int64)
            self._labels = lab
        return self._labels

    def _read(self, data: bytes, name: str, mode: str):
        """Pillow image of uploaded bytes (via a temporary file: the readers take paths)."""
        from ..data.user_images import read_image

        if not data:
            raise UploadError(f"upload: {name} is empty")
        fd, path = tempfile.mkstemp(suffix=Path(name).suffix or ".img")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            try:
                return read_image(path, mode), path
            except (ValueError, OSError) as e:
                msg = str(e).replace(path, name)
                reason = msg.split("(", 1)[-1].rstrip(")") if "(" in msg else msg
                raise UploadError(f"upload: {name} is not an image ({reason})") from None
        finally:
            # read_image has loaded the pixels: the file is not needed any more
            try:
                os.unlink(path)
            except OSError:
                pass

    def from_upload(self, data: bytes, name: str = "upload"):
        raise NotImplementedError

    def from_drawing(self, data: bytes) -> np.ndarray:
        x, _ = self.from_upload(data, "drawing.png", drawing=True)
        return x


class RunSource(Source):
    """A ``convnet train`` output folder: its model (weights loaded, eval mode), config, test
    set (when its data is available offline), metrics and training curves."""

    def __init__(self, run_dir):
        from ..cli._setup import make_dataset, make_transform, read_config
        from ..cli.evaluate import load_run

        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise FileNotFoundError(f"{run_dir}: no such run folder (give the --out folder of "
                                    "a `convnet train` run)")
        cfg = read_config(run_dir)
        task = cfg.get("task") or "classify"
        if task == "detect":
            raise ValueError(f"{run_dir}: a detection run ({cfg.get('model')}); the explorer "
                             "shows classification and segmentation runs only")
        try:
            cfg, info, model = load_run(run_dir)
        except FileNotFoundError:
            raise
        except Exception as e:  # a truncated or foreign weights file
            raise ValueError(f"{run_dir}: cannot load model.safetensors ({e})") from None
        self.run_dir, self.cfg, self.model = run_dir, cfg, model
        self.task = "segment" if task == "segment" else "classify"
        self.model_name = str(cfg.get("model"))
        self.title = f"{self.model_name} ({run_dir.name})"
        self.channels = int(cfg["in_channels"])
        self.height = self.width = int(cfg["image_size_used"])
        self.mean = [float(v) for v in cfg["mean"]]
        self.std = [float(v) for v in cfg["std"]]
        self.class_names = [str(c) for c in cfg["class_names"]]
        from ..data.user_images import style_for_dataset

        self.style = style_for_dataset(cfg.get("dataset", ""))
        self.drawable = self.style == "digits"
        self.notes = []
        try:
            self.metrics = json.loads((run_dir / "metrics.json").read_text())
        except (OSError, ValueError):
            self.metrics = None
        cfg = dict(cfg, download=False)
        try:
            self.dataset = make_dataset(cfg, info, False, make_transform(cfg, info, False))
        except Exception as e:  # the data is not on this machine: uploads only
            self.dataset = None
            self.notes.append(f"the test set of {cfg.get('dataset')} is not available ({e}); "
                              "upload images instead")

    def from_upload(self, data: bytes, name: str = "upload", drawing: bool = False):
        from ..data.user_images import prepare_image

        self._read(data, name, "L")  # a clear 400 for a non-image, before anything else
        fd, path = tempfile.mkstemp(suffix=Path(name).suffix or ".png")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            try:
                p = prepare_image(path, self.height, self.channels, self.style,
                                  "no" if drawing else "auto")
            except ValueError as e:
                raise UploadError(f"upload: {name}: {e}") from None
        finally:
            os.unlink(path)
        mean = np.asarray(self.mean, dtype=np.float32).reshape(-1, 1, 1)
        std = np.asarray(self.std, dtype=np.float32).reshape(-1, 1, 1)
        notes = [n.replace(path, name) for n in p.notes]
        return ((p.pixels - mean) / std).astype(np.float32), notes


class _Pairs:
    """``(images, labels)`` arrays seen as a dataset of ``(image, label)`` pairs."""

    def __init__(self, images, labels):
        self.images, self.labels_ = _array(images), np.asarray(_label_array(labels))
        self.targets = self.labels_

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], self.labels_[i]


def _label_array(y):
    return y._data if isinstance(y, Tensor) else np.asarray(y)


def _as_dataset(dataset):
    """What ``explore`` accepts, as one indexable: a DataLoader gives its ``dataset``; a pair
    ``(images (N, C, H, W), labels (N,))`` (as ``TensorDataset`` takes them) becomes pairs."""
    if dataset is None:
        return None
    if not hasattr(dataset, "__getitem__") and hasattr(dataset, "dataset") \
            and hasattr(dataset, "batch_size"):
        return dataset.dataset  # a DataLoader: explore its samples one by one
    if isinstance(dataset, (tuple, list)) and len(dataset) == 2 and \
            all(isinstance(a, (np.ndarray, Tensor)) for a in dataset):
        images, labels = dataset
        if np.ndim(_label_array(images)) == 4 and len(images) == len(labels):
            return _Pairs(images, labels)
    return dataset


class PythonSource(Source):
    """``convnet.explore(model, dataset, ...)``: any model, inputs already as it expects them."""

    def __init__(self, model, dataset=None, class_names=None, input_shape=None, mean=None,
                 std=None, transform=None, title=None):
        self.model = model
        dataset = _as_dataset(dataset)
        if dataset is not None and isinstance(dataset, Tensor):
            dataset = dataset._data
        if isinstance(dataset, np.ndarray):
            if dataset.ndim != 4:
                raise ValueError(f"explore: a dataset array must be (N, C, H, W), got shape "
                                 f"{dataset.shape}")
            dataset = dataset.astype(np.float32, copy=False)
        elif dataset is not None and not (hasattr(dataset, "__getitem__")
                                          and hasattr(dataset, "__len__")):
            raise TypeError(f"explore: dataset must be indexable with len() (giving (x, y) or "
                            f"x) or an (N, C, H, W) array, got {type(dataset).__name__}")
        self.dataset = dataset if dataset is None or len(dataset) else None
        if input_shape is None:
            if self.dataset is None:
                raise ValueError("explore: without a dataset, give input_shape=(C, H, W) (the "
                                 "shape of one input the model takes)")
            input_shape = self.get(0)[0].shape
        shape = tuple(int(s) for s in input_shape)
        if len(shape) != 3:
            raise ValueError(f"explore: input_shape must be (C, H, W), got {shape}")
        self.channels, self.height, self.width = shape
        self.mean = None if mean is None else [float(v) for v in np.ravel(mean)]
        self.std = None if std is None else [float(v) for v in np.ravel(std)]
        if (self.mean is None) != (self.std is None):
            raise ValueError("explore: give mean and std together (or neither)")
        self.transform = transform
        if class_names is None:
            class_names = getattr(dataset, "classes", None)
        self.class_names = None if class_names is None else [str(c) for c in class_names]
        self.model_name = type(model).__name__
        self.title = title or self.model_name
        self.drawable = self.channels == 1
        self.notes = []

    def from_upload(self, data: bytes, name: str = "upload", drawing: bool = False):
        from PIL import Image

        im, _ = self._read(data, name, "L" if self.channels == 1 else "RGB")
        notes = []
        if self.transform is not None:
            x = _array(self.transform(im))
            if x.shape != self.input_shape:
                raise UploadError(f"upload: {name}: transform gave shape {x.shape}, the model "
                                  f"takes {self.input_shape}")
            return x, notes
        if im.size != (self.width, self.height):
            notes.append(f"resized from {im.size[0]}x{im.size[1]} to {self.width}x{self.height}")
            im = im.resize((self.width, self.height), Image.BILINEAR)
        a = np.asarray(im, dtype=np.float32) / 255.0
        a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
        if a.shape[0] != self.channels:
            a = np.repeat(a[:1], self.channels, axis=0)
        if self.mean is not None:
            a = (a - np.asarray(self.mean, np.float32).reshape(-1, 1, 1)) / \
                np.asarray(self.std, np.float32).reshape(-1, 1, 1)
        return a.astype(np.float32), notes

"""CIFAR-10 from the "python version" batches (``cifar-10-batches-py``).

Each batch file is a pickled dict with ``b'data'`` (10000, 3072) uint8 (1024 red, then green,
then blue values per image, row-major 32x32) and ``b'labels'`` (10000 ints 0-9). The pickle is
read with a restricted unpickler that only rebuilds NumPy arrays and plain containers, so a
tampered file cannot run code.
"""
from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Callable

import numpy as np

from ..dataset import ArrayImageDataset, _pil_image

__all__ = ["CIFAR10", "CIFARError", "read_cifar_batch"]


class CIFARError(ValueError):
    """A CIFAR batch file is truncated, corrupt or inconsistent."""


class _SafeUnpickler(pickle.Unpickler):
    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"), ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_cifar_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """One batch file -> ``(images (N, 3, 32, 32) uint8, labels (N,) int64)``."""
    path = Path(path)
    try:
        d = _SafeUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError) as e:
        raise CIFARError(f"{path}: not a readable CIFAR-10 python batch "
                         f"(truncated or corrupt: {e})") from None
    if not isinstance(d, dict):
        raise CIFARError(f"{path}: not a CIFAR-10 batch (expected a dict, got {type(d).__name__})")
    d = {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}
    if "data" not in d or "labels" not in d:
        raise CIFARError(f"{path}: CIFAR-10 batch lacks 'data' or 'labels' (keys: {sorted(d)})")
    data, labels = np.asarray(d["data"]), np.asarray(d["labels"])
    if data.ndim != 2 or data.shape[1] != 3072 or data.dtype != np.uint8:
        raise CIFARError(f"{path}: 'data' should be (N, 3072) uint8, got {data.shape} {data.dtype}")
    if labels.shape != (data.shape[0],):
        raise CIFARError(f"{path}: {data.shape[0]} images but {labels.size} labels")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise CIFARError(f"{path}: labels outside 0..9")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


class CIFAR10(ArrayImageDataset):
    """CIFAR-10: 50,000 training and 10,000 test colour images (3, 32, 32) uint8, 10 classes.

    ``root`` is the folder holding ``cifar-10-batches-py/`` (or that folder itself).
    As torchvision: ``.data`` is a uint8 ndarray ``(N, 32, 32, 3)`` (HWC), ``.targets`` a list
    of ints, and ``ds[i]`` is ``(transform(PIL RGB image), target_transform(int label))``.
    ``ds.images`` views the data as ``(N, 3, 32, 32)``.
    """

    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
               "truck"]

    def __init__(self, root: str | os.PathLike | None = None, train: bool = True,
                 transform: Callable | None = None, target_transform: Callable | None = None,
                 download: bool = False) -> None:
        if download:
            raise ValueError("CIFAR10: download is not supported; get cifar-10-python.tar.gz from "
                             "https://www.cs.toronto.edu/~kriz/cifar.html and unpack it into "
                             "--data-dir")
        train_names = [f"data_batch_{i}" for i in range(1, 6)]
        names = train_names if train else ["test_batch"]
        # both splits from one folder, so a run never mixes two copies of the dataset
        every = train_names + ["test_batch"]
        candidates = [] if root is None else [Path(root) / "cifar-10-batches-py", Path(root)]
        folder = next((c for c in candidates if all((c / n).is_file() for n in every)), None)
        if folder is None:
            raise FileNotFoundError(
                f"CIFAR10: batches not found. Expected {', '.join(every)} together in "
                f"{' or '.join(map(str, candidates)) or '--data-dir (not given)'}. "
                "Get cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html and "
                "unpack it into --data-dir.")
        parts = [read_cifar_batch(folder / n) for n in names]
        self.root, self.train = root, train
        images = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
        super().__init__(images, labels, transform, target_transform)

    def _store(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.data = images.transpose(0, 2, 3, 1)  # a view, as torchvision's HWC array
        self.targets = labels.tolist()

    def _nchw(self) -> np.ndarray:
        return np.asarray(self.data).transpose(0, 3, 1, 2)

    def _sample(self, chw: np.ndarray):
        return _pil_image(chw)

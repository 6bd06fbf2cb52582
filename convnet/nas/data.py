"""Arrays for architecture search: ``load(name)`` -> train / val / test splits.

Search scores architectures on a validation split carved from the training set, never on the
test set (which is kept for the final, retrained model). Every split is a pair
``(images float32 (N, C, H, W) normalized by the training mean and std, labels int64 (N,))``.

Datasets: ``"fashion-mnist"`` (60,000 + 10,000, 1x28x28; the Debian package
``dataset-fashion-mnist`` or ``--data-dir``), ``"mnist"`` and ``"mnist-bundled"`` (the 10,000
digits shipped with convnet, used by tests and examples).
"""
from __future__ import annotations

import numpy as np

__all__ = ["DATASETS", "load", "downsample", "subset"]

DATASETS = ("fashion-mnist", "mnist", "mnist-bundled")


def _raw(name: str, data_dir, train: bool) -> tuple[np.ndarray, np.ndarray]:
    from ..data.datasets import mnist as m

    if name == "fashion-mnist":
        ds = m.FashionMNIST(data_dir, train=train)
    elif name == "mnist":
        ds = m.MNIST(data_dir, train=train)
    elif name == "mnist-bundled":
        ds = m.BundledMNIST(train=train)
    else:
        raise ValueError(f"nas.data.load: unknown dataset {name!r}; choose one of {list(DATASETS)}")
    images = np.asarray(ds.data.numpy() if hasattr(ds.data, "numpy") else ds.data)
    labels = np.asarray(ds.targets.numpy() if hasattr(ds.targets, "numpy") else ds.targets)
    return images.reshape(len(images), 1, *images.shape[-2:]), labels.astype(np.int64)


def downsample(images: np.ndarray, factor: int) -> np.ndarray:
    """Mean of each ``factor x factor`` block: ``(N, C, H, W) -> (N, C, H//f, W//f)``."""
    if factor == 1:
        return images
    n, c, h, w = images.shape
    h2, w2 = h // factor, w // factor
    x = images[:, :, :h2 * factor, :w2 * factor].astype(np.float32)
    return x.reshape(n, c, h2, factor, w2, factor).mean(axis=(3, 5))


def subset(split: tuple, n: int | None, seed: int = 0) -> tuple:
    """A fixed random ``n`` of a split (all of it when ``n`` is None or not smaller)."""
    x, y = split
    if n is None or n >= len(x):
        return x, y
    idx = np.sort(np.random.default_rng(seed).permutation(len(x))[:n])
    return x[idx], y[idx]


def load(name: str = "fashion-mnist", val_split: float = 0.1, seed: int = 0, data_dir=None,
         downsample_by: int = 1) -> dict:
    """``{"train": (x, y), "val": (x, y), "test": (x, y), "mean", "std", "classes"}``.

    ``val_split`` of the training set (a fixed random choice by ``seed``) becomes ``val``.
    Pixels are scaled to [0, 1], optionally block-averaged by ``downsample_by``, then
    normalized with the mean and std of the remaining training images.
    """
    if not 0 < val_split < 1:
        raise ValueError(f"nas.data.load: val_split must be in (0, 1), got {val_split!r}")
    xtr, ytr = _raw(name, data_dir, True)
    xte, yte = _raw(name, data_dir, False)
    perm = np.random.default_rng(seed).permutation(len(xtr))
    n_val = int(round(len(xtr) * val_split))
    val_idx, tr_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    scale = lambda x: downsample(x.astype(np.float32) / 255.0, downsample_by)  # noqa: E731
    xtr, xte = scale(xtr), scale(xte)
    mean, std = float(xtr[tr_idx].mean()), float(xtr[tr_idx].std()) or 1.0
    norm = lambda x: ((x - mean) / std).astype(np.float32)  # noqa: E731
    return {"train": (norm(xtr[tr_idx]), ytr[tr_idx]), "val": (norm(xtr[val_idx]), ytr[val_idx]),
            "test": (norm(xte), yte), "mean": mean, "std": std, "name": name,
            "classes": 10}

"""Datasets: anything with ``__len__`` and ``__getitem__`` returning one sample.

A dataset may also define ``__getitems__(indices) -> batch`` that returns an already collated
batch (a tuple of stacked arrays) for a whole index array at once. :class:`DataLoader` uses it
when present, which is how in-memory datasets (MNIST, CIFAR-10, :class:`TensorDataset`) avoid a
Python call per sample: one fancy-indexing gather and one batched transform per batch.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..tensor import Tensor

__all__ = ["Dataset", "TensorDataset", "Subset", "ArrayImageDataset", "random_split"]


class Dataset:
    """Base class: subclasses implement ``__getitem__(index)`` and ``__len__()``."""

    def __getitem__(self, index: int):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement __len__")


def _raw(x) -> np.ndarray:
    return x._data if isinstance(x, Tensor) else np.asarray(x)


class TensorDataset(Dataset):
    """Samples are rows of equally long tensors: ``ds[i] = (t0[i], t1[i], ...)``.

    Args:
        *tensors: Tensors or NumPy arrays sharing their first dimension ``N``.
    """

    def __init__(self, *tensors) -> None:
        if not tensors:
            raise ValueError("TensorDataset: needs at least one tensor")
        self.tensors = tuple(_raw(t) for t in tensors)
        sizes = [t.shape[0] if t.ndim else None for t in self.tensors]
        if None in sizes or len(set(sizes)) != 1:
            raise ValueError(f"TensorDataset: tensors must share their first dimension, got shapes "
                             f"{[t.shape for t in self.tensors]}")

    def __len__(self) -> int:
        return self.tensors[0].shape[0]

    def __getitem__(self, index: int):
        return tuple(Tensor._make(np.asarray(t[index])) for t in self.tensors)

    def __getitems__(self, indices: np.ndarray) -> tuple:
        return tuple(t[indices] for t in self.tensors)


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order."""

    def __init__(self, dataset, indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int):
        return self.dataset[int(self.indices[index])]

    def __getattr__(self, name: str):
        # Only reached for missing attributes: expose __getitems__ when the wrapped set has it.
        if name == "__getitems__" and hasattr(self.dataset, "__getitems__"):
            return lambda idx: self.dataset.__getitems__(self.indices[np.asarray(idx)])
        if name in ("classes", "num_channels"):
            return getattr(self.dataset, name)
        raise AttributeError(name)


def random_split(dataset, lengths: Sequence[int | float],
                 generator: np.random.Generator | None = None) -> list[Subset]:
    """Split ``dataset`` into non-overlapping :class:`Subset` s of the given lengths (or
    fractions summing to 1, as torch accepts)."""
    n = len(dataset)
    if all(isinstance(x, float) for x in lengths) and abs(sum(lengths) - 1) < 1e-9:
        counts = [int(np.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):  # hand the remainder out round-robin, as torch does
            counts[i % len(counts)] += 1
    else:
        counts = [int(x) for x in lengths]
    if sum(counts) != n or any(c < 0 for c in counts):
        raise ValueError(f"random_split: lengths {list(lengths)} do not add up to the dataset "
                         f"size {n}")
    if generator is None:
        from ..random import generator as global_generator

        generator = global_generator()
    perm = generator.permutation(n)
    bounds = np.cumsum([0] + counts)
    return [Subset(dataset, perm[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


class ArrayImageDataset(Dataset):
    """In-memory labelled images: ``images (N, C, H, W) uint8`` and ``labels (N,)``.

    ``ds[i]`` is ``(transform(images[i]), target_transform(labels[i]))``. Batches come from
    :meth:`__getitems__`, which applies a batch-capable ``transform`` (every transform in
    :mod:`convnet.data.transforms` is) to the whole ``(B, C, H, W)`` block at once; other
    callables are applied per sample.
    """

    classes: list[str] = []

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform=None,
                 target_transform=None, classes: Sequence[str] | None = None) -> None:
        images, labels = np.asarray(images), np.asarray(labels)
        if images.ndim != 4:
            raise ValueError(f"{type(self).__name__}: images must be (N, C, H, W), got shape "
                             f"{images.shape}")
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise ValueError(f"{type(self).__name__}: {images.shape[0]} images but labels of shape "
                             f"{labels.shape}")
        self.images, self.targets = images, labels.astype(np.int64, copy=False)
        self.transform, self.target_transform = transform, target_transform
        if classes is not None:
            self.classes = list(classes)

    @property
    def num_channels(self) -> int:
        return self.images.shape[1]

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int):
        img, label = self.images[index], self.targets[index]
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return img, label

    def __getitems__(self, indices: np.ndarray) -> tuple:
        imgs, labels = self.images[indices], self.targets[indices]
        t = self.transform
        if t is not None:
            if getattr(t, "batched", False):
                imgs = t(imgs)
            else:
                imgs = np.stack([np.asarray(t(im)) for im in imgs])
        if self.target_transform is not None:
            labels = np.asarray([self.target_transform(y) for y in labels])
        return imgs, labels

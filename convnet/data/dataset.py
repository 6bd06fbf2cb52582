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

__all__ = ["Dataset", "IterableDataset", "TensorDataset", "ConcatDataset", "Subset",
           "ArrayImageDataset", "random_split"]


class Dataset:
    """Base class: subclasses implement ``__getitem__(index)`` and ``__len__()``.

    ``a + b`` concatenates two datasets (a :class:`ConcatDataset`), as in torch.
    """

    def __getitem__(self, index: int):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement __len__")

    def __add__(self, other: "Dataset") -> "ConcatDataset":
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """A stream of samples: subclasses implement ``__iter__``. The :class:`DataLoader` batches
    what the iterator yields (no ``shuffle``, no ``sampler``)."""

    def __iter__(self):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement __iter__")

    def __add__(self, other):
        raise TypeError("IterableDataset: concatenate streams with itertools.chain, not +")


def _raw(x) -> np.ndarray:
    return x._data if isinstance(x, Tensor) else np.asarray(x)


def _as_tensor(x) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor._make(np.asarray(x))


class TensorDataset(Dataset):
    """Samples are rows of equally long tensors: ``ds[i] = (t0[i], t1[i], ...)``.

    Args:
        *tensors: Tensors (or NumPy arrays, wrapped without copying) sharing their first
            dimension ``N``; kept as Tensors in ``.tensors``, as torch does.
    """

    def __init__(self, *tensors) -> None:
        if not tensors:
            raise ValueError("TensorDataset: needs at least one tensor")
        self.tensors = tuple(_as_tensor(t) for t in tensors)
        sizes = [t.shape[0] if t.ndim else None for t in self.tensors]
        if None in sizes or len(set(sizes)) != 1:
            raise ValueError("TensorDataset: tensors must share their first dimension (Size "
                             f"mismatch between tensors), got shapes "
                             f"{[tuple(t.shape) for t in self.tensors]}")

    def __len__(self) -> int:
        return self.tensors[0].shape[0]

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __getitems__(self, indices: np.ndarray) -> tuple:
        return tuple(t._data[indices] for t in self.tensors)


class ConcatDataset(Dataset):
    """The samples of several datasets one after the other (torch's ``ConcatDataset``).

    ``cumulative_sizes[k]`` is the number of samples in ``datasets[:k + 1]``; negative
    indices count from the end.
    """

    def __init__(self, datasets) -> None:
        self.datasets = list(datasets)
        if not self.datasets:
            raise AssertionError("datasets should not be an empty iterable")
        for d in self.datasets:
            if isinstance(d, IterableDataset):
                raise AssertionError("ConcatDataset does not support IterableDataset")
        self.cumulative_sizes = list(np.cumsum([len(d) for d in self.datasets]).tolist())

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, idx: int):
        n = len(self)
        if idx < 0:
            if -idx > n:
                raise ValueError("absolute value of index should not exceed dataset length")
            idx += n
        if idx >= n:
            raise IndexError(f"ConcatDataset: index {idx} out of range for {n} samples")
        k = int(np.searchsorted(self.cumulative_sizes, idx, side="right"))
        start = self.cumulative_sizes[k - 1] if k else 0
        return self.datasets[k][idx - start]


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order."""

    def __init__(self, dataset, indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index):
        if isinstance(index, list):
            return self.dataset[[int(self.indices[i]) for i in index]]
        return self.dataset[int(self.indices[index])]

    def __getattr__(self, name: str):
        # Only reached for missing attributes: expose __getitems__ when the wrapped set has it.
        if name == "__getitems__" and hasattr(self.dataset, "__getitems__"):
            return lambda idx: self.dataset.__getitems__(
                np.asarray(self.indices, dtype=np.int64)[np.asarray(idx)])
        if name in ("classes", "num_channels"):
            return getattr(self.dataset, name)
        raise AttributeError(name)


def _permutation(generator, n: int) -> np.ndarray:
    """A random permutation of ``range(n)`` from ``generator``: a ``np.random.Generator``, an
    object wrapping one (``convnet.Generator``-like), or None for convnet's global one."""
    if generator is None:
        from ..random import generator as global_generator

        generator = global_generator()
    if not hasattr(generator, "permutation"):
        inner = next((getattr(generator, a) for a in ("_rng", "_generator", "generator")
                      if hasattr(getattr(generator, a, None), "permutation")), None)
        if inner is None:
            raise TypeError("random_split: generator must be a numpy Generator or a convnet "
                            f"Generator, got {type(generator).__name__}")
        generator = inner
    return np.asarray(generator.permutation(n))


def random_split(dataset, lengths: Sequence[int | float],
                 generator: np.random.Generator | None = None) -> list[Subset]:
    """Split ``dataset`` into non-overlapping :class:`Subset` s of the given lengths (or
    fractions summing to 1, as torch accepts: ``floor(n * f)`` each, the remainder handed
    out one by one from the first split)."""
    n = len(dataset)
    if all(isinstance(x, float) for x in lengths) and abs(sum(lengths) - 1) < 1e-9:
        counts = [int(np.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):  # hand the remainder out round-robin, as torch does
            counts[i % len(counts)] += 1
    else:
        counts = [int(x) for x in lengths]
    if sum(counts) != n or any(c < 0 for c in counts):
        raise ValueError(f"random_split: lengths {list(lengths)} do not add up to the dataset "
                         f"size {n} (Sum of input lengths does not equal the length of the "
                         "input dataset!)")
    perm = _permutation(generator, n)
    bounds = np.cumsum([0] + counts)
    return [Subset(dataset, perm[a:b].tolist()) for a, b in zip(bounds[:-1], bounds[1:])]


def _pil_image(chw: np.ndarray):
    """A ``(C, H, W)`` uint8 image (C = 1 or 3) as the PIL image torchvision's datasets
    hand to transforms (mode 'L' or 'RGB')."""
    from PIL import Image

    if chw.shape[0] == 1:
        return Image.fromarray(np.ascontiguousarray(chw[0]), mode="L")
    return Image.fromarray(np.ascontiguousarray(chw.transpose(1, 2, 0)), mode="RGB")


class ArrayImageDataset(Dataset):
    """In-memory labelled images: ``images (N, C, H, W) uint8`` and ``labels (N,)``.

    ``ds[i]`` is ``(transform(image), target_transform(label))`` with the label a Python
    ``int`` and the image a uint8 Tensor ``(C, H, W)`` (torchvision's tensor-image layout;
    ``ToTensor`` scales it to float in ``[0, 1]``). The torchvision-named subclasses (MNIST,
    CIFAR-10) give PIL images instead, as torchvision's do.

    Batches come from :meth:`__getitems__`: when every step of ``transform`` has an array
    form (``transform._batch``, true of :class:`~convnet.data.transforms.Compose` of
    ``ToTensor``, crops, flips, ``Normalize``, ...) the whole ``(B, C, H, W)`` block goes
    through it at once, each image with its own random draws; otherwise samples are built
    one by one as above and stacked. Both give the same values.

    Subclasses (MNIST, CIFAR-10) keep their images in torchvision's layout in ``.data`` and
    override :meth:`_nchw` to view them as ``(N, C, H, W)``.
    """

    classes: list[str] = []

    def __init__(self, images: np.ndarray, labels, transform=None,
                 target_transform=None, classes: Sequence[str] | None = None) -> None:
        images, labels = np.asarray(images), np.asarray(_raw(labels))
        if images.ndim != 4:
            raise ValueError(f"{type(self).__name__}: images must be (N, C, H, W), got shape "
                             f"{images.shape}")
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise ValueError(f"{type(self).__name__}: {images.shape[0]} images but labels of shape "
                             f"{labels.shape}")
        self._store(images, labels.astype(np.int64, copy=False))
        self.transform, self.target_transform = transform, target_transform
        if classes is not None:
            self.classes = list(classes)

    # --- storage: subclasses keep torchvision's layout in .data / .targets -------------
    def _store(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.data, self.targets = images, labels

    def _nchw(self) -> np.ndarray:
        """The images as an ``(N, C, H, W)`` uint8 array (a view of ``.data``)."""
        return _raw(self.data)

    def _labels(self, indices) -> np.ndarray:
        t = self.targets
        if isinstance(t, (Tensor, np.ndarray)):
            return _raw(t)[indices].astype(np.int64, copy=False)
        return np.asarray([t[int(i)] for i in np.atleast_1d(indices)], dtype=np.int64)

    @property
    def images(self) -> np.ndarray:
        """``(N, C, H, W)`` uint8 view of the images (whatever layout ``.data`` has)."""
        return self._nchw()

    @property
    def class_to_idx(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.classes)}

    @property
    def num_channels(self) -> int:
        return self._nchw().shape[1]

    def __len__(self) -> int:
        return len(self.data)

    def _sample(self, chw: np.ndarray):
        """The image handed to ``transform`` (and returned without one)."""
        return Tensor._make(chw.copy())

    def __getitem__(self, index: int):
        img = self._sample(self._nchw()[index])
        label = int(_raw(self.targets[index]))
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return img, label

    def __getitems__(self, indices: np.ndarray) -> tuple:
        indices = np.asarray(indices, dtype=np.int64)
        t = self.transform
        batch = getattr(t, "_batch", None) if t is not None else None
        if t is not None and (batch is None or not getattr(t, "batched", False)):
            # a step without an array form: build samples as __getitem__ does, then stack
            from .dataloader import default_collate

            return default_collate([self[int(i)] for i in indices])
        imgs, labels = self._nchw()[indices], self._labels(indices)
        if batch is not None:
            imgs = batch(imgs)
        if self.target_transform is not None:
            from .dataloader import default_collate

            labels = default_collate([self.target_transform(int(y)) for y in labels])
        return imgs, labels

"""``DataLoader``: batches, shuffling and background prefetching.

Order and augmentation are reproducible and independent of ``num_workers``: epoch ``e`` is
shuffled by a generator seeded with ``(seed, e)`` and batch ``b`` of that epoch draws its
random transforms from a generator seeded with ``(seed, e, b)``. So a run resumed at epoch
``e`` (restore :meth:`DataLoader.state_dict`) sees exactly the batches an uninterrupted run
would have seen.

Workers are threads: ``num_workers`` background threads fetch and transform the next
``num_workers * prefetch_factor`` batches while the model computes on the current one. NumPy
releases the GIL inside its array kernels, so input work overlaps compute without the copying
and start-up cost of processes.
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator

import numpy as np

from ..tensor import Tensor
from .dataset import IterableDataset
from .transforms import use_rng

__all__ = ["DataLoader", "default_collate"]


def _to_tensor(x) -> Tensor:
    if isinstance(x, Tensor):
        return x
    arr = np.asarray(x)
    if arr.dtype.kind in "iu" and arr.dtype != np.uint8:
        arr = arr.astype(np.int64, copy=False)  # class labels: cross-entropy wants int64
    return Tensor._make(arr)


def default_collate(samples: list):
    """Stack a list of samples into a batch: tuples are collated field by field, arrays,
    Tensors and numbers become one Tensor with a leading batch dimension."""
    first = samples[0]
    if isinstance(first, (str, bytes)):
        return list(samples)  # as torch: strings are kept as a list
    if not isinstance(first, (Tensor, np.ndarray, np.generic, int, float, bool, complex,
                              tuple, list, dict)):
        raise TypeError("default_collate: batch must contain tensors, numpy arrays, numbers, "
                        f"dicts or lists; found {type(first)} (a PIL image needs a transform "
                        "such as ToTensor())")
    if isinstance(first, (tuple, list)):
        return tuple(default_collate([s[i] for s in samples]) for i in range(len(first)))
    if isinstance(first, dict):
        return {k: default_collate([s[k] for s in samples]) for k in first}
    arrays = [s._data if isinstance(s, Tensor) else np.asarray(s) for s in samples]
    return _to_tensor(np.stack(arrays))


def _wrap_batch(batch):
    """Turn an already stacked batch (from ``__getitems__``) into Tensors."""
    if isinstance(batch, (tuple, list)):
        return tuple(_wrap_batch(b) for b in batch)
    if isinstance(batch, dict):
        return {k: _wrap_batch(v) for k, v in batch.items()}
    return _to_tensor(batch)


class DataLoader:
    """Iterate over ``dataset`` in batches.

    Args:
        dataset: a map-style dataset (``__len__``, ``__getitem__``; optionally ``__getitems__``).
        batch_size: samples per batch (default 1).
        shuffle: reshuffle at every epoch (default False).
        sampler: an iterable of indices to use instead of ``range(len(dataset))``.
        num_workers: background threads prefetching batches (0: load in the calling thread).
        collate_fn: builds a batch from a list of samples (default :func:`default_collate`).
        drop_last: drop the last incomplete batch.
        generator: a ``np.random.Generator`` from which the base seed is drawn once.
        prefetch_factor: batches kept in flight per worker (default 2).
        seed: the base seed (overrides ``generator``); with neither, it is drawn from
            convnet's global generator, so ``cn.manual_seed`` makes runs reproducible.

    Yields tuples of Tensors ``(images (B, C, H, W), labels (B,))`` for image datasets.
    """

    def __init__(self, dataset, batch_size: int | None = 1, shuffle: bool = False, sampler=None,
                 batch_sampler=None, num_workers: int = 0, collate_fn: Callable | None = None,
                 pin_memory: bool = False, drop_last: bool = False, timeout: float = 0,
                 worker_init_fn=None, multiprocessing_context=None,
                 generator: np.random.Generator | None = None, *,
                 prefetch_factor: int | None = None, persistent_workers: bool = False,
                 seed: int | None = None) -> None:
        bad_size = not isinstance(batch_size, (int, np.integer)) or batch_size <= 0
        if batch_size is not None and bad_size:
            raise ValueError("DataLoader: batch_size must be a positive integer, got "
                             f"{batch_size!r}")
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError("DataLoader: num_workers must be a non-negative integer, got "
                             f"{num_workers!r}")
        if isinstance(dataset, IterableDataset) and (shuffle or sampler is not None):
            raise ValueError("DataLoader with IterableDataset: expected unspecified shuffle "
                             "and sampler options")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler and shuffle=True are mutually exclusive")
        if batch_sampler is not None and (batch_size != 1 or shuffle or sampler is not None
                                          or drop_last):
            raise ValueError("DataLoader: batch_sampler excludes batch_size, shuffle, sampler and "
                             "drop_last")
        if prefetch_factor is not None and num_workers == 0:
            raise ValueError("DataLoader: prefetch_factor needs num_workers > 0")
        self.dataset = dataset
        self.batch_size = None if batch_sampler is not None else batch_size
        self.shuffle, self.sampler, self.batch_sampler = bool(shuffle), sampler, batch_sampler
        self.num_workers, self.drop_last = num_workers, bool(drop_last)
        self.collate_fn = collate_fn
        self.prefetch_factor = 2 if prefetch_factor is None else int(prefetch_factor)
        self.worker_init_fn = worker_init_fn
        if seed is None:
            if generator is None:
                from ..random import generator as global_generator

                generator = global_generator()
            seed = int(generator.integers(0, 2**62))
        self.seed = int(seed)
        self.epoch = 0  # the epoch the next __iter__ will produce

    # ------------------------------------------------------------------ state
    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration produce epoch ``epoch`` (order and augmentation)."""
        self.epoch = int(epoch)

    def state_dict(self) -> dict:
        return {"seed": self.seed, "epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        self.seed, self.epoch = int(state["seed"]), int(state["epoch"])

    # ---------------------------------------------------------------- batching
    def _batches(self, epoch: int) -> list[np.ndarray]:
        if self.batch_sampler is not None:
            return [np.asarray(list(b), dtype=np.int64) for b in self.batch_sampler]
        if self.sampler is not None:
            order = np.fromiter(iter(self.sampler), dtype=np.int64)
        elif self.shuffle:
            order = np.random.default_rng([self.seed, epoch]).permutation(len(self.dataset))
        else:
            order = np.arange(len(self.dataset))
        if self.batch_size is None:
            return [np.asarray([i]) for i in order]
        bs = self.batch_size
        stop = len(order) - len(order) % bs if self.drop_last else len(order)
        return [order[i:i + bs] for i in range(0, stop, bs)]

    def __len__(self) -> int:
        if self.batch_sampler is not None:
            return len(self.batch_sampler)
        n = len(self.sampler) if self.sampler is not None else len(self.dataset)
        if self.batch_size is None:
            return n
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def _fetch(self, indices: np.ndarray, epoch: int, b: int):
        with use_rng(np.random.default_rng([self.seed, epoch, b])):
            getitems = getattr(self.dataset, "__getitems__", None)
            if getitems is not None and self.collate_fn is None:
                batch = _wrap_batch(getitems(indices))
            else:
                samples = [self.dataset[int(i)] for i in indices]
                batch = (self.collate_fn or default_collate)(samples)
        if self.batch_size is None and self.batch_sampler is None:
            batch = batch[0] if not isinstance(batch, tuple) else tuple(x[0] for x in batch)
        return batch

    def _iterable(self) -> Iterator:
        """Batches of an :class:`IterableDataset`: consecutive samples of its iterator."""
        collate = self.collate_fn or default_collate
        if self.batch_size is None:
            yield from (collate(s) if self.collate_fn is not None else s for s in self.dataset)
            return
        chunk = []
        for sample in self.dataset:
            chunk.append(sample)
            if len(chunk) == self.batch_size:
                yield collate(chunk)
                chunk = []
        if chunk and not self.drop_last:
            yield collate(chunk)

    def __iter__(self) -> Iterator:
        if isinstance(self.dataset, IterableDataset):
            return self._iterable()
        epoch = self.epoch
        self.epoch += 1
        batches = self._batches(epoch)
        if self.num_workers == 0:
            return (self._fetch(idx, epoch, b) for b, idx in enumerate(batches))
        return self._prefetching(batches, epoch)

    def _prefetching(self, batches: list[np.ndarray], epoch: int) -> Iterator:
        pool = ThreadPoolExecutor(self.num_workers, thread_name_prefix="convnet-loader",
                                  initializer=self.worker_init_fn,
                                  initargs=() if self.worker_init_fn is None else (0,))
        depth = self.num_workers * self.prefetch_factor
        pending = []
        try:
            nxt = 0
            for b in range(len(batches)):
                while nxt < len(batches) and len(pending) < depth:
                    pending.append(pool.submit(self._fetch, batches[nxt], epoch, nxt))
                    nxt += 1
                yield pending.pop(0).result()
        finally:  # early break or error: drop queued work, do not wait for a full epoch
            for f in pending:
                f.cancel()
            pool.shutdown(wait=True, cancel_futures=True)

    def __repr__(self) -> str:
        return (f"DataLoader(dataset={type(self.dataset).__name__}(n={len(self.dataset)}), "
                f"batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"num_workers={self.num_workers})")



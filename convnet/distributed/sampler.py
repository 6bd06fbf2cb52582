"""``DistributedSampler``: each rank's share of a dataset, one disjoint slice per rank.

torch.utils.data.distributed.DistributedSampler's rule, with NumPy's generator for the
shuffle. For ``n = len(dataset)`` samples and ``K`` replicas, epoch ``e``:

1. ``order = permutation(n)`` from ``np.random.default_rng(seed + e)`` (``arange(n)``
   without shuffle),
2. ``total = K * ceil(n / K)``: ``order`` is padded to ``total`` by repeating it from its
   start (``drop_last=True``: truncated to ``K * floor(n / K)`` instead),
3. rank ``r`` takes ``order[r::K]``: ``total / K`` indices.

The ranks' slices are disjoint (up to the padding) and together cover the dataset. Position
``i`` of the padded order goes to rank ``i mod K`` as its ``i div K``-th index, so with a
local batch ``b`` the ``j``-th batches of all ranks together are positions ``j K b ..
(j + 1) K b - 1``: exactly the ``j``-th global batch of size ``B = K b`` that one process
reading ``order`` would see (the last one may hold padding). That is what makes ``K`` ranks
with batch ``b`` train like one process with batch ``B``.
"""
from __future__ import annotations

import math
from typing import Iterator

import numpy as np

from . import comm

__all__ = ["DistributedSampler"]


class DistributedSampler:
    """Indices of this rank's share of ``dataset``, for ``DataLoader(sampler=...)``.

    Args:
        dataset: anything with ``len()``.
        num_replicas: the number of ranks ``K`` (default: the world size, 1 before
            ``init()``).
        rank: this rank (default: this process's rank).
        shuffle: a new permutation every epoch (default True).
        seed: the shuffle's base seed; must be the same on every rank (default 0).
        drop_last: truncate instead of padding when ``K`` does not divide ``len(dataset)``.

    Call :meth:`set_epoch` at the start of every epoch (before iterating the DataLoader), or
    every epoch reuses epoch 0's order. ``len(sampler)`` is the number of indices per rank,
    ``ceil(n / K)`` (``floor(n / K)`` with ``drop_last``).

    Example::

        sampler = DistributedSampler(train_set, seed=0)
        loader = DataLoader(train_set, batch_size=32, sampler=sampler)  # not shuffle=True
        for epoch in range(epochs):
            sampler.set_epoch(epoch)
            for x, y in loader: ...
    """

    def __init__(self, dataset, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False) -> None:
        name = "DistributedSampler"
        if num_replicas is None:
            num_replicas = comm.get_world_size()
        if rank is None:
            rank = comm.get_rank()
        if not isinstance(num_replicas, (int, np.integer)) or num_replicas < 1:
            raise ValueError(f"{name}: num_replicas must be a positive integer, got "
                             f"{num_replicas!r}")
        if not isinstance(rank, (int, np.integer)) or not 0 <= rank < num_replicas:
            raise ValueError(f"{name}: invalid rank {rank!r}, rank should be in the interval "
                             f"[0, {num_replicas - 1}]")
        n = len(dataset)
        if num_replicas > n:
            raise ValueError(f"{name}: world size {num_replicas} is larger than the dataset "
                             f"({n} samples); every rank needs at least one sample")
        self.dataset, self.num_replicas, self.rank = dataset, int(num_replicas), int(rank)
        self.shuffle, self.seed, self.drop_last = bool(shuffle), int(seed), bool(drop_last)
        self.epoch = 0
        k = self.num_replicas
        self.num_samples = n // k if drop_last else math.ceil(n / k)
        self.total_size = self.num_samples * k

    def set_epoch(self, epoch: int) -> None:
        """Use epoch ``epoch``'s permutation (seed ``seed + epoch``) from the next iteration."""
        self.epoch = int(epoch)

    def indices(self) -> np.ndarray:
        """This rank's indices for the current epoch, as an int64 array."""
        n = len(self.dataset)
        if self.shuffle:
            order = np.random.default_rng(self.seed + self.epoch).permutation(n)
        else:
            order = np.arange(n)
        if self.total_size > n:  # pad by repeating the order from its start
            order = np.resize(order, self.total_size)
        else:
            order = order[:self.total_size]
        return order[self.rank::self.num_replicas].astype(np.int64, copy=False)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return self.num_samples

    def __repr__(self) -> str:
        return (f"DistributedSampler(n={len(self.dataset)}, num_replicas={self.num_replicas}, "
                f"rank={self.rank}, shuffle={self.shuffle}, seed={self.seed}, "
                f"drop_last={self.drop_last})")

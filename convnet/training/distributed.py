"""``DistributedTrainer``: the :class:`Trainer` loop run by every MPI rank of a data-parallel job.

Each of the ``K`` ranks trains the same model on its shard of every global batch (a
:class:`~convnet.distributed.DistributedSampler` deals the shards), and a
:class:`~convnet.distributed.DistributedOptimizer` averages the gradients before each step, so
the ranks stay identical. What this class adds to the one-process loop:

- metrics are sums reduced over the ranks before they are reported: the epoch's loss is
  ``sum over ranks of (loss sum) / sum over ranks of (samples)``, and accuracies likewise, so
  every rank computes the same numbers (and callbacks such as early stopping agree);
- only rank 0 writes: checkpoints, ``model.safetensors``, ``metrics.json``, ``curves.png`` and
  the per-epoch log lines; the other ranks draw no progress bar either;
- ``comm_time_s`` in each epoch's record: the seconds this rank spent in collectives (gradient
  averaging and metric reduction) during the epoch, the cost that data parallelism adds.

Example (``mpiexec -n 2 python train.py``)::

    from convnet import distributed as dist
    from convnet.training import DistributedTrainer
    dist.init()
    sampler = dist.DistributedSampler(train_set, shuffle=True, seed=0)
    loader = DataLoader(train_set, 64 // dist.get_world_size(), sampler=sampler)
    opt = dist.DistributedOptimizer(optim.SGD(model.parameters(), lr=0.05))
    DistributedTrainer(model, opt, loader, epochs=5, out_dir="runs/dp").fit()
"""
from __future__ import annotations

import numpy as np

from .metrics import MetricAccumulator
from .trainer import Trainer

__all__ = ["DistributedTrainer", "reduce_accumulator"]


def reduce_accumulator(acc: MetricAccumulator) -> None:
    """Add ``acc``'s sums (loss sum, samples, images, top-k hits, confusion matrix) over all
    ranks, in place: afterwards every rank's ``acc.result()`` is the whole job's."""
    from .. import distributed as dist

    ks = list(acc.topk)
    sums = np.array([acc.loss_sum, acc.count, acc.images, float(acc.dense)]
                    + [acc.correct[k] for k in ks], dtype=np.float64)
    sums = dist.allreduce(sums, op="sum")
    acc.loss_sum, acc.count, acc.images = float(sums[0]), int(sums[1]), int(sums[2])
    acc.dense = bool(sums[3] > 0)
    acc.correct = {k: int(v) for k, v in zip(ks, sums[4:])}
    if acc.confusion is not None:
        acc.confusion.matrix = dist.allreduce(acc.confusion.matrix.astype(np.int64),
                                              op="sum").astype(np.int64)


class DistributedTrainer(Trainer):
    """:class:`Trainer` for one rank of a data-parallel job (see the module docstring).

    Arguments are the Trainer's. ``optimizer`` should be a
    :class:`~convnet.distributed.DistributedOptimizer` (a plain optimizer lets the ranks'
    weights drift apart: refused), ``train_loader`` should draw from a
    ``DistributedSampler``, and the validation loader should give each rank a disjoint shard
    (sums are added, so shards that overlap would count images twice).
    """

    def __init__(self, model, optimizer, train_loader, val_loader=None, **kwargs):
        from .. import distributed as dist

        if not dist.is_initialized():
            raise RuntimeError("DistributedTrainer: call convnet.distributed.init() first "
                               "(and start the job with mpiexec)")
        if not isinstance(optimizer, dist.DistributedOptimizer):
            raise TypeError("DistributedTrainer: optimizer must be a "
                            "convnet.distributed.DistributedOptimizer (it averages the gradients "
                            f"across ranks), got {type(optimizer).__name__}")
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        if self.rank != 0:  # one voice: only rank 0 logs and draws progress
            kwargs["log"], kwargs["progress"] = None, False
        super().__init__(model, optimizer, train_loader, val_loader, **kwargs)

    def reduce_metrics(self, acc: MetricAccumulator) -> None:
        reduce_accumulator(acc)

    def train_loader_set_epoch(self) -> None:
        super().train_loader_set_epoch()
        sampler = getattr(self.train_loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):  # a new shuffle each epoch, the same on every rank
            sampler.set_epoch(self.epoch)

    def train_epoch(self) -> dict:
        from .. import distributed as dist

        self.train_loader_set_epoch()  # resumed or not, epoch k draws permutation k
        before = dist.comm_seconds()
        out = super().train_epoch()
        out["comm_time_s"] = dist.comm_seconds() - before
        return out

    # Only rank 0 writes; the others keep the same state in memory.
    def save(self, out_dir, plot: bool = True) -> None:
        if self.rank == 0:
            super().save(out_dir, plot)
        self.saved_epoch = self.epoch

    def plot(self, path) -> None:
        if self.rank == 0:
            super().plot(path)

    def write_metrics(self, out_dir, extra: dict | None = None):
        if self.rank == 0:
            return super().write_metrics(out_dir, extra)
        return None

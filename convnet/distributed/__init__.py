"""Data-parallel training over MPI (``mpiexec -n K python train.py``).

Every rank holds a full replica of the model and trains on its own slice of each global
batch; after ``backward()`` the gradients are averaged over the ranks, so all replicas take
the same step, the step one process would take on the whole global batch. A training
script needs four changes:

.. code-block:: python

    import convnet.distributed as dist

    dist.init()                                        # join the MPI world
    model = dist.convert_sync_batchnorm(model)         # optional: BN statistics over all ranks
    opt = dist.DistributedOptimizer(optim.SGD(model.parameters(), lr=0.1))  # broadcast + mean
    sampler = dist.DistributedSampler(train_set, seed=0)
    loader = DataLoader(train_set, batch_size=global_batch // dist.get_world_size(),
                        sampler=sampler)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for x, y in loader:
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
        if dist.get_rank() == 0:
            ...                                        # only rank 0 logs and saves

Modules:

* :mod:`~convnet.distributed.comm`: :func:`init`, rank and world size, the collectives
  (``allreduce``, ``broadcast``, ``all_gather``, ...) and :func:`comm_seconds`;
* :mod:`~convnet.distributed.gradients`: :func:`broadcast_parameters`,
  :func:`allreduce_gradients` (bucketed);
* :mod:`~convnet.distributed.optimizer`: :class:`DistributedOptimizer`;
* :mod:`~convnet.distributed.sampler`: :class:`DistributedSampler`;
* :mod:`~convnet.distributed.sync_batchnorm`: :class:`SyncBatchNorm` (also
  ``convnet.nn.SyncBatchNorm``) and :func:`convert_sync_batchnorm`.

mpi4py is imported only by :func:`init`; without it (or without ``init()``) everything here
acts as a world of one rank, so the same script runs as a plain single process.
"""
from .comm import (  # noqa: F401
    abort, abort_on_exit, all_gather, all_gather_object, allreduce, barrier, broadcast,
    broadcast_object, comm_seconds, get_rank, get_world_size, init, is_initialized,
    launched_by_mpi, reset_comm_seconds,
)
from .gradients import allreduce_gradients, broadcast_parameters, bucket_layout  # noqa: F401
from .optimizer import DistributedOptimizer  # noqa: F401
from .sampler import DistributedSampler  # noqa: F401
from .sync_batchnorm import SyncBatchNorm, convert_sync_batchnorm  # noqa: F401
from .functional import sync_batch_norm  # noqa: F401

__all__ = [
    "init", "is_initialized", "get_rank", "get_world_size", "launched_by_mpi", "barrier",
    "allreduce", "broadcast", "all_gather", "all_gather_object", "broadcast_object",
    "comm_seconds", "reset_comm_seconds", "abort", "abort_on_exit", "broadcast_parameters",
    "allreduce_gradients", "bucket_layout", "DistributedOptimizer", "DistributedSampler",
    "SyncBatchNorm", "convert_sync_batchnorm", "sync_batch_norm",
]

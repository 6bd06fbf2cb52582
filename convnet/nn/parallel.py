"""``nn.DataParallel`` and ``nn.parallel.DistributedDataParallel``.

convnet runs on the CPU, where torch's ``DataParallel`` also just calls the wrapped module
(there are no devices to scatter to). ``DistributedDataParallel`` is data parallelism over
MPI processes (:mod:`convnet.distributed`). Both wrappers keep torch's shape so scripts run
unchanged: the model is ``.module``, and ``state_dict`` keys carry the ``module.`` prefix.
"""
from __future__ import annotations

from .modules.module import Module

__all__ = ["DataParallel", "DistributedDataParallel", "data_parallel"]


class DataParallel(Module):
    """Wrap ``module``; ``forward`` calls it with the same arguments.

    ``device_ids``, ``output_device`` and ``dim`` are accepted and, as in torch without
    GPUs, ignored (``device_ids`` becomes ``[]``). ``state_dict()`` keys are
    ``'module.' + key``; load an unwrapped model from them with
    ``model.load_state_dict({k.removeprefix('module.'): v for k, v in sd.items()})`` or
    save ``wrapper.module.state_dict()`` in the first place.
    """

    def __init__(self, module: Module, device_ids=None, output_device=None, dim: int = 0):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DataParallel: expected a Module, got {type(module).__name__}")
        self.module = module
        self.device_ids: list = []
        self.output_device = None
        self.dim = dim

    def forward(self, *inputs, **kwargs):
        return self.module(*inputs, **kwargs)


def data_parallel(module, inputs, device_ids=None, output_device=None, dim: int = 0,
                  module_kwargs=None):
    """Functional form: ``module(*inputs, **module_kwargs)`` (one CPU device)."""
    if not isinstance(inputs, tuple):
        inputs = (inputs,)
    return module(*inputs, **(module_kwargs or {}))


class DistributedDataParallel(Module):
    """Data-parallel training over MPI ranks (``convnet.distributed``); wraps ``module``.

    Built on every rank after ``convnet.distributed.init()``: it broadcasts ``module``'s
    parameters and buffers from rank 0, so all replicas start equal, and ``forward`` calls
    ``module`` (with ``broadcast_buffers=True``, torch's default, rank 0's buffers, such as
    BatchNorm running statistics, are broadcast first in training mode, so they stay equal
    too).

    convnet's autograd has no gradient hooks, so gradients are not averaged during
    ``backward()`` as in torch: after ``loss.backward()`` call :meth:`allreduce_gradients`
    (``convnet.distributed.allreduce_gradients(ddp)`` is the same), or step a
    ``convnet.distributed.DistributedOptimizer``, which does it (not both: each call
    averages again, harmlessly but at a cost). ``state_dict()`` keys carry the ``module.``
    prefix, as torch's.

    Args: module, device_ids/output_device/dim (accepted and ignored on the CPU, as in
    :class:`DataParallel`), broadcast_buffers=True, process_group=None (only the world),
    bucket_cap_mb=25 (the largest gradient message of :meth:`allreduce_gradients`, MiB);
    torch's other keyword arguments are accepted and ignored.

    Example::

        ddp = nn.parallel.DistributedDataParallel(model)
        loss_fn(ddp(x), y).backward()
        ddp.allreduce_gradients()
        optimizer.step()

    Raises:
        RuntimeError: ``convnet.distributed.init()`` has not run.
    """

    def __init__(self, module: Module, device_ids=None, output_device=None, dim: int = 0,
                 broadcast_buffers: bool = True, process_group=None,
                 bucket_cap_mb: float = 25, **kwargs):
        from .. import distributed as dist

        if not dist.is_initialized():
            raise RuntimeError(
                "DistributedDataParallel: convnet.distributed is not initialized; call "
                "convnet.distributed.init() first, in every process started by "
                "`mpiexec -n K python script.py`. In a single process train the module "
                "directly, or wrap it in nn.DataParallel, which calls it unchanged.")
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: expected a Module, got "
                            f"{type(module).__name__}")
        if process_group is not None:
            raise NotImplementedError("DistributedDataParallel: only the world group "
                                      "(process_group=None) is supported")
        self.module = module
        self.device_ids: list = []
        self.output_device = None
        self.dim = dim
        self.broadcast_buffers = bool(broadcast_buffers)
        self.bucket_cap_mb = bucket_cap_mb
        dist.broadcast_parameters(module)

    def forward(self, *inputs, **kwargs):
        if self.broadcast_buffers and self.module.training:
            from ..distributed.gradients import _broadcast_tensors

            buffers = [b for b in self.module.buffers() if b is not None]
            if buffers:  # rank 0's, before this forward uses and updates them
                _broadcast_tensors(buffers, 0)
        return self.module(*inputs, **kwargs)

    def allreduce_gradients(self) -> None:
        """Average every parameter's ``.grad`` over the ranks (after ``backward()``, before
        ``optimizer.step()``); see :func:`convnet.distributed.allreduce_gradients`."""
        from ..distributed import allreduce_gradients

        allreduce_gradients(self.module, self.bucket_cap_mb)

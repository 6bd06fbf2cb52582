"""``SyncBatchNorm``: batch norm whose training statistics span every rank's batch.

Plain BatchNorm under data parallelism normalizes each rank's local batch ``b`` by its own
statistics, which makes the model depend on how the global batch ``B = K b`` was split (and
on ``b`` alone when ``b`` is small). SyncBatchNorm computes them over all ``B`` samples
(:func:`convnet.distributed.functional.sync_batch_norm`), so ``K`` ranks with batch ``b``
compute what one process computes with batch ``B``, running statistics included.
"""
from __future__ import annotations

from ..nn.modules.module import Module
from ..nn.modules.normalization import _BatchNorm
from ..tensor import Tensor
from . import comm
from .functional import sync_batch_norm

__all__ = ["SyncBatchNorm", "convert_sync_batchnorm"]


def _group_size(group) -> int:
    return comm.get_world_size() if group is None else group.Get_size()


class SyncBatchNorm(_BatchNorm):
    """Batch normalization of ``(N, C, *)`` with the batch statistics of all ranks.

    Training mode with more than one rank: ``y = (x - mu) / sqrt(var + eps) * weight +
    bias`` with the per-channel mean and biased variance of every rank's batch together;
    ``running_mean``/``running_var`` are updated with the global mean and unbiased variance
    (``momentum=None``: a cumulative average), identically on every rank. Backward sums
    ``sum(dy)`` and ``sum(dy xhat)`` over the ranks, so the input gradients are those of one
    BatchNorm over the concatenated batch. Eval mode, one rank, or no
    ``convnet.distributed.init()``: exactly :class:`convnet.nn.BatchNorm2d` (any of 2-D to
    5-D inputs).

    Args: num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
    process_group=None (an mpi4py communicator; None: all ranks).

    Shape: ``(N, C, *) -> (N, C, *)``; ``N`` may differ between ranks.

    Example::

        model = SyncBatchNorm.convert_sync_batchnorm(convnet.models.resnet20())
    """

    _dims = (2, 3, 4, 5)

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, process_group=None,
                 device=None, dtype=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device,
                         dtype)
        self.process_group = process_group

    def forward(self, input: Tensor) -> Tensor:
        if not self.training or _group_size(self.process_group) == 1:
            return super().forward(input)  # BatchNorm's own path, unchanged
        self._check_input(input)
        if input.shape[1] != self.num_features:
            raise ValueError(
                f"SyncBatchNorm: expected {self.num_features} channels (num_features) but "
                f"the input has {input.shape[1]} (shape {tuple(input.shape)})")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats:
            self.num_batches_tracked._data += 1
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked._data)
        return sync_batch_norm(input, self.running_mean, self.running_var, self.weight,
                               self.bias, factor, self.eps, self.process_group)

    @classmethod
    def convert_sync_batchnorm(cls, module: Module, process_group=None) -> Module:
        """See :func:`convert_sync_batchnorm`."""
        return convert_sync_batchnorm(module, process_group)


def convert_sync_batchnorm(module: Module, process_group=None) -> Module:
    """Replace every BatchNorm1d/2d/3d in ``module`` by a :class:`SyncBatchNorm`, in place.

    The new layers take over the old ones' parameters and buffers (the same Tensors, so an
    optimizer already built on them keeps working) and their train/eval mode. Returns
    ``module``, or the new layer when ``module`` itself is a BatchNorm.
    """
    if not isinstance(module, Module):
        raise TypeError(f"convert_sync_batchnorm: expected a Module, got "
                        f"{type(module).__name__}")
    if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
        new = SyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                            module.track_running_stats, process_group)
        for name in ("weight", "bias"):
            if getattr(module, name) is not None:
                setattr(new, name, getattr(module, name))
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            if getattr(module, name) is not None:
                setattr(new, name, getattr(module, name))
        new.train(module.training)
        return new
    for name, child in list(module.named_children()):
        if child is None:
            continue
        converted = convert_sync_batchnorm(child, process_group)
        if converted is not child:
            module.add_module(name, converted)
    return module

"""``nn.DataParallel`` and ``nn.parallel.DistributedDataParallel`` stand-ins.

convnet runs on the CPU, where torch's ``DataParallel`` also just calls the wrapped module
(there are no devices to scatter to). The wrapper keeps torch's shape so scripts run
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
    """Not available yet: raises with a pointer to ``convnet.distributed``."""

    def __init__(self, module=None, *args, **kwargs):
        raise RuntimeError(
            "DistributedDataParallel: multi-process training is not available in convnet "
            "yet (it will live in convnet.distributed). On one machine, train the module "
            "directly, or wrap it in nn.DataParallel, which calls it unchanged on the CPU.")

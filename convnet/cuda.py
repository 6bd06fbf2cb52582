"""``convnet.cuda``: the answers torch's ``torch.cuda`` gives on a machine without a GPU.

convnet computes on the CPU, so ``is_available()`` is ``False`` and ``device_count()`` is 0;
the seeding and cache helpers scripts call unconditionally are no-ops (as torch's are without
CUDA: ``manual_seed`` does not touch the CPU generator, seed it with ``convnet.manual_seed``);
the calls that need a GPU raise the one "convnet runs on the CPU" RuntimeError.
"""
from __future__ import annotations

from .device import check_device

__all__ = ["is_available", "device_count", "manual_seed", "manual_seed_all", "seed",
           "seed_all", "empty_cache", "is_initialized", "current_device", "set_device",
           "synchronize", "get_device_name"]


def is_available() -> bool:
    return False


def device_count() -> int:
    return 0


def is_initialized() -> bool:
    return False


def manual_seed(seed: int) -> None:
    """No GPU generator to seed: does nothing (torch without CUDA does the same)."""


def manual_seed_all(seed: int) -> None:
    """No GPU generators to seed: does nothing."""


def seed() -> None:
    """No GPU generator: does nothing."""


def seed_all() -> None:
    """No GPU generators: does nothing."""


def empty_cache() -> None:
    """No GPU memory to release: does nothing."""


def _no_gpu(what: str):
    check_device("cuda", what)


def current_device() -> int:
    _no_gpu("cuda.current_device()")


def set_device(device) -> None:
    _no_gpu("cuda.set_device()")


def synchronize(device=None) -> None:
    _no_gpu("cuda.synchronize()")


def get_device_name(device=None) -> str:
    _no_gpu("cuda.get_device_name()")

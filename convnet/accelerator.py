"""``convnet.accelerator``: torch's device-agnostic accelerator queries, answered for a
CPU-only library (no accelerator: ``is_available()`` is False, ``current_accelerator()``
is None), so ``device = acc if (acc := cn.accelerator.current_accelerator()) else 'cpu'``
picks the CPU."""
from __future__ import annotations

__all__ = ["is_available", "current_accelerator", "device_count"]


def is_available() -> bool:
    return False


def current_accelerator(check_available: bool = False):
    return None


def device_count() -> int:
    return 0

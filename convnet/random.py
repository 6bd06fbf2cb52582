"""The global random-number generator every convnet component draws from.

``convnet.manual_seed(s)`` makes weight initialisation, dropout masks, data
shuffling and augmentation reproducible. Values differ from PyTorch's (a
different generator), but distributions are the same.
"""
from __future__ import annotations

import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the global generator; returns it."""
    global _generator
    _generator = np.random.default_rng(int(seed))
    return _generator


def generator() -> np.random.Generator:
    """The global ``np.random.Generator``."""
    return _generator


def get_state() -> dict:
    """Snapshot of the generator state (for checkpoints)."""
    return _generator.bit_generator.state


def set_state(state: dict) -> None:
    """Restore a snapshot taken by :func:`get_state`."""
    _generator.bit_generator.state = state

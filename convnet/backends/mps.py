"""``convnet.backends.mps``: Apple's Metal backend is neither built nor available here
(convnet runs on the CPU), as torch reports on a machine without it."""
from __future__ import annotations


def is_available() -> bool:
    return False


def is_built() -> bool:
    return False

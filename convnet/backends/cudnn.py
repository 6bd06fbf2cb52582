"""``convnet.backends.cudnn``: torch's cuDNN flags, kept so scripts that set them run.

convnet has no cuDNN (it computes with NumPy/numba on the CPU), so ``is_available()`` is
False and ``version()`` None. ``benchmark``, ``deterministic``, ``enabled`` and
``allow_tf32`` are plain module attributes with torch's defaults; setting them
(``cudnn.benchmark = True``) changes nothing: convnet's kernels are deterministic already.
"""
from __future__ import annotations

benchmark = False
deterministic = False
enabled = True
allow_tf32 = True


def is_available() -> bool:
    return False


def version():
    return None

"""The compiled (numba) kernels. Each submodule exports kernels with the same signature and
result as the NumPy kernel of the same name (:mod:`convnet.backends.numpy_kernels`); they
compute the same formula, and fall back to the NumPy kernel for the cases they do not cover.
Importing this package imports numba (ImportError when it is not installed)."""
from __future__ import annotations

from .. import configure_numba

configure_numba()  # fails here, cleanly, when numba is missing; sets the cache folder first

from .activation import relu_backward, relu_forward  # noqa: E402 (after the cache set-up)
from .depthwise import conv_backward, conv_forward  # noqa: E402
from .norm import normalize_backward, normalize_forward, scale_shift_forward  # noqa: E402
from .global_pool import global_avg_pool_backward, global_avg_pool_forward  # noqa: E402
from .optim_update import adam_update, sgd_update  # noqa: E402
from .pool import (  # noqa: E402
    avg_pool_backward, avg_pool_forward, max_pool_backward, max_pool_forward,
)

__all__: list[str] = []
__all__ += ["relu_forward", "relu_backward"]
__all__ += ["normalize_forward", "normalize_backward", "scale_shift_forward"]
__all__ += ["max_pool_forward", "max_pool_backward", "avg_pool_forward", "avg_pool_backward"]
__all__ += ["conv_forward", "conv_backward"]
__all__ += ["global_avg_pool_forward", "global_avg_pool_backward"]
__all__ += ["sgd_update", "adam_update"]

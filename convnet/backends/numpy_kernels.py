"""The NumPy backend: the reference kernels of :mod:`convnet.kernels` under the backend
interface (the names the autograd functions call through :func:`convnet.backends.get`)."""
from __future__ import annotations

from ..kernels.activation import relu_backward, relu_forward
from ..kernels.conv import conv_backward, conv_forward
from ..kernels.norm import normalize_backward, normalize_forward, scale_shift_forward
from ..kernels.optim_update import adam_update, sgd_update
from ..kernels.pool import (
    avg_pool_backward, avg_pool_forward, global_avg_pool_backward, global_avg_pool_forward,
    max_pool_backward, max_pool_forward,
)

__all__ = ["normalize_forward", "normalize_backward", "scale_shift_forward",
           "max_pool_forward", "max_pool_backward", "avg_pool_forward", "avg_pool_backward",
           "relu_forward", "relu_backward", "conv_forward", "conv_backward",
           "global_avg_pool_forward", "global_avg_pool_backward", "sgd_update", "adam_update"]

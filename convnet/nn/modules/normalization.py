"""Normalization layers: BatchNorm, InstanceNorm, LayerNorm, GroupNorm.

All standardise activations, ``xhat = (x - mean) / sqrt(var + eps)``, then apply a learned
affine map ``y = xhat * weight + bias`` (``weight = 1``, ``bias = 0`` at start, as PyTorch).
"""
from __future__ import annotations

import numpy as np

from ... import functional as F
from ...device import parameter_dtype
from ...tensor import Tensor
from .. import init
from ..parameter import Parameter
from .module import Module

__all__ = [
    "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "InstanceNorm1d", "InstanceNorm2d",
    "InstanceNorm3d", "LayerNorm", "GroupNorm", "LocalResponseNorm",
]


class _NormBase(Module):
    """Shared state of batch and instance norm: affine parameters and running statistics."""

    _dims: tuple[int, ...] = (4,)

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, device=None,
                 dtype=None):
        super().__init__()
        dtype = parameter_dtype(type(self).__name__, device, dtype)
        if num_features <= 0:
            raise ValueError(f"{type(self).__name__}: num_features must be positive, "
                             f"got {num_features}")
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = Parameter(np.ones(num_features, dtype=dtype))
            self.bias = Parameter(np.zeros(num_features, dtype=dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", Tensor._make(np.zeros(num_features, dtype)))
            self.register_buffer("running_var", Tensor._make(np.ones(num_features, dtype)))
            self.register_buffer("num_batches_tracked",
                                 Tensor._make(np.zeros((), dtype=np.int64)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean._data[...] = 0
            self.running_var._data[...] = 1
            self.num_batches_tracked._data[...] = 0

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def _check_input(self, input: Tensor) -> None:
        name = type(self).__name__
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}: input must be a Tensor, got {type(input).__name__}")
        if input.ndim not in self._dims:
            raise ValueError(f"{name}: expected a {' or '.join(f'{d}-D' for d in self._dims)} "
                             f"input, got shape {tuple(input.shape)}")

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


class _BatchNorm(_NormBase):
    def forward(self, input: Tensor) -> Tensor:
        self._check_input(input)
        if input.shape[1] != self.num_features:
            raise ValueError(
                f"{type(self).__name__}: expected {self.num_features} channels "
                f"(num_features) but the input has {input.shape[1]} (shape {tuple(input.shape)})"
            )
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked._data += 1
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked._data)
        use_batch = self.training or self.running_mean is None
        track = not self.training or self.track_running_stats
        return F.batch_norm(input, self.running_mean if track else None,
                            self.running_var if track else None, self.weight, self.bias,
                            use_batch, factor, self.eps)


class BatchNorm1d(_BatchNorm):
    """Batch normalization of ``(N, C)`` or ``(N, C, L)`` per channel.

    Training: batch mean and biased variance normalise; running averages
    ``r = (1 - momentum) r + momentum stat`` (unbiased variance; ``momentum=None`` gives the
    cumulative average) are kept for eval mode, which uses them instead.

    Args: num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True.
    """

    _dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalization of ``(N, C, H, W)`` per channel over ``(N, H, W)``; see
    :class:`BatchNorm1d` for the statistics and arguments."""

    _dims = (4,)


class BatchNorm3d(_BatchNorm):
    """Batch normalization of ``(N, C, D, H, W)`` per channel."""

    _dims = (5,)


class _InstanceNorm(_NormBase):
    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = False, track_running_stats: bool = False, device=None,
                 dtype=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)

    def forward(self, input: Tensor) -> Tensor:
        self._check_input(input)
        unbatched = input.ndim == self._dims[0]
        x = input.unsqueeze(0) if unbatched else input
        if x.shape[1] != self.num_features and (self.affine or self.track_running_stats):
            raise ValueError(
                f"{type(self).__name__}: expected {self.num_features} channels "
                f"(num_features) but the input has {x.shape[1]} (shape {tuple(input.shape)})"
            )
        out = F.instance_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                              self.training or not self.track_running_stats,
                              self.momentum if self.momentum is not None else 0.0, self.eps)
        return out.squeeze(0) if unbatched else out


class InstanceNorm1d(_InstanceNorm):
    """Instance normalization of ``(N, C, L)`` (or unbatched ``(C, L)``): every ``(n, c)``
    row is standardised over ``L``.

    Args: num_features, eps=1e-5, momentum=0.1, affine=False, track_running_stats=False.
    """

    _dims = (2, 3)


class InstanceNorm2d(_InstanceNorm):
    """Instance normalization of ``(N, C, H, W)``: each feature map standardised over
    ``(H, W)`` (style-transfer style contrast normalization)."""

    _dims = (3, 4)


class InstanceNorm3d(_InstanceNorm):
    """Instance normalization of ``(N, C, D, H, W)``."""

    _dims = (4, 5)


class LayerNorm(Module):
    """Layer normalization over the trailing ``normalized_shape`` dims of ``(*, *shape)``.

    ``y = (x - E[x]) / sqrt(Var[x] + eps) * weight + bias`` with element-wise ``weight`` and
    ``bias`` of shape ``normalized_shape``.

    Args: normalized_shape, eps=1e-5, elementwise_affine=True, bias=True.
    """

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, device=None, dtype=None):
        super().__init__()
        dtype = parameter_dtype("LayerNorm", device, dtype)
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(int(v) for v in normalized_shape)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(np.ones(self.normalized_shape, dtype=dtype))
            if bias:
                self.bias = Parameter(np.zeros(self.normalized_shape, dtype=dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, input: Tensor) -> Tensor:
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")


class GroupNorm(Module):
    """Group normalization: ``num_channels`` split into ``num_groups`` groups, each sample's
    group standardised over its channels and spatial dims, then a per-channel affine map.
    ``(N, C, *) -> (N, C, *)``.

    Args: num_groups, num_channels, eps=1e-5, affine=True.
    """

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5,
                 affine: bool = True, device=None, dtype=None):
        super().__init__()
        dtype = parameter_dtype("GroupNorm", device, dtype)
        if num_groups <= 0 or num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels={num_channels} must be divisible by "
                             f"num_groups={num_groups}")
        self.num_groups, self.num_channels, self.eps, self.affine = (
            num_groups, num_channels, eps, affine)
        if affine:
            self.weight = Parameter(np.ones(num_channels, dtype=dtype))
            self.bias = Parameter(np.zeros(num_channels, dtype=dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, input: Tensor) -> Tensor:
        if input.ndim >= 2 and input.shape[1] != self.num_channels:
            raise ValueError(f"GroupNorm: expected {self.num_channels} channels but the input "
                             f"has {input.shape[1]} (shape {tuple(input.shape)})")
        return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class LocalResponseNorm(Module):
    """Local response normalization across ``size`` neighbouring channels (AlexNet):
    ``y_c = x_c / (k + alpha / size * sum x_{c'}^2) ^ beta``. ``(N, C, *) -> (N, C, *)``.

    Args: size, alpha=1e-4, beta=0.75, k=1.0.
    """

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, input: Tensor) -> Tensor:
        return F.local_response_norm(input, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"

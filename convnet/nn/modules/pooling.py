"""Pooling layers: max, min, average, Lp, weighted-sum, adaptive and global pooling.

Each keeps the channel count and summarises every spatial window by one statistic; none but
:class:`WeightedPool2d` (optionally) has parameters. Shapes and formulas are those of the
matching functions in :mod:`convnet.functional.pooling`.
"""
from __future__ import annotations

import math

import numpy as np

from ... import functional as F
from ...tensor import Tensor
from ..parameter import Parameter
from .module import Module

__all__ = [
    "MaxPool1d", "MaxPool2d", "MaxPool3d", "MinPool1d", "MinPool2d", "MinPool3d",
    "AvgPool1d", "AvgPool2d", "AvgPool3d", "LPPool1d", "LPPool2d", "LPPool3d",
    "WeightedPool1d", "WeightedPool2d", "WeightedPool3d",
    "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d",
    "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AdaptiveMaxPool3d",
    "GlobalAvgPool2d", "GlobalMaxPool2d",
]


class _MaxPoolNd(Module):
    _fn = staticmethod(F.max_pool2d)

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1,
                 return_indices: bool = False, ceil_mode: bool = False):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, input: Tensor):
        return type(self)._fn(input, self.kernel_size, self.stride, self.padding,
                              self.dilation, self.ceil_mode, self.return_indices)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxPool1d(_MaxPoolNd):
    """Max pooling ``(N, C, L) -> (N, C, L')``; see :func:`convnet.functional.max_pool1d`."""

    _fn = staticmethod(F.max_pool1d)


class MaxPool2d(_MaxPoolNd):
    """Max pooling ``(N, C, H, W) -> (N, C, H', W')`` with
    ``H' = floor((H + 2p - d(k-1) - 1)/s) + 1`` (ceil with ``ceil_mode``).

    Args (PyTorch's order): kernel_size, stride=None (= kernel_size), padding=0,
    dilation=1, return_indices=False, ceil_mode=False.

    Example: ``nn.MaxPool2d(2)(x)`` halves the spatial size and keeps the channels.
    """

    _fn = staticmethod(F.max_pool2d)


class MaxPool3d(_MaxPoolNd):
    """Max pooling ``(N, C, D, H, W) -> (N, C, D', H', W')``."""

    _fn = staticmethod(F.max_pool3d)


class MinPool1d(_MaxPoolNd):
    """Minimum pooling ``(N, C, L) -> (N, C, L')`` (arguments as MaxPool1d)."""

    _fn = staticmethod(F.min_pool1d)


class MinPool2d(_MaxPoolNd):
    """Minimum pooling ``(N, C, H, W) -> (N, C, H', W')``: the minimum as the window's
    summary statistic (arguments as MaxPool2d)."""

    _fn = staticmethod(F.min_pool2d)


class MinPool3d(_MaxPoolNd):
    """Minimum pooling ``(N, C, D, H, W) -> (N, C, D', H', W')``."""

    _fn = staticmethod(F.min_pool3d)


class AvgPool1d(Module):
    """Average pooling ``(N, C, L) -> (N, C, L')``."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad = count_include_pad

    def forward(self, input: Tensor) -> Tensor:
        return F.avg_pool1d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class _AvgPoolNd(AvgPool1d):
    _fn = staticmethod(F.avg_pool2d)

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override: int | None = None):
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad)
        self.divisor_override = divisor_override

    def forward(self, input: Tensor) -> Tensor:
        return type(self)._fn(input, self.kernel_size, self.stride, self.padding,
                              self.ceil_mode, self.count_include_pad, self.divisor_override)


class AvgPool2d(_AvgPoolNd):
    """Average pooling ``(N, C, H, W) -> (N, C, H', W')``.

    Args: kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
    divisor_override=None (see :func:`convnet.functional.avg_pool2d` for the divisor).
    """


class AvgPool3d(_AvgPoolNd):
    """Average pooling ``(N, C, D, H, W) -> (N, C, D', H', W')``."""

    _fn = staticmethod(F.avg_pool3d)


class _LPPoolNd(Module):
    _fn = staticmethod(F.lp_pool2d)

    def __init__(self, norm_type: float, kernel_size, stride=None, ceil_mode: bool = False):
        super().__init__()
        self.norm_type, self.kernel_size = norm_type, kernel_size
        self.stride, self.ceil_mode = stride, ceil_mode

    def forward(self, input: Tensor) -> Tensor:
        return type(self)._fn(input, self.norm_type, self.kernel_size, self.stride,
                              self.ceil_mode)

    def extra_repr(self) -> str:
        return (f"norm_type={self.norm_type}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, ceil_mode={self.ceil_mode}")


class LPPool1d(_LPPoolNd):
    """Lp pooling ``(sum_window x^p)^(1/p)`` over ``(N, C, L)``."""

    _fn = staticmethod(F.lp_pool1d)


class LPPool2d(_LPPoolNd):
    """Lp pooling ``(sum_window x^p)^(1/p)`` over ``(N, C, H, W)``; ``norm_type=2`` is L2
    pooling."""


class LPPool3d(_LPPoolNd):
    """Lp pooling over ``(N, C, D, H, W)``."""

    _fn = staticmethod(F.lp_pool3d)


class _WeightedPoolNd(Module):
    _nd = 2
    _fn = staticmethod(F.weighted_pool2d)

    def __init__(self, channels: int, kernel_size, stride=None, padding=0, dilation=1,
                 learnable: bool = True, dtype=np.float32):
        super().__init__()
        from ...kernels.shapes import ntuple

        name = type(self).__name__
        if channels <= 0:
            raise ValueError(f"{name}: channels must be positive, got {channels}")
        ks = ntuple(kernel_size, self._nd, "kernel_size", name)
        self.channels, self.kernel_size = channels, ks
        self.stride = stride if stride is not None else ks
        self.padding, self.dilation, self.learnable = padding, dilation, learnable
        # uniform weights 1/|window|: starts as average pooling
        w = np.full((channels,) + ks, 1.0 / math.prod(ks), dtype=dtype)
        if learnable:
            self.weight = Parameter(w)
        else:
            self.register_buffer("weight", Tensor._make(w))

    def forward(self, input: Tensor) -> Tensor:
        return type(self)._fn(input, self.weight, self.stride, self.padding, self.dilation)

    def extra_repr(self) -> str:
        return (f"{self.channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, learnable={self.learnable}")


class WeightedPool1d(_WeightedPoolNd):
    """Weighted-sum pooling over ``(N, C, L)`` with a ``(C, k)`` window weighting."""

    _nd = 1
    _fn = staticmethod(F.weighted_pool1d)


class WeightedPool2d(_WeightedPoolNd):
    """Weighted-sum pooling, a learnable per-channel window average, ``(N, C, H, W) -> (N, C, H', W')``.

    Each channel ``c`` sums its window with weights ``weight[c]`` of shape ``(k_h, k_w)``:
    ``out[n,c,i,j] = sum_{a,b} weight[c,a,b] x[n,c,i s + a, j s + b]``. The weights start at
    ``1 / (k_h k_w)`` (average pooling); ``learnable=True`` makes them a Parameter (a
    depthwise filter without bias), ``False`` a fixed buffer (e.g. set a Gaussian window).

    Args: channels, kernel_size, stride=None (= kernel_size), padding=0, dilation=1,
    learnable=True.
    """


class WeightedPool3d(_WeightedPoolNd):
    """Weighted-sum pooling over ``(N, C, D, H, W)``."""

    _nd = 3
    _fn = staticmethod(F.weighted_pool3d)


class _AdaptiveAvgPoolNd(Module):
    _fn = staticmethod(F.adaptive_avg_pool2d)

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, input: Tensor) -> Tensor:
        return type(self)._fn(input, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveAvgPool1d(_AdaptiveAvgPoolNd):
    """Adaptive average pooling ``(N, C, L) -> (N, C, output_size)``."""

    _fn = staticmethod(F.adaptive_avg_pool1d)


class AdaptiveAvgPool2d(_AdaptiveAvgPoolNd):
    """Adaptive average pooling ``(N, C, H, W) -> (N, C, *output_size)``; window ``i`` spans
    ``[floor(i H / H'), ceil((i+1) H / H'))``. ``output_size=1`` is global average pooling."""


class AdaptiveAvgPool3d(_AdaptiveAvgPoolNd):
    """Adaptive average pooling ``(N, C, D, H, W) -> (N, C, *output_size)``."""

    _fn = staticmethod(F.adaptive_avg_pool3d)


class _AdaptiveMaxPoolNd(Module):
    _fn = staticmethod(F.adaptive_max_pool2d)

    def __init__(self, output_size, return_indices: bool = False):
        super().__init__()
        self.output_size, self.return_indices = output_size, return_indices

    def forward(self, input: Tensor):
        return type(self)._fn(input, self.output_size, self.return_indices)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveMaxPool1d(_AdaptiveMaxPoolNd):
    """Adaptive max pooling ``(N, C, L) -> (N, C, output_size)``."""

    _fn = staticmethod(F.adaptive_max_pool1d)


class AdaptiveMaxPool2d(_AdaptiveMaxPoolNd):
    """Adaptive max pooling ``(N, C, H, W) -> (N, C, *output_size)``."""


class AdaptiveMaxPool3d(_AdaptiveMaxPoolNd):
    """Adaptive max pooling ``(N, C, D, H, W) -> (N, C, *output_size)``."""

    _fn = staticmethod(F.adaptive_max_pool3d)


class GlobalAvgPool2d(Module):
    """Global average pooling ``(N, C, H, W) -> (N, C, 1, 1)`` (``(N, C)`` if not keepdim)."""

    def __init__(self, keepdim: bool = True):
        super().__init__()
        self.keepdim = keepdim

    def forward(self, input: Tensor) -> Tensor:
        return F.global_avg_pool(input, self.keepdim)


class GlobalMaxPool2d(GlobalAvgPool2d):
    """Global max pooling ``(N, C, H, W) -> (N, C, 1, 1)`` (``(N, C)`` if not keepdim)."""

    def forward(self, input: Tensor) -> Tensor:
        return F.global_max_pool(input, self.keepdim)

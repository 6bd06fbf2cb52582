"""Factorised convolution blocks (docs/convolution.md lists them with their costs).

* :class:`DepthwiseConv2d` - one KxK filter per channel (``groups = C_in``), no channel mixing.
* :class:`PointwiseConv2d` - a 1x1 conv: mixes channels only ("network in network").
* :class:`DepthwiseSeparableConv2d` - depthwise then pointwise (MobileNet).
* :class:`SpatiallySeparableConv2d` - a KxK filter factorised into Kx1 then 1xK (Inception).
* :class:`ChannelShuffle` - interleave channels across groups between grouped convs (ShuffleNet).

Cost of a depthwise-separable block against a standard KxK conv with the same in/out channels
(per output position, ignoring bias)::

    standard:   C_in C_out K^2
    separable:  C_in K^2 + C_in C_out          ratio = 1 / C_out + 1 / K^2

so a 3x3 block with many output channels needs 8-9x fewer multiply-adds and parameters.
"""
from __future__ import annotations

from typing import Callable

from ... import functional as F
from ...kernels.shapes import ntuple
from ...tensor import Tensor
from .conv import Conv2d
from .module import Module

__all__ = [
    "DepthwiseConv2d", "PointwiseConv2d", "DepthwiseSeparableConv2d",
    "SpatiallySeparableConv2d", "ChannelShuffle",
]


def _keep_size_padding(kernel_size, dilation) -> tuple[int, int]:
    k = ntuple(kernel_size, 2, "kernel_size", "DepthwiseSeparableConv2d")
    d = ntuple(dilation, 2, "dilation", "DepthwiseSeparableConv2d")
    return tuple(dd * (kk - 1) // 2 for kk, dd in zip(k, d))


class DepthwiseConv2d(Conv2d):
    """Depthwise conv: ``Conv2d(C, C * depth_multiplier, K, groups=C)``.

    Each input channel gets its own ``depth_multiplier`` KxK filters; channels are not mixed.
    Shape ``(N, C, H, W) -> (N, C m, H', W')`` (``H'`` as :class:`Conv2d`). Parameters:
    ``C m K_h K_w (+ C m)``; multiply-adds per image ``C m K_h K_w H' W'`` (a standard conv has
    ``C_in`` times more).
    """

    def __init__(self, in_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 bias: bool = True, padding_mode: str = "zeros", depth_multiplier: int = 1,
                 device=None, dtype=None):
        super().__init__(in_channels, in_channels * depth_multiplier, kernel_size, stride,
                         padding, dilation, in_channels, bias, padding_mode, device=device,
                         dtype=dtype)
        self.depth_multiplier = depth_multiplier


class PointwiseConv2d(Conv2d):
    """Pointwise (1x1) conv: ``Conv2d(C_in, C_out, 1)``; mixes channels at every pixel.

    Shape ``(N, C_in, H, W) -> (N, C_out, H', W')``; it is a GEMM of the ``(C_out, C_in)`` weight
    with each pixel's channel vector. Parameters ``C_out C_in / groups (+ C_out)``; multiply-adds
    per image ``C_out C_in H' W' / groups``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride=1, groups: int = 1,
                 bias: bool = True, device=None, dtype=None):
        super().__init__(in_channels, out_channels, 1, stride, 0, 1, groups, bias, "zeros",
                         device=device, dtype=dtype)


class DepthwiseSeparableConv2d(Module):
    """Depthwise KxK conv, optional norm/activation, then a pointwise 1x1 conv (MobileNet).

    Args:
        in_channels, out_channels, kernel_size, stride, dilation: as :class:`Conv2d`.
        padding: default ``None`` keeps the size for odd kernels (``D (K - 1) / 2``).
        bias: bias on both convs (default False when a norm layer follows, else True).
        norm_layer: optional ``callable(num_features) -> Module`` (e.g. ``nn.BatchNorm2d``),
            applied after the depthwise and after the pointwise conv.
        activation: optional ``callable() -> Module`` (e.g. ``nn.ReLU``), applied after each norm.
        depth_multiplier: depthwise filters per input channel.

    Shape ``(N, C_in, H, W) -> (N, C_out, H', W')``. Parameters (no bias) ``C_in m K^2 +
    C_in m C_out`` versus ``C_in C_out K^2`` for a standard conv: ratio ``1/C_out + 1/K^2`` when
    ``m = 1`` (:meth:`cost_ratio`); multiply-adds scale the same way (:meth:`multiply_adds`).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size=3, stride=1,
                 padding=None, dilation=1, bias: bool | None = None,
                 norm_layer: Callable[[int], Module] | None = None,
                 activation: Callable[[], Module] | None = None, depth_multiplier: int = 1,
                 device=None, dtype=None):
        super().__init__()
        if padding is None:
            padding = _keep_size_padding(kernel_size, dilation)
        if bias is None:
            bias = norm_layer is None
        mid = in_channels * depth_multiplier
        self.depthwise = DepthwiseConv2d(in_channels, kernel_size, stride, padding, dilation,
                                         bias, depth_multiplier=depth_multiplier,
                                         device=device, dtype=dtype)
        self.norm1 = norm_layer(mid) if norm_layer is not None else None
        self.act1 = activation() if activation is not None else None
        self.pointwise = PointwiseConv2d(mid, out_channels, bias=bias, device=device, dtype=dtype)
        self.norm2 = norm_layer(out_channels) if norm_layer is not None else None
        self.act2 = activation() if activation is not None else None

    def forward(self, input: Tensor) -> Tensor:
        x = self.depthwise(input)
        for layer in (self.norm1, self.act1):
            if layer is not None:
                x = layer(x)
        x = self.pointwise(x)
        for layer in (self.norm2, self.act2):
            if layer is not None:
                x = layer(x)
        return x

    @staticmethod
    def cost_ratio(out_channels: int, kernel_size: int) -> float:
        """Separable / standard cost for square kernels: ``1 / C_out + 1 / K^2``."""
        return 1.0 / out_channels + 1.0 / kernel_size**2

    def multiply_adds(self, input_size) -> int:
        """Multiply-adds of both convs for one image of spatial size ``input_size``."""
        h, w = ntuple(input_size, 2, "input_size", "multiply_adds")
        total = 0
        for conv in (self.depthwise, self.pointwise):
            ho = _out_len(h, conv, 0)
            wo = _out_len(w, conv, 1)
            total += conv.weight.numel() * ho * wo
            h, w = ho, wo
        return total


def _out_len(size: int, conv: Conv2d, axis: int) -> int:
    from ...kernels.shapes import conv_output_size, same_padding

    k, s, d = conv.kernel_size[axis], conv.stride[axis], conv.dilation[axis]
    if conv.padding == "same":
        pad = same_padding(k, d)
    elif conv.padding == "valid":
        pad = (0, 0)
    else:
        pad = (conv.padding[axis], conv.padding[axis])
    return conv_output_size(size, k, s, pad, d)


class SpatiallySeparableConv2d(Module):
    """A KxK conv factorised into a ``(K, 1)`` conv then a ``(1, K)`` conv (Inception-v3).

    Args:
        in_channels, out_channels, kernel_size (int), stride, padding (int), dilation: the KxK
            conv being replaced; stride/padding/dilation are applied per axis by the conv that
            spans that axis, so the output size equals the KxK conv's.
        mid_channels: channels between the two convs (default ``out_channels``).
        bias: bias on the second conv only (a first-conv bias would not factorise).

    Shape ``(N, C_in, H, W) -> (N, C_out, H', W')``. Parameters ``K C_in C_mid + K C_mid C_out``
    versus ``K^2 C_in C_out``: with ``C_mid = C_out = C_in`` that is ``2/K`` of the cost. With
    ``bias=False`` the block equals a KxK conv whose kernel is ``sum_m w1[m, c, :] outer w2[o, m,
    :]`` (rank <= C_mid per (o, c) pair).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride=1,
                 padding=0, dilation=1, bias: bool = True, mid_channels: int | None = None,
                 device=None, dtype=None):
        super().__init__()
        name = "SpatiallySeparableConv2d"
        k = ntuple(kernel_size, 2, "kernel_size", name)
        s = ntuple(stride, 2, "stride", name)
        p = ntuple(padding, 2, "padding", name)
        d = ntuple(dilation, 2, "dilation", name)
        mid = out_channels if mid_channels is None else mid_channels
        self.kernel_size = k
        self.vertical = Conv2d(in_channels, mid, (k[0], 1), (s[0], 1), (p[0], 0), (d[0], 1),
                               bias=False, device=device, dtype=dtype)
        self.horizontal = Conv2d(mid, out_channels, (1, k[1]), (1, s[1]), (0, p[1]), (1, d[1]),
                                 bias=bias, device=device, dtype=dtype)

    def forward(self, input: Tensor) -> Tensor:
        return self.horizontal(self.vertical(input))


class ChannelShuffle(Module):
    """ShuffleNet channel shuffle: ``(N, C, *S) -> (N, C, *S)``, see ``F.channel_shuffle``."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, input: Tensor) -> Tensor:
        return F.channel_shuffle(input, self.groups)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"

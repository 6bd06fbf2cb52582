"""Convolution layers: ``Conv1d/2d/3d`` and ``ConvTranspose1d/2d/3d`` (PyTorch's API).

Non-zero padding modes (reflect, replicate, circular) pad with ``F.pad`` and then convolve with
padding 0, exactly as PyTorch does. Initialisation follows PyTorch: ``kaiming_uniform_(w,
a=sqrt(5))``, i.e. ``w ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, and the bias from the same bound.
"""
from __future__ import annotations

import math

import numpy as np

from ... import functional as F
from ...device import parameter_dtype
from ...kernels.shapes import conv_transpose_output_size, ntuple, same_padding
from ...tensor import Tensor
from .. import init
from ..parameter import Parameter
from .module import Module

__all__ = ["Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"]

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


class _ConvNd(Module):
    """Shared constructor, initialisation and repr of conv and transposed-conv layers."""

    _nd = 2
    _transposed = False

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 output_padding=0, dtype=None, device=None):
        super().__init__()
        name = type(self).__name__
        nd = self._nd
        dtype = parameter_dtype(name, device, dtype)
        for arg, v in (("in_channels", in_channels), ("out_channels", out_channels),
                       ("groups", groups)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name}: {arg} must be a positive int, got {v!r}")
        if in_channels % groups:
            raise ValueError(
                f"{name}: in_channels={in_channels} must be divisible by groups={groups}")
        if out_channels % groups:
            raise ValueError(
                f"{name}: out_channels={out_channels} must be divisible by groups={groups}")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(
                f"{name}: padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
        self.kernel_size = ntuple(kernel_size, nd, "kernel_size", name)
        self.stride = ntuple(stride, nd, "stride", name)
        self.dilation = ntuple(dilation, nd, "dilation", name)
        for arg in ("kernel_size", "stride", "dilation"):
            if any(v < 1 for v in getattr(self, arg)):
                raise ValueError(f"{name}: {arg} must be positive, got {getattr(self, arg)}")
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"{name}: padding must be an int, a tuple, 'same' or 'valid', "
                                 f"got {padding!r}")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError(f"{name}: padding='same' is not supported for strided "
                                 f"convolutions (stride={self.stride})")
            self.padding = padding
        else:
            self.padding = ntuple(padding, nd, "padding", name)
            if any(p < 0 for p in self.padding):
                raise ValueError(f"{name}: padding must be non-negative, got {self.padding}")
        self.output_padding = ntuple(output_padding, nd, "output_padding", name)
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.padding_mode = padding_mode
        if self._transposed:
            shape = (in_channels, out_channels // groups) + self.kernel_size
        else:
            shape = (out_channels, in_channels // groups) + self.kernel_size
        self.weight = Parameter(np.empty(shape, dtype=dtype))
        if bias:
            self.bias = Parameter(np.empty(out_channels, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0,) * self._nd:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * self._nd:
            s += f", dilation={self.dilation}"
        if self._transposed and self.output_padding != (0,) * self._nd:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class _Conv(_ConvNd):
    _fn = staticmethod(F.conv2d)

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, 0, dtype, device)
        # F.pad spec (last dim first) used by non-zero padding modes, as torch precomputes it.
        if padding == "same":
            pairs = [same_padding(k, d) for k, d in zip(self.kernel_size, self.dilation)]
        elif padding == "valid":
            pairs = [(0, 0)] * self._nd
        else:
            pairs = [(p, p) for p in self.padding]
        self._reversed_padding_repeated_twice = tuple(v for lo, hi in reversed(pairs)
                                                      for v in (lo, hi))

    def forward(self, input: Tensor) -> Tensor:
        if self.padding_mode != "zeros":
            x = F.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            return type(self)._fn(x, self.weight, self.bias, self.stride, 0, self.dilation,
                                  self.groups)
        return type(self)._fn(input, self.weight, self.bias, self.stride, self.padding,
                              self.dilation, self.groups)


class Conv1d(_Conv):
    """1-D convolution layer ``(N, C_in, L) -> (N, C_out, L')``.

    ``L' = floor((L + 2 P - D (K - 1) - 1) / S) + 1``. Parameters: ``C_out C_in K / groups
    (+ C_out)``. Args as :class:`Conv2d`.
    """

    _nd = 1
    _fn = staticmethod(F.conv1d)


class Conv2d(_Conv):
    """2-D convolution layer (cross-correlation, as every framework).

    Args:
        in_channels, out_channels: channel counts (both divisible by ``groups``).
        kernel_size, stride, dilation: int or pair. ``padding``: int, pair, ``'same'`` or
            ``'valid'``. ``groups``: 1 = dense, ``in_channels`` = depthwise.
        bias: learn a per-channel bias (default True).
        padding_mode: ``'zeros'`` (default), ``'reflect'``, ``'replicate'``, ``'circular'``.
        dtype: parameter dtype (float32 default).

    Shape: ``(N, C_in, H, W) -> (N, C_out, H', W')``, ``H' = floor((H + 2 P - D (K - 1) - 1) / S)
    + 1``. Parameters: ``C_out (C_in / groups) K_h K_w + C_out``; multiply-adds per image:
    ``C_out (C_in / groups) K_h K_w H' W'``.

    Example::

        >>> conv = nn.Conv2d(3, 16, 3, padding=1)
        >>> conv(cn.randn(8, 3, 32, 32)).shape
        (8, 16, 32, 32)
    """

    _nd = 2
    _fn = staticmethod(F.conv2d)


class Conv3d(_Conv):
    """3-D convolution layer ``(N, C_in, D, H, W) -> (N, C_out, D', H', W')`` (args as Conv2d)."""

    _nd = 3
    _fn = staticmethod(F.conv3d)


class _ConvTranspose(_ConvNd):
    _transposed = True
    _fn = staticmethod(F.conv_transpose2d)

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 output_padding=0, groups: int = 1, bias: bool = True, dilation=1,
                 padding_mode: str = "zeros", device=None, dtype=None):
        if padding_mode != "zeros":
            raise ValueError(f'{type(self).__name__}: only "zeros" padding_mode is supported, '
                             f"got {padding_mode!r}")
        if isinstance(padding, str):
            raise ValueError(f"{type(self).__name__}: padding must be an int or a tuple, "
                             f"got {padding!r}")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, output_padding, dtype, device)

    def _output_padding(self, input: Tensor, output_size) -> tuple[int, ...]:
        """The output_padding that makes the output ``output_size`` (PyTorch's rule)."""
        nd, name = self._nd, type(self).__name__
        if output_size is None:
            return self.output_padding
        size = list(output_size.shape if isinstance(output_size, Tensor) else output_size)
        if len(size) in (nd + 1, nd + 2) and len(size) > nd:
            size = size[-nd:]
        if len(size) != nd:
            raise ValueError(f"{name}: output_size must have {nd} or {nd + 2} elements, "
                             f"got {tuple(output_size)}")
        result = []
        for i, want in enumerate(size):
            lo = conv_transpose_output_size(input.shape[-nd + i], self.kernel_size[i],
                                            self.stride[i], self.padding[i], 0, self.dilation[i])
            hi = lo + self.stride[i] - 1
            if not lo <= want <= hi:
                raise ValueError(
                    f"{name}: requested output_size {tuple(size)} is not reachable from input "
                    f"{input.shape}: dim {i} must lie in [{lo}, {hi}]"
                )
            result.append(int(want) - lo)
        return tuple(result)

    def forward(self, input: Tensor, output_size=None) -> Tensor:
        op = self._output_padding(input, output_size)
        return type(self)._fn(input, self.weight, self.bias, self.stride, self.padding, op,
                              self.groups, self.dilation)


class ConvTranspose1d(_ConvTranspose):
    """1-D transposed conv ``(N, C_in, L) -> (N, C_out, L')``, ``L' = (L - 1) S - 2 P +
    D (K - 1) + output_padding + 1``; weight ``(C_in, C_out/groups, K)``."""

    _nd = 1
    _fn = staticmethod(F.conv_transpose1d)


class ConvTranspose2d(_ConvTranspose):
    """2-D transposed conv (learned upsampling), the adjoint of :class:`Conv2d`.

    Args as PyTorch: ``(in_channels, out_channels, kernel_size, stride=1, padding=0,
    output_padding=0, groups=1, bias=True, dilation=1, padding_mode='zeros')``.
    ``forward(input, output_size=None)`` picks the output_padding that reaches ``output_size``.

    Shape: ``(N, C_in, H, W) -> (N, C_out, H', W')``, ``H' = (H - 1) S - 2 P + D (K - 1) +
    output_padding + 1``. Weight ``(C_in, C_out / groups, K_h, K_w)``. A kernel that is not a
    multiple of the stride overlaps unevenly and gives checkerboard artifacts.
    """

    _nd = 2
    _fn = staticmethod(F.conv_transpose2d)


class ConvTranspose3d(_ConvTranspose):
    """3-D transposed conv ``(N, C_in, D, H, W) -> (N, C_out, D', H', W')``."""

    _nd = 3
    _fn = staticmethod(F.conv_transpose3d)

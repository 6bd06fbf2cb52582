"""Unpooling layers: the inverse-direction counterparts of pooling (docs/pooling_and_normalization.md).

* :class:`MaxUnpool2d` returns each value to the position max pooling remembered.
* :class:`Unpool2d` applies a fixed rule: ``'bed_of_nails'`` (value in the first cell of the
  block, zeros elsewhere) or ``'nearest'`` (value copied into the whole block).
"""
from __future__ import annotations

from ... import functional as F
from ...tensor import Tensor
from .module import Module

__all__ = ["MaxUnpool1d", "MaxUnpool2d", "MaxUnpool3d", "Unpool1d", "Unpool2d", "Unpool3d"]


class _MaxUnpoolNd(Module):
    _fn = staticmethod(F.max_unpool2d)

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding

    def forward(self, input: Tensor, indices: Tensor, output_size=None) -> Tensor:
        return type(self)._fn(input, indices, self.kernel_size, self.stride, self.padding,
                              output_size)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxUnpool1d(_MaxUnpoolNd):
    """Inverse of MaxPool1d: ``(N, C, L) -> (N, C, (L - 1) s - 2p + k)``."""

    _fn = staticmethod(F.max_unpool1d)


class MaxUnpool2d(_MaxUnpoolNd):
    """Inverse of MaxPool2d: values go back to the positions ``indices`` (from
    ``MaxPool2d(..., return_indices=True)``) name, zeros elsewhere.
    ``(N, C, H, W) -> (N, C, (H - 1) s - 2p + k, (W - 1) s - 2p + k)`` or ``output_size``.

    Example::

        pool, unpool = nn.MaxPool2d(2, return_indices=True), nn.MaxUnpool2d(2)
        y, idx = pool(x)
        x_sparse = unpool(y, idx, output_size=x.shape)
    """


class MaxUnpool3d(_MaxUnpoolNd):
    """Inverse of MaxPool3d over ``(N, C, D, H, W)``."""

    _fn = staticmethod(F.max_unpool3d)


class _UnpoolNd(Module):
    _fn = staticmethod(F.unpool2d)

    def __init__(self, kernel_size, mode: str = "bed_of_nails"):
        super().__init__()
        if mode not in ("bed_of_nails", "nearest"):
            raise ValueError(f"{type(self).__name__}: mode must be 'bed_of_nails' or "
                             f"'nearest', got {mode!r}")
        self.kernel_size, self.mode = kernel_size, mode

    def forward(self, input: Tensor) -> Tensor:
        return type(self)._fn(input, self.kernel_size, self.mode)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, mode={self.mode!r}"


class Unpool1d(_UnpoolNd):
    """Fixed-rule unpooling ``(N, C, L) -> (N, C, L k)``."""

    _fn = staticmethod(F.unpool1d)


class Unpool2d(_UnpoolNd):
    """Fixed-rule unpooling ``(N, C, H, W) -> (N, C, H k_h, W k_w)``.

    ``mode='bed_of_nails'`` puts each value in the top-left cell of its block and zeros in
    the rest; ``mode='nearest'`` fills the block with the value.
    """


class Unpool3d(_UnpoolNd):
    """Fixed-rule unpooling ``(N, C, D, H, W) -> (N, C, D k_d, H k_h, W k_w)``."""

    _fn = staticmethod(F.unpool3d)

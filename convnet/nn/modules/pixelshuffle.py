"""``PixelShuffle`` / ``PixelUnshuffle`` layers (sub-pixel convolution upsampling)."""
from __future__ import annotations

from ... import functional as F
from .module import Module

__all__ = ["PixelShuffle", "PixelUnshuffle"]


class PixelShuffle(Module):
    """Rearrange ``(*, C r^2, H, W) -> (*, C, H r, W r)`` (``r = upscale_factor``); placed
    after a convolution with ``C r^2`` output channels it upsamples by ``r`` (ESPCN)."""

    def __init__(self, upscale_factor: int):
        super().__init__()
        self.upscale_factor = upscale_factor

    def forward(self, input):
        return F.pixel_shuffle(input, self.upscale_factor)

    def extra_repr(self) -> str:
        return f"upscale_factor={self.upscale_factor}"


class PixelUnshuffle(Module):
    """Rearrange ``(*, C, H r, W r) -> (*, C r^2, H, W)`` (``r = downscale_factor``), the
    inverse of :class:`PixelShuffle`."""

    def __init__(self, downscale_factor: int):
        super().__init__()
        self.downscale_factor = downscale_factor

    def forward(self, input):
        return F.pixel_unshuffle(input, self.downscale_factor)

    def extra_repr(self) -> str:
        return f"downscale_factor={self.downscale_factor}"

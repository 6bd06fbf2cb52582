"""Sub-pixel rearrangement: ``pixel_shuffle`` / ``pixel_unshuffle`` (Shi et al. 2016).

``pixel_shuffle`` moves blocks of ``r*r`` channels into ``r x r`` spatial blocks
(``(*, C r^2, H, W) -> (*, C, H r, W r)``); ``pixel_unshuffle`` is its inverse. Both are
pure permutations of the elements, so each one's backward is the other.
"""
from __future__ import annotations

import numpy as np

from ..autograd.function import Function
from ..tensor import Tensor

__all__ = ["pixel_shuffle", "pixel_unshuffle"]


def _shuffle(x: np.ndarray, r: int) -> np.ndarray:
    *b, c, h, w = x.shape
    nb = len(b)
    y = x.reshape(*b, c // (r * r), r, r, h, w)
    # (..., C, r_h, r_w, H, W) -> (..., C, H, r_h, W, r_w)
    y = y.transpose(*range(nb), nb, nb + 3, nb + 1, nb + 4, nb + 2)
    return np.ascontiguousarray(y).reshape(*b, c // (r * r), h * r, w * r)


def _unshuffle(x: np.ndarray, r: int) -> np.ndarray:
    *b, c, h, w = x.shape
    nb = len(b)
    y = x.reshape(*b, c, h // r, r, w // r, r)
    # (..., C, H, r_h, W, r_w) -> (..., C, r_h, r_w, H, W)
    y = y.transpose(*range(nb), nb, nb + 2, nb + 4, nb + 1, nb + 3)
    return np.ascontiguousarray(y).reshape(*b, c * r * r, h // r, w // r)


class _PixelShuffle(Function):
    def forward(self, x, r):
        self.r = r
        return _shuffle(x, r)

    def backward(self, g):
        return _unshuffle(g, self.r), None


class _PixelUnshuffle(Function):
    def forward(self, x, r):
        self.r = r
        return _unshuffle(x, r)

    def backward(self, g):
        return _shuffle(g, self.r), None


def _check(op: str, input, factor, name: str) -> int:
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(input).__name__}")
    if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)):
        raise TypeError(f"{op}: {name} must be an int, got {type(factor).__name__}")
    if factor <= 0:
        raise RuntimeError(f"{op}: {name} must be greater than 0, but got {factor}")
    if input.ndim < 3:
        raise RuntimeError(f"{op} expects input to have at least 3 dimensions, but got input "
                           f"with {input.ndim} dimension(s)")
    return int(factor)


def pixel_shuffle(input: Tensor, upscale_factor: int) -> Tensor:
    """``(*, C r^2, H, W) -> (*, C, H r, W r)`` with ``r = upscale_factor``:
    ``out[..., c, h r + i, w r + j] = in[..., c r^2 + i r + j, h, w]``.

    Example::

        >>> F.pixel_shuffle(cn.randn(1, 9, 4, 4), 3).shape
        (1, 1, 12, 12)
    """
    r = _check("pixel_shuffle", input, upscale_factor, "upscale_factor")
    c = input.shape[-3]
    if c % (r * r):
        raise RuntimeError(
            "pixel_shuffle expects its input's 'channel' dimension to be divisible by the "
            f"square of upscale_factor, but input.size(-3)={c} is not divisible by {r * r} "
            f"(input shape {input.shape})")
    return _PixelShuffle.apply(input, r)


def pixel_unshuffle(input: Tensor, downscale_factor: int) -> Tensor:
    """``(*, C, H r, W r) -> (*, C r^2, H, W)`` with ``r = downscale_factor`` (the inverse of
    :func:`pixel_shuffle`)."""
    r = _check("pixel_unshuffle", input, downscale_factor, "downscale_factor")
    h, w = input.shape[-2:]
    if h % r or w % r:
        raise RuntimeError(
            "pixel_unshuffle expects height and width to be divisible by downscale_factor, "
            f"but input.size(-2)={h} and input.size(-1)={w} are not both divisible by {r} "
            f"(input shape {input.shape})")
    return _PixelUnshuffle.apply(input, r)

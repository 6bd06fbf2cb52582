"""Dropout: zero elements (or whole channels) with probability ``p`` in training and
scale the rest by ``1 / (1 - p)`` so the expected activation is unchanged."""
from __future__ import annotations

import numpy as np

from ..autograd.function import Function
from ..random import generator
from ..tensor import Tensor

__all__ = ["dropout", "dropout1d", "dropout2d", "dropout3d"]


class _Mask(Function):
    """Multiply by a fixed (broadcastable) mask; the mask is the gradient's too."""

    def forward(self, x, mask):
        self.mask = mask
        return x * mask

    def backward(self, g):
        return g * self.mask, None


def _check_p(p: float, op: str) -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{op}: p must be in [0, 1], got {p}")


def _mask(shape, p: float, dtype) -> np.ndarray:
    if p == 1.0:
        return np.zeros(shape, dtype=dtype)
    keep = generator().random(shape, dtype=np.float32) >= p
    return keep.astype(dtype) * dtype.type(1.0 / (1.0 - p))


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Element-wise dropout ``(*) -> (*)``; identity when not training or ``p == 0``."""
    _check_p(p, "dropout")
    if not training or p == 0.0:
        return input
    mask = _mask(input.shape, p, input.dtype)
    if inplace:
        return input._inplace("dropout", lambda x: _Mask.apply(x, mask))
    return _Mask.apply(input, mask)


def _feature_dropout(input: Tensor, p: float, training: bool, spatial: int, op: str,
                     inplace: bool = False) -> Tensor:
    _check_p(p, op)
    if input.ndim not in (spatial + 1, spatial + 2):
        raise ValueError(
            f"{op}: expected input of {spatial + 2} dims (N, C, ...) or {spatial + 1} (C, ...), "
            f"got shape {input.shape}"
        )
    if not training or p == 0.0:
        return input
    lead = input.ndim - spatial  # (N, C) or (C,)
    shape = input.shape[:lead] + (1,) * spatial
    mask = _mask(shape, p, input.dtype)
    if inplace:
        return input._inplace(op, lambda x: _Mask.apply(x, mask))
    return _Mask.apply(input, mask)


def dropout1d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero whole channels of ``(N, C, L)``."""
    return _feature_dropout(input, p, training, 1, "dropout1d", inplace)


def dropout2d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero whole channels (feature maps) of ``(N, C, H, W)`` (Tompson et al. 2015)."""
    return _feature_dropout(input, p, training, 2, "dropout2d", inplace)


def dropout3d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero whole channels of ``(N, C, D, H, W)``."""
    return _feature_dropout(input, p, training, 3, "dropout3d", inplace)

"""Dropout: zero elements (or whole channels) with probability ``p`` in training and
scale the rest by ``1 / (1 - p)`` so the expected activation is unchanged."""
from __future__ import annotations

import warnings

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


def _feature_dropout(input: Tensor, p: float, training: bool, lead: int, op: str,
                     inplace: bool = False) -> Tensor:
    """Zero whole feature maps: one mask value per index of the first ``lead`` axes."""
    _check_p(p, op)
    if not training or p == 0.0:
        return input
    lead = min(lead, input.ndim)
    shape = input.shape[:lead] + (1,) * (input.ndim - lead)
    mask = _mask(shape, p, input.dtype)
    if inplace:
        return input._inplace(op, lambda x: _Mask.apply(x, mask))
    return _Mask.apply(input, mask)


def _unusual_rank(op: str, ndim: int, expected: str) -> None:
    warnings.warn(
        f"{op}: Received a {ndim}-D input to {op}, which is deprecated and will result in an "
        f"error in a future release (torch's warning). To retain the behavior and silence this "
        f"warning, please use dropout instead; {op} expects {expected} inputs.", UserWarning,
        stacklevel=3)


def dropout1d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero whole channels of ``(N, C, L)`` (or unbatched ``(C, L)``)."""
    if input.ndim not in (2, 3):
        raise RuntimeError(
            f"dropout1d: Expected 2D or 3D input, but received a {input.ndim}D input "
            f"(shape {tuple(input.shape)}). dropout1d is channel-wise dropout for (N, C, L) or (C, L)"
        )
    return _feature_dropout(input, p, training, input.ndim - 1, "dropout1d", inplace)


def dropout2d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero whole channels (feature maps) of ``(N, C, H, W)`` (Tompson et al. 2015).

    As torch: other ranks warn and mask per ``(N, C)`` entry; a 3-D input is taken as
    ``(N, C, L)`` (torch's historical behaviour), not as an unbatched ``(C, H, W)``."""
    if input.ndim not in (3, 4):
        _unusual_rank("dropout2d", input.ndim, "3D or 4D")
    elif input.ndim == 3:
        warnings.warn(
            "dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D dropout "
            "behavior is desired - input is interpreted as shape (N, C, L), as torch does; use "
            "dropout1d for that, or add the batch dimension for (C, H, W)", UserWarning, stacklevel=2)
    return _feature_dropout(input, p, training, 2, "dropout2d", inplace)


def dropout3d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero whole channels of ``(N, C, D, H, W)`` (or unbatched ``(C, D, H, W)``)."""
    if input.ndim not in (4, 5):
        _unusual_rank("dropout3d", input.ndim, "4D or 5D")
    return _feature_dropout(input, p, training, 1 if input.ndim == 4 else 2, "dropout3d", inplace)

"""``F.pad``: constant, reflect, replicate and circular padding with PyTorch's signature."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..autograd.function import Function
from ..kernels.pad import PAD_MODES, pad_nd, pad_nd_backward
from ..kernels.shapes import torch_pad_to_pairs
from ..tensor import Tensor

__all__ = ["pad"]


class _Pad(Function):
    def forward(self, x, pairs, mode, value):
        self.in_shape, self.pairs, self.mode = x.shape, pairs, mode
        return pad_nd(x, pairs, mode, value)

    def backward(self, g):
        return pad_nd_backward(np.asarray(g), self.in_shape, self.pairs, self.mode)


def pad(input: Tensor, pad: Sequence[int], mode: str = "constant", value: float | None = None
        ) -> Tensor:
    """Pad the trailing dimensions of ``input``.

    ``pad`` lists ``(lo, hi)`` amounts starting from the **last** dimension, as PyTorch:
    ``(left, right)`` pads W; ``(left, right, top, bottom)`` pads W and H; and so on. A dim of
    size ``I`` becomes ``I + lo + hi``. Modes:

    * ``'constant'``: fill with ``value`` (default 0); negative amounts crop.
    * ``'reflect'``: mirror without repeating the edge (``[a b c] -> b | a b c | b``); pads < I.
    * ``'replicate'``: repeat the edge value; any amount.
    * ``'circular'``: wrap around (``[a b c] -> c | a b c | a``); pads <= I.

    Non-constant modes pad at most the last ``ndim - 1`` dims (batch/channel dims are not
    padded). Gradients flow back to every source element (edges receive the sum of their copies).
    """
    if not isinstance(input, Tensor):
        raise TypeError(f"pad: input must be a Tensor, got {type(input).__name__}")
    if mode not in PAD_MODES:
        raise ValueError(f"pad: mode must be one of {PAD_MODES}, got {mode!r}")
    if not isinstance(pad, (tuple, list)):
        raise TypeError(f"pad: pad must be a tuple of ints, got {type(pad).__name__}")
    pairs = torch_pad_to_pairs(pad, input.ndim, "pad")
    if mode == "constant":
        value = 0.0 if value is None else value
        for d, (s, (lo, hi)) in enumerate(zip(input.shape, pairs)):
            if s + lo + hi < 0:
                raise ValueError(
                    f"pad: padding ({lo}, {hi}) of dim {d} gives a negative size for input "
                    f"shape {input.shape}"
                )
    else:
        if value not in (None, 0, 0.0):
            raise ValueError(f"pad: value is only used with mode='constant', not {mode!r}")
        if len(pad) // 2 > input.ndim - 1:
            raise ValueError(
                f"pad: mode {mode!r} pads at most {input.ndim - 1} trailing dims of an input of "
                f"shape {input.shape}, got pad {tuple(pad)}"
            )
        for d, (s, (lo, hi)) in enumerate(zip(input.shape, pairs)):
            if lo < 0 or hi < 0:
                raise ValueError(
                    f"pad: mode {mode!r} needs non-negative padding, got ({lo}, {hi}) for dim {d}"
                )
            if (lo or hi) and s == 0:
                raise ValueError(f"pad: cannot {mode}-pad dim {d} of size 0 ({input.shape})")
            if mode == "reflect" and (lo >= s or hi >= s):
                raise ValueError(
                    f"pad: reflect padding ({lo}, {hi}) of dim {d} must be smaller than its size "
                    f"{s} (input {input.shape})"
                )
            if mode == "circular" and (lo > s or hi > s):
                raise ValueError(
                    f"pad: circular padding ({lo}, {hi}) of dim {d} must not exceed its size {s} "
                    f"(input {input.shape})"
                )
    return _Pad.apply(input, pairs=pairs, mode=mode, value=value)

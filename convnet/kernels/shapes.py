"""Output-size formulas and argument normalisation shared by conv, pooling and padding.

Pure Python/NumPy, no Tensor. Other families import from here, so the public names are
stable: ``ntuple``, ``single``, ``pair``, ``triple``, ``conv_output_size``,
``conv_transpose_output_size``, ``effective_kernel``, ``same_padding``,
``parse_conv_padding``, ``torch_pad_to_pairs``.

Size formulas (per spatial axis; ``K_eff = D (K - 1) + 1``)::

    conv / pool:      O = floor((I + P_lo + P_hi - K_eff) / S) + 1
    transposed conv:  O = (I - 1) S - P_lo - P_hi + K_eff + output_padding
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

__all__ = [
    "ntuple", "single", "pair", "triple", "effective_kernel", "conv_output_size",
    "conv_transpose_output_size", "same_padding", "parse_conv_padding", "torch_pad_to_pairs",
]


def ntuple(value, n: int, name: str = "argument", op: str = "op") -> tuple[int, ...]:
    """Expand an int (or a length-``n`` sequence of ints) to an ``n``-tuple of ints.

    ``ntuple(3, 2) == (3, 3)``; ``ntuple((1, 2), 2) == (1, 2)``. Raises TypeError for
    non-integers and ValueError for a sequence of the wrong length, naming ``op`` and ``name``.
    """
    if isinstance(value, bool):
        raise TypeError(f"{op}: {name} must be an int or a tuple of {n} ints, got {value!r}")
    if isinstance(value, (int,)) or (hasattr(value, "__index__") and not hasattr(value, "__len__")):
        return (int(value),) * n
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) == 1:
            value = tuple(value) * n
        if len(value) != n:
            raise ValueError(
                f"{op}: {name} must be an int or a tuple of {n} ints, got {tuple(value)!r}"
            )
        out = []
        for v in value:
            if isinstance(v, bool) or not hasattr(v, "__index__"):
                raise TypeError(f"{op}: {name} must contain ints, got {tuple(value)!r}")
            out.append(int(v))
        return tuple(out)
    raise TypeError(f"{op}: {name} must be an int or a tuple of {n} ints, got {value!r}")


def _ntuple(n: int) -> Callable:
    """Return a converter like PyTorch's ``_ntuple(n)`` (``pair = _ntuple(2)``)."""

    def convert(value, name: str = "argument", op: str = "op") -> tuple[int, ...]:
        return ntuple(value, n, name, op)

    return convert


single = _ntuple(1)
pair = _ntuple(2)
triple = _ntuple(3)


def effective_kernel(kernel: int, dilation: int = 1) -> int:
    """Span of a dilated kernel: ``D (K - 1) + 1``."""
    return dilation * (kernel - 1) + 1


def conv_output_size(
    size: int, kernel: int, stride: int = 1, padding: int | tuple[int, int] = 0,
    dilation: int = 1, ceil_mode: bool = False,
) -> int:
    """Output length of a sliding window: ``floor((I + P_lo + P_hi - K_eff) / S) + 1``.

    ``padding`` is one int (both sides) or ``(lo, hi)``. With ``ceil_mode`` (pooling) the
    division rounds up, but the last window must start inside the input or the left padding,
    as in PyTorch. May return a value < 1 when the window does not fit; callers validate.
    """
    lo, hi = (padding, padding) if isinstance(padding, int) else padding
    span = size + lo + hi - effective_kernel(kernel, dilation)
    if span < 0:
        return span // stride + 1 if not ceil_mode else -(-span // stride) + 1
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    if (out - 1) * stride >= size + lo:
        out -= 1
    return out


def conv_transpose_output_size(
    size: int, kernel: int, stride: int = 1, padding: int = 0, output_padding: int = 0,
    dilation: int = 1,
) -> int:
    """Output length of a transposed conv: ``(I - 1) S - 2 P + D (K - 1) + output_padding + 1``."""
    return (size - 1) * stride - 2 * padding + effective_kernel(kernel, dilation) + output_padding


def same_padding(kernel: int, dilation: int = 1) -> tuple[int, int]:
    """``'same'`` padding for stride 1: total ``D (K - 1)``, ``lo = total // 2`` (as torch)."""
    total = dilation * (kernel - 1)
    return total // 2, total - total // 2


def parse_conv_padding(
    padding, nd: int, kernel: Sequence[int], dilation: Sequence[int], stride: Sequence[int],
    op: str = "conv",
) -> tuple[tuple[int, int], ...]:
    """Normalise a conv ``padding`` argument to ``nd`` pairs ``(lo, hi)``.

    Accepts an int, a tuple of ``nd`` ints, ``'valid'`` (no padding) or ``'same'`` (output size
    equals input size; needs stride 1, any kernel or dilation; odd totals put the extra
    element on the high side, as PyTorch does). Negative padding raises ValueError.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * nd
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(
                    f"{op}: padding='same' is not supported for strided convolutions "
                    f"(stride={tuple(stride)})"
                )
            return tuple(same_padding(k, d) for k, d in zip(kernel, dilation))
        raise ValueError(
            f"{op}: padding must be an int, a tuple of {nd} ints, 'same' or 'valid', "
            f"got {padding!r}"
        )
    pads = ntuple(padding, nd, "padding", op)
    if any(p < 0 for p in pads):
        raise ValueError(f"{op}: padding must be non-negative, got {pads}")
    return tuple((p, p) for p in pads)


def torch_pad_to_pairs(pad: Sequence[int], ndim: int,
                       op: str = "pad") -> tuple[tuple[int, int], ...]:
    """Turn PyTorch's ``F.pad`` spec ``(last_lo, last_hi, prev_lo, prev_hi, ...)`` into one
    ``(lo, hi)`` pair per axis of an ``ndim``-dimensional array (front axes get ``(0, 0)``)."""
    pad = tuple(pad)
    if len(pad) % 2:
        raise ValueError(f"{op}: pad must have an even length, got {len(pad)} values {pad}")
    if len(pad) // 2 > ndim:
        raise ValueError(
            f"{op}: pad {pad} covers {len(pad) // 2} dims but the input has only {ndim}"
        )
    for v in pad:
        if isinstance(v, bool) or not hasattr(v, "__index__"):
            raise TypeError(f"{op}: pad must contain ints, got {pad}")
    pairs = [(0, 0)] * ndim
    for i in range(len(pad) // 2):
        pairs[ndim - 1 - i] = (int(pad[2 * i]), int(pad[2 * i + 1]))
    return tuple(pairs)


def prod(values: Sequence[int]) -> int:
    """Product of ints (1 for an empty sequence)."""
    return math.prod(values)

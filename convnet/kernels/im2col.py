"""im2col / col2im for N-d sliding windows (pure NumPy, no Tensor).

Layout. For an already padded input ``xp`` of shape ``(N, C, *S)``, a kernel ``K``, stride and
dilation giving ``O`` output positions per axis, ``im2col`` fills::

    cols[c, k_1..k_d, n, o_1..o_d] = xp[n, c, o_1 s_1 + k_1 d_1, ..., o_d s_d + k_d d_d]

i.e. shape ``(C, *K, N, *O)``. Viewed as the matrix ``(C prod(K), N prod(O))`` it is the right
operand of one GEMM ``W (C_out, C prod(K)) @ cols`` per group, and the channel-major order makes a
group's rows contiguous. Both functions loop only over the ``prod(K)`` kernel offsets; each
iteration moves one strided slice, so there is no Python loop over batch, channels or pixels.
``col2im`` is the exact adjoint of ``im2col`` (overlapping windows add up), without ``np.add.at``.
"""
from __future__ import annotations

import itertools
from typing import Sequence

import numpy as np

__all__ = ["im2col", "col2im", "window_slices"]


def window_slices(offset: Sequence[int], stride: Sequence[int], dilation: Sequence[int],
                  out_size: Sequence[int]) -> tuple[slice, ...]:
    """Spatial slices selecting, for one kernel offset, the input element of every window."""
    return tuple(
        slice(k * d, k * d + s * (o - 1) + 1, s)
        for k, s, d, o in zip(offset, stride, dilation, out_size)
    )


def im2col(xp: np.ndarray, kernel: Sequence[int], stride: Sequence[int],
           dilation: Sequence[int], out_size: Sequence[int],
           out: np.ndarray | None = None) -> np.ndarray:
    """``(N, C, *S) -> (C, *K, N, *O)`` patch matrix (see module docstring).

    ``out`` may be a preallocated buffer of that shape (reused scratch avoids page faults).
    """
    n, c = xp.shape[:2]
    shape = (c, *kernel, n, *out_size)
    cols = np.empty(shape, dtype=xp.dtype) if out is None else out
    xt = xp.swapaxes(0, 1)  # (C, N, *S): a view, so each copy below lands channel-major
    for k in itertools.product(*(range(kk) for kk in kernel)):
        sl = window_slices(k, stride, dilation, out_size)
        cols[(slice(None),) + k] = xt[(slice(None), slice(None)) + sl]
    return cols


def col2im(cols: np.ndarray, xp_shape: Sequence[int], kernel: Sequence[int],
           stride: Sequence[int], dilation: Sequence[int], out_size: Sequence[int],
           out: np.ndarray | None = None) -> np.ndarray:
    """Adjoint of :func:`im2col`: ``(C, *K, N, *O) -> (N, C, *S)``, summing overlaps.

    If ``out`` is given the windows are *added* into it (it must be zeroed by the caller).
    """
    gxp = np.zeros(tuple(xp_shape), dtype=cols.dtype) if out is None else out
    gt = gxp.swapaxes(0, 1)
    for k in itertools.product(*(range(kk) for kk in kernel)):
        sl = window_slices(k, stride, dilation, out_size)
        gt[(slice(None), slice(None)) + sl] += cols[(slice(None),) + k]
    return gxp

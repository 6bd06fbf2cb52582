"""Convolution as pad + im2col + one GEMM per group: the readable reference.

This file *defines* what :mod:`convnet.kernels.conv` computes; the fast file adds special
paths for speed and is tested against this one (``tests/conv/test_conv_reference.py``).
docs/convolution.md walks through it. ``d`` = 1, 2 or 3 spatial axes, ``G`` groups::

    x (N, C, *S)    w (C_out, C/G, *K)    b (C_out,)    ->    y (N, C_out, *O)

    y[n, o, p] = b[o] + sum_{c in group(o)} sum_{k} w[o, c, k] * xpad[n, c, p * s + k * D]
    O = floor((S + P_lo + P_hi - D (K - 1) - 1) / s) + 1           (per spatial axis)

(every framework's "convolution" is this cross-correlation). Three steps:

1. **pad**: ``xpad`` is ``x`` with ``P_lo`` zeros before and ``P_hi`` after each spatial axis.
2. **im2col**: copy every window of ``xpad`` into a column of a matrix ``cols`` with one row
   per (input channel, kernel tap) and one column per (image, output pixel). The copy loops
   only over the ``prod(K)`` kernel taps: for a fixed tap, the pixels it reads in all windows
   form one strided slice of ``xpad`` (a single NumPy copy).
3. **GEMM**: ``y = W @ cols`` with ``W`` the weights as a ``(C_out, C/G prod(K))`` matrix, one
   product per group (group ``g``'s outputs see only its own input channels).

Backward, for a cotangent ``g = dL/dy`` of shape ``(N, C_out, *O)``::

    dL/dW    = g @ cols^T                 (per group)
    dL/dxpad = col2im(W^T @ g)            (per group; col2im is the adjoint of im2col)
    dL/db    = g summed over every axis but 1

and ``dL/dx`` is ``dL/dxpad`` without its padding. A transposed convolution's forward is this
input gradient, and its backward is a forward convolution.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .shapes import conv_output_size

__all__ = ["pad", "im2col", "col2im", "conv_forward", "conv_backward",
           "conv_bias_backward"]


def pad(x: np.ndarray, pads: Sequence[tuple[int, int]]) -> np.ndarray:
    """Zero padding of the spatial axes: ``(N, C, *S) -> (N, C, *(S + P_lo + P_hi))``."""
    return np.pad(x, [(0, 0), (0, 0)] + [tuple(p) for p in pads])


def _tap_slices(tap, stride, dilation, out_size) -> tuple[slice, ...]:
    """For kernel tap ``k``, the input pixels read by all windows: ``k D, k D + s, ...``
    (``O`` of them per axis)."""
    return tuple(slice(k * d, k * d + s * (o - 1) + 1, s)
                 for k, s, d, o in zip(tap, stride, dilation, out_size))


def im2col(xp: np.ndarray, kernel: Sequence[int], stride: Sequence[int],
           dilation: Sequence[int], out_size: Sequence[int]) -> np.ndarray:
    """Patch matrix of a padded input: ``(N, C, *S_pad) -> (C, *K, N, *O)``::

        cols[c, k, n, p] = xp[n, c, p * s + k * D]

    Read as the matrix ``(C prod(K), N prod(O))``: column ``(n, p)`` is the window of output
    pixel ``p`` of image ``n``. Channels come first so that a group's rows are contiguous.
    ``out_size`` may be smaller than the number of windows that fit (only those are copied).
    """
    n, c = xp.shape[:2]
    cols = np.empty((c, *kernel, n, *out_size), dtype=xp.dtype)
    xt = xp.swapaxes(0, 1)  # (C, N, *S_pad), a view: each tap's slice lands channel-major
    for tap in np.ndindex(*kernel):  # the only loop: one strided copy per kernel tap
        cols[(slice(None), *tap)] = xt[(slice(None), slice(None),
                                        *_tap_slices(tap, stride, dilation, out_size))]
    return cols


def col2im(cols: np.ndarray, padded_shape: Sequence[int], stride: Sequence[int],
           dilation: Sequence[int]) -> np.ndarray:
    """Adjoint of :func:`im2col`: ``(C, *K, N, *O) -> (N, C, *S_pad)``::

        xp[n, c, q] = sum over (k, p) with p * s + k * D = q of cols[c, k, n, p]

    Every column is added back where im2col took it from; where windows overlap, the
    values add up (so ``<im2col(x), c> == <x, col2im(c)>`` for all ``x`` and ``c``).
    """
    nd = len(stride)
    kernel, out_size = cols.shape[1:1 + nd], cols.shape[2 + nd:]
    xp = np.zeros(tuple(padded_shape), dtype=cols.dtype)
    xt = xp.swapaxes(0, 1)
    for tap in np.ndindex(*kernel):  # += on a strided view: no pixel repeats within one tap
        xt[(slice(None), slice(None), *_tap_slices(tap, stride, dilation, out_size))] += \
            cols[(slice(None), *tap)]
    return xp


def conv_forward(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None,
                 stride: Sequence[int], pads: Sequence[tuple[int, int]],
                 dilation: Sequence[int], groups: int = 1) -> np.ndarray:
    """Cross-correlation ``(N, C, *S) -> (N, C_out, *O)`` (module docstring), as pad, im2col
    and the GEMM ``(G, C_out/G, C/G prod(K)) @ (G, C/G prod(K), N prod(O))``.

    ``pads`` holds one ``(lo, hi)`` pair per spatial axis; ``bias`` is ``(C_out,)`` or None.
    """
    n = x.shape[0]
    c_out = w.shape[0]
    kernel = w.shape[2:]
    xp = pad(x, pads)
    # O = floor((S_pad - D (K - 1) - 1) / s) + 1 per axis (the padding is already in S_pad)
    out_size = tuple(conv_output_size(size, k, s, 0, d)
                     for size, k, s, d in zip(xp.shape[2:], kernel, stride, dilation))
    cols = im2col(xp, kernel, stride, dilation, out_size)      # (C, *K, N, *O)
    cols = cols.reshape(groups, -1, n * int(np.prod(out_size)))  # (G, C/G prod(K), N P)
    wm = w.reshape(groups, c_out // groups, -1)                 # (G, C_out/G, C/G prod(K))
    y = np.matmul(wm, cols)                                     # (G, C_out/G, N P)
    y = y.reshape(c_out, n, *out_size).swapaxes(0, 1)          # (N, C_out, *O)
    if bias is not None:
        y = y + bias.reshape((c_out,) + (1,) * len(kernel))
    return np.ascontiguousarray(y, dtype=x.dtype)


def conv_backward(g: np.ndarray, x: np.ndarray | None, w: np.ndarray,
                  in_shape: Sequence[int], stride: Sequence[int],
                  pads: Sequence[tuple[int, int]], dilation: Sequence[int], groups: int = 1,
                  need_input: bool = True, need_weight: bool = True):
    """Gradients ``(dL/dx, dL/dw)`` of :func:`conv_forward` (``None`` where not needed).

    ``g`` is ``(N, C_out, *O)``, ``x`` (read only for ``dL/dw``) is ``(N, C, *S)`` and
    ``in_shape`` is ``x``'s shape. ``g`` may cover only the first windows of an axis (``O``
    below what fits: a transposed conv's output_padding); pixels no window reads get zero
    gradient. The bias gradient is :func:`conv_bias_backward`.
    """
    n, c_out = g.shape[:2]
    kernel = w.shape[2:]
    out_size = g.shape[2:]
    padded = tuple(in_shape[:2]) + tuple(s + lo + hi for s, (lo, hi) in zip(in_shape[2:], pads))
    # g as the GEMM's (G, C_out/G, N P) operand: output channels first, like y above
    gm = g.swapaxes(0, 1).reshape(groups, c_out // groups, -1)
    gx = gw = None
    if need_weight:  # dL/dw[o, c, k] = sum_{n, p} g[n, o, p] cols[c, k, n, p]
        cols = im2col(pad(x, pads), kernel, stride, dilation, out_size)
        cols = cols.reshape(groups, -1, gm.shape[-1])           # (G, C/G prod(K), N P)
        gw = np.matmul(gm, cols.swapaxes(1, 2)).reshape(w.shape)
    if need_input:  # dL/dcols = W^T g, then col2im sums every window back onto its pixels
        wm = w.reshape(groups, c_out // groups, -1)
        gcols = np.matmul(wm.swapaxes(1, 2), gm)                # (G, C/G prod(K), N P)
        gcols = gcols.reshape(in_shape[1], *kernel, n, *out_size)
        gxp = col2im(gcols, padded, stride, dilation)
        gx = gxp[(slice(None), slice(None)) + tuple(
            slice(lo, lo + s) for s, (lo, _) in zip(in_shape[2:], pads))]  # drop the padding
        gx = np.ascontiguousarray(gx)
    return gx, gw


def conv_bias_backward(g: np.ndarray) -> np.ndarray:
    """``dL/db[o] = sum_{n, p} g[n, o, p]``: ``(N, C_out, *O) -> (C_out,)``."""
    return g.sum(axis=(0,) + tuple(range(2, g.ndim)))

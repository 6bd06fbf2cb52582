"""Compiled global average pooling: one pass per ``(n, c)`` plane, ``prange`` over planes.

Same signatures and results as :func:`convnet.kernels.pool.global_avg_pool_forward` and
:func:`~convnet.kernels.pool.global_avg_pool_backward` (the NumPy reference), for float32 and
float64 inputs of any number of spatial dims (a plane is flattened to one contiguous row);
other dtypes go to the NumPy kernels.

The forward sums each row in the input's dtype (float32 in float32, as NumPy's ``einsum`` and
torch's ``mean`` do) with reassociation allowed, so the sum runs in vector lanes: a plain
sequential loop was 2-4x slower (one dependent add per value). The order of the additions
differs from NumPy's and torch's only by rounding; NaN and infinities propagate as in any
IEEE sum (only the ``reassoc`` fast-math flag is set).
"""
from __future__ import annotations

import numba
import numpy as np

from ...kernels import pool as _ref

__all__ = ["global_avg_pool_forward", "global_avg_pool_backward"]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


# Only the 'reassoc' fast-math flag, so LLVM may split the row sum into vector lanes; not
# 'nnan'/'ninf'/'nsz' (what fastmath=True adds), so NaN, infinities and signed zeros keep IEEE
# semantics: a NaN or inf + -inf anywhere in the row gives NaN, an inf gives inf.
@numba.njit(parallel=True, cache=True, fastmath={"reassoc"})
def _plane_means(x, count, zero, out):  # pragma: no cover - compiled
    """``out[p] = (sum_j x[p, j]) / count`` for each row ``p`` of the C-contiguous
    ``(P, L)`` array ``x``, summed in ``x``'s dtype; ``count`` and ``zero`` are scalars of
    ``x``'s dtype."""
    length = x.shape[1]
    for p in numba.prange(x.shape[0]):
        row = x[p]
        s = zero
        for j in range(length):
            s += row[j]
        out[p] = s / count


@numba.njit(parallel=True, cache=True)
def _plane_fill(g, count, gx):  # pragma: no cover - compiled
    """``gx[p, j] = g[p] / count`` for every ``j`` of row ``p`` of the ``(P, L)`` array
    ``gx``; ``count`` is a scalar of ``g``'s dtype."""
    length = gx.shape[1]
    for p in numba.prange(gx.shape[0]):
        v = g[p] / count
        row = gx[p]
        for j in range(length):
            row[j] = v


def global_avg_pool_forward(x: np.ndarray) -> np.ndarray:
    """``y[n, c] = (sum_j x[n, c, j]) / L`` over the ``L`` spatial positions of each plane:
    ``(N, C, *spatial) -> (N, C, 1, ..., 1)``, ``x``'s dtype."""
    if x.dtype not in _FLOATS or x.ndim < 3 or x.size == 0:  # empty: NumPy's 0/0 rules
        return _ref.global_avg_pool_forward(x)
    n, c = x.shape[:2]
    count = int(np.prod(x.shape[2:]))
    rows = np.ascontiguousarray(x).reshape(n * c, count)  # a copy only when not contiguous
    out = np.empty(n * c, dtype=x.dtype)
    _plane_means(rows, x.dtype.type(count), x.dtype.type(0), out)
    return out.reshape((n, c) + (1,) * (x.ndim - 2))


def global_avg_pool_backward(g: np.ndarray, in_shape) -> np.ndarray:
    """``gx[n, c, j] = g[n, c] / L`` at every spatial position ``j``: ``g`` ``(N, C, 1, ...,
    1)`` -> ``(N, C, *spatial)``, C-contiguous, ``g``'s dtype."""
    in_shape = tuple(in_shape)
    if (g.dtype not in _FLOATS or len(in_shape) < 3 or g.size != in_shape[0] * in_shape[1]
            or 0 in in_shape):
        return _ref.global_avg_pool_backward(g, in_shape)
    count = int(np.prod(in_shape[2:]))
    gx = np.empty(in_shape, dtype=g.dtype)
    _plane_fill(np.ascontiguousarray(g).reshape(-1), g.dtype.type(count),
                gx.reshape(in_shape[0] * in_shape[1], count))
    return gx

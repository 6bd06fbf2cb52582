"""Resampling kernels: separable per-axis linear maps (interpolation, adaptive average pooling),
adaptive max pooling, and max/bed-of-nails/nearest unpooling.

Interpolation (nearest, linear, cubic) and adaptive average pooling act on each spatial axis
independently, so each is a small dense matrix ``M`` of shape ``(L_in, L_out)`` per axis:
``y = x @ M`` along that axis, and the adjoint (backward) is ``g @ M.T``. Applying the maps
axis by axis runs inside BLAS and needs no Python loop over pixels.
"""
from __future__ import annotations

import itertools
import math
from typing import Sequence

import numpy as np

Ints = tuple[int, ...]


# ----------------------------------------------------------------------------- axis maps
def apply_axis_maps(x: np.ndarray, mats: Sequence[np.ndarray | None],
                    transpose: bool = False) -> np.ndarray:
    """Apply ``mats[i]`` (``(L_in, L_out)``, or ``None`` for identity) along spatial axis
    ``i`` of ``x`` ``(N, C, *L)``; ``transpose`` applies the adjoint maps ``M.T``.

    Each step contracts the *first* remaining spatial axis with one GEMM (``tensordot``) and
    appends the new axis at the end, so after all axes the order is the original one and no
    batched small-matrix products are needed.
    """
    if all(m is None for m in mats):
        return x
    nd = len(mats)
    lead = x.shape[:x.ndim - nd]
    y = x.reshape((math.prod(lead),) + x.shape[x.ndim - nd:])
    for m in mats:
        if m is None:
            y = np.moveaxis(y, 1, -1)  # rotate the axis to the end untouched
        else:
            y = np.tensordot(y, m.T if transpose else m, axes=([1], [0]))
    return np.ascontiguousarray(y).reshape(lead + y.shape[1:])


def adaptive_ranges(n: int, o: int) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch's adaptive windows: ``start_i = floor(i n / o)``, ``end_i = ceil((i+1) n / o)``."""
    i = np.arange(o)
    return (i * n) // o, -((-(i + 1) * n) // o)


def adaptive_avg_matrix(n: int, o: int, dtype) -> np.ndarray:
    """``(n, o)`` averaging matrix: column ``i`` is ``1/len`` on window ``i``."""
    start, end = adaptive_ranges(n, o)
    rows = np.arange(n)[:, None]
    inside = (rows >= start) & (rows < end)
    return (inside / (end - start)).astype(dtype)


def _scale(n_in: int, n_out: int, align_corners: bool, scale_factor: float | None,
           dtype=np.float64):
    """PyTorch's ``area_pixel_compute_scale``: source step per output step."""
    if align_corners:
        return dtype((n_in - 1) / (n_out - 1)) if n_out > 1 else dtype(0.0)
    if scale_factor is not None and scale_factor > 0:
        return dtype(1.0 / scale_factor)
    return dtype(n_in) / dtype(n_out)


def nearest_source(n_in: int, n_out: int, scale_factor: float | None,
                   exact: bool) -> np.ndarray:
    """Source index of every output index: ``min(floor(dst * scale), n_in - 1)``
    (``'nearest'``, computed in float32 as PyTorch does) or ``floor((dst + 0.5) * scale)``
    (``'nearest-exact'``)."""
    dst = np.arange(n_out)
    if not exact and n_out == n_in:
        src = dst
    elif not exact and n_out == 2 * n_in:
        src = dst >> 1
    else:
        scale = _scale(n_in, n_out, False, scale_factor, np.float32)
        if exact:
            src = np.floor((dst + 0.5) * np.float64(scale)).astype(np.int64)
        else:
            src = np.floor(dst.astype(np.float32) * scale).astype(np.int64)
        src = np.minimum(src, n_in - 1)
    return src


def nearest_matrix(n_in: int, n_out: int, scale_factor: float | None, exact: bool,
                   dtype) -> np.ndarray:
    """0/1 ``(n_in, n_out)`` matrix of :func:`nearest_source`."""
    m = np.zeros((n_in, n_out), dtype=dtype)
    m[nearest_source(n_in, n_out, scale_factor, exact), np.arange(n_out)] = 1
    return m


def linear_matrix(n_in: int, n_out: int, align_corners: bool, scale_factor: float | None,
                  dtype) -> np.ndarray:
    """Linear interpolation weights (``'linear'``, ``'bilinear'``, ``'trilinear'`` per axis)."""
    scale = _scale(n_in, n_out, align_corners, scale_factor)
    dst = np.arange(n_out, dtype=np.float64)
    src = scale * dst if align_corners else np.maximum(scale * (dst + 0.5) - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    lam = np.clip(src - i0, 0.0, 1.0)
    i1 = np.where(i0 < n_in - 1, i0 + 1, i0)
    m = np.zeros((n_in, n_out), dtype=np.float64)
    cols = np.arange(n_out)
    np.add.at(m, (i0, cols), 1.0 - lam)  # tiny (n_in x n_out) matrix; i0 may equal i1
    np.add.at(m, (i1, cols), lam)
    return m.astype(dtype)


def cubic_matrix(n_in: int, n_out: int, align_corners: bool, scale_factor: float | None,
                 dtype, a: float = -0.75) -> np.ndarray:
    """Cubic-convolution weights (Keys, ``A = -0.75`` as PyTorch); taps clamped to the edge."""
    scale = _scale(n_in, n_out, align_corners, scale_factor)
    dst = np.arange(n_out, dtype=np.float64)
    src = scale * dst if align_corners else scale * (dst + 0.5) - 0.5
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    t = np.clip(src - i0, 0.0, 1.0)

    def near(x):  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    weights = (far(t + 1), near(t), near(1 - t), far(2 - t))
    m = np.zeros((n_in, n_out), dtype=np.float64)
    cols = np.arange(n_out)
    for j, w in enumerate(weights):
        np.add.at(m, (np.clip(i0 - 1 + j, 0, n_in - 1), cols), w)
    return m.astype(dtype)


# ------------------------------------------------------------------------ adaptive max
def adaptive_max_forward(x: np.ndarray, outs: Ints):
    """Adaptive max pooling ``(N, C, *L) -> (N, C, *outs)`` with flat per-plane argmax.

    Windows have different lengths, so each axis gathers ``max_len`` taps with indices
    clamped to the window's last element (a repeat never wins a strict comparison).
    Returns ``(out, flat_indices)``.
    """
    spatial = x.shape[2:]
    idx_lists, lens = [], []
    for n, o in zip(spatial, outs):
        start, end = adaptive_ranges(n, o)
        kmax = int((end - start).max())
        idx_lists.append([np.minimum(start + j, end - 1) for j in range(kmax)])
        lens.append(kmax)
    out = arg = None
    mask = None
    for offs in itertools.product(*(range(k) for k in lens)):
        grids = np.ix_(*[idx_lists[i][o] for i, o in enumerate(offs)])
        v = x[(slice(None), slice(None)) + grids]
        flat = sum(g * math.prod(spatial[i + 1:]) for i, g in enumerate(grids))
        if out is None:
            out = v
            arg = np.broadcast_to(flat, v.shape).astype(np.int64)
            mask = np.empty(v.shape, dtype=bool)
            continue
        np.greater(v, out, out=mask)
        arg += (flat - arg) * mask  # arithmetic select: masked writes are slow
        np.maximum(out, v, out=out)
    return out, arg


def scatter_flat(g: np.ndarray, idx: np.ndarray, in_shape: Ints) -> np.ndarray:
    """Adjoint of gathering ``x.reshape(N*C, -1)[plane, idx]``: add ``g`` at ``idx``.

    Repeated indices (overlapping windows) are summed without ``np.add.at``: elements are
    sorted by target, then ``np.add.reduceat`` sums each run of equal targets.
    """
    nc = math.prod(in_shape[:2])
    plane = math.prod(in_shape[2:])
    gx = np.zeros((nc * plane,), dtype=g.dtype)
    tgt = (idx.reshape(nc, -1) + (np.arange(nc, dtype=np.int64) * plane)[:, None]).ravel()
    gv = g.reshape(-1)
    order = np.argsort(tgt, kind="stable")
    ts = tgt[order]
    if ts.size and np.all(ts[1:] != ts[:-1]):
        gx[tgt] = gv
    elif ts.size:
        first = np.flatnonzero(np.r_[True, ts[1:] != ts[:-1]])
        gx[ts[first]] = np.add.reduceat(gv[order], first)
    return gx.reshape(in_shape)


# ---------------------------------------------------------------------------- unpooling
def max_unpool_forward(x: np.ndarray, idx: np.ndarray, out_spatial: Ints) -> np.ndarray:
    """Place ``x[n, c, j]`` at flat position ``idx[n, c, j]`` of a zero ``(N, C, *out)`` map."""
    n, c = x.shape[:2]
    plane = math.prod(out_spatial)
    out = np.zeros((n * c, plane), dtype=x.dtype)
    np.put_along_axis(out, idx.reshape(n * c, -1), x.reshape(n * c, -1), axis=1)
    return out.reshape((n, c) + tuple(out_spatial))


def max_unpool_backward(g: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Adjoint of :func:`max_unpool_forward` (a gather at ``idx``)."""
    n, c = g.shape[:2]
    gg = np.take_along_axis(g.reshape(n * c, -1), idx.reshape(n * c, -1), axis=1)
    return gg.reshape(idx.shape)


def block_unpool_forward(x: np.ndarray, ks: Ints, mode: str) -> np.ndarray:
    """``(N, C, *L) -> (N, C, *(L k))``: each value fills its ``k``-block (``'nearest'``) or
    only the block's first cell, zeros elsewhere (``'bed_of_nails'``)."""
    lead = x.shape[:x.ndim - len(ks)]
    spatial = x.shape[len(lead):]
    # (..., L1, k1, L2, k2, ...) is the output with each block's offsets split out
    split = lead + tuple(v for n, k in zip(spatial, ks) for v in (n, k))
    bcast = x.reshape(lead + tuple(v for n in spatial for v in (n, 1)))
    if mode == "nearest":
        out = np.broadcast_to(bcast, split).copy()
    else:
        out = np.zeros(split, dtype=x.dtype)
        out[(Ellipsis,) + (slice(None), slice(0, 1)) * len(ks)] = bcast
    return out.reshape(lead + tuple(n * k for n, k in zip(spatial, ks)))


def block_unpool_backward(g: np.ndarray, ks: Ints, mode: str) -> np.ndarray:
    """Adjoint of :func:`block_unpool_forward`."""
    lead = g.shape[:g.ndim - len(ks)]
    spatial = tuple(n // k for n, k in zip(g.shape[len(lead):], ks))
    gs = g.reshape(lead + tuple(v for n, k in zip(spatial, ks) for v in (n, k)))
    if mode == "nearest":
        axes = tuple(len(lead) + 2 * i + 1 for i in range(len(ks)))
        return gs.sum(axis=axes)
    return np.ascontiguousarray(gs[(Ellipsis,) + (slice(None), 0) * len(ks)])

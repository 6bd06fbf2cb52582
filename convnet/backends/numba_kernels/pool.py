"""Compiled 2-D pooling kernels: a direct loop per ``(n, c)`` plane, ``prange`` over planes.

Same signatures and results as :mod:`convnet.kernels.pool` (the NumPy reference), in float32
and float64, for 2-D pooling ``(N, C, H, W)`` with the window shapes networks use
(:data:`FAST_WINDOWS`: 2x2 and 3x3 kernels, stride 1 or 2, no dilation), any padding and
``ceil_mode``. Each of those is compiled with its kernel size and stride as constants, so the
tap loops unroll; a loop with run-time window sizes measured slower than the NumPy kernel
(a dependent compare chain per output, 3-6 ns a tap), so every other window shape, 1-D and
3-D pooling and other dtypes go to the NumPy kernels.

Geometry (per spatial dim): output ``j`` reads input position ``j s - p + o`` for kernel
offsets ``o = 0 .. k-1``. A plane that needs padding is copied into a per-thread buffer filled
with ``-inf`` (``+inf`` for min, ``0`` for average), exactly the reference's padding, so the
loops have no bounds checks. Taps are visited in row-major offset order for every output,
which makes ties, NaN and sums match the reference exactly:

- max/min: the first extreme wins (strict comparison); a NaN always takes over, so the
  output is NaN and the recorded offset is the window's last NaN (PyTorch's
  ``val > max || isnan(val)``); padding (infinite) never wins;
- average: taps are summed in the reference's order and divided by the same divisor
  (:func:`convnet.kernels.pool.avg_divisor`): the forward is bit-identical.

Backward passes scatter-add ``g`` through the same geometry, serially within a plane (windows
may overlap) and in parallel over planes (which never share memory).
"""
from __future__ import annotations

import numba
import numpy as np

from ...kernels import pool as _ref

__all__ = ["max_pool_forward", "max_pool_backward", "avg_pool_forward", "avg_pool_backward"]

#: (kh, kw, sh, sw) compiled with constant sizes (dilation 1); others use the NumPy kernels
FAST_WINDOWS = ((2, 2, 2, 2), (3, 3, 2, 2), (3, 3, 1, 1), (2, 2, 1, 1))


@numba.njit(inline="always")
def _padded_plane(src, ph, pw, hp, wp, fill):  # pragma: no cover - compiled
    """``src`` (H, W) inside a ``(hp, wp)`` buffer of ``fill`` at offset ``(ph, pw)``; ``src``
    itself when no padding is needed."""
    h, w = src.shape
    if hp == h and wp == w:
        return src
    buf = np.full((hp, wp), fill, dtype=src.dtype)
    buf[ph:ph + h, pw:pw + w] = src
    return buf


@numba.njit(inline="always")
def _max_plane(xp, op, ap, kh, kw, sh, sw, use_min, want):  # pragma: no cover - compiled
    """``op[i, j] = max_{u, v} xp[i sh + u, j sw + v]`` (min with ``use_min``; NaN wins) and
    ``ap[i, j] = u kw + v`` of the winner when ``want``, on one padded plane."""
    ho, wo = op.shape
    for i in range(ho):
        for j in range(wo):
            b = xp[i * sh, j * sw]
            a = 0
            for u in range(kh):
                for v in range(kw):
                    if u + v == 0:
                        continue
                    val = xp[i * sh + u, j * sw + v]
                    t = ((val < b) if use_min else (val > b)) | (val != val)
                    b = val if t else b
                    a = u * kw + v if t else a
            op[i, j] = b
            if want:
                ap[i, j] = a


@numba.njit(parallel=True, cache=True)
def _max_pool2d(x, kh, kw, sh, sw, ph, pw, hp, wp, use_min, want, out, arg):  # pragma: no cover
    """``out[p, i, j] = max_{u, v} x[p, i sh - ph + u, j sw - pw + v]`` over the window
    (``min`` with ``use_min``; padding taps are -inf / +inf), ``arg[p, i, j] = u kw + v`` of the
    first extreme or of the last NaN (written only when ``want``). ``x`` is ``(P, H, W)``,
    ``out``/``arg`` ``(P, H', W')``, ``(hp, wp)`` the padded extent; ``(kh, kw, sh, sw)`` one
    of :data:`FAST_WINDOWS`."""
    fill = np.inf if use_min else -np.inf
    for p in numba.prange(x.shape[0]):
        xp = _padded_plane(x[p], ph, pw, hp, wp, fill)
        op = out[p]
        ap = arg[p] if want else arg[0]
        # literal sizes: each branch is its own unrolled loop nest
        if kh == 2 and kw == 2 and sh == 2 and sw == 2:
            _max_plane(xp, op, ap, 2, 2, 2, 2, use_min, want)
        elif kh == 3 and kw == 3 and sh == 2 and sw == 2:
            _max_plane(xp, op, ap, 3, 3, 2, 2, use_min, want)
        elif kh == 3 and kw == 3 and sh == 1 and sw == 1:
            _max_plane(xp, op, ap, 3, 3, 1, 1, use_min, want)
        elif kh == 2 and kw == 2 and sh == 1 and sw == 1:
            _max_plane(xp, op, ap, 2, 2, 1, 1, use_min, want)


@numba.njit(parallel=True, cache=True)
def _max_pool2d_backward(g, arg, dr, dc, sh, sw, ph, pw, gx):  # pragma: no cover - compiled
    """``gx[p, i sh - ph + dr[k], j sw - pw + dc[k]] += g[p, i, j]`` with ``k = arg[p, i, j]``,
    for taps inside the input (``dr``/``dc``: row/column of each kernel offset, a table, so
    no division per element); ``gx`` starts at zero."""
    n_planes, h, w = gx.shape
    ho, wo = g.shape[1], g.shape[2]
    for p in numba.prange(n_planes):
        for i in range(ho):
            for j in range(wo):
                k = arg[p, i, j]
                r = i * sh - ph + dr[k]
                c = j * sw - pw + dc[k]
                if 0 <= r < h and 0 <= c < w:
                    gx[p, r, c] += g[p, i, j]


@numba.njit(inline="always")
def _avg_plane(xp, op, dv, kh, kw, sh, sw):  # pragma: no cover - compiled
    """``op[i, j] = (sum_{u, v} xp[i sh + u, j sw + v]) / dv[i, j]``, row-major tap order."""
    ho, wo = op.shape
    for i in range(ho):
        for j in range(wo):
            s = xp[i * sh, j * sw]
            for u in range(kh):
                for v in range(kw):
                    if u + v > 0:
                        s += xp[i * sh + u, j * sw + v]
            op[i, j] = s / dv[i, j]


@numba.njit(parallel=True, cache=True)
def _avg_pool2d(x, kh, kw, sh, sw, ph, pw, hp, wp, div, out):  # pragma: no cover - compiled
    """``out[p, i, j] = (sum_{u, v} x[p, i sh - ph + u, j sw - pw + v]) / div[i, j]`` with
    zero padding, taps summed in row-major offset order; ``(kh, kw, sh, sw)`` one of
    :data:`FAST_WINDOWS`."""
    for p in numba.prange(x.shape[0]):
        xp = _padded_plane(x[p], ph, pw, hp, wp, 0.0)
        op = out[p]
        if kh == 2 and kw == 2 and sh == 2 and sw == 2:
            _avg_plane(xp, op, div, 2, 2, 2, 2)
        elif kh == 3 and kw == 3 and sh == 2 and sw == 2:
            _avg_plane(xp, op, div, 3, 3, 2, 2)
        elif kh == 3 and kw == 3 and sh == 1 and sw == 1:
            _avg_plane(xp, op, div, 3, 3, 1, 1)
        elif kh == 2 and kw == 2 and sh == 1 and sw == 1:
            _avg_plane(xp, op, div, 2, 2, 1, 1)


@numba.njit(inline="always")
def _avg_plane_backward(gp, dv, gxp, kh, kw, sh, sw):  # pragma: no cover - compiled
    """``gxp[i sh + u, j sw + v] += gp[i, j] / dv[i, j]`` for every tap, on a padded plane."""
    ho, wo = gp.shape
    for i in range(ho):
        for j in range(wo):
            gd = gp[i, j] / dv[i, j]
            for u in range(kh):
                for v in range(kw):
                    gxp[i * sh + u, j * sw + v] += gd


@numba.njit(parallel=True, cache=True)
def _avg_pool2d_backward(g, kh, kw, sh, sw, ph, pw, hp, wp, div, gx):  # pragma: no cover
    """``gx[p, i sh - ph + u, j sw - pw + v] += g[p, i, j] / div[i, j]`` for every tap inside
    the input; ``gx`` starts at zero (padding taps land in a per-thread buffer, cropped)."""
    n_planes, h, w = gx.shape
    padded = hp != h or wp != w
    for p in numba.prange(n_planes):
        gxp = np.zeros((hp, wp), dtype=gx.dtype) if padded else gx[p]
        gp = g[p]
        if kh == 2 and kw == 2 and sh == 2 and sw == 2:
            _avg_plane_backward(gp, div, gxp, 2, 2, 2, 2)
        elif kh == 3 and kw == 3 and sh == 2 and sw == 2:
            _avg_plane_backward(gp, div, gxp, 3, 3, 2, 2)
        elif kh == 3 and kw == 3 and sh == 1 and sw == 1:
            _avg_plane_backward(gp, div, gxp, 3, 3, 1, 1)
        elif kh == 2 and kw == 2 and sh == 1 and sw == 1:
            _avg_plane_backward(gp, div, gxp, 2, 2, 1, 1)
        if padded:
            gx[p] = gxp[ph:ph + h, pw:pw + w]


def _compiled(x: np.ndarray, ks, ss, ds=(1, 1)) -> bool:
    """2-D pooling of float32/float64 with a window of :data:`FAST_WINDOWS`."""
    return (x.ndim == 4 and len(ks) == 2 and x.dtype in (np.float32, np.float64)
            and tuple(ks) + tuple(ss) in FAST_WINDOWS and tuple(ds) == (1, 1))


def _planes(a: np.ndarray) -> np.ndarray:
    """``(N, C, H, W)`` -> a C-contiguous ``(N C, H, W)`` (a view when already contiguous)."""
    return np.ascontiguousarray(a).reshape((-1,) + a.shape[2:])


def _padded_extent(spatial, ks, ss, ps, outs) -> tuple[int, int]:
    """``(hp, wp)``: the input plus the reference's padding (:func:`convnet.kernels.pool._pads`:
    ``p`` on the left, on the right as much as the last window needs)."""
    return tuple(n + p + max((o - 1) * s + k - n - p, 0)
                 for n, k, s, p, o in zip(spatial, ks, ss, ps, outs))


def _div_grid(div, outs, dtype) -> np.ndarray:
    """:func:`~convnet.kernels.pool.avg_divisor`'s scalar or broadcastable array as a full
    ``(H', W')`` array of ``dtype`` (what the compiled loops index)."""
    return np.ascontiguousarray(np.broadcast_to(np.asarray(div, dtype=dtype), outs))


def max_pool_forward(x: np.ndarray, ks, ss, ps, ds, ceil_mode: bool, want_offsets: bool,
                     use_min: bool = False):
    """Max (or min) pooling ``(N, C, H, W) -> (N, C, H', W')``, as
    :func:`convnet.kernels.pool.max_pool_forward`: returns ``(out, offsets)`` with
    ``offsets[n, c, i, j] = u k_w + v`` of the winning tap (the reference's dtype), or
    ``None`` unless ``want_offsets``."""
    if not _compiled(x, ks, ss, ds):
        return _ref.max_pool_forward(x, ks, ss, ps, ds, ceil_mode, want_offsets, use_min)
    outs = _ref.pool_output_shape(x.shape[2:], ks, ss, ps, ds, ceil_mode)
    hp, wp = _padded_extent(x.shape[2:], ks, ss, ps, outs)
    n, c = x.shape[:2]
    out = np.empty((n, c) + outs, dtype=x.dtype)
    # without offsets the kernel still needs an array of the right type: a 1x1x1 stand-in
    arg = np.empty((n, c) + outs if want_offsets else (1, 1, 1, 1), dtype=_ref._offset_dtype(ks))
    _max_pool2d(_planes(x), ks[0], ks[1], ss[0], ss[1], ps[0], ps[1], hp, wp, bool(use_min),
                bool(want_offsets), out.reshape((-1,) + outs), _planes(arg))
    return out, (arg if want_offsets else None)


def max_pool_backward(g: np.ndarray, arg: np.ndarray, in_shape, ks, ss, ps, ds) -> np.ndarray:
    """Scatter-add ``g`` ``(N, C, H', W')`` to the winning taps named by ``arg`` (the offsets
    :func:`max_pool_forward` returned) -> ``(N, C, H, W)``. Any 2-D window is compiled here."""
    if not (g.ndim == 4 and len(ks) == 2 and len(in_shape) == 4
            and g.dtype in (np.float32, np.float64)):
        return _ref.max_pool_backward(g, arg, in_shape, ks, ss, ps, ds)
    offs = np.arange(ks[0] * ks[1])
    dr, dc = (offs // ks[1]) * ds[0], (offs % ks[1]) * ds[1]
    gx = np.zeros(tuple(in_shape), dtype=g.dtype)
    _max_pool2d_backward(_planes(g), _planes(arg), dr, dc, ss[0], ss[1], ps[0], ps[1],
                         gx.reshape((-1,) + gx.shape[2:]))
    return gx


def avg_pool_forward(x: np.ndarray, ks, ss, ps, ceil_mode: bool, count_include_pad: bool,
                     divisor_override: int | None):
    """Average pooling ``(N, C, H, W) -> (N, C, H', W')``, as
    :func:`convnet.kernels.pool.avg_pool_forward`: returns ``(out, divisor)``."""
    if not _compiled(x, ks, ss):
        return _ref.avg_pool_forward(x, ks, ss, ps, ceil_mode, count_include_pad,
                                     divisor_override)
    outs = _ref.pool_output_shape(x.shape[2:], ks, ss, ps, (1, 1), ceil_mode)
    hp, wp = _padded_extent(x.shape[2:], ks, ss, ps, outs)
    div = _ref.avg_divisor(tuple(x.shape[2:]), outs, ks, ss, ps, count_include_pad,
                           divisor_override, x.dtype)
    n, c = x.shape[:2]
    out = np.empty((n, c) + outs, dtype=x.dtype)
    _avg_pool2d(_planes(x), ks[0], ks[1], ss[0], ss[1], ps[0], ps[1], hp, wp,
                _div_grid(div, outs, x.dtype), out.reshape((-1,) + outs))
    return out, div


def avg_pool_backward(g: np.ndarray, div, in_shape, ks, ss, ps) -> np.ndarray:
    """Adjoint of :func:`avg_pool_forward`: every tap inside the input receives
    ``g / divisor`` of each window it belongs to -> ``(N, C, H, W)``."""
    if not _compiled(g, ks, ss) or len(in_shape) != 4:
        return _ref.avg_pool_backward(g, div, in_shape, ks, ss, ps)
    outs = g.shape[2:]
    hp, wp = _padded_extent(tuple(in_shape[2:]), ks, ss, ps, outs)
    gx = np.zeros(tuple(in_shape), dtype=g.dtype)
    _avg_pool2d_backward(_planes(g), ks[0], ks[1], ss[0], ss[1], ps[0], ps[1], hp, wp,
                         _div_grid(div, outs, g.dtype), gx.reshape((-1,) + gx.shape[2:]))
    return gx

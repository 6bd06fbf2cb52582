"""Batch-norm kernels compiled with numba (same signatures and results as
:mod:`convnet.kernels.norm`).

Only batch norm is compiled: the statistics and affine views agree, ``(N, C, S)``. Instance,
group and layer norm, dtypes other than float32/float64, and ``S`` below :data:`_MIN_S`
(:data:`_MIN_S_EVAL` for the scale-shift map) go to the NumPy kernel: with short rows per
``(n, c)`` its whole-array ufuncs and reductions win.

Measured (AMD EPYC, 1 thread, ResNet-20 shapes at batch 128, ``benchmarks/backend_norm.py``):
torch / numba time 3.0-5.4 for the training forward, 1.06-1.35 backward, 1.1-1.65 eval.

Why the loops look the way they do (measured on a 2-core AMD EPYC VM):

- Every pass walks the arrays in memory order, image by image, row ``[n, c, :]`` by row.
  Walking one channel's rows instead (a jump of ``C*S`` elements per row) defeats the
  hardware prefetcher: the write pass ran 2-3x slower that way.
- Without ``fastmath`` LLVM may not reorder a scalar running sum, so ``t += r[p]`` runs one
  add at a time. Summing the rows into per-channel ``S``-long accumulators
  (``acc[c, p] += x[n, c, p]``) is element-wise, so it vectorizes; each parallel chunk of
  images has its own accumulators, summed at the end in float64 (:func:`_total`). This adds
  in another order than NumPy's ``einsum`` (results agree to float rounding) and propagates
  NaN and inf the same way.
"""
from __future__ import annotations

import numba
import numpy as np
from numba import prange

from ...kernels import norm as _ref

__all__ = ["normalize_forward", "normalize_backward", "scale_shift_forward"]

# shortest rows (elements per (n, c) plane) where the compiled per-row loops beat NumPy's
# whole-array ufuncs (measured: training kernels win from S = 8, the scale-shift map from 16)
_MIN_S = 8
_MIN_S_EVAL = 16
_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


@numba.njit(cache=True)
def _total(acc):
    """``sum(acc)`` of a 1-D array in float64, with eight partial sums (eight independent add
    chains instead of one)."""
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
    n = acc.shape[0]
    k = n - n % 8
    for i in range(0, k, 8):
        s0 += acc[i]
        s1 += acc[i + 1]
        s2 += acc[i + 2]
        s3 += acc[i + 3]
        s4 += acc[i + 4]
        s5 += acc[i + 5]
        s6 += acc[i + 6]
        s7 += acc[i + 7]
    t = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
    for i in range(k, n):
        t += acc[i]
    return t


def _chunks(n):
    """How many parallel chunks of images: one per thread, at most one per image (asked
    here, not inside the kernels: a jitted ``get_num_threads`` call cannot be cached)."""
    return max(1, min(numba.get_num_threads(), n))


@numba.njit(parallel=True, cache=True)
def _bn_forward(x, w, b, has_w, has_b, eps, nt, y, xc, mean, var, invstd):
    """Batch-norm training forward on C-contiguous ``x`` ``(N, C, S)``, per channel ``c``
    (sums over ``n`` and ``s``, ``m = N S``), in three passes over ``x``::

        mean = sum(x) / m                 var = sum((x - mean)^2) / m
        invstd = 1 / sqrt(var + eps)      xc = x - mean
        y = xc * (invstd * w) + b         (w = 1, b = 0 when absent)

    Writes ``y``, ``xc`` ``(N, C, S)`` and ``mean``, ``var``, ``invstd`` ``(C,)``; ``nt``
    chunks of images sum in parallel."""
    n, c, s = x.shape
    m = float(n * s)
    parts = np.zeros((nt, c, s), x.dtype)
    for t in prange(nt):
        for i in range(t * n // nt, (t + 1) * n // nt):
            for j in range(c):
                r = x[i, j]
                a = parts[t, j]
                for p in range(s):
                    a[p] += r[p]
    for j in range(c):
        tot = 0.0
        for t in range(nt):
            tot += _total(parts[t, j])
        mean[j] = tot / m
    parts[:] = 0
    for t in prange(nt):
        for i in range(t * n // nt, (t + 1) * n // nt):
            for j in range(c):
                r = x[i, j]
                a = parts[t, j]
                mu = mean[j]
                for p in range(s):
                    d = r[p] - mu
                    a[p] += d * d
    k = np.empty(c, x.dtype)
    h = np.zeros(c, x.dtype)
    for j in range(c):
        tot = 0.0
        for t in range(nt):
            tot += _total(parts[t, j])
        var[j] = tot / m
        invstd[j] = 1.0 / np.sqrt(float(var[j]) + eps)
        k[j] = invstd[j] * w[j] if has_w else invstd[j]
        if has_b:
            h[j] = b[j]
    for q in prange(n * c):
        i = q // c
        j = q - i * c
        r = x[i, j]
        cr = xc[i, j]
        yr = y[i, j]
        mu = mean[j]
        kj = k[j]
        hj = h[j]
        if has_b:
            for p in range(s):
                d = r[p] - mu
                cr[p] = d
                yr[p] = d * kj + hj
        else:  # no "+ 0": it would turn -0.0 into +0.0, unlike the NumPy kernel
            for p in range(s):
                d = r[p] - mu
                cr[p] = d
                yr[p] = d * kj


@numba.njit(parallel=True, cache=True)
def _bn_backward(g, xc, invstd, w, has_w, need_x, m, nt, gx, gw, gb):
    """Batch-norm backward on C-contiguous ``g``, ``xc = x - mean`` ``(N, C, S)``, per channel
    (``m = N S``, ``k = w invstd``, or ``invstd`` without ``w``): one pass for the two sums::

        gb = sum(g)          gw = sum(g xc) invstd

    then, when ``need_x``, one pass ``gx = (g - (xc (invstd gw / m) + gb / m)) k``. ``m`` is
    passed in ``g``'s dtype, so the coefficients are rounded as the NumPy kernel rounds them;
    ``nt`` chunks of images sum in parallel."""
    n, c, s = g.shape
    pg = np.zeros((nt, c, s), g.dtype)
    pgx = np.zeros((nt, c, s), g.dtype)
    for t in prange(nt):
        for i in range(t * n // nt, (t + 1) * n // nt):
            for j in range(c):
                gr = g[i, j]
                cr = xc[i, j]
                ag = pg[t, j]
                agx = pgx[t, j]
                for p in range(s):
                    ag[p] += gr[p]
                    agx[p] += gr[p] * cr[p]
    a = np.empty(c, g.dtype)
    bm = np.empty(c, g.dtype)
    k = np.empty(c, g.dtype)
    for j in range(c):
        tg = 0.0
        tgx = 0.0
        for t in range(nt):
            tg += _total(pg[t, j])
            tgx += _total(pgx[t, j])
        gb[j] = tg
        gw[j] = tgx * invstd[j]
        a[j] = invstd[j] * gw[j] / m
        bm[j] = gb[j] / m
        k[j] = invstd[j] * w[j] if has_w else invstd[j]
    if need_x:
        for q in prange(n * c):
            i = q // c
            j = q - i * c
            gr = g[i, j]
            cr = xc[i, j]
            out = gx[i, j]
            aj = a[j]
            bj = bm[j]
            kj = k[j]
            for p in range(s):
                out[p] = (gr[p] - (cr[p] * aj + bj)) * kj


@numba.njit(parallel=True, cache=True)
def _scale_shift(x, scale, shift, y):
    """``y[n, c, :] = x[n, c, :] * scale[c] + shift[c]`` for C-contiguous ``(N, C, S)``,
    one ``(n, c)`` plane per parallel iteration."""
    n, c, s = x.shape
    for q in prange(n * c):
        i = q // c
        j = q - i * c
        k = scale[j]
        h = shift[j]
        r = x[i, j]
        out = y[i, j]
        for p in range(s):
            out[p] = r[p] * k + h


def _param(v, dtype):
    """``v`` as a contiguous array of ``dtype`` (an empty one for ``None``: the kernels take
    the same argument types whether or not the layer is affine, so one compile serves both)."""
    if v is None:
        return np.empty(0, dtype), False
    return np.ascontiguousarray(v, dtype=dtype).reshape(-1), True


def normalize_forward(x, stat_shape, aff_shape, w, b, eps):
    """:func:`convnet.kernels.norm.normalize_forward`, compiled for batch norm
    (``stat_shape == aff_shape``): ``(y, xc, mean, var, invstd)`` with ``xc = x - mean``."""
    if tuple(stat_shape) != tuple(aff_shape) or x.dtype not in _DTYPES \
            or stat_shape[2] < _MIN_S:
        return _ref.normalize_forward(x, stat_shape, aff_shape, w, b, eps)
    x3 = np.ascontiguousarray(x.reshape(stat_shape))
    c = x3.shape[1]
    w1, has_w = _param(w, x.dtype)
    b1, has_b = _param(b, x.dtype)
    y, xc = np.empty_like(x3), np.empty_like(x3)
    mean, var, invstd = (np.empty(c, x.dtype) for _ in range(3))
    _bn_forward(x3, w1, b1, has_w, has_b, float(eps), _chunks(x3.shape[0]), y, xc, mean, var,
                invstd)
    return y.reshape(x.shape), xc, mean, var, invstd


def normalize_backward(g, saved, invstd, aff_shape, w, need_x):
    """:func:`convnet.kernels.norm.normalize_backward`, compiled for batch norm (``saved`` is
    ``xc = x - mean`` in the ``(N, C, S)`` view): ``(gx or None, gw, gb)``."""
    stat_shape = saved.shape
    if tuple(stat_shape) != tuple(aff_shape) or saved.dtype not in _DTYPES \
            or g.dtype != saved.dtype or stat_shape[2] < _MIN_S:
        return _ref.normalize_backward(g, saved, invstd, aff_shape, w, need_x)
    dt = saved.dtype
    g3 = np.ascontiguousarray(g.reshape(stat_shape))
    xc = np.ascontiguousarray(saved)
    c = stat_shape[1]
    w1, has_w = _param(w, dt)
    gx = np.empty_like(g3) if need_x else np.empty((0, c, 0), dt)
    gw, gb = np.empty(c, dt), np.empty(c, dt)
    _bn_backward(g3, xc, np.ascontiguousarray(invstd, dtype=dt), w1, has_w, bool(need_x),
                 dt.type(stat_shape[0] * stat_shape[2]), _chunks(stat_shape[0]), gx, gw, gb)
    return (gx.reshape(g.shape) if need_x else None), gw, gb


def scale_shift_forward(x, scale, shift):
    """:func:`convnet.kernels.norm.scale_shift_forward` compiled: ``y = x * scale + shift``
    per channel of ``(N, C, S)`` in one pass."""
    n, c = x.shape[:2]
    x3 = x.reshape(n, c, -1)
    if x.dtype not in _DTYPES or x3.shape[2] < _MIN_S_EVAL:
        return _ref.scale_shift_forward(x, scale, shift)
    x3 = np.ascontiguousarray(x3)
    y = np.empty_like(x3)
    _scale_shift(x3, np.ascontiguousarray(scale, dtype=x.dtype),
                 np.ascontiguousarray(shift, dtype=x.dtype), y)
    return y.reshape(x.shape)

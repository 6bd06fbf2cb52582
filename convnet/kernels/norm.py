"""Normalization kernels (pure NumPy).

Every normalization here standardises groups of elements, ``xhat = (x - mean) / sqrt(var +
eps)`` with the biased variance, then applies an optional per-feature affine map
``y = xhat * w + b``. The variants differ only in how the array is viewed:

=============  ===========================  =========================
op             statistics view ``(A, C, B)``  affine view ``(P, Q, R)``
=============  ===========================  =========================
batch norm     ``(N, C, S)``                 ``(N, C, S)``
instance norm  ``(1, N*C, S)``               ``(N, C, S)``
group norm     ``(1, N*G, C/G*S)``           ``(N, C, S)``
layer norm     ``(1, M, K)``                 ``(M, K, 1)``
=============  ===========================  =========================

Statistics are taken over axes 0 and 2 of the statistics view (one per ``C``); the affine
weight has one value per ``Q``. Sums run over the contiguous last axis first, then over the
leading axis, so NumPy never reduces over a strided axis.
"""
from __future__ import annotations

import numpy as np

from .channelwise import dot02, per_channel, sum02  # noqa: F401 (re-exported)
from .parallel import in_worker, run_chunks, workers

_PARALLEL_MIN = 2**18  # elements below which splitting an element-wise map costs more than it saves

Shape3 = tuple[int, int, int]


def _col(v: np.ndarray) -> np.ndarray:
    return v.reshape(1, -1, 1)


def normalize_forward(x: np.ndarray, stat_shape: Shape3, aff_shape: Shape3,
                      w: np.ndarray | None, b: np.ndarray | None, eps: float):
    """Standardise with batch statistics and apply the affine map.

    Returns ``(y, saved, mean, var, invstd)``. ``saved`` (statistics-view shape) is what
    backward needs: the centred input ``x - mean`` when the two views agree (batch norm:
    ``y = xc (w invstd) + b`` then costs one pass less), else ``xhat``.
    """
    x3 = x.reshape(stat_shape)
    m = x3.shape[0] * x3.shape[2]
    mean = sum02(x3) / x3.dtype.type(m)
    xc = x3 - per_channel(mean, x3)
    var = dot02(xc, xc) / x3.dtype.type(m)
    y = np.empty_like(xc)
    invstd = (1.0 / np.sqrt(var + x3.dtype.type(eps))).astype(x.dtype)
    if stat_shape == aff_shape:
        np.multiply(xc, per_channel(invstd if w is None else invstd * w, xc), out=y)
        if b is not None:
            np.add(y, per_channel(b, y), out=y)
        return y.reshape(x.shape), xc, mean, var, invstd
    np.multiply(xc, _col(invstd), out=xc)  # xc is xhat from here on
    y = y.reshape(aff_shape)
    xa = xc.reshape(aff_shape)
    if w is not None:
        np.multiply(xa, per_channel(w, xa), out=y)
    else:
        np.copyto(y, xa)
    if b is not None:
        np.add(y, per_channel(b, y), out=y)
    return y.reshape(x.shape), xc, mean, var, invstd


def normalize_backward(g: np.ndarray, saved: np.ndarray, invstd: np.ndarray,
                       aff_shape: Shape3, w: np.ndarray | None, need_x: bool):
    """Gradients of :func:`normalize_forward` -> ``(gx, gw, gb)`` (``gx`` in ``g``'s shape).

    With ``dxhat = g w``: ``gx = invstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat))``,
    ``gw = sum(g xhat)``, ``gb = sum(g)`` over the affine view's axes 0 and 2.
    """
    ga = g.reshape(aff_shape)
    stat_shape = saved.shape
    m = saved.dtype.type(stat_shape[0] * stat_shape[2])
    if stat_shape == aff_shape:
        # batch norm: saved is xc = xhat / invstd; the affine sums give the means of
        # dxhat and dxhat * xhat directly (two reductions in all)
        gb = sum02(ga)
        gw = dot02(ga, saved) * invstd
        if not need_x:
            return None, gw, gb
        k = invstd if w is None else w * invstd
        gx = saved * per_channel(invstd * gw / m, saved)
        np.add(gx, per_channel(gb / m, saved), out=gx)
        np.subtract(ga, gx, out=gx)
        np.multiply(gx, per_channel(k, saved), out=gx)
        return gx.reshape(g.shape), gw, gb
    xa = saved.reshape(aff_shape)
    gb = sum02(ga)
    gw = dot02(ga, xa)
    if not need_x:
        return None, gw, gb
    d = ga * per_channel(w, ga) if w is not None else ga.copy()
    d = d.reshape(stat_shape)
    mean_d = sum02(d) / m
    mean_dx = dot02(d, saved) / m
    gx = saved * _col(mean_dx)
    np.add(gx, _col(mean_d), out=gx)
    np.subtract(d, gx, out=gx)
    np.multiply(gx, _col(invstd), out=gx)
    return gx.reshape(g.shape), gw, gb


def scale_shift_forward(x: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``y = x * scale + shift`` per channel of ``(N, C, S)`` (batch norm in eval mode)."""
    x3 = x.reshape(x.shape[0], x.shape[1], -1)
    s, h = per_channel(scale, x3), per_channel(shift, x3)
    k = 1 if in_worker() else workers()
    if k == 1 or x.size < _PARALLEL_MIN:
        y = np.multiply(x3, s)
        np.add(y, h, out=y)
        return y.reshape(x.shape)
    # a memory-bound map: split the images between the chunk workers (one part each)
    y = np.empty_like(x3)

    def part(n0, m):
        yp = y[n0:n0 + m]
        np.multiply(x3[n0:n0 + m], s, out=yp)
        np.add(yp, h, out=yp)

    n = x3.shape[0]
    run_chunks(part, n, -(-n // k))
    return y.reshape(x.shape)

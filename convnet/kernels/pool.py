"""Pooling kernels (pure NumPy, any number of spatial dims).

Arrays are ``(N, C, *spatial)``. A window over spatial dim ``i`` has ``k_i`` taps spaced
``d_i`` apart (dilation) and moves by ``s_i``; the input is conceptually padded by ``p_i`` on
both sides. Every kernel works on strided *views* of the (padded) input, one view per kernel
offset, and reduces them with running element-wise operations (``np.maximum(out, view,
out=out)``), so no reduction ever runs over a non-contiguous axis and no im2col copy is made.

Max/min pooling remembers, per output element, *which kernel offset* won (a small integer);
backward scatters through it with one masked add per offset, and
:func:`offsets_to_flat_indices` turns it into PyTorch's flat per-plane indices (what
``max_unpool`` consumes).
"""
from __future__ import annotations

import functools
import itertools
import math
from typing import Iterator, Sequence

import numpy as np

Ints = tuple[int, ...]


def pool_output_size(size: int, k: int, s: int, p: int, d: int = 1, ceil_mode: bool = False) -> int:
    """Output length ``floor_or_ceil((L + 2p - d(k-1) - 1) / s) + 1``.

    With ``ceil_mode`` the last window is dropped when it would start in the right padding:
    every window must start inside the input or the left padding (PyTorch's rule).
    """
    span = size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)
    out = span // s + 1  # floor division, also for a negative span (as PyTorch's div_rtn)
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return max(out, 0)


def pool_output_shape(spatial: Sequence[int], ks: Ints, ss: Ints, ps: Ints, ds: Ints,
                      ceil_mode: bool) -> Ints:
    """:func:`pool_output_size` for every spatial dim."""
    return tuple(pool_output_size(n, k, s, p, d, ceil_mode)
                 for n, k, s, p, d in zip(spatial, ks, ss, ps, ds))


def _pads(spatial: Sequence[int], ks: Ints, ss: Ints, ps: Ints, ds: Ints,
          outs: Ints) -> list[tuple[int, int]]:
    """Left/right padding per dim: ``p`` on the left, and on the right as much as the last
    window needs (``ceil_mode`` can need more than ``p``, a short stride less)."""
    pads = []
    for n, k, s, p, d, o in zip(spatial, ks, ss, ps, ds, outs):
        need = (o - 1) * s + d * (k - 1) + 1  # extent the windows touch, in padded coords
        pads.append((p, max(need - n - p, 0)))
    return pads


def _padded(x: np.ndarray, ks: Ints, ss: Ints, ps: Ints, ds: Ints, outs: Ints,
            fill: float) -> np.ndarray:
    """``x`` padded with ``fill`` as :func:`_pads` says; ``x`` itself when no padding is
    needed."""
    lead = x.ndim - len(ks)
    pads = _pads(x.shape[lead:], ks, ss, ps, ds, outs)
    if not any(a or b for a, b in pads):
        return x
    shape = x.shape[:lead] + tuple(n + a + b for n, (a, b) in zip(x.shape[lead:], pads))
    xp = np.full(shape, fill, dtype=x.dtype)
    inner = (slice(None),) * lead + tuple(slice(a, a + n) for n, (a, _) in
                                          zip(x.shape[lead:], pads))
    xp[inner] = x
    return xp


def _zeros_padded(in_shape: Ints, dtype, ks: Ints, ss: Ints, ps: Ints, ds: Ints,
                  outs: Ints) -> np.ndarray:
    """A zero gradient buffer with the padded geometry of :func:`_padded`."""
    lead = len(in_shape) - len(ks)
    pads = _pads(in_shape[lead:], ks, ss, ps, ds, outs)
    return np.zeros(tuple(in_shape[:lead]) + tuple(n + a + b for n, (a, b) in
                                                   zip(in_shape[lead:], pads)), dtype=dtype)


def window_views(xp: np.ndarray, ks: Ints, ss: Ints, ds: Ints,
                 outs: Ints) -> Iterator[np.ndarray]:
    """One strided view of shape ``(..., *outs)`` per kernel offset, in row-major offset
    order (the order PyTorch scans a window, so ties resolve to the first maximum)."""
    lead = (slice(None),) * (xp.ndim - len(ks))
    for offs in itertools.product(*(range(k) for k in ks)):
        yield xp[lead + tuple(slice(o * d, o * d + (n - 1) * s + 1, s)
                              for o, d, s, n in zip(offs, ds, ss, outs))]


def _offset_dtype(ks: Ints) -> np.dtype:
    kk = math.prod(ks)
    return np.dtype(np.int8 if kk <= 127 else np.int16 if kk <= 32767 else np.int32)


def max_pool_forward(x: np.ndarray, ks: Ints, ss: Ints, ps: Ints, ds: Ints, ceil_mode: bool,
                     want_offsets: bool, use_min: bool = False):
    """Max (or min) pooling ``(N, C, *L) -> (N, C, *L')``.

    Returns ``(out, offsets)`` where ``offsets[n, c, *j]`` is the row-major kernel-offset
    number of the winning tap (``None`` unless ``want_offsets``). Padding never wins: it is
    filled with ``-inf`` (``+inf`` for min).
    """
    outs = pool_output_shape(x.shape[2:], ks, ss, ps, ds, ceil_mode)
    xp = _padded(x, ks, ss, ps, ds, outs, np.inf if use_min else -np.inf)
    views = window_views(xp, ks, ss, ds, outs)
    out = np.array(next(views), copy=True)
    reduce = np.minimum if use_min else np.maximum
    if not want_offsets:
        for v in views:
            reduce(out, v, out=out)
        return out, None
    better = np.less if use_min else np.greater  # strict: the first extreme keeps the win
    arg = np.zeros(out.shape, dtype=_offset_dtype(ks))
    mask = np.empty(out.shape, dtype=bool)
    step = np.empty_like(arg)
    # masked writes (copyto/where=) branch per element and are ~100x slower on random
    # masks, so the winner is tracked arithmetically: arg += (k - arg) * mask
    mask_int = mask.view(np.int8) if arg.dtype == np.int8 else mask
    for k, v in enumerate(views, start=1):
        better(v, out, out=mask)
        np.subtract(arg.dtype.type(k), arg, out=step)
        np.multiply(step, mask_int, out=step)
        np.add(arg, step, out=arg)
        reduce(out, v, out=out)
    if np.isnan(out).any():  # rare: PyTorch lets a NaN win (the last NaN of the window)
        for k, v in enumerate(window_views(xp, ks, ss, ds, outs)):
            arg[np.isnan(v)] = k
    return out, arg


def offsets_to_flat_indices(arg: np.ndarray, spatial: Sequence[int], ks: Ints, ss: Ints,
                            ps: Ints, ds: Ints) -> np.ndarray:
    """Kernel-offset numbers -> flat per-plane input indices (int64), PyTorch's convention:
    ``index = sum_i pos_i * prod(L_{i+1:})`` with ``pos_i = j_i s_i - p_i + o_i d_i``."""
    nd = len(ks)
    offs = np.unravel_index(arg, ks) if nd > 1 else (arg,)
    flat = np.zeros(arg.shape, dtype=np.int64)
    for i in range(nd):
        n_out = arg.shape[2 + i]
        start = (np.arange(n_out, dtype=np.int64) * ss[i] - ps[i]).reshape(
            (n_out,) + (1,) * (nd - 1 - i))
        pos = start + offs[i].astype(np.int64) * ds[i]
        if ps[i]:
            # a window lying wholly in padding keeps offset 0; PyTorch reports the first
            # tap at or after 0 instead (start advanced by whole dilations)
            first = start + (-start).clip(min=0) // ds[i] * ds[i]
            first = np.where(first < 0, first + ds[i], first)
            pos = np.where(pos < 0, first, pos)
        flat += pos * math.prod(spatial[i + 1:])
    return flat


def max_pool_backward(g: np.ndarray, arg: np.ndarray, in_shape: Ints, ks: Ints, ss: Ints,
                      ps: Ints, ds: Ints) -> np.ndarray:
    """Scatter ``g`` (shape ``(N, C, *L')``) back to the winning taps: one masked add per
    kernel offset into a zero (padded) buffer, then crop the padding away."""
    outs = g.shape[2:]
    gxp = _zeros_padded(in_shape, g.dtype, ks, ss, ps, ds, outs)
    disjoint = all(s >= d * (k - 1) + 1 for k, s, d in zip(ks, ss, ds))
    mask = np.empty(g.shape, dtype=bool)
    tmp = np.empty_like(g)
    for k, v in enumerate(window_views(gxp, ks, ss, ds, outs)):
        np.equal(arg, k, out=mask)
        np.multiply(g, mask, out=tmp)  # arithmetic, not a masked write (see forward)
        if disjoint:  # windows never overlap: every tap is written once
            v[...] = tmp
        else:
            np.add(v, tmp, out=v)
    return _crop(gxp, in_shape, ps)


def _crop(xp: np.ndarray, in_shape: Ints, ps: Ints) -> np.ndarray:
    """The input region of a padded gradient buffer (a view: no copy on the hot path)."""
    if xp.shape == tuple(in_shape):
        return xp
    lead = (slice(None),) * (len(in_shape) - len(ps))
    return xp[lead + tuple(slice(p, p + n) for p, n in zip(ps, in_shape[len(lead):]))]


@functools.lru_cache(maxsize=256)
def avg_divisor(spatial: Ints, outs: Ints, ks: Ints, ss: Ints, ps: Ints,
                count_include_pad: bool, divisor_override: int | None, dtype) -> np.ndarray | float:
    """The divisor of every output element (broadcastable to ``(*L')``), or a scalar.

    ``count_include_pad`` counts taps in the ``p``-padding (not the extra ``ceil_mode``
    overhang); otherwise only taps inside the input count.
    """
    if divisor_override:
        return float(divisor_override)
    parts = []
    uniform = True
    for i, (n, o, k, s, p) in enumerate(zip(spatial, outs, ks, ss, ps)):
        start = np.arange(o) * s - p
        end = np.minimum(start + k, n + p)
        if count_include_pad:
            cnt = end - start
        else:
            cnt = np.minimum(end, n) - np.maximum(start, 0)
        uniform &= bool(np.all(cnt == k))
        parts.append(cnt.reshape((o,) + (1,) * (len(outs) - 1 - i)))
    if uniform:
        return float(math.prod(ks))
    div = parts[0]
    for q in parts[1:]:
        div = div * q
    div = div.astype(dtype)
    div.flags.writeable = False  # cached: shared between calls
    return div


def avg_pool_forward(x: np.ndarray, ks: Ints, ss: Ints, ps: Ints, ceil_mode: bool,
                     count_include_pad: bool, divisor_override: int | None):
    """Average pooling ``(N, C, *L) -> (N, C, *L')``: a running sum of strided views divided
    by :func:`avg_divisor`. Returns ``(out, divisor)``."""
    ds = (1,) * len(ks)
    outs = pool_output_shape(x.shape[2:], ks, ss, ps, ds, ceil_mode)
    xp = _padded(x, ks, ss, ps, ds, outs, 0.0)
    views = window_views(xp, ks, ss, ds, outs)
    out = np.array(next(views), copy=True)
    for v in views:
        np.add(out, v, out=out)
    div = avg_divisor(tuple(x.shape[2:]), outs, ks, ss, ps, count_include_pad,
                      divisor_override, x.dtype)
    np.divide(out, div, out=out)
    return out, div


def window_sum_backward(g: np.ndarray, in_shape: Ints, ks: Ints, ss: Ints, ps: Ints,
                        ds: Ints, weights: np.ndarray | None = None) -> np.ndarray:
    """Adjoint of "sum the window taps": every tap receives ``g`` (times ``weights[:, k]``,
    a per-channel weight of offset ``k``, when given)."""
    outs = g.shape[2:]
    gxp = _zeros_padded(in_shape, g.dtype, ks, ss, ps, ds, outs)
    tmp = np.empty_like(g) if weights is not None else None
    wshape = (1, -1) + (1,) * len(ks)
    for k, v in enumerate(window_views(gxp, ks, ss, ds, outs)):
        if weights is None:
            np.add(v, g, out=v)
        else:
            np.multiply(g, weights[:, k].reshape(wshape), out=tmp)
            np.add(v, tmp, out=v)
    return _crop(gxp, in_shape, ps)


def avg_pool_backward(g: np.ndarray, div, in_shape: Ints, ks: Ints, ss: Ints,
                      ps: Ints) -> np.ndarray:
    """Adjoint of :func:`avg_pool_forward`."""
    return window_sum_backward(g / div, in_shape, ks, ss, ps, (1,) * len(ks))


def weighted_pool_forward(x: np.ndarray, w: np.ndarray, ss: Ints, ps: Ints, ds: Ints,
                          ceil_mode: bool = False) -> np.ndarray:
    """Weighted-sum pooling: ``out[n,c,j] = sum_k w[c,k] x[n,c,j s + k d - p]``.

    ``w`` has shape ``(C, *k)`` (a per-channel window weighting; a depthwise filter without
    bias). Zero padding.
    """
    ks = w.shape[1:]
    outs = pool_output_shape(x.shape[2:], ks, ss, ps, ds, ceil_mode)
    xp = _padded(x, ks, ss, ps, ds, outs, 0.0)
    wf = w.reshape(w.shape[0], -1)
    wshape = (1, -1) + (1,) * len(ks)
    out = np.zeros((x.shape[0], x.shape[1]) + outs, dtype=x.dtype)
    tmp = np.empty_like(out)
    for k, v in enumerate(window_views(xp, ks, ss, ds, outs)):
        np.multiply(v, wf[:, k].reshape(wshape), out=tmp)
        np.add(out, tmp, out=out)
    return out


def weighted_pool_weight_grad(g: np.ndarray, x: np.ndarray, wshape: Ints, ss: Ints, ps: Ints,
                              ds: Ints) -> np.ndarray:
    """``dL/dw[c, k] = sum_{n, j} g[n,c,j] x[n,c,j s + k d - p]``."""
    ks = tuple(wshape[1:])
    outs = g.shape[2:]
    xp = _padded(x, ks, ss, ps, ds, outs, 0.0)
    gw = np.empty((wshape[0], math.prod(ks)), dtype=g.dtype)
    tmp = np.empty_like(g)
    for k, v in enumerate(window_views(xp, ks, ss, ds, outs)):
        np.multiply(v, g, out=tmp)
        gw[:, k] = tmp.reshape(tmp.shape[0], tmp.shape[1], -1).sum(axis=2).sum(axis=0)
    return gw.reshape(wshape)


# ------------------------------------------------------------------ global average pooling
def global_avg_pool_forward(x: np.ndarray) -> np.ndarray:
    """Mean of each ``(n, c)`` plane: ``y[n, c] = (sum_j x[n, c, j]) / L`` with ``L`` the
    product of the spatial sizes; ``(N, C, *spatial) -> (N, C, 1, ..., 1)``, ``x``'s dtype.

    float32 sums in float32 (as torch's ``mean`` does); the division by ``L`` (not a
    multiplication by ``1/L``) is torch's too. Row sums go through ``einsum``: several times
    faster than ``.sum(axis=-1)`` on the short rows (16-64 values) of network heads."""
    n, c = x.shape[:2]
    count = math.prod(x.shape[2:])
    s = np.einsum("ij->i", np.ascontiguousarray(x).reshape(n * c, count))
    return (s / x.dtype.type(count)).reshape((n, c) + (1,) * (x.ndim - 2))


def global_avg_pool_backward(g: np.ndarray, in_shape: Sequence[int]) -> np.ndarray:
    """Adjoint of :func:`global_avg_pool_forward`: ``gx[n, c, j] = g[n, c] / L`` for every
    position ``j`` of the plane; ``g`` ``(N, C, 1, ..., 1)`` -> ``(N, C, *spatial)``,
    C-contiguous, ``g``'s dtype (torch's ``mean`` backward divides the same way)."""
    count = math.prod(in_shape[2:])
    gm = np.reshape(g, tuple(in_shape[:2]) + (1,) * (len(in_shape) - 2))
    return np.broadcast_to(gm / g.dtype.type(count), tuple(in_shape)).copy()

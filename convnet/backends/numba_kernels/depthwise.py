"""Depthwise 3x3 convolution in numba: the backend's ``conv_forward`` and ``conv_backward``
for that case.

Each (n, c) plane is zero-padded into a small buffer of ``stride**2`` flat phase planes with
rows ``Wq = ceil((W + 2P) / S)`` wide (``phase[a, b][r, m] = x_pad[r*S + a, m*S + b]``). Every
one of the 9 taps is then one contiguous run of a phase plane, and one pass computes
``acc[q] = sum_t w_t * run_t[q]``, which vectorizes; the ``Wq - W'`` extra columns per row are
computed and dropped. For stride 1 there is one phase: each padded plane stored with rows
``W + 2P`` wide.

Measured (``python -m benchmarks.backend_depthwise``, AMD EPYC, float32, batch 128, 1 thread,
torch / numba): 0.8-0.86 on 32x32 planes (stride 1 and 2), 0.63-0.70 at 16x16 stride 1,
~0.5 at 16x16 stride 2 and 8x8, 0.25 at 4x4, where convnet's im2col conv path runs at
0.13-0.47. Small planes pay a fixed cost per plane (padding, 9 views, short loops).

The backward (the backend's ``conv_backward`` for the same case) computes the input gradient
per stride phase from a zero-framed copy of each plane of ``g`` (again contiguous runs, 9 taps
for stride 1, 4/2/2/1 per phase for stride 2) and the weight gradient per channel with float64
vector accumulators. Forward + backward through ``F.conv2d`` (``python -m
benchmarks.backend_depthwise --train --batch 64``, float32, 1 thread, torch / convnet): 0.55-0.94
with these kernels, 0.33-0.47 on the NumPy backend.
"""
from __future__ import annotations

import numba
import numpy as np

from ...kernels.conv import conv_backward as _numpy_conv_backward
from ...kernels.conv import conv_forward as _numpy_conv_forward

__all__ = ["conv_forward", "conv_backward"]


@numba.njit(inline="always", cache=True)
def _pack_phases(plane, buf, s, p, Hq, Wq):  # pragma: no cover - compiled
    """Copy one (H, W) plane into its zero-padded phase planes ``buf`` (``s * s`` rows of
    ``Hq * Wq``): ``buf[a*s + b][r*Wq + m] = x_pad[r*s + a, m*s + b]``. Only the interior is
    written; the caller keeps the padding zero."""
    H, W = plane.shape
    for r in range(H):
        rp = r + p
        ri = rp // s
        if ri >= Hq:           # rows no output reads (stride 2, odd sizes)
            continue
        xr = plane[r]
        a = rp - ri * s
        if s == 1:             # a literal stride: the copy vectorizes
            dst = buf[0, ri * Wq + p:]
            for m in range(W):
                dst[m] = xr[m]
            continue
        # stride 2: column 2m + e goes to phase (e + p) % 2 at m + (e + p) // 2; one pass
        # over the row in pairs, both phases written together
        d0 = buf[a * 2 + p % 2, ri * Wq + p // 2:]
        d1 = buf[a * 2 + (p + 1) % 2, ri * Wq + (p + 1) // 2:]
        for m in range(W // 2):
            d0[m] = xr[2 * m]
            d1[m] = xr[2 * m + 1]
        if W % 2:
            d0[W // 2] = xr[W - 1]


@numba.njit(parallel=True, cache=True)
def _depthwise3x3(x, w, y, s, p, n_chunks):  # pragma: no cover - compiled
    """``y[k, i, j] = sum_{ki, kj < 3} w[k, ki, kj] x_pad[k, i*s + ki, j*s + kj]`` for every
    plane ``k = n*C + c``; x (N*C, H, W), w (C, 3, 3), y (N*C, H', W'), stride s in {1, 2},
    padding p; ``n_chunks`` blocks of consecutive planes run in parallel."""
    K, H, W = x.shape
    C = w.shape[0]
    Ho, Wo = y.shape[1], y.shape[2]
    Wq = (W + 2 * p + s - 1) // s      # phase-plane row width
    Hq = Ho + 2 // s + 1               # rows per phase plane, +1 so the last runs stay inside
    L = Ho * Wq                        # length of every tap's run
    for t in numba.prange(n_chunks):
        # one buffer per chunk of planes, not per plane: allocation is not free
        buf = np.empty((s * s, Hq * Wq), dtype=x.dtype)
        acc = np.empty(L, dtype=x.dtype)
        for k in range(t * K // n_chunks, (t + 1) * K // n_chunks):
            c = k % C
            buf[:] = 0
            _pack_phases(x[k], buf, s, p, Hq, Wq)
            # all 9 taps in one pass over 9 contiguous views of the phase planes, indexed by
            # the range variable (non-negative, so numba adds no wraparound test and LLVM
            # vectorizes); tap (ki, kj) is phase (ki % s, kj % s) shifted by (ki//s, kj//s)
            r00, r01, r02 = buf[0], buf[1 % s, 1 // s:], buf[2 % s, 2 // s:]
            ph, o = (1 % s) * s, (1 // s) * Wq
            r10, r11, r12 = buf[ph, o:], buf[ph + 1 % s, o + 1 // s:], buf[ph + 2 % s, o + 2 // s:]
            ph, o = (2 % s) * s, (2 // s) * Wq
            r20, r21, r22 = buf[ph, o:], buf[ph + 1 % s, o + 1 // s:], buf[ph + 2 % s, o + 2 // s:]
            w00, w01, w02 = w[c, 0, 0], w[c, 0, 1], w[c, 0, 2]
            w10, w11, w12 = w[c, 1, 0], w[c, 1, 1], w[c, 1, 2]
            w20, w21, w22 = w[c, 2, 0], w[c, 2, 1], w[c, 2, 2]
            for q in range(L):
                acc[q] = (w00 * r00[q] + w01 * r01[q] + w02 * r02[q]
                          + w10 * r10[q] + w11 * r11[q] + w12 * r12[q]
                          + w20 * r20[q] + w21 * r21[q] + w22 * r22[q])
            for i in range(Ho):
                yr = y[k, i]
                for j in range(Wo):
                    yr[j] = acc[i * Wq + j]


def depthwise3x3_forward(x: np.ndarray, w: np.ndarray, stride: int = 1,
                         padding: int = 1) -> np.ndarray:
    """Depthwise 3x3 cross-correlation, no bias: ``(N, C, H, W), (C, 1, 3, 3) -> (N, C, H', W')``.

    ``y[n, c, i, j] = sum_{ki, kj} w[c, 0, ki, kj] x_pad[n, c, i*S + ki, j*S + kj]`` with
    ``H' = (H + 2P - 3) // S + 1`` (same for W), ``S`` in {1, 2}, zero padding ``P >= 0``;
    what ``F.conv2d(x, w, stride=S, padding=P, groups=C)`` computes. ``y`` has ``x``'s dtype
    (float32 or float64) and sums in it.
    """
    if x.ndim != 4 or x.dtype not in (np.float32, np.float64):
        raise ValueError(f"depthwise3x3_forward: x must be float32/float64 (N, C, H, W), got "
                         f"{x.dtype} {x.shape}")
    N, C, H, W = x.shape
    if w.shape != (C, 1, 3, 3):
        raise ValueError(f"depthwise3x3_forward: w must be ({C}, 1, 3, 3), got {w.shape}")
    if stride not in (1, 2):
        raise ValueError(f"depthwise3x3_forward: stride must be 1 or 2, got {stride}")
    if padding < 0 or H + 2 * padding < 3 or W + 2 * padding < 3:
        raise ValueError(f"depthwise3x3_forward: padding {padding} leaves no 3x3 window in "
                         f"{H}x{W}")
    Ho = (H + 2 * padding - 3) // stride + 1
    Wo = (W + 2 * padding - 3) // stride + 1
    xc = np.ascontiguousarray(x).reshape(N * C, H, W)
    wc = np.ascontiguousarray(w.reshape(C, 3, 3), dtype=x.dtype)
    y = np.empty((N * C, Ho, Wo), dtype=x.dtype)
    # a few chunks of planes per thread (each chunk allocates its buffers once)
    n_chunks = min(N * C, 4 * numba.get_num_threads())
    _depthwise3x3(xc, wc, y, stride, padding, n_chunks)
    return y.reshape(N, C, Ho, Wo)


def conv_forward(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None, stride, pads, dilation,
                 groups: int = 1) -> np.ndarray:
    """The backend's convolution forward (same signature and result as
    :func:`convnet.kernels.conv.conv_forward`): depthwise 3x3 convs (``groups == C_in ==
    C_out``, stride 1 or 2 on both axes, no dilation, the same zero padding on every side, float
    input) go to :func:`depthwise3x3_forward`, 2x faster than the im2col path; every other conv
    to the NumPy kernel."""
    if (x.ndim == 4 and w.shape[1:] == (1, 3, 3) and groups == x.shape[1] == w.shape[0]
            and tuple(stride) in ((1, 1), (2, 2)) and tuple(dilation) == (1, 1)
            and len({p for pair in pads for p in pair}) == 1
            and x.dtype in (np.float32, np.float64) and w.dtype == x.dtype):
        y = depthwise3x3_forward(x, w, int(stride[0]), int(pads[0][0]))
        if bias is not None:
            from ...kernels.channelwise import add_channel_bias

            add_channel_bias(y, bias)
        return y
    return _numpy_conv_forward(x, w, bias, stride, pads, dilation, groups)


# ------------------------------------------------------------------------------------ backward
@numba.njit(parallel=True, cache=True)
def _depthwise3x3_grad_input(g, w, gx, s, p, n_chunks):  # pragma: no cover - compiled
    """``gx[k, r, m] = sum_{ki, kj} w[c, ki, kj] g[k, (r + p - ki) / s, (m + p - kj) / s]`` over
    the taps where both quotients are whole and inside ``g`` (``c = k % C``): the adjoint of
    :func:`_depthwise3x3`. g (N*C, H', W'), w (C, 3, 3), gx (N*C, H, W), stride s in {1, 2}.

    Each plane of ``g`` is copied into a zero frame ``F = 2 // s`` wide (rows ``We`` long), and
    each stride phase ``(a, b)`` of the padded gradient (``r + p = r' s + a``) is one pass over
    contiguous runs of that frame, one run per tap of the phase (``ki % s == a``, shifted back
    by ``ki // s`` rows): all 9 taps for stride 1, 4/2/2/1 for stride 2. Every pixel sums its
    taps in (ki, kj) order, zero-frame terms included (as the NumPy kernel's zero-framed GEMM).
    """
    K, H, W = gx.shape
    C = w.shape[0]
    Ho, Wo = g.shape[1], g.shape[2]
    F = 2 // s
    We = max(Wo + 2 * F, (W - 1 + p) // s + F + 1)
    Rg = max(Ho + 2 * F, (H - 1 + p) // s + F + 1) + 1  # +1: the last runs stay inside
    nrow = (H - 1 + p) // s + 1                          # phase rows a run may cover
    for t in numba.prange(n_chunks):
        gb = np.zeros(Rg * We, dtype=g.dtype)            # the frame stays zero: zeroed once
        acc = np.empty(nrow * We, dtype=g.dtype)
        for k in range(t * K // n_chunks, (t + 1) * K // n_chunks):
            c = k % C
            for i in range(Ho):
                gr = g[k, i]
                dst = gb[(i + F) * We + F:]
                for j in range(Wo):
                    dst[j] = gr[j]
            for a in range(s):
                r_lo = (p - a + s - 1) // s              # first phase row inside the input
                r_hi = (p + H - 1 - a) // s
                if r_hi < r_lo:
                    continue
                base = r_lo * We
                L = (r_hi - r_lo + 1) * We
                for b in range(s):
                    m_lo = (p - b + s - 1) // s
                    m_hi = (p + W - 1 - b) // s
                    if m_hi < m_lo:
                        continue
                    # run of tap (ki, kj) = (di s + a, dj s + b): gb shifted by (F - di, F - dj)
                    if s == 1:
                        r00 = gb[base + 2 * We + 2:]
                        r01 = gb[base + 2 * We + 1:]
                        r02 = gb[base + 2 * We:]
                        r10 = gb[base + We + 2:]
                        r11 = gb[base + We + 1:]
                        r12 = gb[base + We:]
                        r20 = gb[base + 2:]
                        r21 = gb[base + 1:]
                        r22 = gb[base:]
                        w00, w01, w02 = w[c, 0, 0], w[c, 0, 1], w[c, 0, 2]
                        w10, w11, w12 = w[c, 1, 0], w[c, 1, 1], w[c, 1, 2]
                        w20, w21, w22 = w[c, 2, 0], w[c, 2, 1], w[c, 2, 2]
                        for q in range(L):
                            acc[q] = (w00 * r00[q] + w01 * r01[q] + w02 * r02[q]
                                      + w10 * r10[q] + w11 * r11[q] + w12 * r12[q]
                                      + w20 * r20[q] + w21 * r21[q] + w22 * r22[q])
                    elif a == 0 and b == 0:              # taps (0,0) (0,2) (2,0) (2,2)
                        ra, rb = gb[base + We + 1:], gb[base + We:]
                        rc, rd = gb[base + 1:], gb[base:]
                        wa, wb, wc, wd = w[c, 0, 0], w[c, 0, 2], w[c, 2, 0], w[c, 2, 2]
                        for q in range(L):
                            acc[q] = wa * ra[q] + wb * rb[q] + wc * rc[q] + wd * rd[q]
                    elif a == 0:                         # taps (0,1) (2,1)
                        ra, rc = gb[base + We + 1:], gb[base + 1:]
                        wa, wc = w[c, 0, 1], w[c, 2, 1]
                        for q in range(L):
                            acc[q] = wa * ra[q] + wc * rc[q]
                    elif b == 0:                         # taps (1,0) (1,2)
                        ra, rb = gb[base + We + 1:], gb[base + We:]
                        wa, wb = w[c, 1, 0], w[c, 1, 2]
                        for q in range(L):
                            acc[q] = wa * ra[q] + wb * rb[q]
                    else:                                # tap (1,1)
                        ra = gb[base + We + 1:]
                        wa = w[c, 1, 1]
                        for q in range(L):
                            acc[q] = wa * ra[q]
                    for u in range(r_hi - r_lo + 1):
                        gr = gx[k, (r_lo + u) * s + a - p]
                        src = acc[u * We:]
                        for v in range(m_lo, m_hi + 1):
                            gr[v * s + b - p] = src[v]


@numba.njit(parallel=True, cache=True)
def _depthwise3x3_grad_weight(g, x, gw, s, p):  # pragma: no cover - compiled
    """``gw[c, ki, kj] = sum_{n, i, j} g[n, c, i, j] x_pad[n, c, i*s + ki, j*s + kj]``; g (N, C,
    H', W'), x (N, C, H, W), gw (C, 3, 3), stride s in {1, 2}, zero padding p.

    One channel per parallel iteration (so no reduction across threads); each (n, c) plane of
    ``x`` is split into zero-padded phase planes (rows ``Wq`` wide) as in the forward, and every
    tap accumulates ``g`` row times phase-plane row into a float64 vector over ``j < W'`` (only
    the products torch forms: a zero times an inf outside the windows would make a NaN)."""
    N, C, H, W = x.shape
    Ho, Wo = g.shape[2], g.shape[3]
    Wq = (W + 2 * p + s - 1) // s
    Hq = Ho + 2 // s + 1
    for c in numba.prange(C):
        buf = np.zeros((s * s, Hq * Wq), dtype=x.dtype)  # the padding stays zero
        acc = np.zeros((9, Wo), dtype=np.float64)
        for n in range(N):
            _pack_phases(x[n, c], buf, s, p, Hq, Wq)
            for i in range(Ho):
                gr = g[n, c, i]
                for ki in range(3):
                    for kj in range(3):
                        xs = buf[(ki % s) * s + kj % s, (i + ki // s) * Wq + kj // s:]
                        at = acc[ki * 3 + kj]
                        for j in range(Wo):
                            at[j] += np.float64(gr[j]) * np.float64(xs[j])
        for t in range(9):
            gw[c, t // 3, t % 3] = acc[t].sum()


def depthwise3x3_backward(g: np.ndarray, x: np.ndarray | None, w: np.ndarray, in_shape,
                          stride: int = 1, padding: int = 1, need_input: bool = True,
                          need_weight: bool = True):
    """Gradients of :func:`depthwise3x3_forward` for the output gradient ``g`` ``(N, C, H',
    W')``: ``(gx, gw)`` with ``gx (N, C, H, W) = in_shape`` and ``gw (C, 1, 3, 3)`` (``None``
    where not needed; ``x`` only read for ``gw``).

    ``gx[n, c, r, m] = sum_{ki, kj} w[c, 0, ki, kj] g[n, c, (r + P - ki) / S, (m + P - kj) / S]``
    over whole, in-range quotients; ``gw[c, 0, ki, kj] = sum_{n, i, j} g[n, c, i, j]
    x_pad[n, c, i S + ki, j S + kj]`` (summed in float64, returned in ``g``'s dtype).
    """
    N, C, H, W = in_shape
    Ho, Wo = g.shape[2], g.shape[3]
    gx = gw = None
    if need_input:
        gc = np.ascontiguousarray(g).reshape(N * C, Ho, Wo)
        wc = np.ascontiguousarray(w.reshape(C, 3, 3), dtype=g.dtype)
        gx = np.empty((N * C, H, W), dtype=g.dtype)
        _depthwise3x3_grad_input(gc, wc, gx, stride, padding,
                                 min(N * C, 4 * numba.get_num_threads()))
        gx = gx.reshape(N, C, H, W)
    if need_weight:
        gw = np.empty((C, 3, 3), dtype=g.dtype)
        _depthwise3x3_grad_weight(np.ascontiguousarray(g), np.ascontiguousarray(x, g.dtype),
                                  gw, stride, padding)
        gw = gw.reshape(C, 1, 3, 3)
    return gx, gw


def _is_depthwise3x3(shape, w, groups, stride, pads, dilation) -> bool:
    """``conv(x of shape, w)`` is a depthwise 3x3 conv the compiled kernels cover."""
    return (len(shape) == 4 and w.ndim == 4 and w.shape[1:] == (1, 3, 3)
            and groups == shape[1] == w.shape[0] and tuple(stride) in ((1, 1), (2, 2))
            and tuple(dilation) == (1, 1) and len({p for pair in pads for p in pair}) == 1
            and w.dtype in (np.float32, np.float64))


def conv_backward(g: np.ndarray, x: np.ndarray | None, w: np.ndarray, in_shape, stride, pads,
                  dilation, groups: int = 1, need_input: bool = True, need_weight: bool = True):
    """The backend's convolution backward (same signature and result as
    :func:`convnet.kernels.conv.conv_backward`): depthwise 3x3 convs (the cases of
    :func:`conv_forward`, with ``g`` exactly the conv's output size and every array in ``w``'s
    dtype) go to :func:`depthwise3x3_backward`; everything else, including a ``g`` that covers
    only the first windows (a transposed conv's output_padding), to the NumPy kernel."""
    if _is_depthwise3x3(in_shape, w, groups, stride, pads, dilation) and g.ndim == 4:
        s, p = int(stride[0]), int(pads[0][0])
        N, C, H, W = in_shape
        out = (N, C, (H + 2 * p - 3) // s + 1, (W + 2 * p - 3) // s + 1)
        if (tuple(g.shape) == out and min(out[2:]) >= 1 and g.dtype == w.dtype
                and (not need_weight or (x is not None and tuple(x.shape) == tuple(in_shape)
                                         and x.dtype == w.dtype))):
            return depthwise3x3_backward(g, x, w, in_shape, s, p, need_input, need_weight)
    return _numpy_conv_backward(g, x, w, in_shape, stride, pads, dilation, groups,
                                need_input=need_input, need_weight=need_weight)

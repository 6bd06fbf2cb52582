"""Depthwise 3x3 convolution forward in numba (the backend's ``conv_forward`` for that case).

Each (n, c) plane is zero-padded into a small buffer of ``stride**2`` flat phase planes with
rows ``Wq = ceil((W + 2P) / S)`` wide (``phase[a, b][r, m] = x_pad[r*S + a, m*S + b]``). Every
one of the 9 taps is then one contiguous run of a phase plane, and one pass computes
``acc[q] = sum_t w_t * run_t[q]``, which vectorizes; the ``Wq - W'`` extra columns per row are
computed and dropped. For stride 1 there is one phase: the "rows W+2 wide" layout of
PERF-NOTES.

Measured (``python -m benchmarks.backend_depthwise``, AMD EPYC, float32, batch 128, 1 thread,
torch / numba): 0.8-0.86 on 32x32 planes (stride 1 and 2), 0.63-0.70 at 16x16 stride 1,
~0.5 at 16x16 stride 2 and 8x8, 0.25 at 4x4, where convnet's im2col conv path runs at
0.13-0.47. Small planes pay a fixed cost per plane (padding, 9 views, short loops).
"""
from __future__ import annotations

import numba
import numpy as np

from ...kernels.conv import conv_forward as _numpy_conv_forward

__all__ = ["conv_forward"]


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
            for r in range(H):
                rp = r + p
                ri = rp // s
                if ri >= Hq:           # rows no output reads (stride 2, odd sizes)
                    continue
                xr = x[k, r]
                a = rp - ri * s
                if s == 1:             # a literal stride: the copy vectorizes
                    dst = buf[0, ri * Wq + p:]
                    for m in range(W):
                        dst[m] = xr[m]
                    continue
                # stride 2: column 2m + e goes to phase (e + p) % 2 at m + (e + p) // 2;
                # one pass over the row in pairs, both phases written together
                d0 = buf[a * 2 + p % 2, ri * Wq + p // 2:]
                d1 = buf[a * 2 + (p + 1) % 2, ri * Wq + (p + 1) // 2:]
                for m in range(W // 2):
                    d0[m] = xr[2 * m]
                    d1[m] = xr[2 * m + 1]
                if W % 2:
                    d0[W // 2] = xr[W - 1]
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

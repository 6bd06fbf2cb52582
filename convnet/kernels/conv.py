"""N-d convolution kernels (cross-correlation) on NumPy arrays, forward and backward.

Shapes (``d`` = 1, 2 or 3 spatial axes, ``G`` groups)::

    x (N, C_in, *S)   w (C_out, C_in/G, *K)   ->   y (N, C_out, *O)
    y[n, o, p] = sum_{c in group(o), k} w[o, c, k] * xpad[n, c, p*S + k*D]
    O = floor((S + P_lo + P_hi - D (K - 1) - 1) / stride) + 1

``pads`` is one ``(lo, hi)`` pair per spatial axis (zero padding; asymmetric allowed).

Strategy (see PERF-NOTES.md and :mod:`convnet.kernels.conv_flat` for the layout):

* general case (depthwise included): the input is packed once into the flat-shift layout, then
  im2col into a channel-major ``(C_in K, n L)`` matrix and one GEMM per group (``np.matmul``
  over the group axis: a single BLAS call when ``G = 1``, batched GEMVs when depthwise);
* 1x1 kernels with no padding: a plain GEMM on the input, no patch copy;
* weight gradient: ``g @ cols^T`` (GEMM);
* input gradient: with stride 1, a conv of ``g`` with the flipped, transposed kernel (a GEMM
  with a long inner dimension); otherwise ``w^T @ g`` followed by col2im (strided adds per
  kernel tap, no ``np.add.at``); strided and depthwise convs instead write each stride phase
  of the gradient with one GEMM (no scatter at all). A transposed conv's forward is this input
  gradient, and its backward is a forward conv.

The batch is processed in chunks so the patch matrix stays under ``CHUNK_BYTES`` (cache-sized,
and peak memory stays low); chunk buffers are reused scratch, so repeated calls do not
page-fault fresh memory (:func:`release_scratch` frees them).
"""
from __future__ import annotations

import threading
from typing import Sequence

import numpy as np

from .conv_flat import FlatPlan, make_plan

__all__ = ["conv_forward", "conv_backward", "conv_grad_input", "conv_grad_weight", "CHUNK_BYTES"]

CHUNK_BYTES = 3 * 2**20  # one im2col chunk: stays in L3 between copy and GEMM, bounds memory
_LOCAL = threading.local()  # scratch per thread, so concurrent convs never share buffers


def _scratch(name: str, shape: Sequence[int], dtype) -> np.ndarray:
    """A reusable uninitialised buffer (grown on demand, never shrunk). Callers never return
    scratch memory to users: outputs and gradients are always freshly allocated."""
    cache = _LOCAL.__dict__.setdefault("buffers", {})
    size = int(np.prod(shape))
    key = (name, np.dtype(dtype))
    buf = cache.get(key)
    if buf is None or buf.size < size:
        buf = np.empty(max(size, 1), dtype=dtype)
        cache[key] = buf
    return buf[:size].reshape(shape)


def release_scratch() -> None:
    """Free this thread's cached scratch buffers (they are re-created on the next call)."""
    _LOCAL.__dict__.pop("buffers", None)


def _chunk(n: int, per_item_bytes: int) -> int:
    return int(max(1, min(n, CHUNK_BYTES // max(per_item_bytes, 1))))


def _is_pointwise(kernel, pads) -> bool:
    return all(k == 1 for k in kernel) and all(lo == 0 and hi == 0 for lo, hi in pads)


def conv_forward(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None,
                 stride: Sequence[int], pads: Sequence[tuple[int, int]],
                 dilation: Sequence[int], groups: int = 1) -> np.ndarray:
    """Cross-correlation ``(N, C_in, *S) -> (N, C_out, *O)`` (see module docstring)."""
    n, c = x.shape[:2]
    c_out, cg = w.shape[:2]
    kernel = w.shape[2:]
    nd = len(kernel)
    og = c_out // groups
    if _is_pointwise(kernel, pads):
        xs = x[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in stride)]
        out_size = xs.shape[2:]
        p = int(np.prod(out_size))
        out = np.empty((n, groups, og, p), dtype=x.dtype)
        # (G, og, cg) @ (N, G, cg, P): one small GEMM per image and group, written in place.
        np.matmul(w.reshape(groups, og, cg), xs.reshape(n, groups, cg, p), out=out)
        out = out.reshape((n, c_out) + tuple(out_size))
    else:
        plan = make_plan(x.shape, kernel, stride, pads, dilation)
        buf = plan.pack(x, out=_scratch("pack", (plan.size,), x.dtype),
                        tmp=_scratch("packtmp", (plan.tmp_size(),), x.dtype))
        out = _gemm_forward(plan, buf, w, groups)
    if bias is not None:
        out += bias.reshape((c_out,) + (1,) * nd)
    return out


def _gemm_forward(plan: FlatPlan, buf, w, groups):
    n, c = plan.n, plan.c
    c_out, cg = w.shape[:2]
    taps, length = len(plan.taps), plan.l_ext
    og = c_out // groups
    wg = w.reshape(groups, og, cg * taps)
    out = np.empty((n, c_out) + plan.out, dtype=buf.dtype)
    nb = _chunk(n, c * taps * length * buf.itemsize)
    for n0 in range(0, n, nb):  # batch *chunks*: bounds memory, each chunk is one GEMM per group
        m = min(nb, n - n0)
        cols = plan.im2col(buf, n0, m, _scratch("cols", (c, taps, m, length), buf.dtype))
        res = _scratch("res", (groups, og, m * length), buf.dtype)
        np.matmul(wg, cols.reshape(groups, cg * taps, m * length), out=res)
        out[n0:n0 + m] = plan.from_ext(res.reshape((c_out, m) + plan.ext)).swapaxes(0, 1)
    return out


def conv_backward(g: np.ndarray, x: np.ndarray | None, w: np.ndarray,
                  in_shape: Sequence[int], stride: Sequence[int],
                  pads: Sequence[tuple[int, int]], dilation: Sequence[int], groups: int = 1,
                  need_input: bool = True, need_weight: bool = True):
    """Gradients of :func:`conv_forward` w.r.t. input and weight (``None`` where not needed).

    ``g`` is ``(N, C_out, *O)``; ``x`` (needed only for the weight gradient) ``(N, C_in, *S)``;
    ``in_shape`` is the input shape. Bias gradient is ``g.sum`` over all axes but 1 (caller).
    """
    c_out, cg = w.shape[:2]
    kernel = w.shape[2:]
    if _is_pointwise(kernel, pads):
        return _pointwise_backward(g, x, w, in_shape, stride, groups, need_input, need_weight)
    # g may cover fewer windows than fit (a transposed conv with output_padding >= stride)
    plan = make_plan(in_shape, kernel, stride, pads, dilation, out_size=g.shape[2:],
                     flat_only=cg == 1)
    # Input gradient, fastest first: phase-wise GEMMs (strided or depthwise; flat layout only),
    # a conv of g with the flipped kernel (stride 1, enough channels), else GEMM + col2im.
    phases = need_input and type(plan) is FlatPlan and (cg == 1 or any(v > 1 for v in stride))
    if (need_input and not phases and in_shape[1] >= 16 and _input_grad_as_conv(plan, g)):
        gx = _conv_input_grad_stride1(g, w, plan, groups)
        if not need_weight:
            return gx, None
        return gx, conv_backward(g, x, w, in_shape, stride, pads, dilation, groups,
                                 need_input=False, need_weight=True)[1]
    tmp = _scratch("packtmp", (plan.tmp_size(),), g.dtype) if plan.nph > 1 else None
    buf = None
    if need_weight:
        buf = plan.pack(x, out=_scratch("pack", (plan.size,), g.dtype), tmp=tmp)
    gbuf = None
    if need_input:
        gbuf = _scratch("gpack", (plan.size,), g.dtype)
        if phases:
            _input_grad_phases(plan, g, w, groups, gbuf)  # writes every element it unpacks
        else:
            gbuf.fill(0)  # col2im accumulates
    gw = None
    if need_weight or not phases:
        gw = _gemm_backward(plan, g, buf, None if phases else gbuf, w, groups)
    gx = plan.unpack(gbuf, tmp=tmp) if need_input else None
    return gx, gw


def _input_grad_as_conv(plan: FlatPlan, g) -> bool:
    full = FlatPlan((1, 1) + plan.in_spatial, plan.kernel, plan.stride, plan.pads, plan.dilation)
    return (all(s == 1 for s in plan.stride) and full.out == tuple(g.shape[2:])
            and all(d * (k - 1) >= max(lo, hi)
                    for k, d, (lo, hi) in zip(plan.kernel, plan.dilation, plan.pads)))


def _conv_input_grad_stride1(g, w, plan: FlatPlan, groups: int):
    """``gx = conv(g, w')`` with ``w'[c, o, k] = w[o, c, K - 1 - k]`` per group and padding
    ``D (K - 1) - P`` on each side (stride 1)."""
    c_out, cg = w.shape[:2]
    kernel = w.shape[2:]
    nd = len(kernel)
    og = c_out // groups
    wt = w.reshape((groups, og, cg) + kernel).swapaxes(1, 2)
    wt = wt[(Ellipsis,) + (slice(None, None, -1),) * nd].reshape((groups * cg, og) + kernel)
    pads = tuple((d * (k - 1) - lo, d * (k - 1) - hi)
                 for k, d, (lo, hi) in zip(kernel, plan.dilation, plan.pads))
    return conv_forward(g, np.ascontiguousarray(wt), None, (1,) * nd, pads, plan.dilation,
                        groups)


def _input_grad_phases(plan: FlatPlan, g, w, groups: int, gbuf) -> None:
    """Input gradient written into the packed layout phase by phase, without col2im.

    Phase ``ph`` of the gradient buffer receives, from every tap ``t`` of that phase, ``w_t^T``
    times ``g`` shifted back by the tap's offset: i.e. one im2col of the zero-framed ``g``
    (rows = output channel x tap) and one GEMM per group, written with long rows.
    """
    n, c = plan.n, plan.c
    c_out, cg = w.shape[:2]
    og = c_out // groups
    nd = len(plan.out)
    length, lq = plan.l_ext, plan.lq
    maxshift = max(plan.tap_shift)
    width = maxshift + max(lq, length)
    wt = w.reshape(groups, og, cg, len(plan.taps))
    by_phase = [[t for t, p in enumerate(plan.tap_phase) if p == ph] for ph in range(plan.nph)]
    # per phase: (G, cg, og * taps_in_phase), rows ordered (o, tap) like the columns below
    w_phase = [np.ascontiguousarray(wt[..., tl].transpose(0, 2, 1, 3)).reshape(
        groups, cg, og * len(tl)) if tl else None for tl in by_phase]
    main = gbuf[: n * c * plan.plane].reshape(n, c, plan.nph, lq)
    most = max(len(tl) for tl in by_phase)
    nb = _chunk(n, c_out * most * lq * g.itemsize)
    axes = (1, 0) + tuple(range(2, 2 + nd))
    for n0 in range(0, n, nb):
        m = min(nb, n - n0)
        gp = _scratch("gframe", (c_out, m, width), g.dtype)
        gp[:, :, :maxshift] = 0
        gp[:, :, maxshift + length:] = 0
        plan.to_ext(g[n0:n0 + m], gp[:, :, maxshift:maxshift + length].reshape(
            (c_out, m) + plan.ext), axes)
        for ph, tl in enumerate(by_phase):
            if not tl:  # taps never land on this phase (kernel smaller than stride)
                main[n0:n0 + m, :, ph] = 0
                continue
            cols = _scratch("gpcols", (c_out, len(tl), m, lq), g.dtype)
            for j, t in enumerate(tl):
                start = maxshift - plan.tap_shift[t]
                cols[:, j] = gp[:, :, start:start + lq]
            res = _scratch("gpres", (groups, cg, m * lq), g.dtype)
            np.matmul(w_phase[ph], cols.reshape(groups, og * len(tl), m * lq), out=res)
            main[n0:n0 + m, :, ph] = res.reshape(c, m, lq).swapaxes(0, 1)


def _gemm_backward(plan: FlatPlan, g, buf, gbuf, w, groups):
    n, c = plan.n, plan.c
    c_out, cg = w.shape[:2]
    og = c_out // groups
    taps, length = len(plan.taps), plan.l_ext
    nd = len(plan.out)
    gw = np.zeros((groups, og, cg * taps), dtype=g.dtype) if buf is not None else None
    wt = w.reshape(groups, og, cg * taps).swapaxes(1, 2)
    nb = _chunk(n, c * taps * length * g.itemsize)
    axes = (1, 0) + tuple(range(2, 2 + nd))
    # One cheap reduction tells whether the input is all finite (an overflow to inf only
    # sends us down the safe path).
    finite = buf is None or plan.ext == plan.out or bool(np.isfinite(np.sum(buf)))
    for n0 in range(0, n, nb):
        m = min(nb, n - n0)
        gc = _scratch("gt", (c_out, m) + plan.ext, g.dtype)
        plan.to_ext(g[n0:n0 + m], gc, axes)  # (C_out, m, *ext), garbage columns zeroed
        gcm = gc.reshape(groups, og, m * length)
        if gw is not None:
            cols = plan.im2col(buf, n0, m, _scratch("cols", (c, taps, m, length), g.dtype))
            if not finite:  # garbage columns meet zero gradients, but 0 * inf = nan
                plan.zero_garbage(cols.reshape((c * taps, m) + plan.ext))
            gw += np.matmul(gcm, cols.reshape(groups, cg * taps, m * length).swapaxes(1, 2))
        if gbuf is not None:
            gcols = _scratch("gcols", (groups, cg * taps, m * length), g.dtype)
            np.matmul(wt, gcm, out=gcols)
            plan.col2im(gcols.reshape(c, taps, m, length), gbuf, n0, m)
    return None if gw is None else gw.reshape(w.shape)


def _pointwise_backward(g, x, w, in_shape, stride, groups, need_input, need_weight):
    n, c = in_shape[:2]
    c_out, cg = w.shape[:2]
    og = c_out // groups
    out_size = g.shape[2:]
    p = int(np.prod(out_size))
    g4 = g.reshape(n, groups, og, p)
    wg = w.reshape(groups, og, cg)
    sub = (slice(None), slice(None)) + tuple(slice(None, None, s) for s in stride)
    strided = any(s != 1 for s in stride)
    gx = gw = None
    if need_input:
        gxs = np.matmul(wg.swapaxes(1, 2), g4)  # (N, G, cg, P)
        if strided:
            gx = np.zeros(in_shape, dtype=g.dtype)
            gx[sub] = gxs.reshape((n, c) + tuple(out_size))
        else:
            gx = gxs.reshape(in_shape)
    if need_weight:
        xs = x[sub] if strided else x
        xs = xs.reshape(n, groups, cg, p)
        # sum over images of g_n (og, P) @ x_n^T (P, cg): fold the batch into the GEMM's K axis.
        gt = np.ascontiguousarray(g4.transpose(1, 2, 0, 3)).reshape(groups, og, n * p)
        xt = np.ascontiguousarray(xs.transpose(1, 2, 0, 3)).reshape(groups, cg, n * p)
        gw = np.matmul(gt, xt.swapaxes(1, 2)).reshape(w.shape)
    return gx, gw


def conv_grad_input(g: np.ndarray, w: np.ndarray, in_shape: Sequence[int],
                    stride: Sequence[int], pads: Sequence[tuple[int, int]],
                    dilation: Sequence[int], groups: int = 1) -> np.ndarray:
    """Input gradient of a conv = the forward of the transposed conv, ``(N, C_out, *O) ->
    in_shape``."""
    return conv_backward(g, None, w, in_shape, stride, pads, dilation, groups,
                         need_input=True, need_weight=False)[0]


def conv_grad_weight(g: np.ndarray, x: np.ndarray, w_shape: Sequence[int],
                     stride: Sequence[int], pads: Sequence[tuple[int, int]],
                     dilation: Sequence[int], groups: int = 1) -> np.ndarray:
    """Weight gradient of a conv, ``(C_out, C_in/G, *K)``."""
    w = np.empty(w_shape, dtype=g.dtype)  # only its shape is read
    return conv_backward(g, x, w, x.shape, stride, pads, dilation, groups,
                         need_input=False, need_weight=True)[1]

"""N-d convolution kernels (cross-correlation) on NumPy arrays, forward and backward: fast paths.

The definition is :mod:`convnet.kernels.conv_reference` (pad + im2col + one GEMM per group, and
its backward, in ~150 readable lines; read it first). This file computes the same numbers
(``tests/conv/test_conv_reference.py`` checks it to 1e-12 in float64) through the special paths
below, kept because they measurably matter on the NumPy backend. Times: batch 128, one thread,
unless said; tests are under ``tests/conv/``.

==========================  ==================================  ====================================
path (function)             condition                           why (measured) -> test
==========================  ==================================  ====================================
pointwise GEMM              1x1 kernel, no padding              im2col would only copy the input:
(``conv_forward``,          (a stride subsamples the input      ``w @ x`` per image and group
``_pointwise_backward``)    first)                              -> test_conv_reference (1x1 draws)
pointwise, batch folded     1x1, fewer than ``_SMALL_PLANE``    thin per-image GEMMs: 512->512 at
(``_pointwise_folded``)     = 16 output pixels                  2x2 ran 2.4x slower per image
                                                                -> test_conv_oracle::
                                                                test_pointwise_small_planes_fold...
pointwise weight gradient   1x1, at least                       no layout copies: 24->24 at 28x28
per image                   ``_PW_PER_IMAGE_MIN`` = 32 pixels   2.2 ms against 5.4 ms folded
flat-shift packing          extended grid <= 2x the real        NumPy pays per innermost loop and
(``conv_flat.FlatPlan``)    outputs (``make_plan``), else the   window rows are 8-32 pixels; here
                            classic exact im2col                every tap is one contiguous run
                                                                per plane -> test_kernels::
                                                                test_both_layouts_match_torch
packing per chunk           stride > 1 (phase split)            packed images still in cache for
(``_gemm_forward``)                                             im2col: 7-17% on ResNet-20's
                                                                strided layers, ~30% on strided
                                                                depthwise -> test_parallel_chunks::
                                                                test_strided_forward_packs_each...
input gradient by phases    flat layout and (stride > 1 or      one GEMM per stride phase written
(``_input_grad_phases``)    depthwise)                          in place: no col2im scatter
                                                                -> test_kernels::
                                                                test_phase_input_gradient
input gradient as a conv    stride 1, not depthwise, C_in >=    a GEMM with a long inner dimension
(``_conv_input_grad_        16, ``g`` is the full output,       (C_out K) and no col2im
stride1``)                  D (K - 1) >= every pad              -> test_conv_reference::
                                                                test_fast_wide_and_chunked...
GEMM + col2im               every other input gradient          the reference's own method
(``_gemm_backward``)
per-tap weight gradient     flat layout, stride 1, groups 1,    no im2col: 16->16 at 28x28 6.1 ms
(``_grad_weight_taps``)     C_in C_out <= 512, finite input     against 11.4; 6->16 at 14x14 0.8
                            (``_TAPS_MAX_CHANNELS``)            against 1.6 (64->64 at 16x16 loses:
                                                                41 against 35) -> test_kernels::
                                                                test_stride1_weight_gradient_paths*
weight gradient GEMM        always (when not per tap): larger   OpenBLAS 1.2-1.7x faster that way
(``_grad_weight_gemm``)     of C_out/G and C_in K / G as rows   (16 x 144 over 5,040 pixels: 0.33
                                                                against 0.57 ms)
batch chunks                always: ``CHUNK_BYTES`` = 3 MiB of  patch matrix stays in L3 between
(``_chunk``, ``_scratch``)  patch matrix per chunk; buffers     copy and GEMM; peak memory below
                            reused between calls                torch's on a ResNet-20 3x3 layer
                                                                -> test_kernels::
                                                                test_chunked_batches_match_torch
chunk workers               OpenBLAS threads > 1 and not        no BLAS barrier per small GEMM:
(``parallel._run_chunks``)  ``CONVNET_CONV_WORKERS=0``          ResNet-20 training step 690-760 ms
                                                                against 1,385 (2 idle cores); 0.54
                                                                s against 15 s on busy cores
                                                                (batch 64)
                                                                -> test_parallel_chunks
depthwise                   ``C_in/G == 1``: no path of its     batched GEMVs; the input gradient
                            own here (the numba backend has     goes by phases (above)
                            one for 3x3)                        -> test_kernels::
                                                                test_phase_input_gradient
==========================  ==================================  ====================================

Shapes (``d`` = 1, 2 or 3 spatial axes, ``G`` groups)::

    x (N, C_in, *S)   w (C_out, C_in/G, *K)   ->   y (N, C_out, *O)
    y[n, o, p] = sum_{c in group(o), k} w[o, c, k] * xpad[n, c, p*S + k*D]
    O = floor((S + P_lo + P_hi - D (K - 1) - 1) / stride) + 1

``pads`` is one ``(lo, hi)`` pair per spatial axis (zero padding; asymmetric allowed).

Strategy (the layout is :mod:`convnet.kernels.conv_flat`; docs/convolution.md, "Speed notes",
explains it for users):

* general case (depthwise included): the input is packed into the flat-shift layout (with
  stride 1 once for the batch; with a stride chunk by chunk, so the phase-split images are
  still in cache), then im2col into a channel-major ``(C_in K, n L)`` matrix and one GEMM per
  group (``np.matmul`` over the group axis: a single BLAS call when ``G = 1``, batched GEMVs
  when depthwise);
* 1x1 kernels with no padding: a plain GEMM on the input, no patch copy;
* weight gradient: ``g @ cols^T`` (GEMM, larger side as rows: :func:`_grad_weight_gemm`); for
  small stride-1 convs per-tap products on strided views, no im2col (:func:`_grad_weight_taps`);
* input gradient: with stride 1, a conv of ``g`` with the flipped, transposed kernel (a GEMM
  with a long inner dimension); otherwise ``w^T @ g`` followed by col2im (strided adds per
  kernel tap, no ``np.add.at``); strided and depthwise convs instead write each stride phase
  of the gradient with one GEMM (no scatter at all). A transposed conv's forward is this input
  gradient, and its backward is a forward conv.

The batch is processed in chunks so the patch matrix stays under ``CHUNK_BYTES`` (cache-sized,
and peak memory stays low); chunk buffers are reused scratch, so repeated calls do not
page-fault fresh memory (:func:`release_scratch` frees them).

Threads: when OpenBLAS has ``k > 1`` threads, the chunks are dealt to ``k`` Python worker
threads and OpenBLAS runs single-threaded meanwhile (:func:`_run_chunks`). The copies
(im2col, layout changes) then run in parallel too, and there is no thread wake-up and barrier
per GEMM: with many small GEMMs on a busy machine those cost more than the GEMMs (a ResNet-20
training step fell from seconds to about the single-threaded time). ``OPENBLAS_NUM_THREADS=1``
gives the serial path; ``CONVNET_CONV_WORKERS=0`` serial chunks with multi-threaded BLAS (the
old behaviour: 15-30% faster for small models such as LeNet-5 on two *idle* cores, but it
collapses when the cores are busy).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .channelwise import add_channel_bias
from .conv_flat import FlatPlan, make_plan
from .parallel import _BLAS, _run_chunks, _scratch, _workers, in_worker  # noqa: F401
from .parallel import release_scratch  # noqa: F401 (re-exported)

__all__ = ["conv_forward", "conv_backward", "conv_grad_input", "conv_grad_weight", "CHUNK_BYTES"]

CHUNK_BYTES = 3 * 2**20  # one im2col chunk: stays in L3 between copy and GEMM, bounds memory
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
    og = c_out // groups
    if _is_pointwise(kernel, pads):
        xs = x[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in stride)]
        out_size = xs.shape[2:]
        p = int(np.prod(out_size))
        out = np.empty((n, groups, og, p), dtype=x.dtype)
        wg, x4 = w.reshape(groups, og, cg), xs.reshape(n, groups, cg, p)
        if p < _SMALL_PLANE:
            _pointwise_folded(wg, x4, out)
        else:
            def chunk(n0, m):  # (G, og, cg) @ (m, G, cg, P): a GEMM per image and group
                np.matmul(wg, x4[n0:n0 + m], out=out[n0:n0 + m])

            _run_chunks(chunk, n, _chunk(n, (c + c_out) * p * x.itemsize))
        out = out.reshape((n, c_out) + tuple(out_size))
    else:
        plan = make_plan(x.shape, kernel, stride, pads, dilation)
        out = _gemm_forward(plan, x, w, groups)
    if bias is not None:
        add_channel_bias(out, bias)
    return out


# Below this many output pixels a GEMM per image is too thin (e.g. 512 -> 512 channels at 2x2:
# 128 products with 4 columns each run ~2.4x slower than one with 512 columns).
_SMALL_PLANE = 16


def _pointwise_folded(wg, x4, out) -> None:
    """``out[n, g] = wg[g] @ x4[n, g]`` as one GEMM per group over all images: ``x4`` ``(N, G,
    cg, P)`` is copied to ``(G, cg, N P)`` and the result copied back (chunks of images, so
    the copies stay in cache and run on the chunk workers)."""
    n, groups, cg, p = x4.shape
    og = wg.shape[1]

    def chunk(n0, m):
        xt = _scratch("pwf_x", (groups, cg, m, p), x4.dtype)
        np.copyto(xt, x4[n0:n0 + m].transpose(1, 2, 0, 3))
        res = _scratch("pwf_y", (groups, og, m, p), x4.dtype)
        np.matmul(wg, xt.reshape(groups, cg, m * p), out=res.reshape(groups, og, m * p))
        out[n0:n0 + m] = res.transpose(2, 0, 1, 3)

    _run_chunks(chunk, n, _chunk(n, (groups * (cg + og)) * p * x4.itemsize))


def _gemm_forward(plan: FlatPlan, x, w, groups):
    """Pack, im2col and one GEMM per group, by batch chunks.

    With stride 1 the batch is packed first in one padded copy (fast: long rows). With a stride,
    each chunk packs (phase-splits) its own images into a per-thread buffer instead, so the
    packed images are still in cache for the im2col: 7-17% faster on ResNet-20's strided
    layers and ~30% on strided depthwise ones than splitting the whole batch first."""
    n, c = plan.n, plan.c
    c_out, cg = w.shape[:2]
    taps, length = len(plan.taps), plan.l_ext
    og = c_out // groups
    wg = w.reshape(groups, og, cg * taps)
    out = np.empty((n, c_out) + plan.out, dtype=x.dtype)
    per_chunk = plan.nph > 1
    buf = None if per_chunk else _pack(plan, x, _scratch("pack", (plan.size,), x.dtype))
    nb = _chunk(n, c * taps * length * x.itemsize)
    # the chunk plans, built once per chunk size (there are at most two)
    sub_plans = {m: _sub_plan(plan, m) for m in {nb, n - (n - 1) // nb * nb}} if per_chunk else {}

    def chunk(n0, m):  # batch *chunks*: bound memory; each chunk is one GEMM per group
        cols = _scratch("cols", (c, taps, m, length), x.dtype)
        if per_chunk:
            sub = sub_plans[m]
            packed = sub.pack(x[n0:n0 + m], out=_scratch("chunkpack", (sub.size,), x.dtype),
                              tmp=_tmp(sub, x.dtype))
            sub.im2col(packed, 0, m, cols)
        else:
            plan.im2col(buf, n0, m, cols)
        res = _scratch("res", (groups, og, m * length), x.dtype)
        np.matmul(wg, cols.reshape(groups, cg * taps, m * length), out=res)
        out[n0:n0 + m] = plan.from_ext(res.reshape((c_out, m) + plan.ext)).swapaxes(0, 1)

    _run_chunks(chunk, n, nb)
    return out


def conv_backward(g: np.ndarray, x: np.ndarray | None, w: np.ndarray,
                  in_shape: Sequence[int], stride: Sequence[int],
                  pads: Sequence[tuple[int, int]], dilation: Sequence[int], groups: int = 1,
                  need_input: bool = True, need_weight: bool = True):
    """Gradients of :func:`conv_forward` w.r.t. input and weight (``None`` where not needed).

    ``g`` is ``(N, C_out, *O)``; ``x`` (needed only for the weight gradient) ``(N, C_in, *S)``;
    ``in_shape`` is the input shape. Bias gradient is ``g.sum`` over all axes but 1 (caller).
    ``g`` may cover only the first windows along an axis (``O`` below the conv's own output
    size: a transposed conv's output_padding); input pixels no window reads get zero gradient.
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
    buf = None
    if need_weight:
        buf = _pack(plan, x, _scratch("pack", (plan.size,), g.dtype))
    gbuf = gx = None
    if phases:
        gx = _input_grad_phases(plan, g, w, groups)
    elif need_input:
        gbuf = _scratch("gpack", (plan.size,), g.dtype)
        gbuf.fill(0)  # col2im accumulates
    gw = None
    if need_weight or gbuf is not None:
        gw = _gemm_backward(plan, g, buf, gbuf, w, groups)
    if gbuf is not None:  # col2im's sum (a strided flat layout never gets here: phases do)
        gx = plan.unpack(gbuf, tmp=_tmp(plan, g.dtype))
    return gx, gw


def _sub_plan(plan: FlatPlan, m: int) -> FlatPlan:
    """The same geometry for a chunk of ``m`` images (same layout, so ``m`` images' slice of
    the full buffer is the chunk's buffer)."""
    return make_plan((m, plan.c) + plan.in_spatial, plan.kernel, plan.stride, plan.pads,
                     plan.dilation, out_size=plan.out, flat_only=type(plan) is FlatPlan)


def _tmp(plan: FlatPlan, dtype):
    """Scratch for the phase split of :meth:`FlatPlan.pack` / ``unpack`` (stride > 1 only)."""
    return _scratch("packtmp", (plan.tmp_size(),), dtype) if plan.nph > 1 else None


def _per_image(plan: FlatPlan) -> int:
    return (plan.size - (plan.tail if type(plan) is FlatPlan else 0)) // plan.n


def _pack(plan: FlatPlan, x, buf):
    """``plan.pack`` into ``buf``; with chunk workers and a stride (the slow phase split), each
    worker packs its own images (disjoint writes: only the last chunk writes the zero tail)."""
    n = plan.n
    # stride 1 packs with one fast padded copy: splitting it would only add overhead
    if plan.nph == 1 or _workers() == 1 or in_worker():
        return plan.pack(x, out=buf, tmp=_tmp(plan, x.dtype))
    per = _per_image(plan)

    def chunk(n0, m):
        sub = _sub_plan(plan, m)
        sub.pack(x[n0:n0 + m], out=buf[n0 * per:n0 * per + sub.size],
                 tmp=_tmp(sub, x.dtype), tail=n0 + m == n)

    _run_chunks(chunk, n, _chunk(n, 2 * per * x.itemsize))
    return buf


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


def _input_grad_phases(plan: FlatPlan, g, w, groups: int) -> np.ndarray:
    """Input gradient ``(N, C_in, *S)`` computed phase by phase, without col2im.

    Stride phase ``ph`` of the padded input receives, from every tap ``t`` of that phase,
    ``w_t^T`` times ``g`` shifted back by the tap's offset: one im2col of the zero-framed ``g``
    (rows = output channel x tap) and one GEMM per group. Each input pixel belongs to exactly
    one phase, so the phase planes are written straight into their strided places in the
    result (no packed buffer to merge afterwards).
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
    gx = np.empty((n, c) + plan.in_spatial, dtype=g.dtype)
    places = [_phase_place(plan, ph) for ph in range(plan.nph)]
    most = max(len(tl) for tl in by_phase)
    nb = _chunk(n, c_out * most * lq * g.itemsize)
    axes = (1, 0) + tuple(range(2, 2 + nd))
    def chunk(n0, m):  # writes only images n0 .. n0+m of gx
        gp = _scratch("gframe", (c_out, m, width), g.dtype)
        gp[:, :, :maxshift] = 0
        gp[:, :, maxshift + length:] = 0
        plan.to_ext(g[n0:n0 + m], gp[:, :, maxshift:maxshift + length].reshape(
            (c_out, m) + plan.ext), axes)
        for ph, tl in enumerate(by_phase):
            if places[ph] is None:  # no input pixel in this phase (padding only)
                continue
            src, dst = places[ph]
            dst = (slice(n0, n0 + m), slice(None)) + dst
            if not tl:  # taps never land on this phase (kernel smaller than stride)
                gx[dst] = 0
                continue
            cols = _scratch("gpcols", (c_out, len(tl), m, lq), g.dtype)
            for j, t in enumerate(tl):
                start = maxshift - plan.tap_shift[t]
                cols[:, j] = gp[:, :, start:start + lq]
            res = _scratch("gpres", (groups, cg, m * lq), g.dtype)
            np.matmul(w_phase[ph], cols.reshape(groups, og * len(tl), m * lq), out=res)
            gx[dst] = res.reshape((c, m) + plan.sq)[src].swapaxes(0, 1)

    _run_chunks(chunk, n, nb)
    return gx


def _phase_place(plan: FlatPlan, ph: int):
    """Where stride phase ``ph``'s plane ``(C, m, *Sq)`` lands in the unpadded input: index
    tuples ``(src into the plane, dst into (N, C, *S))``, or ``None`` if it holds only padding.

    Padded index ``s q + a`` (phase ``a``, plane index ``q``) is input index ``s q + a - lo``."""
    src, dst = [slice(None), slice(None)], []
    for a, s, (lo, _), size in zip(np.unravel_index(ph, plan.stride), plan.stride, plan.pads,
                                   plan.in_spatial):
        q0 = -(-(lo - int(a)) // s)  # first plane index inside the input
        x0 = s * q0 + int(a) - lo
        count = -(-(size - x0) // s) if x0 < size else 0
        if count <= 0:
            return None
        src.append(slice(q0, q0 + count))
        dst.append(slice(x0, x0 + s * (count - 1) + 1, s))
    return tuple(src), tuple(dst)


def _gemm_backward(plan: FlatPlan, g, buf, gbuf, w, groups):
    n, c = plan.n, plan.c
    c_out, cg = w.shape[:2]
    og = c_out // groups
    taps, length = len(plan.taps), plan.l_ext
    nd = len(plan.out)
    wt = w.reshape(groups, og, cg * taps).swapaxes(1, 2)
    nb = _chunk(n, c * taps * length * g.itemsize)
    axes = (1, 0) + tuple(range(2, 2 + nd))
    # One cheap reduction tells whether the input is all finite (an overflow to inf only
    # sends us down the safe path).
    finite = buf is None or plan.ext == plan.out or bool(np.isfinite(np.sum(buf)))
    gw_taps = None
    if buf is not None and finite and _weight_grad_by_taps(plan, w, groups):
        gw_taps, buf = _grad_weight_taps(plan, g, buf, w.shape), None
        if gbuf is None:
            return gw_taps

    def chunk(n0, m):  # returns this chunk's weight-gradient term
        gc = _scratch("gt", (c_out, m) + plan.ext, g.dtype)
        plan.to_ext(g[n0:n0 + m], gc, axes)  # (C_out, m, *ext), garbage columns zeroed
        gcm = gc.reshape(groups, og, m * length)
        part = None
        if buf is not None:
            cols = plan.im2col(buf, n0, m, _scratch("cols", (c, taps, m, length), g.dtype))
            if not finite:  # garbage columns meet zero gradients, but 0 * inf = nan
                plan.zero_garbage(cols.reshape((c * taps, m) + plan.ext))
            part = _grad_weight_gemm(gcm, cols.reshape(groups, cg * taps, m * length))
        if gbuf is not None:
            gcols = _scratch("gcols", (groups, cg * taps, m * length), g.dtype)
            np.matmul(wt, gcm, out=gcols)
            plan.col2im(gcols.reshape(c, taps, m, length), gbuf, n0, m)
        return part

    if gbuf is None:
        parts = _run_chunks(chunk, n, nb)
    else:
        # The col2im adds of a chunk spill (zeros, from garbage columns) into the first image
        # of the next chunk; two waves of every other chunk keep concurrent adds disjoint.
        starts = range(0, n, nb)
        parts = _run_chunks(chunk, n, nb, starts[0::2]) + _run_chunks(chunk, n, nb, starts[1::2])
    if buf is None:
        return gw_taps
    gw = parts[0]
    for part in parts[1:]:
        gw += part
    return gw.reshape(w.shape)


# Weight gradients with C_in * C_out up to this use per-tap GEMMs on strided views (below).
_TAPS_MAX_CHANNELS = 512


def _weight_grad_by_taps(plan: FlatPlan, w, groups: int) -> bool:
    return (type(plan) is FlatPlan and plan.nph == 1 and groups == 1
            and w.shape[0] * w.shape[1] <= _TAPS_MAX_CHANNELS)


def _grad_weight_taps(plan: FlatPlan, g, buf, w_shape):
    """Weight gradient of a stride-1 ungrouped conv without im2col: per image ``n`` and tap
    ``t``, ``gw_t += g_n (C_out, L) @ x_{n,t}^T (L, C_in)``, where ``x_{n,t}`` is the tap's
    strided view of the packed input (``L`` = the image's extended grid; garbage columns
    meet zero gradients, and the caller has checked the input is finite).

    A tap's offset in the plane is ``sum_i k_i d_i sf_i``, so one view with an axis per kernel
    dimension covers every tap, and ``np.matmul`` runs all ``m * K`` products of a chunk in
    one call. With few channels this beats im2col + one GEMM (measured single-threaded,
    batch 128: 16->16 at 28x28 6.1 against 11.4 ms, 6->16 at 14x14 0.8 against 1.6 ms); with
    many channels the small products lose (64->64 at 16x16: 41 against 35 ms)."""
    n, c = plan.n, plan.c
    c_out, kernel = w_shape[0], tuple(w_shape[2:])
    nd, length, it = len(kernel), plan.l_ext, buf.itemsize
    ident = tuple(range(2 + nd))
    tap_strides = tuple(d * f * it for d, f in zip(plan.dilation, plan.sf))

    def chunk(n0, m):
        ge = _scratch("gtaps", (m, c_out) + plan.ext, g.dtype)
        plan.to_ext(g[n0:n0 + m], ge, ident)  # garbage columns zeroed
        view = np.ndarray((m,) + kernel + (c, length), buf.dtype, buffer=buf,
                          offset=n0 * c * plan.plane * it,
                          strides=(c * plan.plane * it,) + tap_strides + (plan.plane * it, it))
        gv = ge.reshape((m,) + (1,) * nd + (c_out, length))
        if c > c_out:  # the larger side as the product's rows (see _grad_weight_gemm)
            return np.matmul(view, gv.swapaxes(-1, -2)).sum(axis=0).swapaxes(-1, -2)
        return np.matmul(gv, view.swapaxes(-1, -2)).sum(axis=0)  # (*K, C_out, C_in)

    parts = _run_chunks(chunk, n, _chunk(n, (c + c_out) * length * g.itemsize))
    gw = parts[0]
    for part in parts[1:]:
        gw += part
    return np.ascontiguousarray(np.moveaxis(gw, (-2, -1), (0, 1)))


def _grad_weight_gemm(g, cols):
    """``g @ cols^T`` per group: ``(G, og, K)``, ``(G, R, K)`` -> ``(G, og, R)`` (``K`` = pixels).

    OpenBLAS runs this product 1.2-1.7x faster when the larger of ``og`` and ``R`` gives the
    rows of the result (measured: 16 x 144 outputs over 5,040 pixels, 0.57 ms as ``g cols^T``
    against 0.33 ms as ``(cols g^T)^T``), so the smaller one is put last."""
    if cols.shape[1] > g.shape[1]:
        return np.matmul(cols, g.swapaxes(1, 2)).swapaxes(1, 2)
    return np.matmul(g, cols.swapaxes(1, 2))


# Pointwise weight gradients on planes of at least this many pixels multiply image by image
# (measured, batch 128, 1 thread: 24->24 at 28x28 2.2 against 5.4 ms with the batch folded
# into one GEMM, 48->48 at 7x7 0.50 against 0.56 ms; at 4x4, 192->1024, 24 against 13 ms).
_PW_PER_IMAGE_MIN = 32


def _pointwise_backward(g, x, w, in_shape, stride, groups, need_input, need_weight):
    n, c = in_shape[:2]
    c_out, cg = w.shape[:2]
    og = c_out // groups
    out_size = g.shape[2:]
    p = int(np.prod(out_size))
    g4 = g.reshape(n, groups, og, p)
    wg = w.reshape(groups, og, cg)
    # Window j of an axis reads input pixel j S. A transposed conv's output_padding makes the
    # input (its output) longer than the windows reach, ceil(I / S) > O: the last pixels get no
    # gradient and have no weight-gradient term, so the view stops at the last window.
    sub = (slice(None), slice(None)) + tuple(
        slice(0, s * (o - 1) + 1, s) for s, o in zip(stride, out_size))
    strided = tuple(in_shape[2:]) != tuple(out_size)  # some input pixels are read by no window
    nb = _chunk(n, (c + c_out) * p * g.itemsize)
    gx = gw = None
    if need_input:
        wtg = wg.swapaxes(1, 2)
        gx = np.zeros(in_shape, dtype=g.dtype) if strided else np.empty(in_shape, dtype=g.dtype)
        gx4 = None if strided else gx.reshape(n, groups, cg, p)

        def chunk_x(n0, m):
            if strided:
                gx[n0:n0 + m][sub] = np.matmul(wtg, g4[n0:n0 + m]).reshape(
                    (m, c) + tuple(out_size))
            else:
                np.matmul(wtg, g4[n0:n0 + m], out=gx4[n0:n0 + m])

        if p < _SMALL_PLANE and not strided:
            _pointwise_folded(np.ascontiguousarray(wtg), g4, gx4)
        else:
            _run_chunks(chunk_x, n, nb)
    if need_weight:
        xs = x[sub] if strided else x
        xs = xs.reshape(n, groups, cg, p)

        def chunk_w(n0, m):
            # sum over images of g_n (og, P) @ x_n^T (P, cg)
            if p >= _PW_PER_IMAGE_MIN:  # one product per image, summed: no layout copies
                return np.matmul(g4[n0:n0 + m], xs[n0:n0 + m].swapaxes(-1, -2)).sum(axis=0)
            # small planes: the chunk's batch folded into the GEMM's K axis (copies first)
            gt = _scratch("pw_g", (groups, og, m, p), g.dtype)
            xt = _scratch("pw_x", (groups, cg, m, p), g.dtype)
            np.copyto(gt, g4[n0:n0 + m].transpose(1, 2, 0, 3))
            np.copyto(xt, xs[n0:n0 + m].transpose(1, 2, 0, 3))
            return _grad_weight_gemm(gt.reshape(groups, og, m * p), xt.reshape(groups, cg, m * p))

        parts = _run_chunks(chunk_w, n, nb)
        gw = parts[0]
        for part in parts[1:]:
            gw += part
        gw = gw.reshape(w.shape)
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

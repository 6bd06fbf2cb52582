"""Region-of-interest pooling: ``roi_pool`` (Fast R-CNN), ``roi_align`` (Mask R-CNN),
``ps_roi_align`` (R-FCN's position-sensitive form) and ``MultiScaleRoIAlign`` (FPN).

Each cuts a fixed ``output_size`` grid of bins out of a feature map for every box, so a
detector's box head sees equally sized features whatever the box size. Boxes are in
*image* coordinates; ``spatial_scale`` (feature size / image size, e.g. 1/16) maps them
onto the feature map. They come either as a ``(K, 5)`` Tensor of rows
``[batch_index, x1, y1, x2, y2]`` or as a list with one ``(K_i, 4)`` Tensor per image
(torchvision's two conventions). The output is ``(K, C, PH, PW)``, differentiable w.r.t.
``input`` (not w.r.t. the boxes, as in torchvision).

ROI Align, as torchvision's CPU kernel, for box ``(x1, y1, x2, y2)`` and ``o = 0.5`` if
``aligned`` else ``0``::

    start = x1 * scale - o,  size = (x2 - x1) * scale   (size >= 1 only when not aligned)
    bin = size / PW,  n = sampling_ratio if > 0 else ceil(size / PW)   samples per bin
    sample x of bin j, i = 0..n-1:  start + j bin + (i + 0.5) bin / n
    out = mean over the n_h x n_w samples of bilinear(feature, y, x)

A sample outside ``[-1, H] x [-1, W]`` contributes 0; otherwise its coordinates are
clamped to ``>= 0`` and a row or column at or beyond ``H - 1`` / ``W - 1`` reads that last
row or column. Bilinear weights factor into a row weight times a column weight, so every
box becomes two small matrices ``Wy (PH, H)`` and ``Wx (PW, W)`` and
``out[c] = Wy @ feature[c] @ Wx^T / (n_h n_w)``; the backward is the transpose,
``grad[c] += Wy^T @ g[c] @ Wx / (n_h n_w)``.
"""
from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np

from ..autograd.function import Function
from ..nn.modules.module import Module
from ..tensor import Tensor
from .boxes import box_area

__all__ = ["roi_pool", "roi_align", "ps_roi_align", "RoIPool", "RoIAlign", "PSRoIAlign",
           "MultiScaleRoIAlign"]

_FLT_MAX = float(np.finfo(np.float32).max)  # the kernel's starting max, for both dtypes


# ------------------------------------------------------------------------------ checks
def _output_size(output_size, op: str) -> tuple[int, int]:
    size = (output_size, output_size) if isinstance(output_size, (int, np.integer)) else output_size
    try:
        ph, pw = (int(s) for s in size)
        ok = all(int(s) == s for s in size)
    except (TypeError, ValueError):
        ok = False
    if not ok or ph < 1 or pw < 1:
        raise ValueError(f"{op}: output_size must be a positive int or (height, width), got {output_size!r}")
    return ph, pw


def _check_input(input, op: str) -> Tensor:
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(input).__name__}")
    if input.ndim != 4:
        raise ValueError(f"{op}: input must be a 4-D Tensor (N, C, H, W), got shape {tuple(input.shape)}")
    if input.dtype.kind != "f":
        raise TypeError(f"{op}: input must be floating point, got {input.dtype}")
    return input


def _rois(boxes, input: Tensor, op: str) -> np.ndarray:
    """``(K, 5)`` rows ``[batch_index, x1, y1, x2, y2]`` in the input's dtype, checked."""
    dtype = input.dtype
    if isinstance(boxes, Tensor):
        if boxes.ndim != 2 or boxes.shape[1] != 5:
            raise ValueError(
                f"{op}: boxes given as one Tensor must have shape (K, 5) "
                f"[batch_index, x1, y1, x2, y2], got {tuple(boxes.shape)}"
            )
        rois = boxes.numpy().astype(dtype, copy=False)
    elif isinstance(boxes, (list, tuple)):
        parts = []
        for i, b in enumerate(boxes):
            if not isinstance(b, Tensor):
                raise TypeError(f"{op}: boxes[{i}] must be a Tensor, got {type(b).__name__}")
            if b.ndim != 2 or b.shape[1] != 4:
                raise ValueError(
                    f"{op}: boxes given as a list must hold (K_i, 4) Tensors, boxes[{i}] has "
                    f"shape {tuple(b.shape)}"
                )
            arr = b.numpy().astype(dtype, copy=False)
            parts.append(np.concatenate([np.full((len(arr), 1), i, dtype=dtype), arr], axis=1))
        rois = np.concatenate(parts, axis=0) if parts else np.zeros((0, 5), dtype=dtype)
    else:
        raise TypeError(
            f"{op}: boxes must be a Tensor (K, 5) or a list of (K_i, 4) Tensors, got "
            f"{type(boxes).__name__}"
        )
    idx = rois[:, 0]
    n = input.shape[0]
    # The kernel casts the batch index to int (truncation); out of range it would read
    # another image's memory, so that is an error here.
    bad = ~np.isfinite(idx) | (np.trunc(idx) < 0) | (np.trunc(idx) >= n) if len(idx) else idx.astype(bool)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{op}: box {k} has batch index {float(idx[k])}, out of range for input of batch size "
            f"{n} (shape {tuple(input.shape)})"
        )
    return rois


# ------------------------------------------------------------------- ROI Align weights
def _axis_weights(start, bin_size, grid, pooled: int, length: int, dtype) -> np.ndarray:
    """``(K, pooled, length)``: weight of each feature row (or column) in each bin, summed
    over that bin's samples (not yet divided by the sample count).

    Sample ``i`` of bin ``p`` sits at ``start + p bin + (i + 0.5) bin / n`` (the kernel's
    order of operations, in the input's dtype); samples beyond ``[-1, length]`` weigh 0.
    """
    k = start.shape[0]
    g_max = int(grid.max()) if k else 0
    out = np.zeros((k, pooled, length), dtype=dtype)
    if g_max <= 0:
        return out
    p = np.arange(pooled, dtype=dtype)[None, :, None]
    i = np.arange(g_max)
    n = np.maximum(grid, 1).astype(dtype)[:, None, None]
    b = bin_size[:, None, None]
    pos = (start[:, None, None] + p * b) + ((i + 0.5).astype(dtype)[None, None, :] * b) / n
    used = i[None, None, :] < grid[:, None, None]
    inside = used & (pos >= -1.0) & (pos <= length)  # False for NaN coordinates
    pos = np.where(inside, np.maximum(pos, 0), 0).astype(dtype)
    low = np.floor(pos).astype(np.int64)
    edge = low >= length - 1  # the last row/column: read it with weight 1
    low = np.where(edge, length - 1, low)
    high = np.where(edge, length - 1, low + 1)
    pos = np.where(edge, low.astype(dtype), pos)
    frac = (pos - low).astype(dtype)
    w_low = np.where(inside, 1 - frac, 0).astype(dtype)
    w_high = np.where(inside, frac, 0).astype(dtype)
    kk = np.broadcast_to(np.arange(k)[:, None, None], pos.shape)
    pp = np.broadcast_to(np.arange(pooled)[None, :, None], pos.shape)
    np.add.at(out, (kk, pp, low), w_low)
    np.add.at(out, (kk, pp, high), w_high)
    return out


def _align_plan(rois: np.ndarray, hw, out_hw, spatial_scale, sampling_ratio, aligned,
                clamp_size: bool, dtype):
    """Row weights ``Wy (K, PH, H)``, column weights ``Wx (K, PW, W)`` and the per-box
    sample counts ``n_h * n_w`` of ROI Align (see the module docstring)."""
    (h, w), (ph, pw) = hw, out_hw
    scale = np.asarray(spatial_scale, dtype=dtype)
    offset = np.asarray(0.5 if aligned else 0.0, dtype=dtype)
    x1, y1, x2, y2 = (rois[:, i] * scale - offset for i in range(1, 5))
    roi_w, roi_h = x2 - x1, y2 - y1
    if clamp_size:  # "force malformed ROIs to be 1x1"
        roi_w, roi_h = np.maximum(roi_w, 1).astype(dtype), np.maximum(roi_h, 1).astype(dtype)
    bin_h, bin_w = roi_h / dtype.type(ph), roi_w / dtype.type(pw)

    def samples(size_over_pooled):
        if sampling_ratio > 0:
            return np.full(len(rois), int(sampling_ratio), dtype=np.int64)
        with np.errstate(invalid="ignore"):  # NaN boxes: no samples
            n = np.ceil(np.nan_to_num(size_over_pooled, nan=0.0, posinf=0.0, neginf=0.0))
        return np.maximum(n, 0).astype(np.int64)

    grid_h, grid_w = samples(roi_h / dtype.type(ph)), samples(roi_w / dtype.type(pw))
    wy = _axis_weights(y1, bin_h, grid_h, ph, h, dtype)
    wx = _axis_weights(x1, bin_w, grid_w, pw, w, dtype)
    return wy, wx, (grid_h * grid_w).astype(dtype)


def _apply(x: np.ndarray, batch: np.ndarray, wy, wx) -> np.ndarray:
    """``out[k, c] = wy[k] @ x[batch[k], c] @ wx[k]^T`` -> ``(K, C, PH, PW)``."""
    k, c = len(batch), x.shape[1]
    out = np.zeros((k, c, wy.shape[1], wx.shape[1]), dtype=x.dtype)
    for b in np.unique(batch):  # one pair of batched matmuls per image
        sel = np.flatnonzero(batch == b)
        rows = np.matmul(wy[sel][:, None], x[b][None])  # (k, C, PH, W)
        out[sel] = np.matmul(rows, wx[sel].transpose(0, 2, 1)[:, None])
    return out


def _apply_transpose(g: np.ndarray, batch: np.ndarray, wy, wx, x_shape) -> np.ndarray:
    """The adjoint of :func:`_apply`: ``grad[b, c] += wy[k]^T @ g[k, c] @ wx[k]``."""
    grad = np.zeros(x_shape, dtype=g.dtype)
    for b in np.unique(batch):
        sel = np.flatnonzero(batch == b)
        cols = np.matmul(g[sel], wx[sel][:, None])  # (k, C, PH, W)
        # sum over boxes k and bins p at once: one (H, k*PH) @ (k*PH, W) per channel
        grad[b] += np.einsum("kph,kcpw->chw", wy[sel], cols, optimize=True)
    return grad


class _RoIAlign(Function):
    """ROI Align on arrays; backward scatters through the same bilinear weights."""

    def forward(self, x, rois, out_hw, spatial_scale, sampling_ratio, aligned):
        dtype = x.dtype
        wy, wx, count = _align_plan(rois, x.shape[2:], out_hw, spatial_scale, sampling_ratio,
                                    aligned, clamp_size=not aligned, dtype=dtype)
        batch = np.trunc(rois[:, 0]).astype(np.int64)
        count = np.maximum(count, 1)  # an empty sampling grid gives 0, as the kernel
        out = _apply(x, batch, wy, wx) / count[:, None, None, None]
        if getattr(self, "needs_input_grad", None) is not None:
            self.wy, self.wx, self.count, self.batch, self.x_shape = wy, wx, count, batch, x.shape
        return out.astype(dtype, copy=False)

    def backward(self, g):
        g = g / self.count[:, None, None, None]
        return _apply_transpose(g, self.batch, self.wy, self.wx, self.x_shape), None


def roi_align(input: Tensor, boxes, output_size, spatial_scale: float = 1.0,
              sampling_ratio: int = -1, aligned: bool = False) -> Tensor:
    """ROI Align (He et al., Mask R-CNN, 2017): ``(N, C, H, W)`` features and ``K`` boxes
    -> ``(K, C, PH, PW)``, each bin the average of bilinearly sampled points.

    Args:
        input: ``(N, C, H, W)`` float features.
        boxes: ``(K, 5)`` Tensor ``[batch_index, x1, y1, x2, y2]`` or a list of ``(K_i, 4)``
            Tensors, one per image, in image coordinates.
        output_size: ``PH`` (square) or ``(PH, PW)``.
        spatial_scale: multiplies the box coordinates (e.g. 1/16 for a stride-16 map).
        sampling_ratio: samples per bin along each axis; ``<= 0`` picks
            ``ceil(roi_size / output_size)`` per axis and box.
        aligned: shift the box by -0.5 pixel (pixel centres at integer + 0.5, Detectron2's
            fix) and do not clamp the box size to >= 1. Default False (torchvision's).

    An out-of-range batch index, boxes of the wrong shape or a non-4-D input raise
    ``ValueError``. Differentiable w.r.t. ``input``.

    Example: ``roi_align(x, [boxes], output_size=7, spatial_scale=1/8, sampling_ratio=2)``.
    """
    op = "roi_align"
    _check_input(input, op)
    rois = _rois(boxes, input, op)
    out_hw = _output_size(output_size, op)
    return _RoIAlign.apply(input, rois, out_hw, float(spatial_scale), int(sampling_ratio),
                           bool(aligned))


class _PSRoIAlign(Function):
    """Position-sensitive ROI Align: bin ``(p, q)`` of output channel ``c`` reads input
    channel ``(c PH + p) PW + q``."""

    def forward(self, x, rois, out_hw, spatial_scale, sampling_ratio):
        dtype = x.dtype
        ph, pw = out_hw
        n, c_in, h, w = x.shape
        wy, wx, count = _align_plan(rois, (h, w), out_hw, spatial_scale, sampling_ratio,
                                    aligned=True, clamp_size=False, dtype=dtype)
        batch = np.trunc(rois[:, 0]).astype(np.int64)
        xs = x.reshape(n, c_in // (ph * pw), ph, pw, h, w)
        # out[k, c, p, q] = sum_{i, j} wy[k, p, i] xs[b_k, c, p, q, i, j] wx[k, q, j]
        out = np.einsum("kpi,kcpqij,kqj->kcpq", wy, xs[batch], wx, optimize=True)
        with np.errstate(invalid="ignore", divide="ignore"):  # no samples: 0/0, as the kernel
            out = out / count[:, None, None, None]
        if getattr(self, "needs_input_grad", None) is not None:
            self.wy, self.wx, self.count, self.batch, self.x_shape = wy, wx, count, batch, x.shape
        return out.astype(dtype, copy=False)

    def backward(self, g):
        n, c_in, h, w = self.x_shape
        ph, pw = self.wy.shape[1], self.wx.shape[1]
        with np.errstate(invalid="ignore", divide="ignore"):
            g = np.where(self.count[:, None, None, None] > 0,
                         g / np.maximum(self.count, 1)[:, None, None, None], 0)
        per_box = np.einsum("kpi,kcpq,kqj->kcpqij", self.wy, g, self.wx, optimize=True)
        grad = np.zeros((n, c_in // (ph * pw), ph, pw, h, w), dtype=g.dtype)
        np.add.at(grad, self.batch, per_box)
        return grad.reshape(self.x_shape), None


def ps_roi_align(input: Tensor, boxes, output_size, spatial_scale: float = 1.0,
                 sampling_ratio: int = -1) -> Tensor:
    """Position-sensitive ROI Align (Dai et al., R-FCN, 2016): ``(N, C, H, W)`` ->
    ``(K, C / (PH PW), PH, PW)``; bin ``(p, q)`` of output channel ``c`` averages input
    channel ``(c PH + p) PW + q``. As torchvision's kernel, boxes are always shifted by
    -0.5 and never clamped in size, and a box with no samples gives NaN (0/0).
    """
    op = "ps_roi_align"
    _check_input(input, op)
    rois = _rois(boxes, input, op)
    ph, pw = _output_size(output_size, op)
    if input.shape[1] % (ph * pw):
        raise ValueError(
            f"{op}: input channels ({input.shape[1]}) must be a multiple of "
            f"output_size[0] * output_size[1] = {ph * pw}"
        )
    return _PSRoIAlign.apply(input, rois, (ph, pw), float(spatial_scale), int(sampling_ratio))


# ------------------------------------------------------------------------------ RoIPool
def _c_round(v: np.ndarray) -> np.ndarray:
    """C's round(): halves away from zero (NumPy's rounds them to even)."""
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


class _RoIPool(Function):
    """ROI max pooling; backward routes each bin's gradient to its argmax."""

    def forward(self, x, rois, out_hw, spatial_scale):
        dtype = x.dtype
        n, c, h, w = x.shape
        ph, pw = out_hw
        k = len(rois)
        scale = np.asarray(spatial_scale, dtype=dtype)
        corners = _c_round(rois[:, 1:] * scale).astype(np.int64)  # x1, y1, x2, y2
        batch = np.trunc(rois[:, 0]).astype(np.int64)
        roi_w = np.maximum(corners[:, 2] - corners[:, 0] + 1, 1)
        roi_h = np.maximum(corners[:, 3] - corners[:, 1] + 1, 1)
        bin_h, bin_w = roi_h.astype(dtype) / dtype.type(ph), roi_w.astype(dtype) / dtype.type(pw)
        p_h, p_w = np.arange(ph, dtype=dtype), np.arange(pw, dtype=dtype)
        hs = np.floor(p_h[None] * bin_h[:, None]).astype(np.int64) + corners[:, 1:2]
        he = np.ceil((p_h[None] + 1) * bin_h[:, None]).astype(np.int64) + corners[:, 1:2]
        ws = np.floor(p_w[None] * bin_w[:, None]).astype(np.int64) + corners[:, 0:1]
        we = np.ceil((p_w[None] + 1) * bin_w[:, None]).astype(np.int64) + corners[:, 0:1]
        hs, he, ws, we = np.clip(hs, 0, h), np.clip(he, 0, h), np.clip(ws, 0, w), np.clip(we, 0, w)
        # A value wins only if it is > -FLT_MAX (the kernel's start); NaN never wins.
        with np.errstate(invalid="ignore"):
            xv = np.where(x > -_FLT_MAX, x, -np.inf)
        out = np.zeros((k, c, ph, pw), dtype=dtype)
        arg = np.full((k, c, ph, pw), -1, dtype=np.int64)  # flat h * W + w, -1: no gradient
        for r in range(k):  # per box: a column-max stage, then a row-max stage
            r0, r1, c0, c1 = hs[r].min(), he[r].max(), ws[r].min(), we[r].max()
            if r1 <= r0 or c1 <= c0:
                continue  # every bin empty: 0
            crop = xv[batch[r], :, r0:r1, c0:c1]  # (C, h', w')
            cols = np.arange(c0, c1)
            col_in = (cols[None] >= ws[r][:, None]) & (cols[None] < we[r][:, None])  # (PW, w')
            m1 = np.where(col_in[None, None], crop[:, :, None, :], -np.inf)  # (C, h', PW, w')
            col_max, col_arg = m1.max(-1), m1.argmax(-1)  # first max in each row
            rows = np.arange(r0, r1)
            row_in = (rows[None] >= hs[r][:, None]) & (rows[None] < he[r][:, None])  # (PH, h')
            m2 = np.where(row_in[None, :, :, None], col_max[:, None], -np.inf)  # (C, PH, h', PW)
            best, best_row = m2.max(2), m2.argmax(2)  # first row holding the max
            best_col = np.take_along_axis(col_arg, best_row, axis=1)  # (C, PH, PW)
            empty = (he[r] <= hs[r])[:, None] | (we[r] <= ws[r])[None, :]  # (PH, PW)
            won = np.isfinite(best) & ~empty[None]
            out[r] = np.where(empty[None], 0, np.where(won, best, -_FLT_MAX))
            arg[r] = np.where(won, (best_row + r0) * w + best_col + c0, -1)
        if getattr(self, "needs_input_grad", None) is not None:
            self.arg, self.batch, self.x_shape = arg, batch, x.shape
        return out

    def backward(self, g):
        n, c, h, w = self.x_shape
        hit = self.arg >= 0
        plane = self.batch[:, None, None, None] * c + np.arange(c)[None, :, None, None]
        flat = (plane * (h * w) + self.arg)[hit]
        grad = np.bincount(flat, weights=g[hit], minlength=n * c * h * w)
        return grad.reshape(self.x_shape).astype(g.dtype, copy=False), None


def roi_pool(input: Tensor, boxes, output_size, spatial_scale: float = 1.0) -> Tensor:
    """ROI max pooling (Girshick, Fast R-CNN, 2015): ``(N, C, H, W)`` -> ``(K, C, PH, PW)``.

    As torchvision's CPU kernel: box corners are ``round(coordinate * spatial_scale)``
    (halves away from zero), the box spans ``x2 - x1 + 1`` columns (at least 1), bin
    ``j`` covers columns ``x1 + [floor(j bin), ceil((j + 1) bin))`` clipped to the map,
    and each bin takes its maximum (the first one in row-major order on ties). A bin
    that falls entirely outside the map is 0 and passes no gradient.

    Args: as :func:`roi_align` (boxes ``(K, 5)`` or a list of ``(K_i, 4)``).
    """
    op = "roi_pool"
    _check_input(input, op)
    rois = _rois(boxes, input, op)
    out_hw = _output_size(output_size, op)
    return _RoIPool.apply(input, rois, out_hw, float(spatial_scale))


# ------------------------------------------------------------------------------ modules
class RoIAlign(Module):
    """:func:`roi_align` as a module: ``RoIAlign(output_size, spatial_scale, sampling_ratio,
    aligned=False)(input, boxes)``."""

    def __init__(self, output_size, spatial_scale: float, sampling_ratio: int,
                 aligned: bool = False):
        super().__init__()
        self.output_size, self.spatial_scale = output_size, spatial_scale
        self.sampling_ratio, self.aligned = sampling_ratio, aligned

    def forward(self, input: Tensor, rois) -> Tensor:
        return roi_align(input, rois, self.output_size, self.spatial_scale,
                         self.sampling_ratio, self.aligned)

    def extra_repr(self) -> str:
        return (f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
                f"sampling_ratio={self.sampling_ratio}, aligned={self.aligned}")


class RoIPool(Module):
    """:func:`roi_pool` as a module: ``RoIPool(output_size, spatial_scale)(input, boxes)``."""

    def __init__(self, output_size, spatial_scale: float):
        super().__init__()
        self.output_size, self.spatial_scale = output_size, spatial_scale

    def forward(self, input: Tensor, rois) -> Tensor:
        return roi_pool(input, rois, self.output_size, self.spatial_scale)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}, spatial_scale={self.spatial_scale}"


class PSRoIAlign(Module):
    """:func:`ps_roi_align` as a module: ``PSRoIAlign(output_size, spatial_scale,
    sampling_ratio)(input, boxes)``."""

    def __init__(self, output_size, spatial_scale: float, sampling_ratio: int):
        super().__init__()
        self.output_size, self.spatial_scale = output_size, spatial_scale
        self.sampling_ratio = sampling_ratio

    def forward(self, input: Tensor, rois) -> Tensor:
        return ps_roi_align(input, rois, self.output_size, self.spatial_scale, self.sampling_ratio)

    def extra_repr(self) -> str:
        return (f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
                f"sampling_ratio={self.sampling_ratio}")


# ---------------------------------------------------------------- multi-scale (FPN)
class LevelMapper:
    """FPN's level assignment (Lin et al., 2017, eq. 1): a box of area ``A`` goes to
    level ``k = floor(k0 + log2(sqrt(A) / s0) + eps)`` clamped to ``[k_min, k_max]``;
    calling it returns ``k - k_min`` (an index into the used feature maps), int64."""

    def __init__(self, k_min: int, k_max: int, canonical_scale: int = 224,
                 canonical_level: int = 4, eps: float = 1e-6):
        self.k_min, self.k_max = k_min, k_max
        self.s0, self.lvl0, self.eps = canonical_scale, canonical_level, eps

    def __call__(self, boxlists) -> np.ndarray:
        areas = np.concatenate([box_area(b).numpy() for b in boxlists])
        s = np.sqrt(areas)
        with np.errstate(divide="ignore", invalid="ignore"):
            lvl = np.floor(self.lvl0 + np.log2(s / self.s0) + s.dtype.type(self.eps))
        lvl = np.clip(np.nan_to_num(lvl, nan=self.k_min, neginf=self.k_min), self.k_min, self.k_max)
        return lvl.astype(np.int64) - self.k_min


def _infer_scale(feature: Tensor, original_size) -> float:
    """The feature map's scale relative to the image, rounded to a power of 2 (from the
    height, as torchvision: ``2 ** round(log2(feature_h / image_h))``)."""
    scales = [2.0 ** float(np.round(np.log2(np.float32(float(s1) / float(s2)))))
              for s1, s2 in zip(feature.shape[-2:], original_size)]
    return scales[0]


class MultiScaleRoIAlign(Module):
    """ROI Align over several feature maps (an FPN): each box is pooled from the level
    its size maps to (:class:`LevelMapper`), with that level's ``spatial_scale``.

    ``MultiScaleRoIAlign(featmap_names, output_size, sampling_ratio, *, canonical_scale=224,
    canonical_level=4)``; ``forward(x, boxes, image_shapes)`` takes an (ordered) dict of
    ``(N, C, H_l, W_l)`` feature maps (only the keys in ``featmap_names`` are used, in the
    dict's order), a list of ``(K_i, 4)`` boxes per image in image coordinates and the
    images' ``(height, width)`` list, and returns ``(sum K_i, C, PH, PW)``.

    On the first call the scales are inferred as powers of 2 from the feature and
    (largest) image sizes, and kept (as torchvision). Levels run from
    ``-log2(scale of the first map)`` to ``-log2(scale of the last)``; with one map every
    box is pooled from it.
    """

    def __init__(self, featmap_names, output_size, sampling_ratio: int, *,
                 canonical_scale: int = 224, canonical_level: int = 4):
        super().__init__()
        if isinstance(output_size, int):
            output_size = (output_size, output_size)
        self.featmap_names = list(featmap_names)
        self.sampling_ratio = sampling_ratio
        self.output_size = tuple(output_size)
        self.scales = None
        self.map_levels = None
        self.canonical_scale, self.canonical_level = canonical_scale, canonical_level

    def _setup_scales(self, features, image_shapes) -> None:
        if not image_shapes:
            raise ValueError("MultiScaleRoIAlign: image_shapes should not be empty")
        max_h = max(int(s[0]) for s in image_shapes)
        max_w = max(int(s[1]) for s in image_shapes)
        scales = [_infer_scale(f, (max_h, max_w)) for f in features]
        lvl_min = -math.log2(scales[0])
        lvl_max = -math.log2(scales[-1])
        self.scales = scales
        self.map_levels = LevelMapper(int(lvl_min), int(lvl_max), self.canonical_scale,
                                      self.canonical_level)

    def forward(self, x, boxes, image_shapes) -> Tensor:
        if not isinstance(x, (dict, OrderedDict)):
            raise TypeError(f"MultiScaleRoIAlign: x must be a dict of feature maps, got {type(x).__name__}")
        feats = [v for k, v in x.items() if k in self.featmap_names]
        if not feats:
            raise ValueError(
                f"MultiScaleRoIAlign: none of featmap_names {self.featmap_names} is in the "
                f"features {list(x)}"
            )
        if not isinstance(boxes, (list, tuple)):
            raise TypeError("MultiScaleRoIAlign: boxes must be a list of (K_i, 4) Tensors, one per image")
        if self.scales is None or self.map_levels is None:
            self._setup_scales(feats, image_shapes)
        if len(feats) == 1:
            return roi_align(feats[0], boxes, self.output_size, self.scales[0],
                             self.sampling_ratio)
        from ..creation import cat

        c = feats[0].shape[1]
        if sum(len(b) for b in boxes) == 0:
            return Tensor._make(np.zeros((0, c) + self.output_size, dtype=feats[0].dtype))
        levels = self.map_levels(boxes)
        rois = cat([b for b in boxes], dim=0)
        ids = np.concatenate([np.full(len(b), i) for i, b in enumerate(boxes)])
        k = len(ids)
        pieces, order = [], []
        for level, (feat, scale) in enumerate(zip(feats, self.scales)):
            idx = np.flatnonzero(levels == level)
            if idx.size == 0:
                continue
            level_rois = Tensor._make(np.concatenate(
                [ids[idx, None].astype(feat.dtype), rois.numpy()[idx].astype(feat.dtype)], axis=1))
            pieces.append(roi_align(feat, level_rois, self.output_size, scale, self.sampling_ratio))
            order.append(idx)
        # Put each box's row back where it came from (a differentiable gather).
        stacked = cat(pieces, dim=0)
        inverse = np.empty(k, dtype=np.int64)
        inverse[np.concatenate(order)] = np.arange(k)
        return stacked[Tensor._make(inverse)]

    def extra_repr(self) -> str:
        return (f"featmap_names={self.featmap_names}, output_size={self.output_size}, "
                f"sampling_ratio={self.sampling_ratio}")

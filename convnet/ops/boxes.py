"""Box operations with torchvision.ops' names, signatures and semantics.

Boxes are ``(x1, y1, x2, y2)`` rows of a ``(N, 4)`` Tensor with ``x1 <= x2`` and
``y1 <= y2`` (the ``xyxy`` format) unless a function says otherwise. The pairwise
measures return a ``(N, M)`` matrix for ``boxes1`` ``(N, 4)`` and ``boxes2`` ``(M, 4)``:

    IoU   = |A n B| / |A u B|
    GIoU  = IoU - (|C| - |A u B|) / |C|              C: the smallest box enclosing A and B
    DIoU  = IoU - rho^2 / (c^2 + eps)                rho: distance of the centres,
                                                     c: diagonal of C
    CIoU  = DIoU - alpha v,  v = 4/pi^2 (atan(w_A/h_A) - atan(w_B/h_B))^2,
                             alpha = v / (1 - IoU + v + eps) (a constant for autograd)

They are written with Tensor operations, so autograd differentiates them as torch does
torchvision's. Like torchvision they do not check ``x1 <= x2``: a box with ``x2 < x1``
has a negative width and enters the formulas as it is (the IoU losses reject it).

``nms`` and ``batched_nms`` return int64 index Tensors and are not differentiable.
"""
from __future__ import annotations

import math

import numpy as np

from ..autograd.function import Function
from ..creation import maximum, minimum, stack
from ..tensor import Tensor

__all__ = [
    "box_area", "box_iou", "generalized_box_iou", "distance_box_iou", "complete_box_iou",
    "box_convert", "clip_boxes_to_image", "remove_small_boxes", "nms", "batched_nms",
]

_FORMATS = ("xyxy", "xywh", "cxcywh")


# ------------------------------------------------------------------------------ checks
def _check_boxes(boxes, op: str, name: str = "boxes", any_leading: bool = False) -> Tensor:
    """A Tensor of shape ``(N, 4)`` (or ``(..., 4)`` with ``any_leading``)."""
    if not isinstance(boxes, Tensor):
        raise TypeError(f"{op}: {name} must be a Tensor, got {type(boxes).__name__}")
    ok = boxes.ndim >= 1 if any_leading else boxes.ndim == 2
    if not ok or boxes.shape[-1] != 4:
        want = "(..., 4)" if any_leading else "(N, 4)"
        raise ValueError(f"{op}: {name} must have shape {want}, got {tuple(boxes.shape)}")
    if boxes.dtype.kind not in "fiu":
        raise TypeError(f"{op}: {name} must be a float or integer Tensor, got {boxes.dtype}")
    return boxes


def _floating(boxes: Tensor) -> Tensor:
    """Integer boxes become float32 (as torch's true division of integers does)."""
    return boxes if boxes.dtype.kind == "f" else boxes.astype(np.float32)


class _Atan(Function):
    """``atan(x)``; d atan(x)/dx = 1 / (1 + x^2)."""

    def forward(self, x):
        self.x = x
        return np.arctan(x)

    def backward(self, g):
        return g / (1 + self.x * self.x)


# ---------------------------------------------------------------------- pairwise ops
def box_area(boxes: Tensor) -> Tensor:
    """Area ``(x2 - x1) (y2 - y1)`` of each box: ``(N, 4) -> (N,)`` (integer boxes give
    integer areas).

    Example: ``box_area(cn.tensor([[0., 0., 2., 3.]]))`` is ``tensor([6.])``.
    """
    _check_boxes(boxes, "box_area")
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _box_inter_union(boxes1: Tensor, boxes2: Tensor) -> tuple[Tensor, Tensor]:
    area1 = box_area(boxes1)
    area2 = box_area(boxes2)
    lt = maximum(boxes1[:, None, :2], boxes2[:, :2])  # (N, M, 2) top-left of A n B
    rb = minimum(boxes1[:, None, 2:], boxes2[:, 2:])  # (N, M, 2) bottom-right of A n B
    wh = (rb - lt).clamp(min=0)
    inter = wh[:, :, 0] * wh[:, :, 1]
    union = area1[:, None] + area2 - inter
    return inter, union


def _enclosing_wh(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """``(N, M, 2)`` width and height of the smallest box enclosing each pair."""
    lti = minimum(boxes1[:, None, :2], boxes2[:, :2])
    rbi = maximum(boxes1[:, None, 2:], boxes2[:, 2:])
    return (rbi - lti).clamp(min=0)


def _pair(boxes1, boxes2, op: str) -> tuple[Tensor, Tensor]:
    b1 = _floating(_check_boxes(boxes1, op, "boxes1"))
    b2 = _floating(_check_boxes(boxes2, op, "boxes2"))
    if b1.dtype != b2.dtype:  # the wider float wins, as in torch's type promotion
        target = np.result_type(b1.dtype, b2.dtype)
        b1, b2 = b1.astype(target), b2.astype(target)
    return b1, b2


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise intersection over union: ``(N, 4), (M, 4) -> (N, M)``.

    ``IoU = |A n B| / (|A| + |B| - |A n B|)``; two empty boxes give NaN (0/0), as in
    torchvision. Differentiable w.r.t. both sets.
    """
    boxes1, boxes2 = _pair(boxes1, boxes2, "box_iou")
    inter, union = _box_inter_union(boxes1, boxes2)
    return inter / union


def generalized_box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise generalized IoU (Rezatofighi et al., 2019): ``(N, 4), (M, 4) -> (N, M)``.

    ``GIoU = IoU - (|C| - |A u B|) / |C|`` with ``C`` the smallest enclosing box; it lies
    in ``(-1, 1]`` and keeps decreasing as disjoint boxes move apart.
    """
    boxes1, boxes2 = _pair(boxes1, boxes2, "generalized_box_iou")
    inter, union = _box_inter_union(boxes1, boxes2)
    iou = inter / union
    whi = _enclosing_wh(boxes1, boxes2)
    areai = whi[:, :, 0] * whi[:, :, 1]
    return iou - (areai - union) / areai


def _box_diou_iou(boxes1: Tensor, boxes2: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    inter, union = _box_inter_union(boxes1, boxes2)
    iou = inter / union
    whi = _enclosing_wh(boxes1, boxes2)
    diagonal_sq = whi[:, :, 0] ** 2 + whi[:, :, 1] ** 2 + eps
    x_p = (boxes1[:, 0] + boxes1[:, 2]) / 2
    y_p = (boxes1[:, 1] + boxes1[:, 3]) / 2
    x_g = (boxes2[:, 0] + boxes2[:, 2]) / 2
    y_g = (boxes2[:, 1] + boxes2[:, 3]) / 2
    centres_sq = (x_p[:, None] - x_g[None, :]) ** 2 + (y_p[:, None] - y_g[None, :]) ** 2
    return iou - centres_sq / diagonal_sq, iou


def distance_box_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-7) -> Tensor:
    """Pairwise distance IoU (Zheng et al., 2020): ``(N, 4), (M, 4) -> (N, M)``.

    ``DIoU = IoU - rho^2 / (c^2 + eps)``: ``rho`` the distance between the box centres,
    ``c`` the diagonal of the smallest enclosing box.
    """
    boxes1, boxes2 = _pair(boxes1, boxes2, "distance_box_iou")
    diou, _ = _box_diou_iou(boxes1, boxes2, eps)
    return diou


def complete_box_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-7) -> Tensor:
    """Pairwise complete IoU (Zheng et al., 2020): ``(N, 4), (M, 4) -> (N, M)``.

    ``CIoU = DIoU - alpha v`` with the aspect-ratio term
    ``v = 4/pi^2 (atan(w1/h1) - atan(w2/h2))^2`` and ``alpha = v / (1 - IoU + v + eps)``;
    as in torchvision, ``alpha`` is computed without gradient (a constant weight).
    """
    boxes1, boxes2 = _pair(boxes1, boxes2, "complete_box_iou")
    diou, iou = _box_diou_iou(boxes1, boxes2, eps)
    w_pred = boxes1[:, None, 2] - boxes1[:, None, 0]
    h_pred = boxes1[:, None, 3] - boxes1[:, None, 1]
    w_gt = boxes2[:, 2] - boxes2[:, 0]
    h_gt = boxes2[:, 3] - boxes2[:, 1]
    v = (4 / math.pi ** 2) * (_Atan.apply(w_pred / h_pred) - _Atan.apply(w_gt / h_gt)) ** 2
    alpha = (v / (1 - iou + v + eps)).detach()
    return diou - alpha * v


# ------------------------------------------------------------------- format and clip
def box_convert(boxes: Tensor, in_fmt: str, out_fmt: str) -> Tensor:
    """Convert ``(..., 4)`` boxes between ``'xyxy'`` (corners), ``'xywh'`` (top-left
    corner, width, height) and ``'cxcywh'`` (centre, width, height).

    ``xyxy -> cxcywh``: ``((x1 + x2)/2, (y1 + y2)/2, x2 - x1, y2 - y1)``;
    ``cxcywh -> xyxy``: ``(cx - w/2, cy - h/2, cx + w/2, cy + h/2)``. Differentiable.
    The same format in and out returns a copy.
    """
    for name, fmt in (("in_fmt", in_fmt), ("out_fmt", out_fmt)):
        if fmt not in _FORMATS:
            raise ValueError(
                f"box_convert: unsupported {name} {fmt!r}; supported formats are {_FORMATS} "
                "(rotated formats are not implemented)"
            )
    _check_boxes(boxes, "box_convert", any_leading=True)
    if in_fmt == out_fmt:
        return boxes.clone()
    a, b, c, d = (boxes[..., i] for i in range(4))
    if in_fmt == "xywh":  # to corners first
        a, b, c, d = a, b, a + c, b + d
    elif in_fmt == "cxcywh":
        a, b, c, d = a - 0.5 * c, b - 0.5 * d, a + 0.5 * c, b + 0.5 * d
    if out_fmt == "xywh":
        a, b, c, d = a, b, c - a, d - b
    elif out_fmt == "cxcywh":
        a, b, c, d = (a + c) / 2, (b + d) / 2, c - a, d - b
    return stack([a, b, c, d], dim=-1)


def clip_boxes_to_image(boxes: Tensor, size) -> Tensor:
    """Clamp ``(..., 4)`` xyxy boxes into an image of ``size = (height, width)``:
    x to ``[0, width]``, y to ``[0, height]``. Differentiable (zero gradient where clamped).
    """
    _check_boxes(boxes, "clip_boxes_to_image", any_leading=True)
    try:
        height, width = size
    except (TypeError, ValueError):
        raise ValueError(f"clip_boxes_to_image: size must be (height, width), got {size!r}") from None
    xs = boxes[..., 0::2].clamp(min=0, max=width)
    ys = boxes[..., 1::2].clamp(min=0, max=height)
    return stack([xs, ys], dim=boxes.ndim).reshape(tuple(boxes.shape))


def remove_small_boxes(boxes: Tensor, min_size: float) -> Tensor:
    """Indices (int64, ascending) of the boxes whose width and height are both
    ``>= min_size``. A box with a NaN side is removed."""
    _check_boxes(boxes, "remove_small_boxes")
    b = boxes.numpy()
    keep = ((b[:, 2] - b[:, 0]) >= min_size) & ((b[:, 3] - b[:, 1]) >= min_size)
    return Tensor._make(np.flatnonzero(keep).astype(np.int64))


# ------------------------------------------------------------------------------- NMS
def _nms_arrays(op: str, boxes, scores, iou_threshold) -> tuple[np.ndarray, np.ndarray]:
    _check_boxes(boxes, op)
    if not isinstance(scores, Tensor):
        raise TypeError(f"{op}: scores must be a Tensor, got {type(scores).__name__}")
    if scores.ndim != 1 or scores.shape[0] != boxes.shape[0]:
        raise ValueError(
            f"{op}: scores must have shape (N,) for boxes of shape (N, 4), got boxes "
            f"{tuple(boxes.shape)} and scores {tuple(scores.shape)}"
        )
    if not isinstance(iou_threshold, (int, float, np.number)) or isinstance(iou_threshold, bool):
        raise TypeError(f"{op}: iou_threshold must be a number, got {type(iou_threshold).__name__}")
    b, s = boxes.numpy(), scores.numpy()
    if b.dtype.kind != "f":  # torchvision's kernel is for floating boxes only
        raise TypeError(f"{op}: boxes must be floating point, got {b.dtype}")
    # torch's sort would put NaN scores first and a NaN IoU never suppresses: the result
    # would be arbitrary, so NaN is an error here.
    if np.isnan(s).any():
        raise ValueError(f"{op}: scores contain NaN (at indices {np.flatnonzero(np.isnan(s))[:5].tolist()})")
    if np.isnan(b).any():
        rows = np.flatnonzero(np.isnan(b).any(axis=1))
        raise ValueError(f"{op}: boxes contain NaN (rows {rows[:5].tolist()})")
    return b, s


def _nms_kernel(b: np.ndarray, s: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS on arrays, as torchvision's CPU kernel: order by score (descending,
    stable: equal scores keep their input order), keep the first unsuppressed box, then
    suppress every later box whose IoU with it is strictly greater than the threshold."""
    n = b.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(-s, kind="stable")
    x1, y1, x2, y2 = (b[order, i] for i in range(4))
    areas = (x2 - x1) * (y2 - y1)  # in the boxes' dtype, as the kernel
    suppressed = np.zeros(n, dtype=bool)
    keep = []
    for i in range(n):  # one vectorised pass per kept box
        if suppressed[i]:
            continue
        keep.append(order[i])
        rest = slice(i + 1, n)
        w = np.maximum(0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = inter / (areas[i] + areas[rest] - inter)
        suppressed[rest] |= iou > iou_threshold
    return np.asarray(keep, dtype=np.int64)


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Non-maximum suppression: the int64 indices of the boxes kept, by decreasing score.

    Boxes are taken in order of decreasing score; each box not yet suppressed is kept and
    suppresses every lower-ranked box whose IoU with it is *strictly greater* than
    ``iou_threshold``. Equal scores keep their input order (a stable sort, as
    torchvision's CPU kernel). IoU is computed in the boxes' dtype.

    Args:
        boxes: ``(N, 4)`` float xyxy boxes.
        scores: ``(N,)`` scores. NaN scores or boxes raise ``ValueError`` (torchvision
            would rank a NaN score first and never suppress with a NaN IoU).
        iou_threshold: discard overlaps with IoU > iou_threshold.

    Example: ``nms(boxes, scores, 0.5)`` -> ``tensor([2, 0])``.
    """
    b, s = _nms_arrays("nms", boxes, scores, iou_threshold)
    return Tensor._make(_nms_kernel(b, s, float(iou_threshold)))


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """NMS within each category of ``idxs`` (boxes of different categories never suppress
    each other): int64 indices of the kept boxes, by decreasing score (stable for ties).

    Runs :func:`nms` once per category and merges the kept indices by score; the result
    is the one torchvision's coordinate-offset trick gives (each category shifted by
    ``idx * (max_coordinate + 1)`` so that categories cannot overlap).

    Args:
        boxes: ``(N, 4)`` xyxy boxes. scores: ``(N,)``. idxs: ``(N,)`` integer categories.
    """
    b, s = _nms_arrays("batched_nms", boxes, scores, iou_threshold)
    if not isinstance(idxs, Tensor):
        raise TypeError(f"batched_nms: idxs must be a Tensor, got {type(idxs).__name__}")
    if idxs.ndim != 1 or idxs.shape[0] != b.shape[0]:
        raise ValueError(
            f"batched_nms: idxs must have shape (N,) for boxes of shape (N, 4), got boxes "
            f"{tuple(b.shape)} and idxs {tuple(idxs.shape)}"
        )
    ids = idxs.numpy()
    keep_mask = np.zeros(b.shape[0], dtype=bool)
    for cat in np.unique(ids):
        members = np.flatnonzero(ids == cat)
        keep_mask[members[_nms_kernel(b[members], s[members], float(iou_threshold))]] = True
    kept = np.flatnonzero(keep_mask)
    # Ascending indices + a stable sort by descending score = the global stable order.
    return Tensor._make(kept[np.argsort(-s[kept], kind="stable")].astype(np.int64))

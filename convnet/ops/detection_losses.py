"""Detection losses with torchvision.ops' names, signatures and defaults.

* :func:`sigmoid_focal_loss` (Lin et al., RetinaNet, 2017): binary cross-entropy scaled by
  ``(1 - p_t)^gamma`` so that the many easy negatives of a dense detector stop dominating.
* :func:`generalized_box_iou_loss` (Rezatofighi et al., 2019), :func:`distance_box_iou_loss`
  and :func:`complete_box_iou_loss` (Zheng et al., 2020): ``1 - (G/D/C)IoU`` of matched
  box pairs, a box-regression loss that still has a gradient when the boxes do not overlap.

All are written with Tensor operations, so they are differentiable w.r.t. both arguments.
"""
from __future__ import annotations

import math

import numpy as np

from ..functional.loss import binary_cross_entropy_with_logits
from ..creation import maximum, minimum, where
from ..tensor import Tensor
from .boxes import _Atan

__all__ = ["sigmoid_focal_loss", "generalized_box_iou_loss", "distance_box_iou_loss",
           "complete_box_iou_loss"]


def _reduce(loss: Tensor, reduction: str, op: str, empty_mean_zero: bool = False) -> Tensor:
    if reduction == "none":
        return loss
    if reduction == "mean":
        if empty_mean_zero and loss.numel() == 0:  # torchvision: 0.0 * sum, not NaN
            return 0.0 * loss.sum()
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    raise ValueError(
        f"{op}: invalid value for reduction: {reduction!r}; supported reduction modes are "
        "'none', 'mean', 'sum'"
    )


def sigmoid_focal_loss(inputs: Tensor, targets: Tensor, alpha: float = 0.25, gamma: float = 2,
                       reduction: str = "none") -> Tensor:
    """Focal loss on logits (RetinaNet):

        p = sigmoid(x),  ce = BCE-with-logits(x, y),  p_t = p y + (1 - p)(1 - y)
        loss = ce (1 - p_t)^gamma,  times alpha_t = alpha y + (1 - alpha)(1 - y) if alpha >= 0

    Args:
        inputs: logits of any shape. targets: same shape, 0/1 (soft labels work too).
        alpha: weight of the positives in ``(0, 1)``; ``-1`` (any negative) disables it.
        gamma: focusing exponent (0 gives weighted BCE).
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
    """
    op = "sigmoid_focal_loss"
    for name, t in (("inputs", inputs), ("targets", targets)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: {name} must be a Tensor, got {type(t).__name__}")
    if inputs.shape != targets.shape:
        raise ValueError(
            f"{op}: targets must have the shape of inputs, got inputs {tuple(inputs.shape)} "
            f"and targets {tuple(targets.shape)}"
        )
    if reduction not in ("none", "mean", "sum"):
        _reduce(inputs, reduction, op)  # raises the error
    if targets.dtype != inputs.dtype:
        targets = targets.astype(inputs.dtype)
    p = inputs.sigmoid()
    ce = binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * ((1 - p_t) ** gamma)
    if alpha >= 0:
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        loss = alpha_t * loss
    return _reduce(loss, reduction, op)


# --------------------------------------------------------------------------- IoU losses
def _loss_boxes(boxes1, boxes2, op: str) -> tuple[Tensor, Tensor]:
    for name, b in (("boxes1", boxes1), ("boxes2", boxes2)):
        if not isinstance(b, Tensor):
            raise TypeError(f"{op}: {name} must be a Tensor, got {type(b).__name__}")
        if b.ndim == 0 or b.shape[-1] != 4:
            raise ValueError(f"{op}: {name} must have shape (N, 4) or (4,), got {tuple(b.shape)}")
    if boxes1.shape != boxes2.shape:
        raise ValueError(
            f"{op}: boxes1 and boxes2 must hold matched pairs of the same shape, got "
            f"{tuple(boxes1.shape)} and {tuple(boxes2.shape)}"
        )
    b1 = boxes1 if boxes1.dtype.kind == "f" else boxes1.astype(np.float32)
    b2 = boxes2 if boxes2.dtype.kind == "f" else boxes2.astype(np.float32)
    for name, b in (("boxes1", b1), ("boxes2", b2)):
        a = b.numpy()
        bad = (a[..., 2] < a[..., 0]) | (a[..., 3] < a[..., 1])
        if bad.any():
            k = np.argwhere(bad)[0]
            raise ValueError(
                f"{op}: bad box in {name} at index {tuple(int(i) for i in k)}: "
                f"{a[tuple(k)].tolist()} has x2 < x1 or y2 < y1 (boxes are (x1, y1, x2, y2))"
            )
    return b1, b2


def _inter_union(b1: Tensor, b2: Tensor) -> tuple[Tensor, Tensor]:
    x1, y1, x2, y2 = (b1[..., i] for i in range(4))
    x1g, y1g, x2g, y2g = (b2[..., i] for i in range(4))
    xk1, yk1 = maximum(x1, x1g), maximum(y1, y1g)
    xk2, yk2 = minimum(x2, x2g), minimum(y2, y2g)
    overlap = (yk2.numpy() > yk1.numpy()) & (xk2.numpy() > xk1.numpy())
    inter = where(overlap, (xk2 - xk1) * (yk2 - yk1), 0.0)
    union = (x2 - x1) * (y2 - y1) + (x2g - x1g) * (y2g - y1g) - inter
    return inter, union


def _enclosing(b1: Tensor, b2: Tensor):
    return (minimum(b1[..., 0], b2[..., 0]), minimum(b1[..., 1], b2[..., 1]),
            maximum(b1[..., 2], b2[..., 2]), maximum(b1[..., 3], b2[..., 3]))


def generalized_box_iou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "none",
                             eps: float = 1e-7) -> Tensor:
    """``1 - GIoU`` of matched pairs ``boxes1[i], boxes2[i]`` (``(N, 4)`` or ``(4,)``):

        IoU = |A n B| / (|A u B| + eps),  GIoU = IoU - (|C| - |A u B|) / (|C| + eps)

    with ``C`` the smallest enclosing box. Symmetric in its arguments; in ``[0, 2)``.
    Boxes with ``x2 < x1`` or ``y2 < y1`` raise ``ValueError`` (torchvision asserts).
    """
    op = "generalized_box_iou_loss"
    b1, b2 = _loss_boxes(boxes1, boxes2, op)
    inter, union = _inter_union(b1, b2)
    iou = inter / (union + eps)
    xc1, yc1, xc2, yc2 = _enclosing(b1, b2)
    area_c = (xc2 - xc1) * (yc2 - yc1)
    loss = 1 - (iou - (area_c - union) / (area_c + eps))
    return _reduce(loss, reduction, op, empty_mean_zero=True)


def _diou_loss_and_iou(b1: Tensor, b2: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    inter, union = _inter_union(b1, b2)
    iou = inter / (union + eps)
    xc1, yc1, xc2, yc2 = _enclosing(b1, b2)
    diagonal_sq = (xc2 - xc1) ** 2 + (yc2 - yc1) ** 2 + eps
    x_p, y_p = (b1[..., 2] + b1[..., 0]) / 2, (b1[..., 3] + b1[..., 1]) / 2
    x_g, y_g = (b2[..., 0] + b2[..., 2]) / 2, (b2[..., 1] + b2[..., 3]) / 2
    centres_sq = (x_p - x_g) ** 2 + (y_p - y_g) ** 2
    return 1 - iou + centres_sq / diagonal_sq, iou


def distance_box_iou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "none",
                          eps: float = 1e-7) -> Tensor:
    """``1 - DIoU`` of matched pairs: ``1 - IoU + rho^2 / (c^2 + eps)`` (``rho`` the
    distance of the centres, ``c`` the enclosing box's diagonal; IoU with ``+ eps`` in
    the union). Bad boxes raise ``ValueError`` as in :func:`generalized_box_iou_loss`."""
    op = "distance_box_iou_loss"
    b1, b2 = _loss_boxes(boxes1, boxes2, op)
    loss, _ = _diou_loss_and_iou(b1, b2, eps)
    return _reduce(loss, reduction, op, empty_mean_zero=True)


def complete_box_iou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "none",
                          eps: float = 1e-7) -> Tensor:
    """``1 - CIoU`` of matched pairs: the DIoU loss plus ``alpha v`` with
    ``v = 4/pi^2 (atan(w_gt/h_gt) - atan(w/h))^2`` and ``alpha = v / (1 - IoU + v + eps)``
    held constant for autograd (as torchvision). ``boxes2`` plays the ground truth."""
    op = "complete_box_iou_loss"
    b1, b2 = _loss_boxes(boxes1, boxes2, op)
    diou_loss, iou = _diou_loss_and_iou(b1, b2, eps)
    w_pred, h_pred = b1[..., 2] - b1[..., 0], b1[..., 3] - b1[..., 1]
    w_gt, h_gt = b2[..., 2] - b2[..., 0], b2[..., 3] - b2[..., 1]
    v = (4 / math.pi ** 2) * (_Atan.apply(w_gt / h_gt) - _Atan.apply(w_pred / h_pred)) ** 2
    alpha = (v / (1 - iou + v + eps)).detach()
    return _reduce(diou_loss + alpha * v, reduction, op, empty_mean_zero=True)

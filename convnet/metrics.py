"""Detection metrics: COCO mean average precision, computed as ``pycocotools``' COCOeval does.

``mean_average_precision(predictions, targets)`` takes torchmetrics' ``MeanAveragePrecision``
input format (one dict per image) and returns COCO's numbers. The steps, per class and image:

1. Detections are sorted by score, highest first (a *stable* sort, so equal scores keep their
   input order, as COCOeval's mergesort), and only the first ``max(max_detection_thresholds)``
   are kept.
2. Greedy matching, separately for each IoU threshold ``t``: each detection in score order
   takes the still-unmatched ground truth with the highest IoU ``>= t`` (the later one on an IoU
   tie). Ground truths outside the area range being scored are "ignored": a detection matched
   to one (only possible when no regular ground truth qualifies) counts neither as a true nor
   a false positive, and unmatched detections whose own area is outside the range are ignored.
3. Over all images (in input order), detections are sorted by score again (stable); cumulative
   TP / FP give recall ``TP / #gt`` and precision ``TP / (TP + FP)``. Precision is made
   non-increasing from the right and read at the 101 recall points ``0, 0.01, ..., 1`` (the
   first detection whose recall reaches each point; 0 past the last one). AP is the mean of
   those 101 values; recall at ``max_det`` is the final recall.

'map' averages AP over IoU 0.50:0.05:0.95 and over the classes that have ground truth; entries
COCO leaves at -1 (a class without ground truth in that area range) are left out of the mean,
and a number with nothing to average is -1. Areas are ``w * h`` of the boxes (COCO's "area" of
a box annotation): small ``<= 32^2``, medium ``32^2..96^2``, large ``>= 96^2`` (both ends
inclusive, as COCOeval).

Not implemented: crowd annotations (``iscrowd``; a target carrying a non-zero ``iscrowd`` is
rejected rather than scored differently from COCO) and segmentation masks.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np

__all__ = ["mean_average_precision", "box_iou_coco"]

# COCOeval's parameters, built with the same expressions so the thresholds are bit-identical
_IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
_REC_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
_AREA_RANGES = {"all": (0.0, 1e5 ** 2), "small": (0.0, 32.0 ** 2),
                "medium": (32.0 ** 2, 96.0 ** 2), "large": (96.0 ** 2, 1e5 ** 2)}


def _array(x, what: str, dtype=np.float64) -> np.ndarray:
    if hasattr(x, "numpy") and not isinstance(x, np.ndarray):
        x = x.numpy()
    try:
        return np.asarray(x, dtype=dtype)
    except (TypeError, ValueError) as e:
        raise TypeError(f"mean_average_precision: {what} must be numeric, got {type(x).__name__}") from e


def _to_xywh(boxes: np.ndarray, box_format: str) -> np.ndarray:
    if box_format == "xyxy":
        return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
    if box_format == "xywh":
        return boxes.copy()
    # cxcywh
    return np.concatenate([boxes[:, :2] - 0.5 * boxes[:, 2:], boxes[:, 2:]], axis=1)


def _read(item, i: int, kind: str, box_format: str):
    if not isinstance(item, dict):
        raise TypeError(f"mean_average_precision: {kind}[{i}] must be a dict with 'boxes' and "
                        f"'labels'{' and scores' if kind == 'predictions' else ''}, got {type(item).__name__}")
    keys = ("boxes", "scores", "labels") if kind == "predictions" else ("boxes", "labels")
    for k in keys:
        if k not in item:
            raise ValueError(f"mean_average_precision: {kind}[{i}] has no {k!r}")
    boxes = _array(item["boxes"], f"{kind}[{i}]['boxes']")
    if boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"mean_average_precision: {kind}[{i}]['boxes'] must have shape (N, 4), "
                         f"got {boxes.shape}")
    labels = _array(item["labels"], f"{kind}[{i}]['labels']").reshape(-1)
    if labels.shape[0] != boxes.shape[0]:
        raise ValueError(f"mean_average_precision: {kind}[{i}] has {boxes.shape[0]} boxes but "
                         f"{labels.shape[0]} labels")
    if np.any(labels != np.round(labels)) or not np.all(np.isfinite(labels)):
        raise ValueError(f"mean_average_precision: {kind}[{i}]['labels'] must be integers")
    if not np.all(np.isfinite(boxes)):
        raise ValueError(f"mean_average_precision: {kind}[{i}]['boxes'] contains NaN or inf")
    xywh = _to_xywh(boxes, box_format)
    if np.any(xywh[:, 2:] < 0):
        bad = int(np.nonzero((xywh[:, 2:] < 0).any(axis=1))[0][0])
        raise ValueError(f"mean_average_precision: {kind}[{i}]['boxes'][{bad}] = {boxes[bad].tolist()} "
                         f"has negative width or height (box_format={box_format!r})")
    out = {"boxes": xywh, "labels": labels.astype(np.int64)}
    if kind == "predictions":
        scores = _array(item["scores"], f"{kind}[{i}]['scores']").reshape(-1)
        if scores.shape[0] != boxes.shape[0]:
            raise ValueError(f"mean_average_precision: predictions[{i}] has {boxes.shape[0]} boxes but "
                             f"{scores.shape[0]} scores")
        if np.isnan(scores).any():
            raise ValueError(f"mean_average_precision: predictions[{i}]['scores'] contains NaN")
        out["scores"] = scores
    elif "iscrowd" in item and np.any(_array(item["iscrowd"], f"targets[{i}]['iscrowd']") != 0):
        raise ValueError(f"mean_average_precision: targets[{i}] has crowd annotations (iscrowd != 0), "
                         "which are not supported")
    return out


def box_iou_coco(dt: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """IoU ``(D, G)`` between ``(x, y, w, h)`` boxes, computed as pycocotools' ``bbIou``
    (right edge ``x + w``; no +1; 0 where the boxes do not overlap)."""
    iw = np.minimum(dt[:, None, 0] + dt[:, None, 2], gt[None, :, 0] + gt[None, :, 2]) \
        - np.maximum(dt[:, None, 0], gt[None, :, 0])
    ih = np.minimum(dt[:, None, 1] + dt[:, None, 3], gt[None, :, 1] + gt[None, :, 3]) \
        - np.maximum(dt[:, None, 1], gt[None, :, 1])
    overlap = (iw > 0) & (ih > 0)
    inter = np.where(overlap, iw * ih, 0.0)
    union = (dt[:, 2] * dt[:, 3])[:, None] + (gt[:, 2] * gt[:, 3])[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(overlap, inter / np.where(overlap, union, 1.0), 0.0)


def _best(cand: np.ndarray, iou_row: np.ndarray):
    """Per threshold row of ``cand`` (T, G): the candidate with the highest IoU, the last on
    ties (COCOeval replaces its best match when a later one is not worse). -1 if none."""
    g = cand.shape[1]
    scored = np.where(cand, iou_row[None, :], -np.inf)
    last = g - 1 - np.argmax(scored[:, ::-1], axis=1)
    return np.where(cand.any(axis=1), last, -1)


def _evaluate_image(ious, gt_area, dt_area, thresholds, area_range):
    """COCOeval.evaluateImg for one image, class and area range.

    ``ious`` is (D, G) with detections already in score order. Returns (dt_matched (T, D),
    dt_ignored (T, D), gt_ignored (G,))."""
    d, g = ious.shape
    t = len(thresholds)
    lo, hi = area_range
    gt_ig = (gt_area < lo) | (gt_area > hi)
    gt_matched = np.zeros((t, g), dtype=bool)
    dt_matched = np.zeros((t, d), dtype=bool)
    dt_ig = np.zeros((t, d), dtype=bool)
    if d and g:
        thr = np.minimum(thresholds, 1 - 1e-10)[:, None]              # (T, 1)
        rows = np.arange(t)
        for j in range(d):
            ok = ~gt_matched & (ious[j][None, :] >= thr)                 # (T, G)
            m = _best(ok & ~gt_ig[None, :], ious[j])                     # regular ground truths first
            m = np.where(m >= 0, m, _best(ok & gt_ig[None, :], ious[j]))  # else an ignored one
            hit = m >= 0
            gt_matched[rows[hit], m[hit]] = True
            dt_matched[hit, j] = True
            dt_ig[hit, j] = gt_ig[m[hit]]
    outside = (dt_area < lo) | (dt_area > hi)
    dt_ig |= ~dt_matched & outside[None, :]
    return dt_matched, dt_ig, gt_ig


def _mean_valid(x: np.ndarray) -> float:
    valid = x[x > -1]
    return float(np.mean(valid)) if valid.size else -1.0


def mean_average_precision(predictions: Sequence[dict], targets: Sequence[dict],
                           iou_thresholds: Optional[Sequence[float]] = None,
                           rec_thresholds: Optional[Sequence[float]] = None,
                           max_detection_thresholds: Optional[Sequence[int]] = None,
                           box_format: str = "xyxy",
                           class_metrics: bool = True) -> Dict[str, object]:
    """COCO mean average precision and recall of box detections (COCOeval's numbers).

    Args:
        predictions: one dict per image: ``boxes`` ``(N, 4)``, ``scores`` ``(N,)``, ``labels``
            ``(N,)`` integer class ids (Tensors, arrays or lists).
        targets: one dict per image: ``boxes`` ``(M, 4)`` and ``labels`` ``(M,)``.
        iou_thresholds: default ``0.50:0.05:0.95`` (10 values).
        rec_thresholds: default the 101 points ``0:0.01:1``.
        max_detection_thresholds: detections kept per image and class for recall, default
            ``(1, 10, 100)``; AP uses the last.
        box_format: ``'xyxy'`` (default), ``'xywh'`` or ``'cxcywh'``.
        class_metrics: also return per-class AP and recall.

    Returns:
        a dict of floats: ``map`` (AP averaged over IoU thresholds and classes), ``map_50``,
        ``map_75`` (-1 if that IoU is not among the thresholds), ``map_small``,
        ``map_medium``, ``map_large``, ``mar_<k>`` for each max-detection threshold,
        ``mar_small``, ``mar_medium``, ``mar_large``; with ``class_metrics``, ``classes`` (the
        sorted class ids found in predictions or targets), ``map_per_class`` and
        ``mar_<last>_per_class`` (lists in the order of ``classes``). A value is -1 where COCO
        reports -1: nothing to average (no ground truth of that class / area range).

    Raises:
        ValueError for different numbers of images, boxes that are not ``(N, 4)``, negative
        widths or heights, NaN scores or boxes, or crowd annotations.

    Examples:
        >>> pred = [{"boxes": [[0, 0, 10, 10]], "scores": [0.9], "labels": [1]}]
        >>> gt = [{"boxes": [[1, 0, 10, 10]], "labels": [1]}]
        >>> round(mean_average_precision(pred, gt)["map_50"], 6)   # IoU 0.9: AP 1 up to 0.9 IoU
        1.0
    """
    if isinstance(predictions, dict) or isinstance(targets, dict):
        raise TypeError("mean_average_precision: predictions and targets must be lists of dicts, "
                        "one per image")
    predictions, targets = list(predictions), list(targets)
    if len(predictions) != len(targets):
        raise ValueError(f"mean_average_precision: {len(predictions)} predictions but {len(targets)} "
                         "targets; give one dict per image in each")
    if box_format not in ("xyxy", "xywh", "cxcywh"):
        raise ValueError(f"mean_average_precision: box_format must be 'xyxy', 'xywh' or 'cxcywh', "
                         f"got {box_format!r}")
    iou_thr = _IOU_THRESHOLDS if iou_thresholds is None else np.asarray(iou_thresholds, dtype=np.float64)
    rec_thr = _REC_THRESHOLDS if rec_thresholds is None else np.asarray(rec_thresholds, dtype=np.float64)
    max_dets = sorted(int(m) for m in (max_detection_thresholds or (1, 10, 100)))
    if iou_thr.ndim != 1 or iou_thr.size == 0 or rec_thr.ndim != 1 or rec_thr.size == 0 or not max_dets:
        raise ValueError("mean_average_precision: iou_thresholds, rec_thresholds and "
                         "max_detection_thresholds must be non-empty 1-D sequences")
    if min(max_dets) < 1:
        raise ValueError(f"mean_average_precision: max_detection_thresholds must be >= 1, got {max_dets}")

    preds = [_read(p, i, "predictions", box_format) for i, p in enumerate(predictions)]
    gts = [_read(t, i, "targets", box_format) for i, t in enumerate(targets)]
    classes = sorted(set(np.concatenate([x["labels"] for x in preds + gts] + [np.zeros(0, np.int64)]).tolist()))
    areas = list(_AREA_RANGES.values())
    t_n, r_n, k_n, a_n, m_n = len(iou_thr), len(rec_thr), len(classes), len(areas), len(max_dets)
    precision = -np.ones((t_n, r_n, k_n, a_n, m_n))
    recall = -np.ones((t_n, k_n, a_n, m_n))
    top = max_dets[-1]

    for k, c in enumerate(classes):
        # per image: detections of class c in score order (stable), IoUs with its ground truths
        per_image = []
        for p, g in zip(preds, gts):
            dsel, gsel = p["labels"] == c, g["labels"] == c
            if not dsel.any() and not gsel.any():
                continue
            order = np.argsort(-p["scores"][dsel], kind="mergesort")[:top]
            dt, scores = p["boxes"][dsel][order], p["scores"][dsel][order]
            gt = g["boxes"][gsel]
            per_image.append((scores, dt[:, 2] * dt[:, 3], gt[:, 2] * gt[:, 3], box_iou_coco(dt, gt)))
        if not per_image:
            continue
        for a, area_range in enumerate(areas):
            evals = [(s,) + _evaluate_image(iou, g_area, d_area, iou_thr, area_range)
                     for s, d_area, g_area, iou in per_image]
            num_gt = sum(int(np.count_nonzero(~e[3])) for e in evals)
            if num_gt == 0:
                continue                                     # COCO leaves -1
            for m, max_det in enumerate(max_dets):
                scores = np.concatenate([e[0][:max_det] for e in evals])
                order = np.argsort(-scores, kind="mergesort")
                matched = np.concatenate([e[1][:, :max_det] for e in evals], axis=1)[:, order]
                ignored = np.concatenate([e[2][:, :max_det] for e in evals], axis=1)[:, order]
                tp = np.cumsum(matched & ~ignored, axis=1).astype(np.float64)
                fp = np.cumsum(~matched & ~ignored, axis=1).astype(np.float64)
                nd = tp.shape[1]
                if nd == 0:
                    recall[:, k, a, m] = 0.0
                    precision[:, :, k, a, m] = 0.0
                    continue
                rc = tp / num_gt
                pr = tp / (fp + tp + np.spacing(1))
                recall[:, k, a, m] = rc[:, -1]
                pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]   # non-increasing envelope
                for t in range(t_n):
                    idx = np.searchsorted(rc[t], rec_thr, side="left")
                    precision[t, :, k, a, m] = np.where(idx < nd, pr[t, np.minimum(idx, nd - 1)], 0.0)

    a_all = 0
    m_last = m_n - 1
    out: Dict[str, object] = {"map": _mean_valid(precision[:, :, :, a_all, m_last])}
    for name, value in (("map_50", 0.5), ("map_75", 0.75)):
        t = np.nonzero(iou_thr == value)[0]
        out[name] = _mean_valid(precision[t][:, :, :, a_all, m_last]) if t.size else -1.0
    for a, name in enumerate(_AREA_RANGES):
        if name != "all":
            out[f"map_{name}"] = _mean_valid(precision[:, :, :, a, m_last])
    for m, max_det in enumerate(max_dets):
        out[f"mar_{max_det}"] = _mean_valid(recall[:, :, a_all, m])
    for a, name in enumerate(_AREA_RANGES):
        if name != "all":
            out[f"mar_{name}"] = _mean_valid(recall[:, :, a, m_last])
    if class_metrics:
        out["classes"] = [int(c) for c in classes]
        out["map_per_class"] = [_mean_valid(precision[:, :, k, a_all, m_last]) for k in range(k_n)]
        out[f"mar_{max_dets[-1]}_per_class"] = [_mean_valid(recall[:, k, a_all, m_last])
                                               for k in range(k_n)]
    return out

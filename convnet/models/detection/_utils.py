"""Training-time helpers shared by anchor-based detectors (torchvision's ``detection._utils``).

* :class:`BoxCoder` turns a box into regression targets relative to a reference box (an anchor
  or a proposal) and back (R-CNN's parametrisation, Girshick et al. 2014, appendix C).
* :class:`Matcher` assigns each anchor / proposal to a ground-truth box by IoU thresholds;
  :class:`SSDMatcher` adds SSD's "every ground truth keeps its best anchor".
* :class:`BalancedPositiveNegativeSampler` draws a fixed-size minibatch of anchors with at most
  a given fraction of positives (Faster R-CNN's 256 anchors, 1:1).
"""
from __future__ import annotations

import math
from typing import List, Sequence, Tuple

import numpy as np

from ... import creation as C
from ...random import generator as _global_generator
from ...tensor import Tensor

__all__ = ["BoxCoder", "Matcher", "SSDMatcher", "BalancedPositiveNegativeSampler", "encode_boxes"]


def _tensor(x, op: str, name: str) -> Tensor:
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (np.ndarray, list, tuple)):
        return C.as_tensor(np.asarray(x))
    raise TypeError(f"{op}: {name} must be a Tensor, got {type(x).__name__}")


def _boxes(x, op: str, name: str) -> Tensor:
    t = _tensor(x, op, name)
    if t.ndim != 2 or t.shape[1] != 4:
        raise ValueError(f"{op}: {name} must have shape (N, 4), got {tuple(t.shape)}")
    if t.dtype.kind != "f":
        t = t.float()
    return t


# ------------------------------------------------------------------------------------- coder
def encode_boxes(reference_boxes: Tensor, proposals: Tensor, weights) -> Tensor:
    """Regression targets ``(N, 4)`` of ``reference_boxes`` (the targets) w.r.t. ``proposals``.

    With ``w = x2 - x1``, ``c_x = x1 + w / 2`` (same for y) for the proposal ``p`` and target ``g``::

        dx = wx (c_x^g - c_x^p) / w^p      dw = ww log(w^g / w^p)
        dy = wy (c_y^g - c_y^p) / h^p      dh = wh log(h^g / h^p)
    """
    wx, wy, ww, wh = (float(w) for w in weights)
    ex_w = proposals[:, 2:3] - proposals[:, 0:1]
    ex_h = proposals[:, 3:4] - proposals[:, 1:2]
    ex_cx = proposals[:, 0:1] + 0.5 * ex_w
    ex_cy = proposals[:, 1:2] + 0.5 * ex_h
    gt_w = reference_boxes[:, 2:3] - reference_boxes[:, 0:1]
    gt_h = reference_boxes[:, 3:4] - reference_boxes[:, 1:2]
    gt_cx = reference_boxes[:, 0:1] + 0.5 * gt_w
    gt_cy = reference_boxes[:, 1:2] + 0.5 * gt_h
    dx = wx * (gt_cx - ex_cx) / ex_w
    dy = wy * (gt_cy - ex_cy) / ex_h
    dw = ww * (gt_w / ex_w).log()
    dh = wh * (gt_h / ex_h).log()
    return C.cat([dx, dy, dw, dh], dim=1)


class BoxCoder:
    """Encode boxes as offsets ``(dx, dy, dw, dh)`` from reference boxes, and decode them back.

    Args:
        weights: ``(wx, wy, ww, wh)`` multiplying the four targets (torchvision's Faster R-CNN box
            head uses ``(10, 10, 5, 5)``, its RPN and RetinaNet ``(1, 1, 1, 1)``). Default
            ``(1, 1, 1, 1)`` (torchvision has no default).
        bbox_xform_clip: ``dw`` and ``dh`` are clamped to at most this before ``exp`` when
            decoding, so a wild prediction cannot overflow. Default ``log(1000 / 16)``.

    Decoding, for a reference box of width ``w``, height ``h``, centre ``(c_x, c_y)``::

        c'_x = dx / wx * w + c_x        w' = exp(min(dw / ww, clip)) * w
        x1' = c'_x - w' / 2             x2' = c'_x + w' / 2              (no +1, as torchvision)

    Both directions use Tensor operations, so they are differentiable (decode w.r.t.
    ``rel_codes``; the clamp passes no gradient where it is active).
    """

    def __init__(self, weights: Tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0),
                 bbox_xform_clip: float = math.log(1000.0 / 16)) -> None:
        weights = tuple(float(w) for w in weights)
        if len(weights) != 4 or any(not math.isfinite(w) or w == 0 for w in weights):
            raise ValueError(f"BoxCoder: weights must be 4 finite non-zero numbers, got {weights}")
        self.weights = weights
        self.bbox_xform_clip = float(bbox_xform_clip)

    def __repr__(self) -> str:
        return f"BoxCoder(weights={self.weights}, bbox_xform_clip={self.bbox_xform_clip})"

    def encode(self, reference_boxes: Sequence[Tensor], proposals: Sequence[Tensor]) -> Tuple[Tensor, ...]:
        """Per-image :meth:`encode_single`: lists of ``(N_i, 4)`` in, a tuple of ``(N_i, 4)`` out."""
        if not isinstance(reference_boxes, (list, tuple)) or not isinstance(proposals, (list, tuple)):
            raise TypeError("BoxCoder.encode: reference_boxes and proposals must be lists of Tensors "
                            "(one per image); use encode_single for one Tensor")
        if len(reference_boxes) != len(proposals):
            raise ValueError(f"BoxCoder.encode: {len(reference_boxes)} images of reference_boxes but "
                             f"{len(proposals)} of proposals")
        ref = [_boxes(b, "BoxCoder.encode", f"reference_boxes[{i}]") for i, b in enumerate(reference_boxes)]
        pro = [_boxes(b, "BoxCoder.encode", f"proposals[{i}]") for i, b in enumerate(proposals)]
        counts = [int(b.shape[0]) for b in ref]
        targets = self.encode_single(C.cat(ref, dim=0), C.cat(pro, dim=0))
        return tuple(targets.split(counts, 0))

    def encode_single(self, reference_boxes: Tensor, proposals: Tensor) -> Tensor:
        """Targets ``(N, 4)`` that move ``proposals`` ``(N, 4)`` onto ``reference_boxes`` ``(N, 4)``.

        The result has ``reference_boxes``' dtype. Boxes of zero width or height give inf/NaN,
        as in torchvision.
        """
        ref = _boxes(reference_boxes, "BoxCoder.encode_single", "reference_boxes")
        pro = _boxes(proposals, "BoxCoder.encode_single", "proposals")
        if ref.shape[0] != pro.shape[0]:
            raise ValueError(f"BoxCoder.encode_single: reference_boxes {tuple(ref.shape)} and proposals "
                             f"{tuple(pro.shape)} must hold the same number of boxes")
        if pro.dtype != ref.dtype:
            pro = pro.to(ref.dtype)
        with np.errstate(divide="ignore", invalid="ignore"):
            return encode_boxes(ref, pro, self.weights)

    def decode(self, rel_codes: Tensor, boxes: Sequence[Tensor]) -> Tensor:
        """Decode ``rel_codes`` ``(sum N_i, 4k)`` against the per-image ``boxes`` list.

        Returns ``(sum N_i, k, 4)`` (``k`` boxes per reference box, e.g. one per class).
        """
        if not isinstance(boxes, (list, tuple)):
            raise TypeError("BoxCoder.decode: boxes must be a list of (N_i, 4) Tensors, one per image; "
                            "use decode_single for one Tensor")
        rel_codes = _tensor(rel_codes, "BoxCoder.decode", "rel_codes")
        refs = [_boxes(b, "BoxCoder.decode", f"boxes[{i}]") for i, b in enumerate(boxes)]
        box_sum = sum(int(b.shape[0]) for b in refs)
        if not refs:
            raise ValueError("BoxCoder.decode: boxes is an empty list")
        if box_sum > 0:
            if rel_codes.numel() % (4 * box_sum):
                raise ValueError(f"BoxCoder.decode: rel_codes of shape {tuple(rel_codes.shape)} do not "
                                 f"hold a multiple of 4 numbers for each of the {box_sum} boxes")
            rel_codes = rel_codes.reshape(box_sum, -1)
        pred = self.decode_single(rel_codes, C.cat(refs, dim=0))
        if box_sum > 0:
            pred = pred.reshape(box_sum, -1, 4)
        return pred

    def decode_single(self, rel_codes: Tensor, boxes: Tensor) -> Tensor:
        """Boxes ``(N, 4k)`` from offsets ``rel_codes`` ``(N, 4k)`` and reference ``boxes`` ``(N, 4)``.

        The result has ``rel_codes``' dtype.
        """
        op = "BoxCoder.decode_single"
        rel_codes = _tensor(rel_codes, op, "rel_codes")
        if rel_codes.ndim != 2 or rel_codes.shape[1] % 4:
            raise ValueError(f"{op}: rel_codes must have shape (N, 4k), got {tuple(rel_codes.shape)}")
        boxes = _boxes(boxes, op, "boxes")
        if rel_codes.shape[0] != boxes.shape[0]:
            raise ValueError(f"{op}: rel_codes {tuple(rel_codes.shape)} and boxes {tuple(boxes.shape)} "
                             "must have the same number of rows")
        if rel_codes.dtype.kind != "f":
            rel_codes = rel_codes.float()
        boxes = boxes.to(rel_codes.dtype)
        widths = boxes[:, 2:3] - boxes[:, 0:1]                       # (N, 1): broadcast over k
        heights = boxes[:, 3:4] - boxes[:, 1:2]
        ctr_x = boxes[:, 0:1] + 0.5 * widths
        ctr_y = boxes[:, 1:2] + 0.5 * heights
        wx, wy, ww, wh = self.weights
        dx = rel_codes[:, 0::4] / wx
        dy = rel_codes[:, 1::4] / wy
        dw = (rel_codes[:, 2::4] / ww).clamp(max=self.bbox_xform_clip)   # keep exp() finite
        dh = (rel_codes[:, 3::4] / wh).clamp(max=self.bbox_xform_clip)
        pred_cx = dx * widths + ctr_x
        pred_cy = dy * heights + ctr_y
        half_w = 0.5 * (dw.exp() * widths)
        half_h = 0.5 * (dh.exp() * heights)
        pred = C.stack([pred_cx - half_w, pred_cy - half_h, pred_cx + half_w, pred_cy + half_h], dim=2)
        return pred.flatten(1)                                        # (N, k, 4) -> (N, 4k)


# ----------------------------------------------------------------------------------- matcher
def _quality(match_quality_matrix, op: str) -> np.ndarray:
    q = match_quality_matrix.numpy() if isinstance(match_quality_matrix, Tensor) \
        else np.asarray(match_quality_matrix)
    if q.ndim != 2:
        raise ValueError(f"{op}: match_quality_matrix must be (M ground truths, N predictions), "
                         f"got shape {q.shape}")
    if q.size == 0:
        # torchvision's message; its detectors handle images without boxes before matching
        if q.shape[0] == 0:
            raise ValueError(f"{op}: No ground-truth boxes available for one of the images during "
                             f"training (match_quality_matrix has shape {q.shape})")
        raise ValueError(f"{op}: No proposal boxes available for one of the images during training "
                         f"(match_quality_matrix has shape {q.shape})")
    if q.dtype.kind in "fc" and np.isnan(q).any():
        raise ValueError(f"{op}: match_quality_matrix contains NaN")
    return q


class Matcher:
    """Assign each prediction (anchor, proposal) to at most one ground truth.

    Args:
        high_threshold: quality ``>=`` this is a match.
        low_threshold: quality in ``[low, high)`` gives ``BETWEEN_THRESHOLDS`` (-2, ignored in
            training), below ``low`` gives ``BELOW_LOW_THRESHOLD`` (-1, background).
        allow_low_quality_matches: if True, every ground truth also gets the predictions whose
            quality with it equals its best quality (ties included): those predictions take back
            their best match even if it is below ``high_threshold`` (Faster R-CNN's RPN rule).

    ``matcher(match_quality_matrix)`` takes the ``(M, N)`` quality matrix (ground truths x
    predictions, usually IoU) and returns an ``(N,)`` int64 Tensor: a ground-truth index in
    ``[0, M)``, -1 or -2. A prediction's candidate is its best ground truth (the first on ties).

    An empty matrix (``M == 0`` or ``N == 0``) raises ValueError, as torchvision's does: a
    detector handles images without ground truth before matching (all anchors background).
    A NaN quality raises ValueError.
    """

    BELOW_LOW_THRESHOLD = -1
    BETWEEN_THRESHOLDS = -2

    def __init__(self, high_threshold: float, low_threshold: float,
                 allow_low_quality_matches: bool = False) -> None:
        if not low_threshold <= high_threshold:
            raise ValueError(f"Matcher: low_threshold ({low_threshold}) must be <= high_threshold "
                             f"({high_threshold})")
        self.high_threshold = float(high_threshold)
        self.low_threshold = float(low_threshold)
        self.allow_low_quality_matches = bool(allow_low_quality_matches)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(high_threshold={self.high_threshold}, low_threshold="
                f"{self.low_threshold}, allow_low_quality_matches={self.allow_low_quality_matches})")

    def _match(self, q: np.ndarray) -> np.ndarray:
        matches = q.argmax(axis=0).astype(np.int64)         # best ground truth, first on ties
        matched_vals = q[matches, np.arange(q.shape[1])]
        all_matches = matches.copy()
        matches[matched_vals < self.low_threshold] = self.BELOW_LOW_THRESHOLD
        between = (matched_vals >= self.low_threshold) & (matched_vals < self.high_threshold)
        matches[between] = self.BETWEEN_THRESHOLDS
        if self.allow_low_quality_matches:
            # every prediction tied at some ground truth's best quality gets its own best match back
            best_per_gt = q.max(axis=1, keepdims=True)
            preds = np.nonzero((q == best_per_gt).any(axis=0))[0]
            matches[preds] = all_matches[preds]
        return matches

    def __call__(self, match_quality_matrix) -> Tensor:
        q = _quality(match_quality_matrix, type(self).__name__)
        return Tensor._make(self._match(q))


class SSDMatcher(Matcher):
    """SSD's matcher: IoU ``>= threshold`` matches, and each ground truth's best prediction (the
    first on ties) is matched to it whatever its IoU (a later ground truth wins a shared one).
    """

    def __init__(self, threshold: float) -> None:
        super().__init__(threshold, threshold, allow_low_quality_matches=False)

    def __repr__(self) -> str:
        return f"SSDMatcher(threshold={self.high_threshold})"

    def __call__(self, match_quality_matrix) -> Tensor:
        q = _quality(match_quality_matrix, "SSDMatcher")
        matches = self._match(q)
        best_pred = q.argmax(axis=1)
        matches[best_pred] = np.arange(q.shape[0], dtype=np.int64)   # last write wins on repeats
        return Tensor._make(matches)


# ----------------------------------------------------------------------------------- sampler
class BalancedPositiveNegativeSampler:
    """Pick ``batch_size_per_image`` training examples per image, at most
    ``int(batch_size_per_image * positive_fraction)`` of them positive.

    Args:
        batch_size_per_image: examples per image (Faster R-CNN: 256 anchors, 512 ROIs).
        positive_fraction: the largest share of positives (0.5 for the RPN, 0.25 for ROI heads).

    ``sampler(matched_idxs)`` takes a list with one 1-D Tensor per image whose values are
    ``>= 1`` (positive), ``0`` (negative) or negative (ignored). Positives are drawn uniformly
    without replacement up to their quota; negatives fill the rest of the batch (fewer if there
    are not enough). Draws come from convnet's global generator, so ``convnet.manual_seed``
    makes them reproducible. Returns two lists of uint8 masks (positives, negatives), one per
    image, each shaped like its input.
    """

    def __init__(self, batch_size_per_image: int, positive_fraction: float) -> None:
        if int(batch_size_per_image) != batch_size_per_image or batch_size_per_image < 0:
            raise ValueError(f"BalancedPositiveNegativeSampler: batch_size_per_image must be a "
                             f"non-negative integer, got {batch_size_per_image}")
        if not 0.0 <= positive_fraction <= 1.0:
            raise ValueError(f"BalancedPositiveNegativeSampler: positive_fraction must be in [0, 1], "
                             f"got {positive_fraction}")
        self.batch_size_per_image = int(batch_size_per_image)
        self.positive_fraction = float(positive_fraction)

    def __repr__(self) -> str:
        return (f"BalancedPositiveNegativeSampler(batch_size_per_image={self.batch_size_per_image}, "
                f"positive_fraction={self.positive_fraction})")

    def __call__(self, matched_idxs: Sequence[Tensor]) -> Tuple[List[Tensor], List[Tensor]]:
        if isinstance(matched_idxs, Tensor) or not isinstance(matched_idxs, (list, tuple)):
            raise TypeError("BalancedPositiveNegativeSampler: matched_idxs must be a list of 1-D "
                            f"Tensors (one per image), got {type(matched_idxs).__name__}")
        rng = _global_generator()
        pos_masks, neg_masks = [], []
        for i, m in enumerate(matched_idxs):
            labels = m.numpy() if isinstance(m, Tensor) else np.asarray(m)
            if labels.ndim != 1:
                raise ValueError(f"BalancedPositiveNegativeSampler: matched_idxs[{i}] must be 1-D, "
                                 f"got shape {labels.shape}")
            positive = np.nonzero(labels >= 1)[0]
            negative = np.nonzero(labels == 0)[0]
            num_pos = min(positive.size, int(self.batch_size_per_image * self.positive_fraction))
            num_neg = min(negative.size, self.batch_size_per_image - num_pos)
            pos = positive[rng.permutation(positive.size)[:num_pos]]
            neg = negative[rng.permutation(negative.size)[:num_neg]]
            pos_mask = np.zeros(labels.shape, dtype=np.uint8)
            neg_mask = np.zeros(labels.shape, dtype=np.uint8)
            pos_mask[pos] = 1
            neg_mask[neg] = 1
            pos_masks.append(Tensor._make(pos_mask))
            neg_masks.append(Tensor._make(neg_mask))
        return pos_masks, neg_masks

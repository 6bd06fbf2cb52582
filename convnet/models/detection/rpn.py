"""The Region Proposal Network of Faster R-CNN (Ren, He, Girshick & Sun, "Faster R-CNN: Towards
Real-Time Object Detection with Region Proposal Networks", NeurIPS 2015), torchvision's API.

The idea. R-CNN and Fast R-CNN classified regions proposed by a separate, slow algorithm
(selective search). Faster R-CNN predicts the proposals with the detector's own features: a
small conv head slides over every FPN level and, for each of ``A`` anchors per cell, predicts an
*objectness* logit (object vs background, class-agnostic) and a box offset. The best-scoring
decoded anchors, after NMS, are the *proposals* that the second stage (:mod:`.roi_heads`)
classifies.

Training: anchors with IoU >= 0.7 to a ground truth are positive (and every ground truth keeps
its best anchors), IoU < 0.3 negative, in between ignored; ``batch_size_per_image`` anchors per
image are sampled with at most ``positive_fraction`` positives. Losses: binary cross-entropy
on the sampled anchors' objectness (``loss_objectness``) and a smooth-L1 (``beta = 1/9``) on the
positives' offsets, divided by the number sampled (``loss_rpn_box_reg``).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ... import functional as F
from ... import nn
from ... import ops
from ...tensor import Tensor
from ._utils import BalancedPositiveNegativeSampler, BoxCoder, Matcher
from .transform import as_array, as_tensor, concat_box_prediction_layers

__all__ = ["RPNHead", "RegionProposalNetwork"]


class RPNHead(nn.Module):
    """A conv 3x3 + ReLU shared by all levels, then two sibling 1x1 convs: ``num_anchors``
    objectness logits and ``num_anchors * 4`` box offsets per cell.

    ``forward(features)``: a list of ``(N, C, H_l, W_l)`` -> ``(objectness, deltas)``, lists of
    ``(N, A, H_l, W_l)`` and ``(N, 4A, H_l, W_l)``.
    """

    def __init__(self, in_channels: int, num_anchors: int):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(in_channels, in_channels, 3, padding=1), nn.ReLU())
        self.cls_logits = nn.Conv2d(in_channels, num_anchors, 1)
        self.bbox_pred = nn.Conv2d(in_channels, num_anchors * 4, 1)
        for m in self.modules():  # torchvision's init: N(0, 0.01), zero bias
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.constant_(m.bias, 0.0)

    def forward(self, features: Sequence[Tensor]):
        logits, deltas = [], []
        for f in features:
            t = self.conv(f)
            logits.append(self.cls_logits(t))
            deltas.append(self.bbox_pred(t))
        return logits, deltas


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -x))


class RegionProposalNetwork(nn.Module):
    """Faster R-CNN's RPN (Ren et al. 2015), torchvision's arguments and defaults.

    Args:
        anchor_generator: an :class:`AnchorGenerator`, one sizes tuple per level.
        head: an :class:`RPNHead` (or anything with its outputs).
        fg_iou_thresh (0.7), bg_iou_thresh (0.3): anchor matching thresholds.
        batch_size_per_image (256), positive_fraction (0.5): anchors sampled for the loss.
        pre_nms_top_n, post_nms_top_n: ``{'training': n, 'testing': n}``; the best
            ``pre_nms_top_n`` anchors *per level* enter NMS and the best ``post_nms_top_n``
            proposals per image leave it.
        nms_thresh (0.7): NMS within each level. score_thresh (0.0): on sigmoid objectness.

    ``forward(images, features, targets=None)`` -> ``(boxes, losses)``: a list of ``(P_i, 4)``
    proposal Tensors (constants: no gradient flows back through a proposal's coordinates, as
    in torchvision) and ``{'loss_objectness', 'loss_rpn_box_reg'}`` in training (else ``{}``).
    After a call, ``self.last_scores`` holds the proposals' objectness probabilities.
    """

    def __init__(self, anchor_generator, head: nn.Module, fg_iou_thresh: float = 0.7,
                 bg_iou_thresh: float = 0.3, batch_size_per_image: int = 256,
                 positive_fraction: float = 0.5, pre_nms_top_n: dict | None = None,
                 post_nms_top_n: dict | None = None, nms_thresh: float = 0.7,
                 score_thresh: float = 0.0):
        super().__init__()
        self.anchor_generator = anchor_generator
        self.head = head
        self.box_coder = BoxCoder(weights=(1.0, 1.0, 1.0, 1.0))
        self.proposal_matcher = Matcher(fg_iou_thresh, bg_iou_thresh, allow_low_quality_matches=True)
        self.fg_bg_sampler = BalancedPositiveNegativeSampler(batch_size_per_image, positive_fraction)
        self._pre_nms_top_n = dict(pre_nms_top_n or {"training": 2000, "testing": 1000})
        self._post_nms_top_n = dict(post_nms_top_n or {"training": 2000, "testing": 1000})
        self.nms_thresh, self.score_thresh = nms_thresh, score_thresh
        self.min_size = 1e-3
        self.last_scores: list = []

    def pre_nms_top_n(self) -> int:
        return self._pre_nms_top_n["training" if self.training else "testing"]

    def post_nms_top_n(self) -> int:
        return self._post_nms_top_n["training" if self.training else "testing"]

    def assign_targets_to_anchors(self, anchors: list, targets: list):
        """Per image: labels ``(A,)`` (1 object, 0 background, -1 ignored) and the matched
        ground-truth box of every anchor ``(A, 4)`` (zeros where unmatched)."""
        labels, matched_gt_boxes = [], []
        for anchors_i, t in zip(anchors, targets):
            gt = as_array(t["boxes"])
            n = anchors_i.shape[0]
            if gt.shape[0] == 0:  # an image without objects: every anchor is background
                labels.append(np.zeros(n, dtype=np.float32))
                matched_gt_boxes.append(np.zeros((n, 4), dtype=gt.dtype))
                continue
            matched = as_array(self.proposal_matcher(ops.box_iou(t["boxes"], anchors_i)))
            lab = (matched >= 0).astype(np.float32)
            lab[matched == Matcher.BETWEEN_THRESHOLDS] = -1.0
            labels.append(lab)
            matched_gt_boxes.append(gt[np.maximum(matched, 0)])
        return labels, matched_gt_boxes

    def filter_proposals(self, proposals: np.ndarray, objectness: np.ndarray, image_sizes: list,
                         num_anchors_per_level: list):
        """The best ``pre_nms_top_n`` anchors per level, clipped, small and low-scoring ones
        removed, NMS per level, the best ``post_nms_top_n``: ``(boxes, scores)`` lists."""
        n = proposals.shape[0]
        levels = np.repeat(np.arange(len(num_anchors_per_level)), num_anchors_per_level)
        bounds = np.cumsum([0] + list(num_anchors_per_level))
        top = []
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            k = min(self.pre_nms_top_n(), hi - lo)
            # the k largest per row, best first (torch.topk); stable for equal scores
            top.append(lo + np.argsort(-objectness[:, lo:hi], axis=1, kind="stable")[:, :k])
        top = np.concatenate(top, axis=1)
        rows = np.arange(n)[:, None]
        boxes_all, scores_all = proposals[rows, top], _sigmoid(objectness[rows, top])
        levels_all = levels[top]
        final_boxes, final_scores = [], []
        for boxes, scores, lvl, size in zip(boxes_all, scores_all, levels_all, image_sizes):
            boxes = ops.clip_boxes_to_image(as_tensor(boxes), size)
            keep = as_array(ops.remove_small_boxes(boxes, self.min_size))
            boxes, scores, lvl = as_array(boxes)[keep], scores[keep], lvl[keep]
            keep = np.flatnonzero(scores >= self.score_thresh)
            boxes, scores, lvl = boxes[keep], scores[keep], lvl[keep]
            keep = as_array(ops.batched_nms(as_tensor(boxes), as_tensor(scores), as_tensor(lvl),
                                            self.nms_thresh))[:self.post_nms_top_n()]
            final_boxes.append(boxes[keep])
            final_scores.append(scores[keep])
        return final_boxes, final_scores

    def compute_loss(self, objectness: Tensor, pred_bbox_deltas: Tensor, labels: list,
                     regression_targets: list) -> tuple[Tensor, Tensor]:
        """``objectness`` ``(N, A)``, ``pred_bbox_deltas`` ``(N, A, 4)``: BCE over the sampled
        anchors (mean) and smooth-L1 (beta 1/9, sum) over the sampled positives / number
        sampled."""
        pos_masks, neg_masks = self.fg_bg_sampler([as_tensor(lab) for lab in labels])
        pos = np.stack([as_array(m) for m in pos_masks]).astype(bool)
        sampled = pos | np.stack([as_array(m) for m in neg_masks]).astype(bool)
        pi, pa = np.nonzero(pos)
        si, sa = np.nonzero(sampled)
        num_sampled = max(1, si.size)
        targets = np.stack(regression_targets)[pi, pa]
        if pi.size:
            box_loss = F.smooth_l1_loss(pred_bbox_deltas[pi, pa],
                                        as_tensor(targets.astype(pred_bbox_deltas.dtype)),
                                        beta=1 / 9, reduction="sum") / num_sampled
        else:
            box_loss = pred_bbox_deltas.sum() * 0.0
        lab = np.stack(labels)[si, sa].astype(objectness.dtype)
        if si.size:
            obj_loss = F.binary_cross_entropy_with_logits(objectness[si, sa], as_tensor(lab))
        else:
            obj_loss = objectness.sum() * 0.0
        return obj_loss, box_loss

    def forward(self, images, features: dict, targets: list | None = None):
        features = list(features.values())
        objectness, deltas = self.head(features)
        anchors = self.anchor_generator(images, features)
        num_anchors_per_level = [o.shape[1] * o.shape[2] * o.shape[3] for o in objectness]
        objectness = concat_box_prediction_layers(objectness, 1)   # (N, A_total, 1)
        deltas = concat_box_prediction_layers(deltas, 4)           # (N, A_total, 4)
        n, a_total = objectness.shape[:2]
        objectness = objectness.reshape(n, a_total)
        # proposals are constants for the second stage: decode the detached offsets
        proposals = as_array(self.box_coder.decode(as_tensor(as_array(deltas).reshape(-1, 4)),
                                                   anchors)).reshape(n, a_total, 4)
        boxes, scores = self.filter_proposals(proposals, as_array(objectness),
                                              images.image_sizes, num_anchors_per_level)
        self.last_scores = [as_tensor(s) for s in scores]
        losses = {}
        if self.training:
            if targets is None:
                raise ValueError("RegionProposalNetwork: targets should not be None in training")
            labels, matched_gt = self.assign_targets_to_anchors(anchors, targets)
            regression_targets = [as_array(self.box_coder.encode_single(
                as_tensor(g), a)) for g, a in zip(matched_gt, anchors)]
            loss_objectness, loss_rpn_box_reg = self.compute_loss(
                objectness, deltas, labels, regression_targets)
            losses = {"loss_objectness": loss_objectness, "loss_rpn_box_reg": loss_rpn_box_reg}
        return [as_tensor(b) for b in boxes], losses

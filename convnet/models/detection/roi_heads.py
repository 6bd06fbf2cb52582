"""The second stage of Faster R-CNN (Ren et al. 2015; Fast R-CNN, Girshick 2015): classify each
proposal from features pooled inside it, and refine its box. torchvision's ``RoIHeads`` API.

Every proposal (a box from the RPN) is cut out of the FPN map that suits its size (Lin et al.
2017, FPN, eq. 1: ``k = floor(k0 + log2(sqrt(wh) / canonical_scale))``) and resampled to a
fixed ``7 x 7`` grid with *RoI Align* (He et al. 2017, Mask R-CNN: bilinear samples at exact
fractional positions, no rounding of the box to the feature grid). A small MLP (``TwoMLPHead``)
turns the grid into a vector; ``FastRCNNPredictor`` outputs ``num_classes`` logits (class 0 is
the background) and one box offset per class.

Training: proposals (plus the ground-truth boxes themselves) with IoU >= 0.5 to a ground truth
take its label, the others are background (0); ``batch_size_per_image`` are sampled with at
most ``positive_fraction`` positives. Losses: cross-entropy over the samples
(``loss_classifier``) and smooth-L1 (``beta = 1/9``) of the true class's offsets on the
positives, divided by the number of samples (``loss_box_reg``); :class:`BoxCoder` weights
``(10, 10, 5, 5)``.

Inference: softmax scores, per-class decoded boxes clipped to the image, background dropped,
``score_thresh`` and tiny boxes removed, NMS per class, the best ``detections_per_img``.
"""
from __future__ import annotations

import numpy as np

from ... import functional as F
from ... import nn
from ... import ops
from ...tensor import Tensor
from ._utils import BalancedPositiveNegativeSampler, BoxCoder, Matcher
from .transform import as_array, as_tensor

__all__ = ["TwoMLPHead", "FastRCNNPredictor", "RoIHeads", "fastrcnn_loss"]


class TwoMLPHead(nn.Module):
    """Flatten, then two fully connected layers with ReLU: ``(R, C, P, P) -> (R, representation_size)``."""

    def __init__(self, in_channels: int, representation_size: int):
        super().__init__()
        self.fc6 = nn.Linear(in_channels, representation_size)
        self.fc7 = nn.Linear(representation_size, representation_size)

    def forward(self, x: Tensor) -> Tensor:
        x = x.flatten(1)
        return F.relu(self.fc7(F.relu(self.fc6(x))))


class FastRCNNPredictor(nn.Module):
    """``cls_score``: ``num_classes`` logits (background included); ``bbox_pred``: 4 offsets per
    class. ``(R, in_channels) -> ((R, num_classes), (R, 4 * num_classes))``."""

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        self.cls_score = nn.Linear(in_channels, num_classes)
        self.bbox_pred = nn.Linear(in_channels, num_classes * 4)

    def forward(self, x: Tensor):
        x = x.flatten(1)
        return self.cls_score(x), self.bbox_pred(x)


def fastrcnn_loss(class_logits: Tensor, box_regression: Tensor, labels: np.ndarray,
                  regression_targets: np.ndarray):
    """Fast R-CNN's loss over ``R`` sampled RoIs (all images together).

    ``class_logits`` ``(R, K)``, ``box_regression`` ``(R, 4K)``, ``labels`` ``(R,)`` ints
    (0 background), ``regression_targets`` ``(R, 4)``. Returns ``(cross_entropy (mean),
    smooth_l1(beta=1/9, sum over positives of the true class's offsets) / R)``.
    """
    classification_loss = F.cross_entropy(class_logits, as_tensor(labels.astype(np.int64)))
    pos = np.flatnonzero(labels > 0)
    r = max(1, labels.size)
    if pos.size == 0:
        return classification_loss, box_regression.sum() * 0.0
    k = class_logits.shape[1]
    per_class = box_regression.reshape(labels.size, k, 4)
    box_loss = F.smooth_l1_loss(per_class[pos, labels[pos]],
                                as_tensor(regression_targets[pos].astype(box_regression.dtype)),
                                beta=1 / 9, reduction="sum") / r
    return classification_loss, box_loss


class RoIHeads(nn.Module):
    """Faster R-CNN's box branch, torchvision's arguments and defaults.

    Args:
        box_roi_pool: a :class:`convnet.ops.MultiScaleRoIAlign` (features, proposals,
            image sizes -> ``(R, C, P, P)``).
        box_head: e.g. :class:`TwoMLPHead`. box_predictor: e.g. :class:`FastRCNNPredictor`.
        fg_iou_thresh (0.5), bg_iou_thresh (0.5): proposal matching.
        batch_size_per_image (512), positive_fraction (0.25): RoIs sampled per image.
        bbox_reg_weights: BoxCoder weights (default ``(10, 10, 5, 5)``).
        score_thresh (0.05), nms_thresh (0.5), detections_per_img (100): inference.

    ``forward(features, proposals, image_shapes, targets=None)`` -> ``(detections, losses)``:
    in training ``([], {'loss_classifier', 'loss_box_reg'})``, in eval a list of
    ``{'boxes', 'scores', 'labels'}`` and ``{}``.
    """

    def __init__(self, box_roi_pool, box_head: nn.Module, box_predictor: nn.Module,
                 fg_iou_thresh: float = 0.5, bg_iou_thresh: float = 0.5,
                 batch_size_per_image: int = 512, positive_fraction: float = 0.25,
                 bbox_reg_weights=None, score_thresh: float = 0.05, nms_thresh: float = 0.5,
                 detections_per_img: int = 100):
        super().__init__()
        self.box_roi_pool = box_roi_pool
        self.box_head = box_head
        self.box_predictor = box_predictor
        self.proposal_matcher = Matcher(fg_iou_thresh, bg_iou_thresh, allow_low_quality_matches=False)
        self.fg_bg_sampler = BalancedPositiveNegativeSampler(batch_size_per_image, positive_fraction)
        self.box_coder = BoxCoder(bbox_reg_weights or (10.0, 10.0, 5.0, 5.0))
        self.score_thresh, self.nms_thresh = score_thresh, nms_thresh
        self.detections_per_img = detections_per_img

    def select_training_samples(self, proposals: list, targets: list):
        """Add the ground truths to the proposals, match, sample: per image the sampled
        proposals ``(S_i, 4)``, their labels ``(S_i,)`` and regression targets ``(S_i, 4)``."""
        matched_idxs, labels, boxes_out = [], [], []
        for props, t in zip(proposals, targets):
            gt = as_array(t["boxes"])
            gt_labels = as_array(t["labels"])
            props = np.concatenate([as_array(props), gt.astype(as_array(props).dtype)])
            boxes_out.append(props)
            if gt.shape[0] == 0:  # no objects: every proposal is background
                matched_idxs.append(np.zeros(props.shape[0], dtype=np.int64))
                labels.append(np.zeros(props.shape[0], dtype=np.int64))
                continue
            m = as_array(self.proposal_matcher(ops.box_iou(t["boxes"], as_tensor(props))))
            lab = gt_labels[np.maximum(m, 0)].astype(np.int64)
            lab[m == Matcher.BELOW_LOW_THRESHOLD] = 0
            lab[m == Matcher.BETWEEN_THRESHOLDS] = -1
            matched_idxs.append(np.maximum(m, 0))
            labels.append(lab)
        pos, neg = self.fg_bg_sampler([as_tensor(lab) for lab in labels])
        out_props, out_labels, out_targets = [], [], []
        for i, t in enumerate(targets):
            keep = np.flatnonzero(as_array(pos[i]) | as_array(neg[i]))
            props = boxes_out[i][keep]
            gt = as_array(t["boxes"])
            if gt.shape[0] == 0:
                gt = np.zeros((1, 4), dtype=props.dtype)
            matched_gt = gt[matched_idxs[i][keep]].astype(props.dtype)
            out_props.append(props)
            out_labels.append(labels[i][keep])
            out_targets.append(matched_gt)
        regression = [as_array(r) for r in self.box_coder.encode(
            [as_tensor(g) for g in out_targets], [as_tensor(p) for p in out_props])]
        return out_props, out_labels, regression

    def postprocess_detections(self, class_logits: Tensor, box_regression: Tensor,
                               proposals: list, image_shapes: list) -> list:
        k = class_logits.shape[-1]
        pred_boxes = as_array(self.box_coder.decode(box_regression.detach(),
                                                    [as_tensor(p) for p in proposals]))
        logits = as_array(class_logits)
        scores_all = np.exp(logits - logits.max(axis=1, keepdims=True))
        scores_all /= scores_all.sum(axis=1, keepdims=True)
        counts = np.cumsum([0] + [p.shape[0] for p in proposals])
        results = []
        for i, size in enumerate(image_shapes):
            boxes = as_array(ops.clip_boxes_to_image(
                as_tensor(pred_boxes[counts[i]:counts[i + 1]].reshape(-1, k, 4)), size))
            scores = scores_all[counts[i]:counts[i + 1]]
            labels = np.broadcast_to(np.arange(k), scores.shape)
            # drop the background column, one candidate per (proposal, class)
            boxes = boxes[:, 1:].reshape(-1, 4)
            scores, labels = scores[:, 1:].reshape(-1), labels[:, 1:].reshape(-1)
            keep = np.flatnonzero(scores > self.score_thresh)
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
            keep = as_array(ops.remove_small_boxes(as_tensor(boxes), 1e-2))
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
            keep = as_array(ops.batched_nms(as_tensor(boxes), as_tensor(scores),
                                            as_tensor(labels), self.nms_thresh))
            keep = keep[:self.detections_per_img]
            results.append({"boxes": as_tensor(np.ascontiguousarray(boxes[keep])),
                            "scores": as_tensor(scores[keep]),
                            "labels": as_tensor(labels[keep].astype(np.int64))})
        return results

    def forward(self, features: dict, proposals: list, image_shapes: list, targets=None):
        if self.training:
            if targets is None:
                raise ValueError("RoIHeads: targets should not be None in training")
            proposals, labels, regression_targets = self.select_training_samples(proposals, targets)
        else:
            proposals = [as_array(p) for p in proposals]
        box_features = self.box_roi_pool(features, [as_tensor(p) for p in proposals], image_shapes)
        class_logits, box_regression = self.box_predictor(self.box_head(box_features))
        if self.training:
            loss_classifier, loss_box_reg = fastrcnn_loss(
                class_logits, box_regression, np.concatenate(labels),
                np.concatenate(regression_targets))
            return [], {"loss_classifier": loss_classifier, "loss_box_reg": loss_box_reg}
        return self.postprocess_detections(class_logits, box_regression, proposals,
                                           image_shapes), {}

"""RetinaNet, a one-stage detector (Lin, Goyal, Girshick, He & Dollar, "Focal Loss for Dense
Object Detection", ICCV 2017), with torchvision's ``RetinaNet`` API.

The idea. A one-stage detector classifies *every* anchor box densely laid over the image (a few
sizes and aspect ratios at every cell of every FPN level) and regresses a box offset from each
one; there is no proposal stage. Almost all anchors are easy background, and with a plain
cross-entropy their many small losses swamp the few objects. The *focal loss*
``FL(p_t) = -alpha_t (1 - p_t)^gamma log(p_t)`` (``gamma = 2``, ``alpha = 0.25``) scales each
anchor's loss down by how well it is already classified, so training concentrates on the hard
anchors, and the classifier's last bias starts at ``-log((1 - pi) / pi)`` (``pi = 0.01``) so that
the first steps are not dominated by the background either.

Layout (as torchvision's): a backbone with an FPN (:mod:`.backbone`; levels at strides 4, 8,
16 here), then on every level the same two small subnets: a *classification subnet* (convs 3x3 +
ReLU, then ``A * K`` sigmoid logits per cell: ``K`` classes for each of ``A`` anchors) and a
*box-regression subnet* (same convs, then ``A * 4`` offsets, :class:`BoxCoder` weights 1).

Training (``model(images, targets)`` in ``train()`` mode) returns ``{'classification',
'bbox_regression'}``: anchors with IoU >= 0.5 to a ground truth are foreground (each ground
truth also keeps its best anchors), IoU < 0.4 background, in between ignored; the focal loss
is summed over foreground and background anchors and the L1 box loss over foreground anchors,
both divided by the image's number of foreground anchors, then averaged over images.
Inference (``eval()``) returns per image ``{'boxes' (D, 4), 'scores' (D,), 'labels' (D,)}``:
per level the ``topk_candidates`` scores above ``score_thresh``, decoded, clipped to the image,
then NMS per class and the best ``detections_per_img``.

Classes are as torchvision's RetinaNet: ``num_classes`` sigmoid outputs, and a target label
``c`` in ``[0, num_classes)`` trains output ``c`` (there is no background output; an anchor
is background when all its outputs are low).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ... import functional as F
from ... import nn
from ... import ops
from ...tensor import Tensor
from ..registry import InputRule, register
from ._utils import BoxCoder, Matcher
from .anchor_utils import AnchorGenerator
from .backbone import tiny_fpn_backbone
from .transform import DetectionTransform, as_array, as_tensor, concat_box_prediction_layers

__all__ = ["RetinaNet", "RetinaNetHead", "RetinaNetClassificationHead",
           "RetinaNetRegressionHead", "retinanet_tiny"]


def _subnet(in_channels: int, num_convs: int, norm: str | None) -> nn.Sequential:
    layers = []
    for _ in range(num_convs):
        layers.append(nn.Conv2d(in_channels, in_channels, 3, padding=1, bias=norm is None))
        if norm == "group":  # torchvision's RetinaNet v2 head: GroupNorm between conv and ReLU
            layers.append(nn.GroupNorm(min(8, in_channels), in_channels))
        elif norm is not None:
            raise ValueError(f"RetinaNetHead: norm must be None or 'group', got {norm!r}")
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _init_normal(module: nn.Module) -> None:
    for m in module.modules():  # the paper's init: N(0, 0.01) weights, zero biases
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, std=0.01)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0.0)


class RetinaNetClassificationHead(nn.Module):
    """``num_convs`` conv 3x3 (+ norm) + ReLU, then a conv 3x3 to ``num_anchors * num_classes``
    logits; the same weights on every level.

    ``forward(features)``: a list of ``(N, C, H_l, W_l)`` -> ``(N, sum_l H_l W_l A, K)`` logits.
    """

    def __init__(self, in_channels: int, num_anchors: int, num_classes: int,
                 prior_probability: float = 0.01, num_convs: int = 4, norm: str | None = None):
        super().__init__()
        self.conv = _subnet(in_channels, num_convs, norm)
        self.cls_logits = nn.Conv2d(in_channels, num_anchors * num_classes, 3, padding=1)
        _init_normal(self)
        # start every anchor at P(object) = prior_probability (the paper's "prior" init)
        nn.init.constant_(self.cls_logits.bias, -math.log((1 - prior_probability) / prior_probability))
        self.num_classes, self.num_anchors = num_classes, num_anchors

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        return concat_box_prediction_layers(
            [self.cls_logits(self.conv(f)) for f in features], self.num_classes)


class RetinaNetRegressionHead(nn.Module):
    """``num_convs`` conv 3x3 (+ norm) + ReLU, then a conv 3x3 to ``num_anchors * 4`` offsets.

    ``forward(features)``: a list of ``(N, C, H_l, W_l)`` -> ``(N, sum_l H_l W_l A, 4)``.
    """

    def __init__(self, in_channels: int, num_anchors: int, num_convs: int = 4,
                 norm: str | None = None):
        super().__init__()
        self.conv = _subnet(in_channels, num_convs, norm)
        self.bbox_reg = nn.Conv2d(in_channels, num_anchors * 4, 3, padding=1)
        _init_normal(self)
        self.num_anchors = num_anchors

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        return concat_box_prediction_layers([self.bbox_reg(self.conv(f)) for f in features], 4)


class RetinaNetHead(nn.Module):
    """The classification and box-regression subnets side by side.

    ``forward(features)`` -> ``{'cls_logits': (N, A_total, K), 'bbox_regression': (N, A_total, 4)}``.
    """

    def __init__(self, in_channels: int, num_anchors: int, num_classes: int,
                 num_convs: int = 4, norm: str | None = None, prior_probability: float = 0.01):
        super().__init__()
        self.classification_head = RetinaNetClassificationHead(
            in_channels, num_anchors, num_classes, prior_probability, num_convs, norm)
        self.regression_head = RetinaNetRegressionHead(in_channels, num_anchors, num_convs, norm)

    def forward(self, features: Sequence[Tensor]) -> dict:
        return {"cls_logits": self.classification_head(features),
                "bbox_regression": self.regression_head(features)}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -x))  # 1 / (1 + e^-x) without overflow warnings


class RetinaNet(nn.Module):
    """RetinaNet (Lin et al. 2017) in torchvision's form; see the module docstring.

    Args:
        backbone: returns an ``OrderedDict`` of FPN maps and has ``out_channels``.
        num_classes: sigmoid outputs per anchor; target labels lie in ``[0, num_classes)``.
        anchor_generator: an :class:`AnchorGenerator` with one sizes tuple per FPN level.
        head: default ``RetinaNetHead(backbone.out_channels, A, num_classes)``.
        proposal_matcher: default ``Matcher(fg_iou_thresh, bg_iou_thresh,
            allow_low_quality_matches=True)``.
        score_thresh (0.05), nms_thresh (0.5), detections_per_img (300),
        topk_candidates (1000): inference post-processing, as torchvision's.
        fg_iou_thresh (0.5), bg_iou_thresh (0.4): anchor matching thresholds.
        focal_alpha (0.25), focal_gamma (2.0): the focal loss.
        image_mean, image_std, size_divisible: see :class:`DetectionTransform`.
    """

    def __init__(self, backbone: nn.Module, num_classes: int, anchor_generator=None,
                 head: nn.Module | None = None, proposal_matcher=None,
                 score_thresh: float = 0.05, nms_thresh: float = 0.5,
                 detections_per_img: int = 300, fg_iou_thresh: float = 0.5,
                 bg_iou_thresh: float = 0.4, topk_candidates: int = 1000,
                 focal_alpha: float = 0.25, focal_gamma: float = 2.0,
                 image_mean: Sequence[float] | None = None, image_std: Sequence[float] | None = None,
                 size_divisible: int = 16):
        super().__init__()
        if not hasattr(backbone, "out_channels"):
            raise ValueError("RetinaNet: backbone should have an attribute out_channels (the "
                             "width of its feature maps)")
        self.backbone = backbone
        if anchor_generator is None:
            anchor_generator = AnchorGenerator(((32, 40, 50), (64, 80, 101), (128, 161, 203)),
                                               ((0.5, 1.0, 2.0),) * 3)
        if not isinstance(anchor_generator, AnchorGenerator):
            raise TypeError(f"RetinaNet: anchor_generator should be an AnchorGenerator, got "
                            f"{type(anchor_generator).__name__}")
        self.anchor_generator = anchor_generator
        if head is None:
            head = RetinaNetHead(backbone.out_channels,
                                 anchor_generator.num_anchors_per_location()[0], num_classes)
        self.head = head
        self.proposal_matcher = proposal_matcher or Matcher(
            fg_iou_thresh, bg_iou_thresh, allow_low_quality_matches=True)
        self.box_coder = BoxCoder(weights=(1.0, 1.0, 1.0, 1.0))
        self.transform = DetectionTransform(size_divisible, image_mean, image_std,
                                            num_classes=num_classes, min_label=0, name="RetinaNet")
        self.num_classes = num_classes
        self.score_thresh, self.nms_thresh = score_thresh, nms_thresh
        self.detections_per_img, self.topk_candidates = detections_per_img, topk_candidates
        self.focal_alpha, self.focal_gamma = focal_alpha, focal_gamma

    # --------------------------------------------------------------------------- training
    def compute_loss(self, targets: list, head_outputs: dict, anchors: list) -> dict:
        """The focal and L1 losses of torchvision's RetinaNet, batched over images.

        Per image ``i`` with ``F_i`` foreground anchors: ``classification_i = sum over
        non-ignored anchors and classes of FL / max(1, F_i)``, ``bbox_regression_i = sum over
        foreground anchors of |pred - encode(gt, anchor)|_1 / max(1, F_i)``; each loss is the
        mean over images. Images without boxes contribute only background anchors.
        """
        cls_logits, bbox_regression = head_outputs["cls_logits"], head_outputs["bbox_regression"]
        n, a, k = cls_logits.shape
        dtype = cls_logits.dtype
        cls_target = np.zeros((n, a, k), dtype=dtype)
        cls_weight = np.zeros((n, a, 1), dtype=dtype)
        fg_img, fg_anchor, fg_anchor_boxes, gt_boxes, fg_weight = [], [], [], [], []
        for i, (t, anchors_i) in enumerate(zip(targets, anchors)):
            boxes, labels = t["boxes"], as_array(t["labels"])
            if boxes.shape[0] == 0:
                matched = np.full(a, Matcher.BELOW_LOW_THRESHOLD, dtype=np.int64)
            else:
                matched = as_array(self.proposal_matcher(ops.box_iou(boxes, anchors_i)))
            fg = np.flatnonzero(matched >= 0)
            norm = max(1, fg.size) * n
            cls_weight[i, matched != Matcher.BETWEEN_THRESHOLDS, 0] = 1.0 / norm
            cls_target[i, fg, labels[matched[fg]]] = 1.0
            if fg.size:
                fg_img.append(np.full(fg.size, i))
                fg_anchor.append(fg)
                fg_anchor_boxes.append(as_array(anchors_i)[fg])
                gt_boxes.append(as_array(boxes)[matched[fg]])
                fg_weight.append(np.full((fg.size, 1), 1.0 / norm, dtype=dtype))
        focal = ops.sigmoid_focal_loss(cls_logits, as_tensor(cls_target), alpha=self.focal_alpha,
                                       gamma=self.focal_gamma, reduction="none")
        loss_cls = (focal * as_tensor(cls_weight)).sum()
        if fg_img:
            fi, fa = np.concatenate(fg_img), np.concatenate(fg_anchor)
            target_reg = self.box_coder.encode_single(as_tensor(np.concatenate(gt_boxes)),
                                                      as_tensor(np.concatenate(fg_anchor_boxes)))
            diff = F.l1_loss(bbox_regression[fi, fa], target_reg.detach(), reduction="none")
            loss_reg = (diff * as_tensor(np.concatenate(fg_weight))).sum()
        else:  # no object in the batch: a zero that still belongs to the graph
            loss_reg = bbox_regression.sum() * 0.0
        return {"classification": loss_cls, "bbox_regression": loss_reg}

    # -------------------------------------------------------------------------- inference
    def postprocess_detections(self, head_outputs: dict, anchors: list, image_sizes: list,
                               num_anchors_per_level: list) -> list:
        """Per image: per level keep scores > score_thresh, the best ``topk_candidates``,
        decode and clip; then class-wise NMS and the best ``detections_per_img``."""
        cls_all = as_array(head_outputs["cls_logits"])
        reg_all = as_array(head_outputs["bbox_regression"])
        k = cls_all.shape[-1]
        bounds = np.cumsum([0] + list(num_anchors_per_level))
        results = []
        for i, size in enumerate(image_sizes):
            anchors_i = as_array(anchors[i])
            boxes_l, scores_l, labels_l = [], [], []
            for lo, hi in zip(bounds[:-1], bounds[1:]):
                scores = _sigmoid(cls_all[i, lo:hi]).ravel()
                cand = np.flatnonzero(scores > self.score_thresh)
                order = np.argsort(-scores[cand], kind="stable")[:self.topk_candidates]
                idx = cand[order]
                anchor_idx = lo + idx // k
                boxes = self.box_coder.decode_single(as_tensor(reg_all[i, anchor_idx]),
                                                     as_tensor(anchors_i[anchor_idx]))
                boxes_l.append(as_array(ops.clip_boxes_to_image(boxes, size)))
                scores_l.append(scores[idx])
                labels_l.append(idx % k)
            boxes = np.concatenate(boxes_l).astype(cls_all.dtype, copy=False)
            scores = np.concatenate(scores_l).astype(cls_all.dtype, copy=False)
            labels = np.concatenate(labels_l).astype(np.int64)
            keep = as_array(ops.batched_nms(as_tensor(boxes), as_tensor(scores),
                                            as_tensor(labels), self.nms_thresh))
            keep = keep[:self.detections_per_img]
            results.append({"boxes": as_tensor(boxes[keep]), "scores": as_tensor(scores[keep]),
                            "labels": as_tensor(labels[keep])})
        return results

    def forward(self, images, targets=None):
        """Train mode: ``model(images, targets)`` -> dict of losses. Eval mode:
        ``model(images)`` -> a list of ``{'boxes', 'scores', 'labels'}``, one per image.

        ``images``: a list of ``(C, H, W)`` Tensors or an ``(N, C, H, W)`` Tensor;
        ``targets``: a list of ``{'boxes': (K, 4) xyxy, 'labels': (K,) int}`` (``K`` may be 0).
        """
        if self.training and targets is None:
            raise ValueError("RetinaNet: targets should not be None in training mode "
                             "(call model.eval() to predict)")
        images, targets = self.transform(images, targets)
        features = list(self.backbone(images.tensors).values())
        head_outputs = self.head(features)
        anchors = self.anchor_generator(images, features)
        if self.training:
            return self.compute_loss(targets, head_outputs, anchors)
        a = self.anchor_generator.num_anchors_per_location()
        per_level = [f.shape[-2] * f.shape[-1] * n for f, n in zip(features, a)]
        return self.postprocess_detections(head_outputs, anchors, images.image_sizes, per_level)


def _any_size(options: dict) -> InputRule:
    # images are zero-padded at the bottom/right to a multiple of the coarsest stride
    return InputRule(minimum=1, why="images are padded to a multiple of 16")


# The tiny model: anchors matched to the digits' ink boxes (8-33 px) on ~64x64 canvases
# (strides 4, 8, 16; see docs/detection.md for the coverage).
TINY_ANCHOR_SIZES = ((12, 16), (22, 30), (40, 54))
TINY_ASPECT_RATIOS = (1.0, 1.8)


@register("retinanet_tiny", family="Detection", builds=RetinaNet, input_rule=_any_size)
def retinanet_tiny(num_classes: int = 11, in_channels: int = 1,
                   widths: Sequence[int] = (16, 32, 48, 64, 64), fpn_channels: int = 64,
                   head_convs: int = 2, head_norm: str | None = "group",
                   anchor_sizes: Sequence[Sequence[int]] = TINY_ANCHOR_SIZES,
                   aspect_ratios: Sequence[float] = TINY_ASPECT_RATIOS,
                   score_thresh: float = 0.05, nms_thresh: float = 0.5,
                   detections_per_img: int = 100, topk_candidates: int = 1000) -> RetinaNet:
    """RetinaNet sized for 2 CPU cores and ~64x64 canvases of 8-45 px objects.

    Backbone: :class:`~.backbone.TinyBackbone` (widths 16-64) + FPN of ``fpn_channels`` at
    strides 4, 8, 16; ``head_convs`` conv layers per subnet (``head_norm='group'``: GroupNorm as
    in torchvision's RetinaNet v2, steadier from scratch); anchors ``anchor_sizes`` (one tuple
    per level) x ``aspect_ratios`` (height / width). ``num_classes`` sigmoid outputs (labels
    ``0..num_classes-1``).
    """
    sizes = tuple(tuple(int(s) for s in level) for level in anchor_sizes)
    backbone = tiny_fpn_backbone(in_channels, widths, fpn_channels=fpn_channels)
    if len(sizes) != len(backbone.body.return_stages):
        raise ValueError(f"retinanet_tiny: anchor_sizes needs one tuple per FPN level "
                         f"({len(backbone.body.return_stages)}), got {len(sizes)}")
    anchors = AnchorGenerator(sizes, (tuple(float(r) for r in aspect_ratios),) * len(sizes))
    head = RetinaNetHead(fpn_channels, anchors.num_anchors_per_location()[0], num_classes,
                         num_convs=head_convs, norm=head_norm)
    return RetinaNet(backbone, num_classes, anchor_generator=anchors, head=head,
                     score_thresh=score_thresh, nms_thresh=nms_thresh,
                     detections_per_img=detections_per_img, topk_candidates=topk_candidates)

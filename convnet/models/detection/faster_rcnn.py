"""Faster R-CNN, a two-stage detector (Ren, He, Girshick & Sun, "Faster R-CNN: Towards Real-Time
Object Detection with Region Proposal Networks", NeurIPS 2015), with an FPN (Lin et al., CVPR
2017) and RoI Align (He et al., Mask R-CNN, 2017); torchvision's ``FasterRCNN`` API.

Two stages share one backbone:

1. the **Region Proposal Network** (:mod:`.rpn`) scores every anchor as object / background
   and regresses it, keeping a few hundred *proposals* per image after NMS;
2. the **RoI heads** (:mod:`.roi_heads`) pool each proposal's features with RoI Align into a
   fixed grid, classify it into ``num_classes`` (class 0 = background) and refine its box per
   class.

Training (``model(images, targets)`` in ``train()`` mode) returns torchvision's four losses
``{'loss_classifier', 'loss_box_reg', 'loss_objectness', 'loss_rpn_box_reg'}`` (sum them to
train). Inference (``eval()``) returns per image ``{'boxes', 'scores', 'labels'}`` with labels in
``[1, num_classes)``. :meth:`FasterRCNN.proposals` gives the RPN's proposals (for recall).
"""
from __future__ import annotations

from typing import Sequence

from ... import nn
from ... import ops
from ..registry import InputRule, register
from .anchor_utils import AnchorGenerator
from .backbone import tiny_fpn_backbone
from .roi_heads import FastRCNNPredictor, RoIHeads, TwoMLPHead
from .rpn import RegionProposalNetwork, RPNHead
from .transform import DetectionTransform

__all__ = ["FasterRCNN", "fasterrcnn_tiny"]


class FasterRCNN(nn.Module):
    """Faster R-CNN (Ren et al. 2015): backbone + RPN + RoI heads, torchvision's arguments.

    Args:
        backbone: returns an ``OrderedDict`` of maps (keys ``'0', '1', ...``) and has
            ``out_channels``.
        num_classes: classes *including the background* (label 0); targets use
            ``1..num_classes-1``. Give ``box_predictor`` instead to set it yourself.
        rpn_anchor_generator: default: sizes ``((16,), (32,), (64,))`` (one per level),
            aspect ratios ``(0.5, 1.0, 2.0)``.
        rpn_head: default :class:`RPNHead`.
        rpn_pre_nms_top_n_train (2000), rpn_pre_nms_top_n_test (1000), rpn_post_nms_top_n_train
            (2000), rpn_post_nms_top_n_test (1000), rpn_nms_thresh (0.7), rpn_fg_iou_thresh
            (0.7), rpn_bg_iou_thresh (0.3), rpn_batch_size_per_image (256),
            rpn_positive_fraction (0.5), rpn_score_thresh (0.0): see
            :class:`RegionProposalNetwork`.
        box_roi_pool: default ``MultiScaleRoIAlign(level names, 7, sampling_ratio=2,
            canonical_scale=32, canonical_level=3)`` (a 32 px box reads the stride-8 level:
            torchvision's 224 / 4 suit ImageNet-sized objects, not 15-45 px digits).
        box_head (:class:`TwoMLPHead` of ``representation_size``), box_predictor.
        box_score_thresh (0.05), box_nms_thresh (0.5), box_detections_per_img (100),
        box_fg_iou_thresh (0.5), box_bg_iou_thresh (0.5), box_batch_size_per_image (512),
        box_positive_fraction (0.25), bbox_reg_weights (None: ``(10, 10, 5, 5)``): see
        :class:`RoIHeads`.
        representation_size: width of the default box head (default 1024, torchvision's).
        image_mean, image_std, size_divisible: see :class:`DetectionTransform`.
    """

    def __init__(self, backbone: nn.Module, num_classes: int | None = None,
                 rpn_anchor_generator=None, rpn_head=None,
                 rpn_pre_nms_top_n_train: int = 2000, rpn_pre_nms_top_n_test: int = 1000,
                 rpn_post_nms_top_n_train: int = 2000, rpn_post_nms_top_n_test: int = 1000,
                 rpn_nms_thresh: float = 0.7, rpn_fg_iou_thresh: float = 0.7,
                 rpn_bg_iou_thresh: float = 0.3, rpn_batch_size_per_image: int = 256,
                 rpn_positive_fraction: float = 0.5, rpn_score_thresh: float = 0.0,
                 box_roi_pool=None, box_head=None, box_predictor=None,
                 box_score_thresh: float = 0.05, box_nms_thresh: float = 0.5,
                 box_detections_per_img: int = 100, box_fg_iou_thresh: float = 0.5,
                 box_bg_iou_thresh: float = 0.5, box_batch_size_per_image: int = 512,
                 box_positive_fraction: float = 0.25, bbox_reg_weights=None,
                 representation_size: int = 1024,
                 image_mean: Sequence[float] | None = None, image_std: Sequence[float] | None = None,
                 size_divisible: int = 16):
        super().__init__()
        if not hasattr(backbone, "out_channels"):
            raise ValueError("FasterRCNN: backbone should have an attribute out_channels (the "
                             "width of its feature maps)")
        if num_classes is not None and box_predictor is not None:
            raise ValueError("FasterRCNN: num_classes should be None when box_predictor is given")
        if num_classes is None and box_predictor is None:
            raise ValueError("FasterRCNN: give num_classes (background included) or box_predictor")
        out_channels = backbone.out_channels
        if rpn_anchor_generator is None:
            rpn_anchor_generator = AnchorGenerator(((16,), (32,), (64,)), ((0.5, 1.0, 2.0),) * 3)
        if rpn_head is None:
            rpn_head = RPNHead(out_channels, rpn_anchor_generator.num_anchors_per_location()[0])
        self.rpn = RegionProposalNetwork(
            rpn_anchor_generator, rpn_head, rpn_fg_iou_thresh, rpn_bg_iou_thresh,
            rpn_batch_size_per_image, rpn_positive_fraction,
            {"training": rpn_pre_nms_top_n_train, "testing": rpn_pre_nms_top_n_test},
            {"training": rpn_post_nms_top_n_train, "testing": rpn_post_nms_top_n_test},
            rpn_nms_thresh, score_thresh=rpn_score_thresh)
        if box_roi_pool is None:
            names = [str(i) for i in range(len(rpn_anchor_generator.num_anchors_per_location()))]
            box_roi_pool = ops.MultiScaleRoIAlign(names, output_size=7, sampling_ratio=2,
                                                  canonical_scale=32, canonical_level=3)
        if box_head is None:
            size = box_roi_pool.output_size
            size = size[0] if isinstance(size, (tuple, list)) else size
            box_head = TwoMLPHead(out_channels * size * size, representation_size)
        if box_predictor is None:
            box_predictor = FastRCNNPredictor(representation_size, num_classes)
        self.roi_heads = RoIHeads(
            box_roi_pool, box_head, box_predictor, box_fg_iou_thresh, box_bg_iou_thresh,
            box_batch_size_per_image, box_positive_fraction, bbox_reg_weights,
            box_score_thresh, box_nms_thresh, box_detections_per_img)
        self.backbone = backbone
        self.num_classes = box_predictor.cls_score.out_features \
            if hasattr(box_predictor, "cls_score") else num_classes
        self.transform = DetectionTransform(size_divisible, image_mean, image_std,
                                            num_classes=self.num_classes, min_label=1,
                                            name="FasterRCNN")

    def forward(self, images, targets=None):
        """Train mode: ``model(images, targets)`` -> dict of the four losses. Eval mode:
        ``model(images)`` -> a list of ``{'boxes', 'scores', 'labels'}``, one per image.

        ``images``: a list of ``(C, H, W)`` Tensors or an ``(N, C, H, W)`` Tensor;
        ``targets``: a list of ``{'boxes': (K, 4) xyxy, 'labels': (K,) int in [1, num_classes)}``
        (``K`` may be 0: an image without objects).
        """
        if self.training and targets is None:
            raise ValueError("FasterRCNN: targets should not be None in training mode "
                             "(call model.eval() to predict)")
        images, targets = self.transform(images, targets)
        features = self.backbone(images.tensors)
        proposals, proposal_losses = self.rpn(images, features, targets)
        detections, detector_losses = self.roi_heads(features, proposals, images.image_sizes,
                                                     targets)
        if self.training:
            return {**detector_losses, **proposal_losses}
        return detections

    def proposals(self, images) -> list:
        """The RPN's proposals in eval mode: per image ``{'boxes' (P, 4), 'scores' (P,)}`` by
        decreasing objectness (at most ``rpn_post_nms_top_n_test``), e.g. for proposal recall."""
        was = self.training
        self.eval()
        try:
            images, _ = self.transform(images)
            boxes, _ = self.rpn(images, self.backbone(images.tensors))
        finally:
            self.train(was)
        return [{"boxes": b, "scores": s} for b, s in zip(boxes, self.rpn.last_scores)]


def _any_size(options: dict) -> InputRule:
    # images are zero-padded at the bottom/right to a multiple of the coarsest stride
    return InputRule(minimum=1, why="images are padded to a multiple of 16")


# The tiny model: anchors matched to the digits' ink boxes (8-33 px) on ~64x64 canvases
# (strides 4, 8, 16; see docs/detection.md for the coverage).
TINY_RPN_ANCHOR_SIZES = ((12, 16), (22, 30), (40, 54))
TINY_RPN_ASPECT_RATIOS = (1.0, 1.8)


@register("fasterrcnn_tiny", family="Detection", builds=FasterRCNN, input_rule=_any_size)
def fasterrcnn_tiny(num_classes: int = 11, in_channels: int = 1,
                    widths: Sequence[int] = (16, 32, 48, 64, 64), fpn_channels: int = 64,
                    anchor_sizes: Sequence[Sequence[int]] = TINY_RPN_ANCHOR_SIZES,
                    aspect_ratios: Sequence[float] = TINY_RPN_ASPECT_RATIOS,
                    representation_size: int = 256,
                    rpn_pre_nms_top_n_train: int = 150, rpn_pre_nms_top_n_test: int = 150,
                    rpn_post_nms_top_n_train: int = 200, rpn_post_nms_top_n_test: int = 100,
                    rpn_batch_size_per_image: int = 128, box_batch_size_per_image: int = 64,
                    box_score_thresh: float = 0.05, box_nms_thresh: float = 0.5,
                    box_detections_per_img: int = 100) -> FasterRCNN:
    """Faster R-CNN sized for 2 CPU cores and ~64x64 canvases of 8-45 px objects.

    Backbone: :class:`~.backbone.TinyBackbone` (widths 16-64) + FPN of ``fpn_channels`` at
    strides 4, 8, 16; RPN anchors ``anchor_sizes`` (one tuple per level) x ``aspect_ratios``
    (height / width); RoI Align 7x7 -> two fc layers of ``representation_size``. Fewer
    proposals and samples than torchvision's, as the images hold at most a handful of objects:
    the best 150 anchors per level enter the RPN's NMS (its loop is a quarter of a training
    step at 300), 200 proposals per image leave it in training and 100 in eval, 128 anchors
    and 64 RoIs per image are sampled for the losses. ``num_classes`` counts the
    background (label 0): 11 for ten digits labelled 1..10.
    """
    sizes = tuple(tuple(int(s) for s in level) for level in anchor_sizes)
    backbone = tiny_fpn_backbone(in_channels, widths, fpn_channels=fpn_channels)
    if len(sizes) != len(backbone.body.return_stages):
        raise ValueError(f"fasterrcnn_tiny: anchor_sizes needs one tuple per FPN level "
                         f"({len(backbone.body.return_stages)}), got {len(sizes)}")
    anchors = AnchorGenerator(sizes, (tuple(float(r) for r in aspect_ratios),) * len(sizes))
    return FasterRCNN(
        backbone, num_classes, rpn_anchor_generator=anchors,
        rpn_pre_nms_top_n_train=rpn_pre_nms_top_n_train,
        rpn_pre_nms_top_n_test=rpn_pre_nms_top_n_test,
        rpn_post_nms_top_n_train=rpn_post_nms_top_n_train,
        rpn_post_nms_top_n_test=rpn_post_nms_top_n_test,
        rpn_batch_size_per_image=rpn_batch_size_per_image,
        box_batch_size_per_image=box_batch_size_per_image, box_score_thresh=box_score_thresh,
        box_nms_thresh=box_nms_thresh, box_detections_per_img=box_detections_per_img,
        representation_size=representation_size)

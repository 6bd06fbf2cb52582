"""``convnet.ops``: torchvision.ops' counterpart, and the autograd Functions behind the
Tensor's operators and methods.

Public detection ops (torchvision's names, signatures and defaults)::

    boxes.py            box_area box_iou generalized_box_iou distance_box_iou
                        complete_box_iou box_convert clip_boxes_to_image
                        remove_small_boxes nms batched_nms
    roi.py              roi_pool roi_align ps_roi_align RoIPool RoIAlign PSRoIAlign
                        MultiScaleRoIAlign
    detection_losses.py sigmoid_focal_loss generalized_box_iou_loss
                        distance_box_iou_loss complete_box_iou_loss

The other modules (elementwise, indexing, matmul, reduction, shape, einsum) hold the
internal Functions that ``convnet.tensor`` imports while it loads; the public names above
load on first use (they need the Tensor class), so ``from convnet.ops import nms`` and
``import convnet.ops as ops; ops.nms`` both work.
"""
import importlib

_PUBLIC = {
    "boxes": ("box_area", "box_iou", "generalized_box_iou", "distance_box_iou",
              "complete_box_iou", "box_convert", "clip_boxes_to_image",
              "remove_small_boxes", "nms", "batched_nms"),
    "roi": ("roi_pool", "roi_align", "ps_roi_align", "RoIPool", "RoIAlign", "PSRoIAlign",
            "MultiScaleRoIAlign"),
    "detection_losses": ("sigmoid_focal_loss", "generalized_box_iou_loss",
                         "distance_box_iou_loss", "complete_box_iou_loss"),
}
_WHERE = {name: module for module, names in _PUBLIC.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value  # later look-ups skip this hook
        return value
    raise AttributeError(f"module 'convnet.ops' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))

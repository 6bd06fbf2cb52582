"""Object detection: the building blocks of anchor-based detectors (torchvision's names).

``AnchorGenerator`` lays anchors on feature-map grids, ``BoxCoder`` encodes boxes as offsets
from anchors and back, ``Matcher`` / ``SSDMatcher`` assign anchors to ground truths by IoU,
``BalancedPositiveNegativeSampler`` draws training minibatches of anchors, ``ImageList`` holds
a padded batch with its image sizes. See docs/detection.md.
"""
from ._utils import BalancedPositiveNegativeSampler, BoxCoder, Matcher, SSDMatcher  # noqa: F401
from .anchor_utils import AnchorGenerator  # noqa: F401
from .image_list import ImageList  # noqa: F401
from .backbone import BackboneWithFPN, FeaturePyramidNetwork, TinyBackbone  # noqa: F401
from .retinanet import RetinaNet, RetinaNetHead, retinanet_tiny  # noqa: F401
from .rpn import RegionProposalNetwork, RPNHead  # noqa: F401
from .roi_heads import FastRCNNPredictor, RoIHeads, TwoMLPHead  # noqa: F401
from .faster_rcnn import FasterRCNN, fasterrcnn_tiny  # noqa: F401

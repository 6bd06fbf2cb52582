"""Object detection: the building blocks of anchor-based detectors (torchvision's names).

``AnchorGenerator`` lays anchors on feature-map grids, ``BoxCoder`` encodes boxes as offsets
from anchors and back, ``Matcher`` / ``SSDMatcher`` assign anchors to ground truths by IoU,
``BalancedPositiveNegativeSampler`` draws training minibatches of anchors, ``ImageList`` holds
a padded batch with its image sizes. See docs/detection.md.
"""
from ._utils import BalancedPositiveNegativeSampler, BoxCoder, Matcher, SSDMatcher  # noqa: F401
from .anchor_utils import AnchorGenerator  # noqa: F401
from .image_list import ImageList  # noqa: F401

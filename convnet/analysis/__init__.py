"""Seeing inside the network: summaries, receptive fields, properties, feature maps,
Grad-CAM and style transfer (``import convnet.analysis as A``)."""
from .feature_maps import feature_maps, layer_filters  # noqa: F401
from .gradcam import grad_cam, saliency_map  # noqa: F401
from .properties import (  # noqa: F401
    equivariance_error, invariance_error, rotation_equivariance_error, scale_equivariance_error,
)
from .receptive_field import (  # noqa: F401
    empirical_receptive_field, output_size, receptive_field, trace_geometry,
)
from .style import gram_matrix, style_transfer  # noqa: F401
from .summary import LayerRow, ModelSummary, count_macs, summary  # noqa: F401

__all__ = [
    "summary", "ModelSummary", "LayerRow", "count_macs",
    "output_size", "receptive_field", "empirical_receptive_field", "trace_geometry",
    "equivariance_error", "invariance_error", "rotation_equivariance_error",
    "scale_equivariance_error",
    "feature_maps", "layer_filters", "grad_cam", "saliency_map",
    "gram_matrix", "style_transfer", "SAMPLE_IMAGE",
]

import os as _os

#: A small public-domain photograph for demos (see ``assets/PROVENANCE.md``).
SAMPLE_IMAGE = _os.path.join(_os.path.dirname(__file__), "assets", "grace_hopper.jpg")

"""Helpers that act on whole modules (``convnet.nn.utils``, after ``torch.nn.utils``)."""
from .fusion import fuse_conv_bn, fuse_conv_bn_eval, fuse_conv_bn_weights  # noqa: F401
from .clip_grad import (  # noqa: F401
    clip_grad_norm, clip_grad_norm_, clip_grad_value_, clip_grads_with_norm_, get_total_norm,
)
from .convert_parameters import parameters_to_vector, vector_to_parameters  # noqa: F401

"""Helpers that act on whole modules (``convnet.nn.utils``, after ``torch.nn.utils``)."""
from .fusion import fuse_conv_bn, fuse_conv_bn_eval, fuse_conv_bn_weights  # noqa: F401

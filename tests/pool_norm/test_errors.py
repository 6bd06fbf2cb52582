"""Bad input gives clear ValueError/TypeError messages naming the op and the shapes."""
from __future__ import annotations

import numpy as np
import pytest

import convnet as cn
import convnet.functional as F
import convnet.nn as nn


def _x(*shape):
    return cn.tensor(np.zeros(shape))


@pytest.mark.parametrize("call,match", [
    (lambda: F.max_pool2d(_x(1, 1, 3, 3), 5), r"max_pool2d: kernel is larger than the padded"),
    (lambda: F.avg_pool2d(_x(1, 1, 3, 3), 4, padding=0), r"avg_pool2d: kernel is larger"),
    (lambda: F.max_pool2d(_x(1, 1, 8, 8), 3, padding=2), r"max_pool2d: padding should be at "
                                                          r"most half of the kernel size"),
    (lambda: F.avg_pool1d(_x(1, 1, 8), 2, padding=2), r"avg_pool1d: padding should be"),
    (lambda: F.max_pool2d(_x(1, 8, 8), 0), r"max_pool2d: kernel_size must be >= 1"),
    (lambda: F.max_pool2d(_x(1, 1, 8, 8), 2, stride=0), r"stride must be >= 1"),
    (lambda: F.max_pool2d(_x(8, 8), 2), r"max_pool2d: expected a 4-D input"),
    (lambda: F.max_pool2d(_x(1, 1, 8, 8), (2, 2, 2)), r"max_pool2d: kernel_size must be"),
    (lambda: F.adaptive_avg_pool2d(_x(1, 1, 4, 4), (2, 2, 2)), r"output_size must have 2"),
    (lambda: F.weighted_pool2d(_x(1, 3, 4, 4), _x(2, 2, 2)), r"input has 3 channels but "
                                                                r"weight"),
    (lambda: F.lp_pool2d(_x(1, 1, 4, 4), 0, 2), r"lp_pool2d: norm_type must be positive"),
    (lambda: F.batch_norm(_x(1, 3), None, None, training=True),
     r"batch_norm: expected more than 1 value per channel when training"),
    (lambda: F.batch_norm(_x(1, 3, 1, 1), None, None, training=True), r"more than 1 value"),
    (lambda: F.batch_norm(_x(2, 3, 4), _x(4), _x(4)), r"running_mean has shape \(4,\) but "
                                                       r"input \(2, 3, 4\) has 3 channels"),
    (lambda: F.batch_norm(_x(2, 3, 4), None, None, _x(2), training=True),
     r"batch_norm: weight has shape \(2,\)"),
    (lambda: F.layer_norm(_x(2, 3, 4), (3,)), r"layer_norm: input shape \(2, 3, 4\) does not "
                                               r"end with normalized_shape \(3,\)"),
    (lambda: F.group_norm(_x(2, 6, 4), 4), r"group_norm: num_groups=4 must divide the 6"),
    (lambda: F.instance_norm(_x(2, 3, 1)), r"instance_norm: expected more than 1 spatial"),
    (lambda: F.interpolate(_x(1, 1, 4, 4)), r"exactly one of size or scale_factor"),
    (lambda: F.interpolate(_x(1, 1, 4), scale_factor=2, mode="bilinear"),
     r"interpolate: mode 'bilinear' needs a 4-D input"),
    (lambda: F.interpolate(_x(1, 1, 4, 4), scale_factor=2, align_corners=True),
     r"align_corners can only be set"),
    (lambda: F.interpolate(_x(1, 1, 4, 4), scale_factor=2, mode="cubic"), r"mode must be"),
    (lambda: F.max_unpool2d(_x(1, 1, 2, 2), cn.tensor(np.zeros((1, 1, 2, 3), np.int64)), 2),
     r"max_unpool2d: indices shape"),
    (lambda: F.max_unpool2d(_x(1, 1, 2, 2), cn.tensor(np.full((1, 1, 2, 2), 99)), 2),
     r"max_unpool2d: indices must lie in \[0, 16\)"),
    (lambda: F.unpool2d(_x(1, 1, 2, 2), 2, mode="zeros"), r"unpool2d: mode must be"),
])
def test_value_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_type_errors():
    with pytest.raises(TypeError, match="max_pool2d: input must be floating point"):
        F.max_pool2d(cn.tensor(np.zeros((1, 1, 4, 4), np.int64)), 2)
    with pytest.raises(TypeError, match="max_unpool2d: indices must be an integer Tensor"):
        F.max_unpool2d(_x(1, 1, 2, 2), _x(1, 1, 2, 2), 2)
    with pytest.raises(TypeError, match="batch_norm: momentum must be a float"):
        F.batch_norm(_x(2, 3), _x(3), _x(3), training=True, momentum=None)
    with pytest.raises(TypeError, match="batch_norm: weight dtype float32 differs"):
        F.batch_norm(_x(2, 3), None, None, cn.ones(3), training=True)


def test_layer_errors():
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected 3 channels \(num_features\) "
                                         r"but the input has 4"):
        nn.BatchNorm2d(3)(cn.zeros(2, 4, 3, 3))
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected a 4-D input"):
        nn.BatchNorm2d(3)(cn.zeros(2, 3, 3))
    with pytest.raises(ValueError, match=r"more than 1 value per channel"):
        nn.BatchNorm1d(3)(cn.zeros(1, 3))
    nn.BatchNorm1d(3).eval()(cn.zeros(1, 3))  # eval mode: one sample is fine
    with pytest.raises(ValueError, match=r"InstanceNorm2d: expected 3 channels"):
        nn.InstanceNorm2d(3, affine=True)(cn.zeros(2, 4, 3, 3))
    with pytest.raises(ValueError, match=r"GroupNorm: num_channels=5 must be divisible"):
        nn.GroupNorm(2, 5)
    with pytest.raises(ValueError, match=r"GroupNorm: expected 4 channels"):
        nn.GroupNorm(2, 4)(cn.zeros(2, 6, 3))
    with pytest.raises(ValueError, match="Unpool2d: mode must be"):
        nn.Unpool2d(2, mode="max")

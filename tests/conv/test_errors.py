"""Bad arguments raise ValueError/TypeError naming the op, the argument and the shapes."""
from __future__ import annotations

import numpy as np
import pytest

import convnet as cn
import convnet.functional as F
import convnet.nn as nn


def t(*shape, dtype=np.float32):
    return cn.tensor(np.zeros(shape, dtype=dtype))


@pytest.mark.parametrize("call,match", [
    (lambda: F.conv2d(t(2, 4, 8, 8), t(6, 3, 3, 3)), r"conv2d: input .*4 channels.*expects 3"),
    (lambda: F.conv2d(t(2, 6, 8, 8), t(6, 3, 3, 3), groups=4), r"conv2d: .*divisible by groups=4"),
    (lambda: F.conv2d(t(2, 4, 8, 8), t(6, 2, 3, 3), groups=3), r"conv2d: input .*expects 6"),
    (lambda: F.conv2d(t(2, 3, 4, 4), t(6, 3, 5, 5)), r"conv2d: kernel size 5.*padded input size 4"),
    (lambda: F.conv2d(t(2, 3, 4, 4), t(6, 3, 3, 3), dilation=2), r"conv2d: kernel.*span 5"),
    (lambda: F.conv2d(t(2, 3, 8, 8), t(6, 3, 3, 3), stride=2, padding="same"),
     r"conv2d: padding='same'.*stride"),
    (lambda: F.conv2d(t(2, 3, 8, 8), t(6, 3, 3, 3), padding=-1), r"conv2d: padding .*non-negative"),
    (lambda: F.conv2d(t(2, 3, 8, 8), t(6, 3, 3, 3), padding="full"), r"conv2d: padding"),
    (lambda: F.conv2d(t(3, 8), t(6, 3, 3, 3)), r"conv2d: expected a 3-D .* or 4-D.*\(3, 8\)"),
    (lambda: F.conv2d(t(2, 3, 8, 8), t(6, 3, 3)), r"conv2d: weight must be 4-D"),
    (lambda: F.conv1d(t(2, 3, 8, 8), t(6, 3, 3)), r"conv1d: expected a 2-D .* or 3-D"),
    (lambda: F.conv3d(t(2, 3, 8), t(6, 3, 3, 3, 3)), r"conv3d: expected a 4-D"),
    (lambda: F.conv2d(t(2, 3, 8, 8), t(6, 3, 3, 3), stride=0), r"conv2d: stride must be positive"),
    (lambda: F.conv2d(t(2, 3, 8, 8), t(6, 3, 3, 3), stride=(1, 2, 3)), r"conv2d: stride"),
    (lambda: F.conv2d(t(2, 3, 8, 8), t(6, 3, 3, 3), t(5)), r"conv2d: bias shape \(5,\)"),
    (lambda: F.conv_transpose2d(t(2, 3, 8, 8), t(3, 2, 3, 3), stride=2, output_padding=2),
     r"conv_transpose2d: output_padding .*smaller than either stride"),
    (lambda: F.conv_transpose2d(t(2, 3, 8, 8), t(3, 2, 3, 3), output_padding=1),
     r"conv_transpose2d: output_padding"),
    (lambda: F.conv_transpose2d(t(2, 4, 8, 8), t(3, 2, 3, 3)),
     r"conv_transpose2d: input .*4 channels.*expects 3"),
    (lambda: F.conv_transpose2d(t(2, 3, 8, 8), t(3, 2, 3, 3), groups=2),
     r"conv_transpose2d: in_channels 3 .*groups=2"),
    (lambda: F.conv_transpose2d(t(2, 3, 8, 8), t(3, 2, 3, 3), padding=-1),
     r"conv_transpose2d: padding must be non-negative"),
    (lambda: F.conv_transpose2d(t(2, 3, 1, 1), t(3, 2, 1, 1), padding=1),
     r"conv_transpose2d: output size"),
    (lambda: F.conv_transpose1d(t(2, 3, 8, 8), t(3, 2, 3)), r"conv_transpose1d: expected"),
    (lambda: nn.Conv2d(4, 6, 3, groups=3), r"Conv2d: in_channels=4 must be divisible by groups"),
    (lambda: nn.Conv2d(3, 4, 3, groups=3), r"Conv2d: out_channels=4 must be divisible"),
    (lambda: nn.Conv2d(3, 4, 3, stride=2, padding="same"), r"Conv2d: padding='same'"),
    (lambda: nn.Conv2d(3, 4, 3, padding_mode="mirror"), r"Conv2d: padding_mode"),
    (lambda: nn.Conv2d(3, 4, 3, padding=-1), r"Conv2d: padding must be non-negative"),
    (lambda: nn.ConvTranspose2d(3, 4, 3, padding_mode="reflect"), r"ConvTranspose2d"),
    (lambda: nn.Conv2d(3, 6, 3)(t(2, 4, 8, 8)), r"conv2d: input .*4 channels"),
    (lambda: nn.ConvTranspose2d(3, 4, 3, stride=2)(t(1, 3, 5, 5), output_size=(20, 20)),
     r"ConvTranspose2d: requested output_size"),
    (lambda: F.channel_shuffle(t(2, 6, 4, 4), 4), r"channel_shuffle: 6 channels"),
])
def test_value_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_type_errors():
    with pytest.raises(TypeError, match="conv2d: input dtype float64 differs from weight"):
        F.conv2d(t(1, 3, 5, 5, dtype=np.float64), t(2, 3, 3, 3))
    with pytest.raises(TypeError, match="conv2d: input must be a Tensor"):
        F.conv2d(np.zeros((1, 3, 5, 5)), t(2, 3, 3, 3))
    with pytest.raises(TypeError, match="conv2d: stride"):
        F.conv2d(t(1, 3, 5, 5), t(2, 3, 3, 3), stride=1.5)
    with pytest.raises(TypeError, match="pad: input must be a Tensor"):
        F.pad(np.zeros((1, 2, 3)), (1, 1))

"""Equivariance of convolution, local invariance of pooling, and their limits."""
import numpy as np
import pytest

import convnet as cn
import convnet.nn as nn
from convnet import filters
from convnet.analysis import (
    equivariance_error, invariance_error, rotation_equivariance_error, scale_equivariance_error,
)

from .conftest import needs


def _conv(*args, **kw):
    return nn.Conv2d(*args, dtype=np.float64, **kw)


@pytest.mark.parametrize("shift", [1, 3, (2, -1), (-4, 5)])
def test_conv_is_translation_equivariant(shift):
    cn.manual_seed(0)
    m = nn.Sequential(_conv(3, 4, 3, padding=1), nn.ReLU(), _conv(4, 2, 5, dilation=2))
    assert equivariance_error(m, shift, input_shape=(2, 3, 30, 30)) < 1e-12


def test_strided_conv_is_equivariant_to_multiples_of_its_stride_only():
    cn.manual_seed(1)
    m = nn.Sequential(_conv(1, 2, 3, stride=2), nn.ReLU(), _conv(2, 2, 3))
    assert equivariance_error(m, (2, 4), input_shape=(1, 1, 30, 30)) < 1e-12
    with pytest.raises(ValueError, match="not a multiple of the total stride 2"):
        equivariance_error(m, 1, input_shape=(1, 1, 30, 30))


def test_a_non_equivariant_map_is_detected():
    # a position-dependent gain breaks equivariance: the check must notice
    gain = np.linspace(0.5, 2.0, 24)[None, None, None, :]

    def f(x):
        return cn.tensor(x.numpy() * gain)
    assert equivariance_error(f, 2, input_shape=(1, 1, 24, 24)) > 0.1


def test_rotation_and_scale_break_equivariance_of_a_generic_filter():
    cn.manual_seed(2)
    edge = _conv(1, 1, 3, padding=1, bias=False)
    edge.weight.numpy()[...] = filters.kernel("sobel_x")
    blur = _conv(1, 1, 5, padding=2, bias=False)
    blur.weight.numpy()[...] = filters.gaussian_kernel(5, 1.0)
    x = np.random.default_rng(0).random((1, 1, 24, 24))
    assert equivariance_error(edge, 3, x=x) < 1e-12
    assert rotation_equivariance_error(edge, x=x) > 0.5  # sobel_x turned is sobel_y
    assert rotation_equivariance_error(blur, x=x) < 1e-12  # symmetric kernel: exact
    assert rotation_equivariance_error(edge, x=x, k=2) == pytest.approx(2.0, rel=1e-9)  # sign flip
    assert scale_equivariance_error(edge, x=x) > 0.3
    assert scale_equivariance_error(blur, x=x) > scale_equivariance_error(blur, x=x, factor=1)


@needs("MaxPool2d", "AvgPool2d")
def test_max_pooling_is_locally_invariant():
    rng = np.random.default_rng(0)
    x = np.zeros((1, 1, 32, 32))
    # isolated peaks in the middle of 4x4 windows: a one-pixel shift keeps each in its window
    x[0, 0, 1::4, 1::4] = rng.random((8, 8)) + 1
    pool = nn.MaxPool2d(4)
    assert invariance_error(pool, 1, x=x) < 1e-12
    assert invariance_error(pool, (1, -1), x=x) < 1e-12
    assert invariance_error(nn.Identity(), 1, x=x) > 1.0  # no pooling: everything moves
    assert invariance_error(nn.AvgPool2d(4), 1, x=x) < 1e-12
    assert invariance_error(pool, 3, x=x) > 0.1  # a large shift leaves the windows


def test_errors():
    m = _conv(1, 1, 3)
    with pytest.raises(ValueError, match="shift must be"):
        equivariance_error(m, (1, 2, 3), input_shape=(1, 1, 9, 9))
    with pytest.raises(ValueError, match="too small"):
        equivariance_error(m, 4, input_shape=(1, 1, 5, 5))
    clf = nn.Sequential(_conv(1, 1, 3), nn.Flatten())
    with pytest.raises(ValueError, match="spatial maps"):
        equivariance_error(clf, 1, input_shape=(1, 1, 9, 9))
    with pytest.raises(ValueError, match="factor"):
        scale_equivariance_error(m, input_shape=(1, 1, 9, 9), factor=0)

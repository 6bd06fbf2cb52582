"""Depthwise, pointwise, depthwise-separable, spatially separable convs and channel shuffle."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import convnet as cn
import convnet.functional as F
import convnet.nn as nn


def test_depthwise_and_pointwise_are_convs():
    dw = nn.DepthwiseConv2d(6, 3, padding=1, depth_multiplier=2)
    assert dw.weight.shape == (12, 1, 3, 3) and dw.groups == 6
    pw = nn.PointwiseConv2d(6, 10)
    assert pw.weight.shape == (10, 6, 1, 1)
    x = cn.randn(2, 6, 5, 5)
    ref = F.conv2d(x, dw.weight, dw.bias, padding=1, groups=6)
    np.testing.assert_allclose(dw(x).numpy(), ref.numpy(), rtol=1e-6)
    # a 1x1 conv is a matrix product over channels at every pixel
    y = pw(x).numpy()
    expected = np.einsum("oc,nchw->nohw", pw.weight.numpy()[:, :, 0, 0], x.numpy())
    np.testing.assert_allclose(y, expected + pw.bias.numpy()[:, None, None], rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("c_in,c_out,k", [(32, 64, 3), (16, 16, 5), (8, 128, 3), (3, 7, 7)])
def test_depthwise_separable_saving_matches_formula(c_in, c_out, k):
    block = nn.DepthwiseSeparableConv2d(c_in, c_out, k, bias=False)
    standard = nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False)
    n_sep = sum(p.numel() for p in block.parameters())
    n_std = sum(p.numel() for p in standard.parameters())
    formula = nn.DepthwiseSeparableConv2d.cost_ratio(c_out, k)
    assert formula == pytest.approx(1 / c_out + 1 / k**2)
    assert n_sep / n_std == pytest.approx(formula)
    std_macs = standard.weight.numel() * 10 * 12  # 'same'-size output of a 10x12 input
    assert block.multiply_adds((10, 12)) / std_macs == pytest.approx(formula)
    assert block(cn.randn(1, c_in, 10, 12)).shape == (1, c_out, 10, 12)


def test_depthwise_separable_with_norm_and_activation():
    calls = []

    class Tag(nn.Module):
        def __init__(self, name):
            super().__init__()
            self.name = name

        def forward(self, x):
            calls.append((self.name, x.shape[1]))
            return x

    block = nn.DepthwiseSeparableConv2d(4, 8, norm_layer=lambda c: Tag("norm"),
                                        activation=lambda: Tag("act"), stride=2)
    assert block.depthwise.bias is None  # a norm follows, so no bias
    y = block(cn.randn(2, 4, 9, 9))
    assert y.shape == (2, 8, 5, 5)
    assert calls == [("norm", 4), ("act", 4), ("norm", 8), ("act", 8)]


@pytest.mark.parametrize("stride,padding,dilation", [(1, 1, 1), (2, 0, 1), (1, 2, 2)])
def test_spatially_separable_equals_rank_limited_kxk(stride, padding, dilation):
    rng = np.random.default_rng(stride + padding)
    block = nn.SpatiallySeparableConv2d(3, 4, 3, stride, padding, dilation, bias=False,
                                        mid_channels=2, dtype=np.float64)
    x = cn.tensor(rng.standard_normal((2, 3, 9, 8)))
    w1 = block.vertical.weight.numpy()[:, :, :, 0]  # (mid, C_in, K)
    w2 = block.horizontal.weight.numpy()[:, :, 0, :]  # (C_out, mid, K)
    full = np.einsum("mci,omj->ocij", w1, w2)
    ref = F.conv2d(x, cn.tensor(full), None, stride, padding, dilation)
    np.testing.assert_allclose(block(x).numpy(), ref.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape,groups", [((2, 6, 3, 3), 2), ((1, 12, 4, 5), 3), ((3, 8, 5), 4),
                                          ((2, 4, 2, 2, 2), 4)])
def test_channel_shuffle_matches_torch(shape, groups):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    xc = cn.tensor(x, requires_grad=True)
    y = nn.ChannelShuffle(groups)(xc)
    ref = torch.nn.ChannelShuffle(groups)(torch.tensor(x)).numpy()
    np.testing.assert_array_equal(y.numpy(), ref)
    g = rng.standard_normal(shape)
    (y * cn.tensor(g)).sum().backward()
    # shuffle is a permutation of channels: its gradient is the inverse permutation
    c = shape[1]
    perm = np.arange(c).reshape(groups, c // groups).T.reshape(-1)
    inv = np.argsort(perm)
    np.testing.assert_array_equal(xc.grad.numpy(), g[:, inv])

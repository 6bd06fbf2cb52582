"""Conv layers against torch.nn (same weights), padding modes, init, state_dict, repr."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import convnet as cn
import convnet.nn as nn


def _copy_from_torch(ours, theirs):
    ours.weight.numpy()[...] = theirs.weight.detach().numpy()
    if theirs.bias is not None:
        ours.bias.numpy()[...] = theirs.bias.detach().numpy()


def _compare(ours, theirs, x, rng, **fw):
    xc = cn.tensor(x, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    yc, yt = ours(xc, **fw), theirs(xt, **fw)
    np.testing.assert_allclose(yc.numpy(), yt.detach().numpy(), rtol=1e-6, atol=1e-8)
    g = rng.standard_normal(yt.shape)
    (yc * cn.tensor(g)).sum().backward()
    (yt * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(xc.grad.numpy(), xt.grad.numpy(), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ours.weight.grad.numpy(), theirs.weight.grad.numpy(),
                               rtol=1e-6, atol=1e-8)
    if theirs.bias is not None:
        np.testing.assert_allclose(ours.bias.grad.numpy(), theirs.bias.grad.numpy(),
                                   rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("padding", [1, "same", 2])
def test_conv_layer_padding_modes(nd, mode, padding):
    rng = np.random.default_rng(nd * 7 + len(mode))
    k = (3, 2, 3)[:nd] if padding == "same" else 3
    kw = dict(stride=1, padding=padding, dilation=1 if padding == 2 else (1, 2, 1)[:nd],
              groups=2, bias=padding != 2, padding_mode=mode)
    ours = getattr(nn, f"Conv{nd}d")(4, 6, k, dtype=np.float64, **kw)
    theirs = getattr(torch.nn, f"Conv{nd}d")(4, 6, k, dtype=torch.float64, **kw)
    _copy_from_torch(ours, theirs)
    size = (7, 6, 5)[:nd]
    _compare(ours, theirs, rng.standard_normal((2, 4) + size), rng)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_conv_transpose_layer_output_size(nd):
    rng = np.random.default_rng(nd)
    kw = dict(stride=2, padding=1, groups=1, dilation=1)
    ours = getattr(nn, f"ConvTranspose{nd}d")(3, 4, 3, dtype=np.float64, **kw)
    theirs = getattr(torch.nn, f"ConvTranspose{nd}d")(3, 4, 3, dtype=torch.float64, **kw)
    _copy_from_torch(ours, theirs)
    x = rng.standard_normal((2, 3) + (4, 5, 3)[:nd])
    target = tuple(2 * s for s in (4, 5, 3)[:nd])  # needs output_padding 1
    _compare(ours, theirs, x, rng, output_size=target)
    assert ours(cn.tensor(x), output_size=target).shape[2:] == target
    assert ours(cn.tensor(x)).shape[2:] == tuple(s - 1 for s in target)


def test_conv_transpose_layer_output_padding_and_groups():
    rng = np.random.default_rng(4)
    kw = dict(stride=(3, 2), padding=(1, 0), output_padding=(2, 1), groups=2, dilation=1)
    ours = nn.ConvTranspose2d(4, 6, (4, 3), dtype=np.float64, **kw)
    theirs = torch.nn.ConvTranspose2d(4, 6, (4, 3), dtype=torch.float64, **kw)
    _copy_from_torch(ours, theirs)
    _compare(ours, theirs, rng.standard_normal((1, 4, 5, 4)), rng)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_conv_transpose_layer_kernel_one_output_padding(nd):
    """A 1x1 layer with output_padding 2 (legal: dilation 3 > 2): the last two pixels of each
    axis lie past every input pixel's reach and hold only the bias."""
    rng = np.random.default_rng(20 + nd)
    kw = dict(stride=1, dilation=3, output_padding=2, groups=2)
    ours = getattr(nn, f"ConvTranspose{nd}d")(4, 6, 1, dtype=np.float64, **kw)
    theirs = getattr(torch.nn, f"ConvTranspose{nd}d")(4, 6, 1, dtype=torch.float64, **kw)
    _copy_from_torch(ours, theirs)
    x = rng.standard_normal((1, 4) + (3, 4, 2)[:nd])
    _compare(ours, theirs, x, rng)
    assert ours(cn.tensor(x)).shape[2:] == tuple(s + 2 for s in (3, 4, 2)[:nd])


def test_default_init_matches_torch_bounds():
    cn.manual_seed(0)
    conv = nn.Conv2d(16, 32, 3)
    bound = 1 / math.sqrt(16 * 9)  # kaiming_uniform(a=sqrt(5)) gives 1/sqrt(fan_in)
    w = conv.weight.numpy()
    assert w.dtype == np.float32 and w.shape == (32, 16, 3, 3)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.05 * bound
    assert np.abs(conv.bias.numpy()).max() <= bound
    tconv = nn.ConvTranspose2d(8, 12, 4, groups=2)
    tb = 1 / math.sqrt(6 * 16)  # torch computes fan_in from weight dim 1: out/groups * K
    assert tconv.weight.shape == (8, 6, 4, 4)
    assert np.abs(tconv.weight.numpy()).max() <= tb
    assert np.abs(tconv.weight.numpy()).max() > 0.9 * tb


def test_state_dict_and_repr_like_torch():
    conv = nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False, padding_mode="reflect")
    ref = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False, padding_mode="reflect")
    assert list(conv.state_dict()) == list(ref.state_dict()) == ["weight"]
    assert conv.extra_repr() == ref.extra_repr()
    for args, kw in [((4, 8, (3, 5)), dict(dilation=2, groups=4)),
                     ((4, 8, 3), dict(padding="same")), ((4, 8, 1), {})]:
        assert nn.Conv2d(*args, **kw).extra_repr() == torch.nn.Conv2d(*args, **kw).extra_repr()
    t_args = (4, 8, 3)
    t_kw = dict(stride=2, output_padding=1, groups=2)
    assert (nn.ConvTranspose2d(*t_args, **t_kw).extra_repr()
            == torch.nn.ConvTranspose2d(*t_args, **t_kw).extra_repr())
    sd = {k: v.detach().numpy() for k, v in torch.nn.Conv2d(3, 8, 3).state_dict().items()}
    ours = nn.Conv2d(3, 8, 3)
    ours.load_state_dict(sd)
    np.testing.assert_array_equal(ours.bias.numpy(), sd["bias"])


def test_unbatched_input_through_layer():
    conv = nn.Conv2d(3, 5, 3, padding=1, padding_mode="circular")
    x = cn.randn(3, 6, 6)
    y = conv(x)
    assert y.shape == (5, 6, 6)
    np.testing.assert_allclose(y.numpy(), conv(x.unsqueeze(0)).numpy()[0], rtol=1e-6)

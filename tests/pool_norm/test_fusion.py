"""Conv + batch-norm folding for inference (``convnet.nn.utils.fusion``)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn.utils.fusion import fuse_conv_bn_eval as torch_fuse

import convnet as cn
import convnet.nn as nn
from convnet import models
from convnet.nn.modules.normalization import _BatchNorm


def _randomise_bn(model, rng):
    """Non-trivial running statistics and affine parameters (fresh ones are the identity)."""
    for m in model.modules():
        if isinstance(m, _BatchNorm):
            c = m.num_features
            m.running_mean.numpy()[:] = rng.standard_normal(c)
            m.running_var.numpy()[:] = rng.random(c) + 0.2
            if m.weight is not None:
                m.weight.numpy()[:] = rng.random(c) + 0.5
                m.bias.numpy()[:] = rng.standard_normal(c)


def _count_bn(model):
    return sum(isinstance(m, _BatchNorm) for m in model.modules())


@pytest.mark.parametrize("cfg", [
    dict(cin=3, cout=5, k=3, stride=1, padding=1, groups=1, bias=True),
    dict(cin=4, cout=6, k=3, stride=2, padding=0, groups=2, bias=False),
    dict(cin=6, cout=6, k=5, stride=1, padding=2, groups=6, bias=False),  # depthwise
    dict(cin=3, cout=4, k=1, stride=1, padding=0, groups=1, bias=True),
])
def test_fuse_conv_bn_eval_matches_torch(cfg):
    rng = np.random.default_rng(cfg["k"] + cfg["groups"])
    conv = nn.Conv2d(cfg["cin"], cfg["cout"], cfg["k"], cfg["stride"], cfg["padding"],
                     groups=cfg["groups"], bias=cfg["bias"], dtype=np.float64)
    bn = nn.BatchNorm2d(cfg["cout"], eps=1e-3, dtype=np.float64)
    _randomise_bn(bn, rng)
    tconv = torch.nn.Conv2d(cfg["cin"], cfg["cout"], cfg["k"], cfg["stride"], cfg["padding"],
                            groups=cfg["groups"], bias=cfg["bias"]).double()
    tbn = torch.nn.BatchNorm2d(cfg["cout"], eps=1e-3).double()
    with torch.no_grad():
        tconv.weight.copy_(torch.from_numpy(conv.weight.numpy()))
        if cfg["bias"]:
            tconv.bias.copy_(torch.from_numpy(conv.bias.numpy()))
        for name in ("running_mean", "running_var", "weight", "bias"):
            getattr(tbn, name).copy_(torch.from_numpy(getattr(bn, name).numpy()))
    conv.eval(), bn.eval(), tconv.eval(), tbn.eval()
    fused, tfused = nn.utils.fuse_conv_bn_eval(conv, bn), torch_fuse(tconv, tbn)
    np.testing.assert_allclose(fused.weight.numpy(), tfused.weight.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(fused.bias.numpy(), tfused.bias.detach().numpy(), rtol=1e-12,
                               atol=1e-12)
    x = rng.standard_normal((2, cfg["cin"], 9, 7))
    with cn.no_grad():
        want = bn(conv(cn.tensor(x))).numpy()
        got = fused(cn.tensor(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    # the originals are untouched
    assert conv.bias is None or conv.bias.numpy() is not fused.bias.numpy()
    assert (conv.bias is None) == (not cfg["bias"])


@pytest.mark.parametrize("name", ["resnet20", "mobilenet_v2", "shufflenet_v2", "unet"])
def test_fuse_conv_bn_model_removes_every_bn_and_keeps_outputs(name):
    rng = np.random.default_rng(0)
    kwargs = {} if name == "unet" else {"num_classes": 10}
    model = models.create(name, in_channels=3, **kwargs)
    _randomise_bn(model, rng)
    model.eval()
    x = cn.tensor(rng.standard_normal((2, 3, 32, 32)).astype(np.float32))
    n_bn = _count_bn(model)
    fused = nn.utils.fuse_conv_bn(model, x[:1])
    assert n_bn > 0 and _count_bn(fused) == 0
    assert _count_bn(model) == n_bn  # the model passed in is not modified
    with cn.no_grad():
        want, got = model(x).numpy(), fused(x).numpy()
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()


class _SharedOutput(nn.Module):
    """conv's output feeds the batch norm *and* a residual add: folding would be wrong."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)
        self.conv2 = nn.Conv2d(3, 4, 1)
        self.bn2 = nn.BatchNorm2d(4)

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + y, self.bn2(self.conv2(x))


def test_fuse_conv_bn_skips_conv_outputs_read_elsewhere():
    rng = np.random.default_rng(3)
    model = _SharedOutput()
    _randomise_bn(model, rng)
    model.eval()
    x = cn.tensor(rng.standard_normal((2, 3, 6, 6)).astype(np.float32))
    fused = nn.utils.fuse_conv_bn(model, x)
    assert isinstance(fused.bn, nn.BatchNorm2d)  # shared: kept
    assert isinstance(fused.bn2, nn.Identity)  # exclusive: folded
    with cn.no_grad():
        for a, b in zip(model(x), fused(x)):
            np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-5)


def test_fuse_conv_bn_eval_errors():
    conv, bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)
    with pytest.raises(ValueError, match="eval"):
        nn.utils.fuse_conv_bn_eval(conv, bn)
    conv.eval()
    with pytest.raises(ValueError, match="BatchNorm2d\\(5\\).*4 output channels"):
        nn.utils.fuse_conv_bn_eval(conv, nn.BatchNorm2d(5).eval())
    with pytest.raises(ValueError, match="running statistics"):
        nn.utils.fuse_conv_bn_eval(conv, nn.BatchNorm2d(4, track_running_stats=False).eval())

"""Layer forms of pooling, unpooling and upsampling against torch's layers."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import convnet as cn
import convnet.nn as nn
from tests.helpers.oracle import check, tie_free

PAIRS = [
    ("MaxPool1d", (3, 2, 1), {"ceil_mode": True}, 1),
    ("MaxPool2d", (3,), {"stride": 2, "padding": 1, "dilation": 2}, 2),
    ("MaxPool2d", (2,), {"return_indices": True}, 2),
    ("MaxPool3d", (2, 1), {}, 3),
    ("AvgPool1d", (3, 2, 1), {"count_include_pad": False}, 1),
    ("AvgPool2d", (3, 2, 1), {"ceil_mode": True, "divisor_override": 5}, 2),
    ("AvgPool3d", (2,), {}, 3),
    ("LPPool1d", (2, 3), {}, 1),
    ("LPPool2d", (2, (2, 3)), {"stride": 1}, 2),
    ("AdaptiveAvgPool1d", (4,), {}, 1),
    ("AdaptiveAvgPool2d", ((3, 5),), {}, 2),
    ("AdaptiveAvgPool3d", (1,), {}, 3),
    ("AdaptiveMaxPool1d", (4,), {"return_indices": True}, 1),
    ("AdaptiveMaxPool2d", ((3, None),), {}, 2),
    ("AdaptiveMaxPool3d", ((2, 3, 2),), {}, 3),
    ("Upsample", (), {"scale_factor": 2, "mode": "bilinear"}, 2),
    ("Upsample", (), {"size": (3, 11, 2), "mode": "trilinear", "align_corners": True}, 3),
    ("UpsamplingNearest2d", (), {"scale_factor": 3}, 2),
    ("UpsamplingBilinear2d", (), {"size": (9, 4)}, 2),
]


@pytest.mark.parametrize("name,args,kwargs,nd", PAIRS)
def test_layer_matches_torch(name, args, kwargs, nd):
    rng = np.random.default_rng(len(name))
    x = tie_free((2, 3) + (7, 6, 5)[:nd], rng)
    if name.startswith("LP"):
        x = np.abs(x) + 0.1
    ours = getattr(nn, name)(*args, **kwargs)
    ref = getattr(torch.nn, name)(*args, **kwargs)
    check(ours, ref, [x])


def test_max_unpool_layer_round_trip():
    rng = np.random.default_rng(0)
    x = tie_free((2, 3, 6, 7), rng)
    pool, unpool = nn.MaxPool2d(2, return_indices=True), nn.MaxUnpool2d(2)
    y, idx = pool(cn.tensor(x))
    ty, tidx = torch.nn.MaxPool2d(2, return_indices=True)(torch.tensor(x))
    check(lambda t: unpool(t, idx, output_size=x.shape),
          lambda t: torch.nn.MaxUnpool2d(2)(t, tidx, output_size=x.shape), [y.numpy()])


def test_min_and_unpool_layers():
    x = cn.tensor(np.arange(16.0).reshape(1, 1, 4, 4))
    np.testing.assert_array_equal(nn.MinPool2d(2)(x).numpy()[0, 0], [[0, 2], [8, 10]])
    up = nn.Unpool2d(2, mode="nearest")(nn.MaxPool2d(2)(x))
    assert up.shape == (1, 1, 4, 4)
    np.testing.assert_array_equal(up.numpy()[0, 0, :2, :2], 5)
    bed = nn.Unpool2d(2)(nn.MaxPool2d(2)(x)).numpy()[0, 0]
    assert bed[0, 0] == 5 and bed[1, 1] == 0 and bed.sum() == 5 + 7 + 13 + 15


def test_weighted_pool_layer_learns_its_weights():
    rng = np.random.default_rng(1)
    m = nn.WeightedPool2d(3, 2)
    assert [n for n, _ in m.named_parameters()] == ["weight"]
    x = cn.tensor(rng.standard_normal((2, 3, 4, 4)).astype(np.float32))
    np.testing.assert_allclose(m(x).numpy(), nn.AvgPool2d(2)(x).numpy(), rtol=1e-6)
    m(x).sum().backward()
    assert m.weight.grad.shape == (3, 2, 2)
    fixed = nn.WeightedPool2d(3, 2, learnable=False)
    assert list(fixed.parameters()) == [] and "weight" in fixed.state_dict()


def test_global_pool_layers():
    x = cn.tensor(np.random.default_rng(2).standard_normal((2, 3, 4, 5)))
    np.testing.assert_allclose(nn.GlobalAvgPool2d()(x).numpy(),
                               x.numpy().mean(axis=(2, 3), keepdims=True))
    np.testing.assert_allclose(nn.GlobalMaxPool2d(keepdim=False)(x).numpy(),
                               x.numpy().max(axis=(2, 3)))


def test_non_contiguous_inputs():
    rng = np.random.default_rng(3)
    x = tie_free((2, 6, 7, 3), rng)
    fns = [
        (lambda t: cn.functional.max_pool2d(t.permute(0, 3, 1, 2), 2, 1, 1),
         lambda t: torch.nn.functional.max_pool2d(t.permute(0, 3, 1, 2), 2, 1, 1)),
        (lambda t: nn.BatchNorm2d(3).double()(t.permute(0, 3, 1, 2)),
         lambda t: torch.nn.BatchNorm2d(3).double()(t.permute(0, 3, 1, 2))),
        (lambda t: nn.GroupNorm(1, 3).double()(t.permute(0, 3, 1, 2)),
         lambda t: torch.nn.GroupNorm(1, 3).double()(t.permute(0, 3, 1, 2))),
        (lambda t: nn.Upsample(scale_factor=2, mode="bilinear")(t.permute(0, 3, 1, 2)),
         lambda t: torch.nn.Upsample(scale_factor=2, mode="bilinear")(t.permute(0, 3, 1, 2))),
    ]
    for ours, ref in fns:
        check(ours, ref, [x])

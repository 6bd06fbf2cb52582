"""Interpolation, max unpooling and bed-of-nails / nearest unpooling against torch."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import convnet as cn
import convnet.functional as F
from convnet.autograd import gradcheck
from tests.helpers.oracle import check, tie_free

SIZES_2D = [dict(size=(9, 4)), dict(scale_factor=2), dict(scale_factor=(1.7, 0.6)),
            dict(size=(5, 7)), dict(size=(1, 1)), dict(size=3),
            dict(scale_factor=3.3, recompute_scale_factor=True), dict(scale_factor=0.5)]


@pytest.mark.parametrize("mode,align", [("nearest", None), ("nearest-exact", None),
                                        ("bilinear", False), ("bilinear", True),
                                        ("bicubic", False), ("bicubic", True), ("area", None)])
def test_interpolate_2d(mode, align):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 5, 7))
    for kw in SIZES_2D:
        check(lambda t: F.interpolate(t, mode=mode, align_corners=align, **kw),
              lambda t: TF.interpolate(t, mode=mode, align_corners=align, **kw), [x])


@pytest.mark.parametrize("seed", range(12))
def test_interpolate_random(seed):
    rng = np.random.default_rng(seed)
    nd = 1 + seed % 3
    mode = rng.choice({1: ["nearest", "linear", "area", "nearest-exact"],
                       2: ["nearest", "bilinear", "bicubic", "area"],
                       3: ["nearest", "trilinear", "area"]}[nd])
    shape = (int(rng.integers(1, 3)), 2) + tuple(int(v) for v in rng.integers(1, 7, nd))
    x = rng.standard_normal(shape)
    if rng.integers(0, 2):
        kw = dict(size=tuple(int(v) for v in rng.integers(1, 11, nd)))
    else:
        kw = dict(scale_factor=tuple(float(v) for v in rng.uniform(0.6, 3.0, nd)))
        kw = kw if all(int(n * s) >= 1 for n, s in zip(shape[2:], kw["scale_factor"])) \
            else dict(scale_factor=2.0)
    align = bool(rng.integers(0, 2)) if mode in ("linear", "bilinear", "bicubic",
                                                   "trilinear") else None
    check(lambda t: F.interpolate(t, mode=str(mode), align_corners=align, **kw),
          lambda t: TF.interpolate(t, mode=str(mode), align_corners=align, **kw), [x])


def test_interpolate_gradcheck_and_dtype():
    rng = np.random.default_rng(1)
    x = cn.tensor(rng.standard_normal((1, 2, 3, 4)), requires_grad=True)
    assert gradcheck(lambda t: F.interpolate(t, scale_factor=1.5, mode="bicubic"), [x])
    x32 = cn.tensor(rng.standard_normal((1, 2, 3, 4)).astype(np.float32), requires_grad=True)
    y = F.interpolate(x32, size=(6, 5), mode="bilinear")
    y.sum().backward()
    assert y.dtype == np.float32 and x32.grad.dtype == np.float32


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_max_pool_indices_round_trip_through_max_unpool(nd):
    rng = np.random.default_rng(nd)
    shape = (2, 3) + ((11,), (8, 9), (4, 5, 6))[nd - 1]
    x = tie_free(shape, rng)
    pool, unpool = getattr(F, f"max_pool{nd}d"), getattr(F, f"max_unpool{nd}d")
    tpool, tunpool = getattr(TF, f"max_pool{nd}d"), getattr(TF, f"max_unpool{nd}d")
    for k, s, p in ((2, None, 0), (3, 2, 1), (2, 1, 1)):
        y, idx = pool(cn.tensor(x), k, s, p, return_indices=True)
        ty, tidx = tpool(torch.tensor(x), k, s, p, return_indices=True)
        np.testing.assert_array_equal(idx.numpy(), tidx.numpy())
        size = shape[2:]
        check(lambda t: unpool(t, idx, k, s, p, output_size=size),
              lambda t: tunpool(t, tidx, k, s, p, output_size=size), [y.numpy()])
        # every pooled value is back at the position it came from
        up = unpool(y, idx, k, s, p, output_size=size).numpy()
        flat_x, flat_up = x.reshape(6, -1), up.reshape(6, -1)
        sel = idx.numpy().reshape(6, -1)
        np.testing.assert_array_equal(np.take_along_axis(flat_up, sel, 1),
                                      np.take_along_axis(flat_x, sel, 1))


def test_max_unpool_default_size():
    rng = np.random.default_rng(5)
    x = tie_free((1, 2, 8, 8), rng)
    y, idx = F.max_pool2d(cn.tensor(x), 2, return_indices=True)
    ty, tidx = TF.max_pool2d(torch.tensor(x), 2, return_indices=True)
    check(lambda t: F.max_unpool2d(t, idx, 2), lambda t: TF.max_unpool2d(t, tidx, 2),
          [y.numpy()])


def test_bed_of_nails_and_nearest_unpool():
    x = cn.tensor(np.arange(1.0, 5.0).reshape(1, 1, 2, 2))
    bed = F.unpool2d(x, 2, "bed_of_nails").numpy()[0, 0]
    np.testing.assert_array_equal(bed, [[1, 0, 2, 0], [0, 0, 0, 0], [3, 0, 4, 0], [0, 0, 0, 0]])
    near = F.unpool2d(x, 2, "nearest").numpy()[0, 0]
    np.testing.assert_array_equal(near, [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]])
    rng = np.random.default_rng(6)
    xr = rng.standard_normal((2, 3, 4, 5))
    check(lambda t: F.unpool2d(t, (2, 3), "nearest"),
          lambda t: TF.interpolate(t, scale_factor=(2, 3), mode="nearest"), [xr])
    # bed of nails is the adjoint-free "strided placement": a transposed conv with a one-hot
    # kernel; check against torch's conv_transpose with groups=C
    kernel = torch.zeros(3, 1, 2, 3, dtype=torch.float64)
    kernel[:, :, 0, 0] = 1
    check(lambda t: F.unpool2d(t, (2, 3)),
          lambda t: TF.conv_transpose2d(t, kernel, stride=(2, 3), groups=3), [xr])
    check(lambda t: F.unpool1d(t, 3, "nearest"),
          lambda t: TF.interpolate(t, scale_factor=3, mode="nearest"), [xr[:, :, 0]])
    check(lambda t: F.unpool3d(t, 2, "nearest"),
          lambda t: TF.interpolate(t, scale_factor=2, mode="nearest"), [xr[:, :, None]])


def test_upsample_aliases():
    x = np.random.default_rng(8).standard_normal((1, 2, 3, 4))
    check(lambda t: F.upsample_bilinear(t, scale_factor=2),
          lambda t: TF.interpolate(t, scale_factor=2, mode="bilinear", align_corners=True),
          [x])
    check(lambda t: F.upsample_nearest(t, size=(5, 9)),
          lambda t: TF.interpolate(t, size=(5, 9)), [x])

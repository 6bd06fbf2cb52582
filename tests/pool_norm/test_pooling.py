"""Pooling against torch (float64) on randomized configurations, plus the notes' properties."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

import convnet as cn
import convnet.functional as F
from convnet.autograd import gradcheck
from tests.helpers.oracle import check, tie_free

CN_MAX = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
TH_MAX = {1: TF.max_pool1d, 2: TF.max_pool2d, 3: TF.max_pool3d}
CN_MIN = {1: F.min_pool1d, 2: F.min_pool2d, 3: F.min_pool3d}
CN_AVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
TH_AVG = {1: TF.avg_pool1d, 2: TF.avg_pool2d, 3: TF.avg_pool3d}


def _random_window(rng, nd: int, dilated: bool):
    """A random valid pooling configuration and an input shape it fits."""
    ks = tuple(int(v) for v in rng.integers(1, 5 if nd < 3 else 4, nd))
    ss = tuple(int(v) for v in rng.integers(1, 5, nd))
    ds = tuple(int(v) for v in rng.integers(1, 4, nd)) if dilated else (1,) * nd
    eff = [d * (k - 1) + 1 for k, d in zip(ks, ds)]
    ps = tuple(int(rng.integers(0, k // 2 + 1)) for k in ks)
    # every window must reach the input (a window wholly in padding is degenerate: -inf)
    ls = tuple(max(1, e - 2 * p, -(-p // d) * d - p + 1) + int(rng.integers(0, 7 if nd < 3 else 4))
               for e, p, d in zip(eff, ps, ds))
    n, c = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    return (n, c) + ls, ks, ss, ps, ds, bool(rng.integers(0, 2))


@pytest.mark.parametrize("seed", range(60))
def test_max_pool_random_configs(seed):
    rng = np.random.default_rng(seed)
    nd = 1 + seed % 3
    shape, ks, ss, ps, ds, ceil = _random_window(rng, nd, dilated=True)
    x = tie_free(shape, rng)
    kw = dict(kernel_size=ks, stride=ss, padding=ps, dilation=ds, ceil_mode=ceil)
    check(lambda t: CN_MAX[nd](t, **kw, return_indices=True),
          lambda t: TH_MAX[nd](t, **kw, return_indices=True), [x], seed=seed)
    # min pooling is max pooling of the negated input
    check(lambda t: CN_MIN[nd](t, **kw), lambda t: -TH_MAX[nd](-t, **kw), [x], seed=seed)


@pytest.mark.parametrize("seed", range(60))
def test_avg_pool_random_configs(seed):
    rng = np.random.default_rng(100 + seed)
    nd = 1 + seed % 3
    shape, ks, ss, ps, _, ceil = _random_window(rng, nd, dilated=False)
    if nd == 3:  # torch's avg_pool3d (only) rejects an unpadded input smaller than the kernel
        shape = shape[:2] + tuple(max(n, k) for n, k in zip(shape[2:], ks))
    x = rng.standard_normal(shape)
    kw = dict(kernel_size=ks, stride=ss, padding=ps, ceil_mode=ceil,
              count_include_pad=bool(rng.integers(0, 2)))
    if nd > 1 and rng.integers(0, 3) == 0:
        kw["divisor_override"] = int(rng.integers(1, 7))
    check(lambda t: CN_AVG[nd](t, **kw), lambda t: TH_AVG[nd](t, **kw), [x], seed=seed)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_ceil_mode_last_window_starting_in_padding_is_dropped(nd):
    # L=5, k=2, s=2, p=1: ceil gives 4 windows, but the 4th would start in the right padding
    rng = np.random.default_rng(nd)
    x = tie_free((1, 2) + (5,) * nd, rng)
    for fn, th in ((CN_MAX[nd], TH_MAX[nd]), (CN_AVG[nd], TH_AVG[nd])):
        out = check(lambda t: fn(t, 2, 2, 1, ceil_mode=True),
                    lambda t: th(t, 2, 2, 1, ceil_mode=True), [x])
        assert out[0].shape[2:] == (3,) * nd
    # without padding the extra ceil window starts inside the input and is kept
    out = check(lambda t: CN_MAX[nd](t, 2, 2, 0, ceil_mode=True),
                lambda t: TH_MAX[nd](t, 2, 2, 0, ceil_mode=True), [x])
    assert out[0].shape[2:] == (3,) * nd


def test_batch_of_one_and_unbatched_input():
    rng = np.random.default_rng(3)
    x = tie_free((1, 3, 7, 6), rng)
    check(lambda t: F.max_pool2d(t, 3, 2, 1), lambda t: TF.max_pool2d(t, 3, 2, 1), [x])
    check(lambda t: F.avg_pool2d(t[0], 3, 2, 1), lambda t: TF.avg_pool2d(t[0], 3, 2, 1), [x])
    check(lambda t: F.max_pool1d(t[0], 2, return_indices=True),
          lambda t: TF.max_pool1d(t[0], 2, return_indices=True), [x[:, :, 0]])


@pytest.mark.parametrize("norm_type", [1.0, 2, 3.5])
def test_lp_pool(norm_type):
    rng = np.random.default_rng(5)
    x = np.abs(rng.standard_normal((2, 3, 7, 8))) + 0.1
    for ks, stride, ceil in (((2, 3), None, False), (3, 2, True), (2, (1, 3), False)):
        check(lambda t: F.lp_pool2d(t, norm_type, ks, stride, ceil),
              lambda t: TF.lp_pool2d(t, norm_type, ks, stride, ceil), [x])
    check(lambda t: F.lp_pool1d(t, norm_type, 3, 2, True),
          lambda t: TF.lp_pool1d(t, norm_type, 3, 2, True), [x[:, :, 0]])
    check(lambda t: F.lp_pool3d(t, norm_type, 2), lambda t: TF.lp_pool3d(t, norm_type, 2),
          [x[:, :, None].repeat(4, axis=2)])


ADAPT_SIZES = {1: [3, 1, 7, 5, 4], 2: [(3, 4), 1, (7, 2), (5, None), (2, 2)],
               3: [(2, 3, 1), 1, (3, 3, 3), (None, 2, 5)]}


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_adaptive_pools(nd):
    rng = np.random.default_rng(nd)
    shape = (2, 3) + ((10,), (7, 9), (5, 6, 7))[nd - 1]
    x = tie_free(shape, rng)
    cn_avg = getattr(F, f"adaptive_avg_pool{nd}d")
    th_avg = getattr(TF, f"adaptive_avg_pool{nd}d")
    cn_max = getattr(F, f"adaptive_max_pool{nd}d")
    th_max = getattr(TF, f"adaptive_max_pool{nd}d")
    for size in ADAPT_SIZES[nd]:
        check(lambda t: cn_avg(t, size), lambda t: th_avg(t, size), [x])
        check(lambda t: cn_max(t, size, True), lambda t: th_max(t, size, True), [x])


@pytest.mark.parametrize("seed", range(10))
def test_adaptive_random_sizes(seed):
    rng = np.random.default_rng(50 + seed)
    h, w = (int(v) for v in rng.integers(1, 13, 2))
    oh, ow = (int(v) for v in rng.integers(1, 15, 2))
    x = tie_free((2, 2, h, w), rng)
    check(lambda t: F.adaptive_avg_pool2d(t, (oh, ow)),
          lambda t: TF.adaptive_avg_pool2d(t, (oh, ow)), [x])
    check(lambda t: F.adaptive_max_pool2d(t, (oh, ow), True),
          lambda t: TF.adaptive_max_pool2d(t, (oh, ow), True), [x])


def test_global_pooling():
    rng = np.random.default_rng(9)
    x = tie_free((3, 4, 5, 6), rng)
    check(lambda t: F.global_avg_pool(t), lambda t: t.mean(dim=(2, 3), keepdim=True), [x])
    check(lambda t: F.global_max_pool(t, keepdim=False), lambda t: t.amax(dim=(2, 3)), [x])


def test_weighted_pool_matches_depthwise_conv():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 3, 7, 8))
    w = rng.standard_normal((3, 2, 3))
    for stride, pad, dil in ((None, 0, 1), (1, 1, 1), ((2, 1), (1, 0), (2, 1))):
        th_st = (2, 3) if stride is None else stride
        check(lambda t, v: F.weighted_pool2d(t, v, stride, pad, dil),
              lambda t, v: TF.conv2d(t, v[:, None], None, th_st, pad, dil, groups=3), [x, w])
    x1, w1 = x[:, :, 0], w[:, 0]
    check(lambda t, v: F.weighted_pool1d(t, v, 1, 1),
          lambda t, v: TF.conv1d(t, v[:, None], None, 1, 1, groups=3), [x1, w1])


def test_weighted_pool_uniform_weights_is_average_pool():
    rng = np.random.default_rng(12)
    x = cn.tensor(rng.standard_normal((2, 3, 6, 6)))
    w = cn.tensor(np.full((3, 2, 2), 0.25))
    np.testing.assert_allclose(F.weighted_pool2d(x, w).numpy(), F.avg_pool2d(x, 2).numpy(),
                               rtol=1e-12)


def test_gradcheck_pools():
    rng = np.random.default_rng(13)
    x = cn.tensor(tie_free((1, 2, 5, 4), rng), requires_grad=True)
    assert gradcheck(lambda t: F.max_pool2d(t, 2, 1, 1, ceil_mode=True), [x])
    assert gradcheck(lambda t: F.min_pool2d(t, (2, 3), 2, (1, 0), dilation=(2, 1)), [x])
    assert gradcheck(lambda t: F.avg_pool2d(t, 3, 2, 1, True, False), [x])
    assert gradcheck(lambda t: F.adaptive_max_pool2d(t, (3, 3)), [x])
    assert gradcheck(lambda t: F.adaptive_avg_pool2d(t, (3, 3)), [x])
    w = cn.tensor(rng.standard_normal((2, 2, 2)), requires_grad=True)
    assert gradcheck(lambda t, v: F.weighted_pool2d(t, v, 1, 1), [x, w])


def test_float32_stays_float32():
    rng = np.random.default_rng(14)
    x = cn.tensor(rng.standard_normal((2, 3, 6, 6)).astype(np.float32), requires_grad=True)
    for fn in (lambda t: F.max_pool2d(t, 2), lambda t: F.avg_pool2d(t, 3, 2, 1),
               lambda t: F.adaptive_avg_pool2d(t, 4), lambda t: F.adaptive_max_pool2d(t, 4)):
        x.grad = None
        y = fn(x)
        assert y.dtype == np.float32
        (y * y).sum().backward()
        assert x.grad.dtype == np.float32


# ---------------------------------------------------------------- the notes' properties
def test_max_pool_is_locally_translation_invariant():
    """Seed 000: pooling is invariant to small translations, f(x) = f(g(x)): moving each
    window's maximum to another cell of the same window leaves the output unchanged."""
    rng = np.random.default_rng(15)
    x = rng.uniform(0.0, 0.5, (2, 3, 8, 8))
    peaks = rng.uniform(1.0, 2.0, (2, 3, 4, 4))
    x[:, :, ::2, ::2] = peaks  # the maximum of every 2x2 window sits in its top-left cell
    shifted = np.roll(x, shift=(1, 1), axis=(2, 3))  # one-pixel shift: peaks stay in-window
    y = F.max_pool2d(cn.tensor(x), 2).numpy()
    y_shifted = F.max_pool2d(cn.tensor(shifted), 2).numpy()
    np.testing.assert_array_equal(y, peaks)
    np.testing.assert_array_equal(y_shifted, y)
    # average pooling, by contrast, is not invariant to the same shift
    assert not np.allclose(F.avg_pool2d(cn.tensor(x), 2).numpy(),
                           F.avg_pool2d(cn.tensor(shifted), 2).numpy())


@pytest.mark.parametrize("fn", [
    lambda t: F.max_pool2d(t, 2), lambda t: F.min_pool2d(t, 3, 1, 1),
    lambda t: F.avg_pool2d(t, 2), lambda t: F.lp_pool2d(t.abs() + 1, 2, 2),
    lambda t: F.adaptive_avg_pool2d(t, 3), lambda t: F.adaptive_max_pool2d(t, (2, 5)),
    lambda t: F.weighted_pool2d(t, cn.ones(5, 2, 2, dtype=cn.float64)),
])
def test_pooling_keeps_channel_count(fn):
    x = cn.tensor(np.random.default_rng(16).standard_normal((2, 5, 8, 8)))
    y = fn(x)
    assert y.shape[:2] == (2, 5)


# ------------------------------------------------------------------ property-based grid
@settings(max_examples=30, deadline=None)
@given(k=st.integers(1, 4), s=st.integers(1, 4), d=st.integers(1, 3), data=st.data(),
       ceil=st.booleans(), avg=st.booleans())
def test_pool2d_hypothesis(k, s, d, data, ceil, avg):
    p = data.draw(st.integers(0, k // 2))
    d = 1 if avg else d
    eff = d * (k - 1) + 1
    low = max(1, eff - 2 * p, -(-p // d) * d - p + 1, k if avg else 1)
    h = data.draw(st.integers(low, low + 5))
    w = data.draw(st.integers(low, low + 5))
    x = tie_free((2, 2, h, w), np.random.default_rng(h * 31 + w))
    if avg:
        cip = data.draw(st.booleans())
        check(lambda t: F.avg_pool2d(t, k, s, p, ceil, cip),
              lambda t: TF.avg_pool2d(t, k, s, p, ceil, cip), [x])
    else:
        check(lambda t: F.max_pool2d(t, k, s, p, d, ceil, True),
              lambda t: TF.max_pool2d(t, k, s, p, d, ceil, True), [x])


def test_output_sizes_match_torch_exhaustively():
    from convnet.kernels.pool import pool_output_size

    for n, k, s, p, d, ceil in itertools.product(range(1, 7), range(1, 5), range(1, 5),
                                                 range(3), range(1, 3), (False, True)):
        if p > k // 2:
            continue
        try:
            expect = TF.max_pool1d(torch.zeros(1, 1, n), k, s, p, d, ceil).shape[-1]
        except RuntimeError:  # torch: "output size is too small"
            expect = 0
        assert pool_output_size(n, k, s, p, d, ceil) == expect, (n, k, s, p, d, ceil)


def test_ceil_mode_window_larger_than_input():
    # a 1x1 map through MaxPool2d(2, 2, ceil_mode=True) (VGG on tiny inputs): one window
    x = np.array([[[[0.5]]], [[[-2.0]]]])
    for fn, th in ((F.max_pool2d, TF.max_pool2d), (F.avg_pool2d, TF.avg_pool2d)):
        out = check(lambda t: fn(t, 2, 2, ceil_mode=True),
                    lambda t: th(t, 2, 2, ceil_mode=True), [x])
        assert out[0].shape == (2, 1, 1, 1)


def test_nan_wins_like_torch():
    rng = np.random.default_rng(17)
    x = tie_free((1, 2, 6, 6), rng)
    x[0, 0, 1, 1] = x[0, 0, 0, 1] = x[0, 1, 4, 5] = np.nan
    y, idx = F.max_pool2d(cn.tensor(x), 2, return_indices=True)
    ty, tidx = TF.max_pool2d(torch.tensor(x), 2, return_indices=True)
    np.testing.assert_array_equal(idx.numpy(), tidx.numpy())
    np.testing.assert_array_equal(np.isnan(y.numpy()), np.isnan(ty.numpy()))

"""Pure-NumPy kernels: size formulas, argument parsing, im2col/col2im, flat-shift layout,
chunking, scratch reuse."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

from convnet.kernels import conv as K
from convnet.kernels.conv_flat import FlatPlan
from convnet.kernels.im2col import col2im, im2col
from convnet.kernels.shapes import (
    conv_output_size, conv_transpose_output_size, ntuple, pair, parse_conv_padding,
    same_padding, torch_pad_to_pairs,
)


@pytest.mark.parametrize("seed", range(30))
def test_output_size_formulas_match_torch(seed):
    rng = np.random.default_rng(seed)
    k, s, d = (int(v) for v in rng.integers(1, 5, 3))
    p = int(rng.integers(0, k // 2 + 1))
    size = d * (k - 1) + 1 + int(rng.integers(0, 9))
    x = torch.zeros(1, 1, size)
    assert conv_output_size(size, k, s, p, d) == TF.conv1d(x, torch.zeros(1, 1, k), None, s, p,
                                                           d).shape[-1]
    assert conv_output_size(size, k, s, p, d, ceil_mode=True) == TF.max_pool1d(
        x, k, s, p, d, ceil_mode=True).shape[-1]
    op = int(rng.integers(0, max(s, d)))
    assert conv_transpose_output_size(size, k, s, p, op, d) == TF.conv_transpose1d(
        x, torch.zeros(1, 1, k), None, s, p, op, 1, d).shape[-1]


def test_argument_parsing():
    assert pair(3) == (3, 3) and pair((1, 2)) == (1, 2) and ntuple([4], 3) == (4, 4, 4)
    assert same_padding(4, 1) == (1, 2) and same_padding(3, 2) == (2, 2)
    assert parse_conv_padding("same", 2, (4, 3), (1, 1), (1, 1)) == ((1, 2), (1, 1))
    assert parse_conv_padding((1, 2), 2, (3, 3), (1, 1), (2, 2)) == ((1, 1), (2, 2))
    assert torch_pad_to_pairs((1, 2, 3, 4), 4) == ((0, 0), (0, 0), (3, 4), (1, 2))
    with pytest.raises(ValueError, match="op: stride must be an int or a tuple of 2 ints"):
        ntuple((1, 2, 3), 2, "stride", "op")
    with pytest.raises(TypeError, match="conv2d: padding"):
        ntuple(1.5, 2, "padding", "conv2d")
    with pytest.raises(ValueError, match="'same'.*stride"):
        parse_conv_padding("same", 2, (3, 3), (1, 1), (2, 1), "conv2d")


def test_classic_col2im_is_adjoint_of_im2col():
    rng = np.random.default_rng(0)
    xp = rng.standard_normal((2, 3, 9, 8))
    kernel, stride, dil = (3, 2), (2, 3), (2, 1)
    out = tuple(conv_output_size(s, k, st, 0, d) for s, k, st, d in
                zip(xp.shape[2:], kernel, stride, dil))
    cols = im2col(xp, kernel, stride, dil, out)
    y = rng.standard_normal(cols.shape)
    back = col2im(y, xp.shape, kernel, stride, dil, out)
    assert np.isclose(np.sum(cols * y), np.sum(xp * back))


@pytest.mark.parametrize("stride,pads,dil", [((1, 1), ((1, 1), (1, 1)), (1, 1)),
                                             ((2, 3), ((0, 2), (1, 0)), (1, 2)),
                                             ((3, 1), ((2, 2), (0, 0)), (2, 1))])
def test_flat_layout_matches_classic_im2col(stride, pads, dil):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 2, 11, 9))
    kernel = (3, 2)
    plan = FlatPlan(x.shape, kernel, stride, pads, dil)
    buf = plan.pack(x)
    np.testing.assert_array_equal(plan.unpack(buf), x)
    cols = plan.im2col(buf, 0, 3, np.empty((2, 6, 3, plan.l_ext)))
    xp = np.pad(x, ((0, 0), (0, 0)) + pads)
    ref = im2col(xp, kernel, stride, dil, plan.out)  # (C, Kh, Kw, N, Oh, Ow)
    ours = plan.from_ext(cols.reshape((2, 6, 3) + plan.ext))
    np.testing.assert_array_equal(ours, ref.reshape((2, 6, 3) + plan.out))


def test_chunked_batches_match_torch(monkeypatch):
    """Tiny chunks force many batch chunks (and scratch reuse) without changing results."""
    monkeypatch.setattr(K, "CHUNK_BYTES", 1)
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((5, 4, 7, 6)), rng.standard_normal((6, 2, 3, 3))
    g = rng.standard_normal((5, 6, 4, 3))
    pads = ((1, 1), (0, 1))
    y = K.conv_forward(x, w, None, (2, 2), pads, (1, 1), 2)
    gx, gw = K.conv_backward(g, x, w, x.shape, (2, 2), pads, (1, 1), 2)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    yt = TF.conv2d(TF.pad(xt, (0, 1, 1, 1)), wt, None, 2, 0, 1, 2)
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gw, wt.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_scratch_reuse_across_different_convs():
    rng = np.random.default_rng(3)
    a = (rng.standard_normal((2, 3, 10, 10)), rng.standard_normal((4, 3, 3, 3)))
    b = (rng.standard_normal((3, 8, 5, 7)), rng.standard_normal((8, 1, 2, 2)))
    ref_a = TF.conv2d(torch.tensor(a[0]), torch.tensor(a[1]), padding=1).numpy()
    ref_b = TF.conv2d(torch.tensor(b[0]), torch.tensor(b[1]), stride=2, groups=8).numpy()
    for _ in range(2):
        np.testing.assert_allclose(K.conv_forward(*a, None, (1, 1), ((1, 1), (1, 1)), (1, 1)),
                                   ref_a, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(K.conv_forward(*b, None, (2, 2), ((0, 0), (0, 0)), (1, 1), 8),
                                   ref_b, rtol=1e-10, atol=1e-12)


def test_non_finite_values_outside_every_window_do_not_leak():
    """The flat layout reads garbage positions; they must never reach outputs or gradients."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 2, 8, 8))
    x[:, :, -1, :] = np.inf  # the last row is never inside a window (stride 2, kernel 3)
    x[:, :, :, -1] = np.nan
    w = rng.standard_normal((3, 2, 3, 3))
    y = K.conv_forward(x, w, None, (2, 2), ((0, 0), (0, 0)), (1, 1))
    assert np.isfinite(y).all()
    g = rng.standard_normal(y.shape)
    gx, gw = K.conv_backward(g, x, w, x.shape, (2, 2), ((0, 0), (0, 0)), (1, 1))
    assert np.isfinite(gw).all() and np.isfinite(gx).all()


@pytest.mark.parametrize("layout", ["flat", "classic"])
@pytest.mark.parametrize("seed", range(6))
def test_both_layouts_match_torch(monkeypatch, layout, seed):
    """Force each layout (the automatic choice depends on the waste of the extended grid)."""
    from convnet.kernels import conv_flat

    def forced(*args, **kwargs):
        kwargs.pop("flat_only", None)
        cls = conv_flat.FlatPlan if layout == "flat" else conv_flat.ClassicPlan
        return cls(*args, **kwargs)

    rng = np.random.default_rng(seed)
    groups = int(rng.choice([1, 2]))
    x = rng.standard_normal((2, 2 * groups, int(rng.integers(5, 12)), int(rng.integers(5, 12))))
    w = rng.standard_normal((3 * groups, 2, int(rng.integers(1, 4)), int(rng.integers(2, 4))))
    stride, dil = tuple(int(v) for v in rng.integers(1, 3, 2)), (1, int(rng.integers(1, 3)))
    pads = tuple((int(v), int(v)) for v in rng.integers(0, 2, 2))
    monkeypatch.setattr(K, "make_plan", forced)
    y = K.conv_forward(x, w, None, stride, pads, dil, groups)
    g = rng.standard_normal(y.shape)
    gx, gw = K.conv_backward(g, x, w, x.shape, stride, pads, dil, groups)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    yt = TF.conv2d(xt, wt, None, stride, [p for p, _ in pads], dil, groups)
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gw, wt.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kernel,stride,dilation,groups,c_in", [
    (2, 3, 1, 1, 2),   # kernel < stride: one phase receives no tap and must come out zero
    (3, 2, 2, 1, 3),   # dilation even, stride 2: all taps land in phase 0
    (3, 2, 1, 4, 4),   # depthwise, strided
    (4, 4, 1, 2, 4),   # kernel == stride, grouped
])
def test_phase_input_gradient(kernel, stride, dilation, groups, c_in):
    rng = np.random.default_rng(kernel * 10 + stride)
    x = rng.standard_normal((3, c_in, 13, 11))
    w = rng.standard_normal((2 * groups, c_in // groups, kernel, kernel))
    pads = ((1, 1), (0, 0))
    y = K.conv_forward(x, w, None, (stride,) * 2, pads, (dilation,) * 2, groups)
    g = rng.standard_normal(y.shape)
    gx, _ = K.conv_backward(g, x, w, x.shape, (stride,) * 2, pads, (dilation,) * 2, groups,
                            need_weight=False)
    xt = torch.tensor(x, requires_grad=True)
    TF.conv2d(xt, torch.tensor(w), None, stride, (1, 0), dilation, groups).backward(
        torch.tensor(g))
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_scratch_buffers_are_per_thread():
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(8)
    cases = [(rng.standard_normal((4, 3, 12, 12)), rng.standard_normal((5, 3, 3, 3)), 1, 1),
             (rng.standard_normal((3, 6, 9, 7)), rng.standard_normal((6, 2, 2, 3)), 2, 3)]
    refs = [TF.conv2d(torch.tensor(x), torch.tensor(w), padding=1, stride=s, groups=g).numpy()
            for x, w, s, g in cases]

    def work(i):
        x, w, s, g = cases[i % 2]
        return i % 2, K.conv_forward(x, w, None, (s, s), ((1, 1), (1, 1)), (1, 1), g)

    with ThreadPoolExecutor(4) as pool:
        for i, y in pool.map(work, range(16)):
            np.testing.assert_allclose(y, refs[i], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("stride, pads", [((1, 1), ((1, 1), (1, 1))), ((2, 2), ((1, 0), (2, 1))),
                                          ((3, 2), ((0, 0), (1, 1)))])
def test_flat_unpack_is_the_inverse_of_pack_on_the_input(stride, pads):
    x = np.random.default_rng(0).standard_normal((3, 2, 9, 8))
    plan = FlatPlan(x.shape, (3, 3), stride, pads, (1, 1))
    buf = plan.pack(x, tmp=np.empty(plan.tmp_size()))
    np.testing.assert_array_equal(plan.unpack(buf, tmp=np.empty(plan.tmp_size())), x)


@pytest.mark.parametrize("taps_max", [0, 10**9])  # im2col + GEMM, or per-tap strided GEMMs
@pytest.mark.parametrize("shape, kernel, pad, dil", [
    ((3, 4, 9, 7), (3, 3), 1, 1),
    ((2, 5, 8, 8), (3, 2), 2, 2),
    ((1, 3, 11), (5,), 2, 1),
    ((2, 2, 5, 6, 4), (3, 3, 3), 1, 1),
])
def test_stride1_weight_gradient_paths_match_torch(monkeypatch, taps_max, shape, kernel, pad, dil):
    monkeypatch.setattr(K, "_TAPS_MAX_CHANNELS", taps_max)
    rng = np.random.default_rng(len(shape) + pad)
    x = rng.standard_normal(shape)
    c_in, c_out, nd = shape[1], 3 if shape[1] > 3 else 5, len(kernel)  # both C_in > / < C_out
    w = rng.standard_normal((c_out, c_in) + kernel)
    conv = {1: TF.conv1d, 2: TF.conv2d, 3: TF.conv3d}[nd]
    xt, wt = torch.tensor(x), torch.tensor(w, requires_grad=True)
    yt = conv(xt, wt, None, 1, pad, dil)
    g = rng.standard_normal(tuple(yt.shape))
    yt.backward(torch.tensor(g))
    gw = K.conv_grad_weight(g, x, w.shape, (1,) * nd, ((pad, pad),) * nd, (dil,) * nd)
    np.testing.assert_allclose(gw, wt.grad.numpy(), rtol=1e-10, atol=1e-10)


def test_weight_gradient_with_an_infinite_input_matches_torch():
    """Garbage columns of the flat layout hold neighbouring pixels; with an inf there, the
    per-tap path would compute 0 * inf = nan, so it must hand over to the masked im2col."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 6, 6))
    x[0, 1, 2, 0] = np.inf  # column 0: read by the previous row's garbage columns
    w = rng.standard_normal((4, 3, 3, 3))
    wt = torch.tensor(w, requires_grad=True)
    yt = TF.conv2d(torch.tensor(x), wt, None, 1, 1)
    g = np.abs(rng.standard_normal(tuple(yt.shape)))  # positive: inf stays inf, no inf - inf
    yt.backward(torch.tensor(g))
    gw = K.conv_grad_weight(g, x, w.shape, (1, 1), ((1, 1), (1, 1)), (1, 1))
    np.testing.assert_array_equal(np.isfinite(gw), np.isfinite(wt.grad.numpy()))
    fin = np.isfinite(gw)
    np.testing.assert_allclose(gw[fin], wt.grad.numpy()[fin], rtol=1e-10)


@pytest.mark.parametrize("chunk_bytes", [1, None])
@pytest.mark.parametrize("in_size,stride,out_size", [
    ((7, 6), (2, 1), (3, 4)),    # small plane: the batch folded into one GEMM
    ((12, 9), (1, 2), (10, 4)),  # larger plane: one product per image
    ((9, 8), (3, 3), (3, 2)),
])
def test_pointwise_backward_with_fewer_windows_than_fit(monkeypatch, chunk_bytes, in_size,
                                                        stride, out_size):
    """A 1x1 conv's gradients when ``g`` covers only the first windows (a transposed conv with
    output_padding): the pixels past the last window get zero gradient and add nothing to the
    weight gradient; also with many tiny batch chunks."""
    if chunk_bytes is not None:
        monkeypatch.setattr(K, "CHUNK_BYTES", chunk_bytes)
    rng = np.random.default_rng(sum(in_size))
    x, w = rng.standard_normal((5, 4) + in_size), rng.standard_normal((6, 2, 1, 1))
    g = rng.standard_normal((5, 6) + out_size)
    gx, gw = K.conv_backward(g, x, w, x.shape, stride, ((0, 0), (0, 0)), (1, 1), 2)
    reach = tuple(s * (o - 1) + 1 for s, o in zip(stride, out_size))
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    yt = TF.conv2d(xt[:, :, :reach[0], :reach[1]], wt, None, stride, 0, 1, 2)
    assert tuple(yt.shape[2:]) == out_size
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gw, wt.grad.numpy(), rtol=1e-10, atol=1e-12)
    assert not gx[:, :, reach[0]:].any() and not gx[:, :, :, reach[1]:].any()

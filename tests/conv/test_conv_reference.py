"""The readable reference (:mod:`convnet.kernels.conv_reference`) against torch, and the fast
kernels (:mod:`convnet.kernels.conv`) against the reference, forward and backward, float64."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

from convnet.kernels import conv as fast
from convnet.kernels import conv_reference as ref

TORCH_CONV = {1: TF.conv1d, 2: TF.conv2d, 3: TF.conv3d}


def draw(seed: int, nd: int) -> dict:
    """A random conv: pointwise or not, odd sizes, stride up to 3 (sometimes above the
    kernel), dilation, groups (depthwise included), batch 1, asymmetric pads, a non-contiguous
    input and a random cotangent."""
    rng = np.random.default_rng(seed)
    kernel = tuple(int(k) for k in rng.integers(1, 4 if nd == 3 else 5, nd))
    stride = tuple(int(s) for s in rng.integers(1, 4, nd))
    dilation = tuple(int(d) for d in rng.integers(1, 3, nd))
    pads = tuple((int(rng.integers(0, 3)), int(rng.integers(0, 3))) for _ in range(nd))
    if seed % 5 == 4:  # pointwise (1x1, no padding): the fast file's plain-GEMM path
        kernel, pads = (1,) * nd, ((0, 0),) * nd
    groups = int(rng.choice([1, 1, 2, 3]))
    cg = int(rng.integers(1, 3))
    og = int(rng.integers(1, 3))
    if seed % 4 == 3:  # depthwise: one input channel per group
        cg = 1
    c, c_out = groups * cg, groups * og
    n = 1 if seed % 3 == 0 else int(rng.integers(2, 4))
    span = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    size = tuple(max(1, e - lo - hi + int(rng.integers(0, 7 if nd < 3 else 4)))
                 for e, (lo, hi) in zip(span, pads))
    # non-contiguous: every other element of a twice-as-long last axis
    x = rng.standard_normal((n, c, *size[:-1], 2 * size[-1]))[..., ::2]
    w = rng.standard_normal((c_out, cg, *kernel))
    b = rng.standard_normal(c_out)
    out = tuple((s + lo + hi - e) // st + 1
                for s, (lo, hi), e, st in zip(size, pads, span, stride))
    g = rng.standard_normal((n, c_out, *out))
    return dict(x=x, w=w, b=b, g=g, stride=stride, pads=pads, dilation=dilation, groups=groups)


def torch_conv(case: dict):
    """torch's forward and gradients (x, w, b) with the random cotangent; asymmetric
    padding is an F.pad before a conv with padding 0."""
    x = torch.tensor(case["x"], requires_grad=True)
    w = torch.tensor(case["w"], requires_grad=True)
    b = torch.tensor(case["b"], requires_grad=True)
    flat = [p for lo_hi in reversed(case["pads"]) for p in lo_hi]  # last axis first
    y = TORCH_CONV[w.ndim - 2](TF.pad(x, flat), w, b, case["stride"], 0, case["dilation"],
                               case["groups"])
    y.backward(torch.tensor(case["g"]))
    return y.detach().numpy(), x.grad.numpy(), w.grad.numpy(), b.grad.numpy()


def run(kernels, case: dict, need_input=True, need_weight=True):
    args = (case["stride"], case["pads"], case["dilation"], case["groups"])
    y = kernels.conv_forward(case["x"], case["w"], case["b"], *args)
    gx, gw = kernels.conv_backward(case["g"], case["x"], case["w"], case["x"].shape, *args,
                                   need_input=need_input, need_weight=need_weight)
    return y, gx, gw


CASES = [(nd, seed) for nd, count in ((1, 16), (2, 24), (3, 10)) for seed in range(count)]


@pytest.mark.parametrize("nd, seed", CASES)
def test_reference_matches_torch(nd, seed):
    case = draw(seed, nd)
    y, gx, gw = run(ref, case)
    ty, tgx, tgw, tgb = torch_conv(case)
    assert y.dtype == gx.dtype == gw.dtype == np.float64
    assert y.flags.c_contiguous and gx.flags.c_contiguous
    np.testing.assert_allclose(y, ty, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gx, tgx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gw, tgw, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ref.conv_bias_backward(case["g"]), tgb, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("nd, seed", CASES)
def test_fast_kernels_match_the_reference(nd, seed):
    case = draw(seed, nd)
    for want, got in zip(run(ref, case), run(fast, case)):
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    # one gradient at a time: the other comes back as None
    gx_only = fast.conv_backward(case["g"], None, case["w"], case["x"].shape, case["stride"],
                                 case["pads"], case["dilation"], case["groups"],
                                 need_weight=False)
    assert gx_only[1] is None and ref.conv_backward(
        case["g"], None, case["w"], case["x"].shape, case["stride"], case["pads"],
        case["dilation"], case["groups"], need_weight=False)[1] is None
    np.testing.assert_allclose(gx_only[0], run(ref, case)[1], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", range(8))
def test_reference_input_gradient_is_the_transposed_conv(seed):
    """With ``g`` covering fewer windows than fit (output_padding), the input gradient is
    torch's conv_transpose; the fast kernel agrees."""
    rng = np.random.default_rng(100 + seed)
    nd = 1 + seed % 3
    kernel = tuple(int(k) for k in rng.integers(1, 4, nd))
    stride = tuple(int(s) for s in rng.integers(2, 4, nd))
    dilation = tuple(int(d) for d in rng.integers(1, 3, nd))
    padding = tuple(int(rng.integers(0, d * (k - 1) + 1)) for k, d in zip(kernel, dilation))
    out_pad = tuple(int(rng.integers(0, s)) for s in stride)  # < stride (torch's rule)
    groups = int(rng.choice([1, 2]))
    xt = rng.standard_normal((2, 2 * groups, *(int(v) for v in rng.integers(1, 5, nd))))
    w = rng.standard_normal((2 * groups, 1 + seed % 2, *kernel))  # (C_in_t, C_out_t/G, *K)
    conv_t = getattr(TF, f"conv_transpose{nd}d")
    want = conv_t(torch.tensor(xt), torch.tensor(w), None, stride, padding, out_pad, groups,
                  dilation).numpy()
    pads = tuple((p, p) for p in padding)
    args = (xt, None, w, (2, w.shape[1] * groups, *want.shape[2:]), stride, pads, dilation,
            groups)
    got = ref.conv_backward(*args, need_weight=False)[0]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fast.conv_backward(*args, need_weight=False)[0], got,
                               rtol=1e-12, atol=1e-12)


def test_col2im_is_the_adjoint_of_im2col():
    rng = np.random.default_rng(7)
    xp = rng.standard_normal((2, 3, 9, 8))
    kernel, stride, dilation, out = (3, 2), (2, 3), (2, 1), (3, 3)
    cols = ref.im2col(xp, kernel, stride, dilation, out)
    assert cols.shape == (3, 3, 2, 2, 3, 3)
    assert cols[1, 2, 0, 0, 2, 1] == xp[0, 1, 2 * 2 + 2 * 2, 1 * 3 + 0]  # p s + k D
    c = rng.standard_normal(cols.shape)
    back = ref.col2im(c, xp.shape, stride, dilation)
    assert np.isclose(np.sum(cols * c), np.sum(xp * back))


@pytest.mark.parametrize("chunk_bytes", [1, None])  # one image per chunk, or the default
@pytest.mark.parametrize("nd, groups, stride", [(1, 1, 1), (2, 2, 1), (2, 1, 2), (3, 1, 1)])
def test_fast_wide_and_chunked_convs_match_the_reference(monkeypatch, chunk_bytes, nd, groups,
                                                         stride):
    """Paths the small draws above never reach: 16+ input channels at stride 1 (the input
    gradient as a conv of ``g`` with the flipped kernel) and batches split into chunks."""
    if chunk_bytes is not None:
        monkeypatch.setattr(fast, "CHUNK_BYTES", chunk_bytes)
    rng = np.random.default_rng(nd * 10 + groups + stride)
    size = (9, 7, 5)[:nd] if nd < 3 else (5, 4, 5)
    pads = ((1, 2),) + ((1, 1),) * (nd - 1)
    out = tuple((s + lo + hi - 3) // stride + 1 for s, (lo, hi) in zip(size, pads))
    case = dict(x=rng.standard_normal((3, 16, *size)), w=rng.standard_normal((8, 16 // groups,
                                                                             *(3,) * nd)),
                b=rng.standard_normal(8), g=rng.standard_normal((3, 8, *out)),
                stride=(stride,) * nd, pads=pads, dilation=(1,) * nd, groups=groups)
    for want, got in zip(run(ref, case), run(fast, case)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)

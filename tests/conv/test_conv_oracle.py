"""conv1d/2d/3d and conv_transpose1d/2d/3d against torch in float64, forward and backward,
on seeded random configurations (odd sizes, stride > kernel, dilation, groups incl. depthwise,
every padding form, batch of 1, no bias, unbatched input; for transposed convs also kernel 1
with output_padding and non-contiguous inputs)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import convnet as cn
import convnet.functional as F
from tests.helpers.oracle import check

CN_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
TH_CONV = {1: TF.conv1d, 2: TF.conv2d, 3: TF.conv3d}
CN_CONVT = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
TH_CONVT = {1: TF.conv_transpose1d, 2: TF.conv_transpose2d, 3: TF.conv_transpose3d}


def _random_conv_config(rng: np.random.Generator, nd: int) -> dict:
    groups = int(rng.choice([1, 1, 2, 3]))
    depthwise = rng.random() < 0.25
    cg = 1 if depthwise else int(rng.integers(1, 4))
    og = int(rng.integers(1, 4))
    max_k = {1: 5, 2: 4, 3: 3}[nd]
    kernel = tuple(int(v) for v in rng.integers(1, max_k + 1, nd))
    stride = tuple(int(v) for v in rng.integers(1, 5, nd))  # includes stride > kernel
    dilation = tuple(int(v) for v in rng.integers(1, 3, nd))
    form = rng.choice(["int", "tuple", "same", "valid"], p=[0.3, 0.4, 0.2, 0.1])
    if form == "same":
        stride = (1,) * nd
        padding = "same"
    elif form == "valid":
        padding = "valid"
    elif form == "int":
        padding = int(rng.integers(0, 3))
    else:
        padding = tuple(int(v) for v in rng.integers(0, 3, nd))
    pad_lo = [0] * nd if isinstance(padding, str) else (
        [padding] * nd if isinstance(padding, int) else list(padding))
    size = tuple(
        max(1, d * (k - 1) + 1 - 2 * p + int(rng.integers(0, 6)))
        for k, d, p in zip(kernel, dilation, pad_lo)
    )
    return dict(
        n=int(rng.integers(1, 4)), c_in=cg * groups, c_out=og * groups, groups=groups,
        kernel=kernel, stride=stride, dilation=dilation, padding=padding, size=size,
        bias=bool(rng.random() < 0.7), unbatched=bool(rng.random() < 0.1),
    )


@pytest.mark.filterwarnings("ignore:Using padding=.same.")
@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("seed", range(40))
def test_conv_matches_torch(nd, seed):
    rng = np.random.default_rng(1000 * nd + seed)
    cfg = _random_conv_config(rng, nd)
    shape = ((cfg["c_in"],) if cfg["unbatched"] else (cfg["n"], cfg["c_in"])) + cfg["size"]
    arrays = [rng.standard_normal(shape),
              rng.standard_normal((cfg["c_out"], cfg["c_in"] // cfg["groups"]) + cfg["kernel"])]
    if cfg["bias"]:
        arrays.append(rng.standard_normal(cfg["c_out"]))
    kw = dict(stride=cfg["stride"], padding=cfg["padding"], dilation=cfg["dilation"],
              groups=cfg["groups"])

    def run(lib):
        def fn(x, w, b=None):
            return lib[nd](x, w, b, **kw)
        return fn

    check(run(CN_CONV), run(TH_CONV), arrays, seed=seed)


def _random_transpose_config(rng: np.random.Generator, nd: int) -> dict:
    groups = int(rng.choice([1, 1, 2, 3]))
    cg = int(rng.integers(1, 4))
    og = int(rng.integers(1, 4))
    max_k = {1: 5, 2: 4, 3: 3}[nd]
    kernel = tuple(int(v) for v in rng.integers(1, max_k + 1, nd))
    stride = tuple(int(v) for v in rng.integers(1, 4, nd))
    dilation = tuple(int(v) for v in rng.integers(1, 3, nd))
    padding = tuple(int(v) for v in rng.integers(0, 3, nd))
    output_padding = tuple(int(rng.integers(0, max(s, d))) for s, d in zip(stride, dilation))
    size = tuple(int(v) for v in rng.integers(1, 6, nd))
    # keep the output non-empty
    size = tuple(
        max(s, 1 + -(-(2 * p - d * (k - 1) - op) // st))
        for s, k, st, p, d, op in zip(size, kernel, stride, padding, dilation, output_padding)
    )
    return dict(n=int(rng.integers(1, 4)), c_in=cg * groups, c_out=og * groups, groups=groups,
                kernel=kernel, stride=stride, dilation=dilation, padding=padding,
                output_padding=output_padding, size=size, bias=bool(rng.random() < 0.7))


def _random_kernel_one_transpose_config(rng: np.random.Generator, nd: int) -> dict:
    """A transposed conv with a 1-wide kernel (on every axis, or on some) and output_padding
    > 0 on at least one axis. ``output_padding < max(stride, dilation)`` is legal, so with
    kernel 1 the output can be longer than the input pixels reach: its last rows (and, with
    stride > 1, the rows between) receive nothing but the bias."""
    groups = int(rng.choice([1, 1, 2, 3]))
    cg, og = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    stride = tuple(int(v) for v in rng.integers(1, 5, nd))  # includes stride > kernel
    dilation = tuple(int(v) for v in rng.integers(1, 4, nd))
    if all(s == 1 and d == 1 for s, d in zip(stride, dilation)):  # room for output_padding
        i = int(rng.integers(nd))
        stride, dilation = (stride, dilation) if rng.random() < 0.5 else (dilation, stride)
        stride = stride[:i] + (int(rng.integers(2, 5)),) + stride[i + 1:]
    room = [max(s, d) - 1 for s, d in zip(stride, dilation)]
    output_padding = [int(rng.integers(1, r + 1)) if r and rng.random() < 0.7 else 0
                      for r in room]
    if not any(output_padding):  # at least one axis padded
        i = int(np.argmax(room))
        output_padding[i] = int(rng.integers(1, room[i] + 1))
    kernel = [1] * nd
    if rng.random() < 0.25:  # 1 on some axes only, one of them output-padded
        kernel = [int(v) for v in rng.choice([1, 2, 3], nd)]
        kernel[int(rng.choice(np.flatnonzero(output_padding)))] = 1
    kernel = tuple(kernel)
    # no padding is the 1x1 kernel's own path (no im2col); padding goes through the GEMM path
    padding = (0,) * nd if rng.random() < 0.6 else tuple(int(v) for v in rng.integers(0, 3, nd))
    size = tuple(
        max(int(rng.integers(1, 6)), 1 + -(-(2 * p - d * (k - 1) - op) // st))
        for k, st, p, d, op in zip(kernel, stride, padding, dilation, output_padding)
    )
    return dict(n=int(rng.choice([1, 1, 2, 3])), c_in=cg * groups, c_out=og * groups,
                groups=groups, kernel=kernel, stride=stride, dilation=dilation, padding=padding,
                output_padding=tuple(output_padding), size=size, bias=bool(rng.random() < 0.7),
                noncontiguous=bool(rng.random() < 0.4))


def _check_transpose(nd: int, cfg: dict, rng: np.random.Generator, seed: int):
    """Forward and backward (random cotangent) of conv_transposeNd against torch. With
    ``cfg["noncontiguous"]`` the input and the weight reach the op as strided views (every
    other element of a twice-as-long last axis / first axis)."""
    x_shape = (cfg["n"], cfg["c_in"]) + cfg["size"]
    w_shape = (cfg["c_in"], cfg["c_out"] // cfg["groups"]) + cfg["kernel"]
    view = cfg.get("noncontiguous", False)
    if view:
        x_shape = x_shape[:-1] + (2 * x_shape[-1],)
        w_shape = (2 * w_shape[0],) + w_shape[1:]
    arrays = [rng.standard_normal(x_shape), rng.standard_normal(w_shape)]
    if cfg["bias"]:
        arrays.append(rng.standard_normal(cfg["c_out"]))
    kw = dict(stride=cfg["stride"], padding=cfg["padding"], output_padding=cfg["output_padding"],
              groups=cfg["groups"], dilation=cfg["dilation"])

    def run(lib):
        def fn(x, w, b=None):
            if view:
                x, w = x[..., ::2], w[::2]
            return lib[nd](x, w, b, **kw)
        return fn

    return check(run(CN_CONVT), run(TH_CONVT), arrays, seed=seed)


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("seed", range(30))
def test_conv_transpose_matches_torch(nd, seed):
    rng = np.random.default_rng(5000 + 1000 * nd + seed)
    _check_transpose(nd, _random_transpose_config(rng, nd), rng, seed)


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("seed", range(25))
def test_conv_transpose_kernel_one_output_padding_matches_torch(nd, seed):
    """Kernel 1 with output_padding > 0 (issue 12: a NumPy broadcast/reshape error before)."""
    rng = np.random.default_rng(9000 + 1000 * nd + seed)
    cfg = _random_kernel_one_transpose_config(rng, nd)
    assert any(op and k == 1 for op, k in zip(cfg["output_padding"], cfg["kernel"]))
    _check_transpose(nd, cfg, rng, seed)


def _cfg(x_shape, w_shape, groups=1, bias=True, noncontiguous=False, **kw):
    nd = len(x_shape) - 2
    full = dict(stride=(1,) * nd, padding=(0,) * nd, output_padding=(0,) * nd,
                dilation=(1,) * nd)
    full.update({k: v if isinstance(v, tuple) else (v,) * nd for k, v in kw.items()})
    return dict(full, n=x_shape[0], c_in=x_shape[1], size=tuple(x_shape[2:]), groups=groups,
                c_out=w_shape[1] * groups, kernel=tuple(w_shape[2:]), bias=bias,
                noncontiguous=noncontiguous)


@pytest.mark.parametrize("cfg", [
    # the report of issue 12, exactly
    _cfg((1, 2, 2, 5), (2, 1, 1, 1), bias=False, stride=(1, 2), output_padding=(1, 0),
         dilation=(2, 2)),
    # stride 1: only dilation > output_padding allows it; the last pixels get no input
    _cfg((2, 3, 4), (3, 2, 1), stride=1, dilation=3, output_padding=2),
    _cfg((1, 4, 3, 3), (4, 1, 1, 1), groups=2, dilation=(2, 1), output_padding=(1, 0)),
    # stride > kernel, with padding (the GEMM path) and without (the 1x1 path)
    _cfg((2, 2, 4, 3), (2, 3, 1, 1), stride=(3, 2), padding=(1, 0), output_padding=(2, 1)),
    _cfg((2, 2, 4, 3), (2, 3, 1, 1), stride=(3, 2), output_padding=(2, 1)),
    _cfg((1, 2, 5), (2, 2, 1), stride=4, padding=1, output_padding=3),
    # output_padding on one axis only, 3-D, groups, non-contiguous
    _cfg((1, 2, 3, 2, 4), (2, 1, 1, 1, 1), groups=2, stride=(2, 1, 1), dilation=(1, 1, 3),
         output_padding=(0, 0, 2), noncontiguous=True),
    _cfg((3, 6, 2, 3, 2), (6, 1, 1, 1, 1), groups=3, stride=(1, 3, 2),
         output_padding=(0, 2, 0)),
    # kernel 1 on one axis only, output_padding on that axis
    _cfg((2, 2, 4, 5), (2, 2, 3, 1), stride=(1, 2), dilation=(1, 3), output_padding=(0, 2)),
], ids=lambda c: f"x{(c['n'], c['c_in']) + c['size']}-k{c['kernel']}-op{c['output_padding']}")
def test_conv_transpose_kernel_one_cases(cfg):
    nd = len(cfg["size"])
    _check_transpose(nd, cfg, np.random.default_rng(len(str(cfg))), 0)


def test_conv_transpose_rows_no_input_reaches_hold_the_bias():
    """Kernel 1 with stride 3 and output_padding 2 on rows, dilation 2 and output_padding 1 on
    columns: every row not at a multiple of 3 (the last two included) and the last column
    receive only the bias, and their gradient reaches neither the input nor the weight."""
    rng = np.random.default_rng(12)
    x = cn.tensor(rng.standard_normal((2, 3, 3, 2)), requires_grad=True)
    w = cn.tensor(rng.standard_normal((3, 4, 1, 1)), requires_grad=True)
    b = cn.tensor(rng.standard_normal(4), requires_grad=True)
    y = F.conv_transpose2d(x, w, b, stride=(3, 1), output_padding=(2, 1), dilation=(1, 2))
    assert y.shape == (2, 4, 9, 3)
    bias_only = np.ones((9, 3), dtype=bool)
    bias_only[::3, :2] = False
    expected = np.broadcast_to(b.numpy()[:, None], (2, 4, int(bias_only.sum())))
    np.testing.assert_array_equal(y.numpy()[:, :, bias_only], expected)
    g = np.zeros(y.shape)
    g[:, :, bias_only] = rng.standard_normal((2, 4, int(bias_only.sum())))
    (y * cn.tensor(g)).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), 0)
    np.testing.assert_array_equal(w.grad.numpy(), 0)
    np.testing.assert_allclose(b.grad.numpy(), g.sum(axis=(0, 2, 3)))


def test_conv_transpose_positional_order():
    """output_padding, groups, dilation come in PyTorch's positional order."""
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((2, 4, 5, 6)), rng.standard_normal((4, 3, 3, 3))
    b = rng.standard_normal(6)
    check(lambda x, w, b: F.conv_transpose2d(x, w, b, 2, 1, 1, 2, 2),
          lambda x, w, b: TF.conv_transpose2d(x, w, b, 2, 1, 1, 2, 2), [x, w, b])


@pytest.mark.filterwarnings("ignore:Using padding=.same.")
@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("kernel,dilation", [(2, 1), (4, 1), (3, 2), (2, 3), (5, 1)])
def test_padding_strings(padding, kernel, dilation):
    """'same' with even kernels/dilations splits asymmetrically exactly as torch."""
    rng = np.random.default_rng(kernel * 10 + dilation)
    x = rng.standard_normal((2, 3, 9, 8))
    w = rng.standard_normal((4, 3, kernel, kernel + 1))
    out = check(lambda x, w: F.conv2d(x, w, padding=padding, dilation=dilation),
                lambda x, w: TF.conv2d(x, w, padding=padding, dilation=dilation), [x, w])
    if padding == "same":
        assert out[0].shape[2:] == (9, 8)


def test_stride_larger_than_kernel_and_batch_one():
    rng = np.random.default_rng(7)
    x, w = rng.standard_normal((1, 2, 11, 13)), rng.standard_normal((3, 2, 2, 2))
    check(lambda x, w: F.conv2d(x, w, stride=(5, 4), padding=1),
          lambda x, w: TF.conv2d(x, w, stride=(5, 4), padding=1), [x, w])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept(dtype):
    rng = np.random.default_rng(0)
    x = cn.tensor(rng.standard_normal((2, 4, 7, 7)).astype(dtype), requires_grad=True)
    w = cn.tensor(rng.standard_normal((6, 2, 3, 3)).astype(dtype), requires_grad=True)
    b = cn.tensor(rng.standard_normal(6).astype(dtype), requires_grad=True)
    for y in (F.conv2d(x, w, b, padding=1, groups=2),
              F.conv_transpose2d(x, cn.tensor(rng.standard_normal((4, 3, 3, 3)).astype(dtype)),
                                 stride=2)):
        assert y.dtype == np.dtype(dtype)
    y = F.conv2d(x, w, b, padding=1, groups=2)
    (y * y).sum().backward()
    for t in (x, w, b):
        assert t.grad.dtype == np.dtype(dtype)


def test_float32_close_to_torch():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((4, 8, 12, 12)).astype(np.float32)
    w = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
    ours = F.conv2d(cn.tensor(x), cn.tensor(w), padding=1, stride=2).numpy()
    ref = TF.conv2d(torch.tensor(x), torch.tensor(w), padding=1, stride=2).numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4)


def test_gradcheck_conv_and_transpose():
    rng = np.random.default_rng(5)
    x = cn.tensor(rng.standard_normal((2, 4, 6, 5)), requires_grad=True)
    w = cn.tensor(rng.standard_normal((6, 2, 3, 2)), requires_grad=True)
    b = cn.tensor(rng.standard_normal(6), requires_grad=True)
    assert cn.autograd.gradcheck(
        lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=(1, 2), dilation=(1, 2),
                                 groups=2), [x, w, b])
    wt = cn.tensor(rng.standard_normal((4, 3, 3, 3)), requires_grad=True)
    assert cn.autograd.gradcheck(
        lambda x, w: F.conv_transpose2d(x, w, None, 2, 1, 1, 1, 1), [x, wt])
    x1 = cn.tensor(rng.standard_normal((2, 3, 7)), requires_grad=True)
    w1 = cn.tensor(rng.standard_normal((3, 1, 3)), requires_grad=True)
    assert cn.autograd.gradcheck(lambda x, w: F.conv1d(x, w, padding="same", groups=3), [x1, w1])


def test_gradcheck_catches_wrong_backward(monkeypatch):
    """The gradcheck really tests our backward: a deliberately broken one must fail."""
    import convnet.functional.conv as conv_mod

    rng = np.random.default_rng(0)
    x = cn.tensor(rng.standard_normal((1, 2, 5, 5)), requires_grad=True)
    w = cn.tensor(rng.standard_normal((3, 2, 3, 3)), requires_grad=True)
    original = conv_mod._Conv.backward

    def wrong(self, g):
        gx, gw, gb = original(self, g)
        return gx, gw * 1.01, gb

    monkeypatch.setattr(conv_mod._Conv, "backward", wrong)
    with pytest.raises(AssertionError):
        cn.autograd.gradcheck(lambda x, w: F.conv2d(x, w, padding=1), [x, w])


@pytest.mark.parametrize("shape,groups,stride", [
    ((5, 6, 3, 3), 1, 1), ((4, 6, 2, 2), 2, 1), ((3, 8, 1, 1), 1, 1), ((6, 4, 4, 3), 2, 1),
    ((1, 6, 3, 2), 3, 1), ((5, 6, 5, 5), 2, 2), ((7, 4, 8, 8), 1, 1),
])
def test_pointwise_small_planes_fold_the_batch(shape, groups, stride):
    """1x1 convs on planes under 16 pixels run as one GEMM over all images (a separate code
    path from the per-image GEMMs of larger planes)."""
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape)
    w = rng.standard_normal((2 * groups, shape[1] // groups, 1, 1))
    b = rng.standard_normal(2 * groups)
    check(lambda t, u, v: F.conv2d(t, u, v, stride=stride, groups=groups),
          lambda t, u, v: TF.conv2d(t, u, v, stride=stride, groups=groups), [x, w, b])

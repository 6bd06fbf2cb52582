"""conv1d/2d/3d and conv_transpose1d/2d/3d against torch in float64, forward and backward,
on seeded random configurations (odd sizes, stride > kernel, dilation, groups incl. depthwise,
every padding form, batch of 1, no bias, unbatched input)."""
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


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("seed", range(30))
def test_conv_transpose_matches_torch(nd, seed):
    rng = np.random.default_rng(5000 + 1000 * nd + seed)
    cfg = _random_transpose_config(rng, nd)
    arrays = [rng.standard_normal((cfg["n"], cfg["c_in"]) + cfg["size"]),
              rng.standard_normal((cfg["c_in"], cfg["c_out"] // cfg["groups"]) + cfg["kernel"])]
    if cfg["bias"]:
        arrays.append(rng.standard_normal(cfg["c_out"]))
    kw = dict(stride=cfg["stride"], padding=cfg["padding"], output_padding=cfg["output_padding"],
              groups=cfg["groups"], dilation=cfg["dilation"])

    def run(lib):
        def fn(x, w, b=None):
            return lib[nd](x, w, b, **kw)
        return fn

    check(run(CN_CONVT), run(TH_CONVT), arrays, seed=seed)


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

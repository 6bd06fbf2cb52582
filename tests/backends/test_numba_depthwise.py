"""The depthwise 3x3 forward study kernel against torch's grouped conv2d and convnet's own."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("numba")

import convnet as cn  # noqa: E402
import convnet.functional as F  # noqa: E402
from convnet.backends.numba_kernels.depthwise import depthwise3x3_forward  # noqa: E402

# odd sizes, batch 1, planes smaller than the window once padded, one channel
SHAPES = [(1, 1, 3, 3), (2, 3, 5, 7), (3, 5, 9, 6), (2, 2, 1, 1), (1, 3, 2, 5), (4, 8, 16, 16),
          (2, 4, 33, 31)]


def _torch(x, w, stride, padding):
    return torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), stride=stride,
                                      padding=padding, groups=x.shape[1]).numpy()


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("padding", [0, 1, 2])
def test_matches_torch(rng, dtype, rtol, stride, padding):
    for shape in SHAPES:
        N, C, H, W = shape
        if H + 2 * padding < 3 or W + 2 * padding < 3:
            continue
        x = rng.standard_normal(shape).astype(dtype)
        w = rng.standard_normal((C, 1, 3, 3)).astype(dtype)
        y = depthwise3x3_forward(x, w, stride, padding)
        ref = _torch(x, w, stride, padding)
        assert y.shape == ref.shape and y.dtype == dtype, shape
        np.testing.assert_allclose(y, ref, rtol=rtol, atol=rtol * np.abs(ref).max(),
                                   err_msg=str(shape))


@pytest.mark.parametrize("stride", [1, 2])
def test_matches_convnet_conv2d_non_contiguous(rng, stride):
    x = rng.standard_normal((3, 10, 12, 6)).transpose(0, 3, 1, 2)  # (3, 6, 10, 12), strided
    w = rng.standard_normal((6, 1, 3, 3))
    y = depthwise3x3_forward(x, w, stride, 1)
    ref = F.conv2d(cn.tensor(x), cn.tensor(w), stride=stride, padding=1, groups=6).numpy()
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)


def test_nan_and_inf_propagate_like_torch(rng):
    x = rng.standard_normal((1, 2, 6, 6))
    x[0, 0, 2, 3] = np.nan
    x[0, 1, 0, 0] = np.inf
    w = np.abs(rng.standard_normal((2, 1, 3, 3))) + 0.1  # positive: inf stays +inf
    for stride in (1, 2):
        y = depthwise3x3_forward(x, w, stride, 1)
        ref = _torch(x, w, stride, 1)
        np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
        np.testing.assert_array_equal(np.isinf(y), np.isinf(ref))
        assert np.isnan(y).sum() > 0 and np.isinf(y).sum() > 0
        fin = np.isfinite(ref)
        np.testing.assert_allclose(y[fin], ref[fin], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("args, match", [
    ((np.zeros((2, 3, 4, 4)), np.zeros((3, 1, 5, 5)), 1, 1), r"w must be \(3, 1, 3, 3\)"),
    ((np.zeros((2, 3, 4, 4)), np.zeros((3, 1, 3, 3)), 3, 1), "stride must be 1 or 2"),
    ((np.zeros((2, 3, 1, 4)), np.zeros((3, 1, 3, 3)), 1, 0), "no 3x3 window in 1x4"),
    ((np.zeros((3, 4, 4)), np.zeros((3, 1, 3, 3)), 1, 1), r"\(N, C, H, W\)"),
])
def test_bad_arguments_are_clear_errors(args, match):
    with pytest.raises(ValueError, match=match):
        depthwise3x3_forward(*args)


# ------------------------------------------------------------ wired into the numba backend
@pytest.mark.parametrize("stride,padding,bias", [(1, 1, True), (2, 1, False), (1, 0, True),
                                                 (2, 2, True)])
def test_conv2d_depthwise_through_the_numba_backend(stride, padding, bias, monkeypatch):
    import convnet as cn
    import convnet.functional as F
    from convnet import backends
    from convnet.backends.numba_kernels import depthwise as dw

    calls = []
    real = dw.depthwise3x3_forward
    monkeypatch.setattr(dw, "depthwise3x3_forward", lambda *a: calls.append(a[2:]) or real(*a))
    before = backends.get().name
    backends.use("numba")
    try:
        rng = np.random.default_rng(stride * 10 + padding)
        x = rng.standard_normal((2, 5, 9, 8))
        w = rng.standard_normal((5, 1, 3, 3))
        b = rng.standard_normal(5) if bias else None
        g = rng.standard_normal(torch.nn.functional.conv2d(
            torch.tensor(x), torch.tensor(w), None, stride, padding, groups=5).shape)
        xs, ws = cn.tensor(x, requires_grad=True), cn.tensor(w, requires_grad=True)
        bs = cn.tensor(b, requires_grad=True) if bias else None
        y = F.conv2d(xs, ws, bs, stride, padding, groups=5)
        y.backward(cn.tensor(g))
        xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
        bt = torch.tensor(b, requires_grad=True) if bias else None
        yt = torch.nn.functional.conv2d(xt, wt, bt, stride, padding, groups=5)
        yt.backward(torch.tensor(g))
    finally:
        backends.use(before)
    assert calls == [(stride, padding)]  # the compiled kernel ran, once, with these settings
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(xs.grad.numpy(), xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ws.grad.numpy(), wt.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kw", [dict(dilation=2, padding=2), dict(padding=(1, 0)),
                                dict(stride=3, padding=1)])
def test_other_convs_fall_back_to_numpy(kw, monkeypatch):
    import convnet as cn
    import convnet.functional as F
    from convnet import backends
    from convnet.backends.numba_kernels import depthwise as dw

    monkeypatch.setattr(dw, "depthwise3x3_forward", lambda *a: pytest.fail("not depthwise 3x3"))
    before = backends.get().name
    backends.use("numba")
    try:
        x = np.random.default_rng(0).standard_normal((1, 4, 9, 9))
        w = np.random.default_rng(1).standard_normal((4, 1, 3, 3))
        y = F.conv2d(cn.tensor(x), cn.tensor(w), groups=4, **kw).numpy()
    finally:
        backends.use(before)
    yt = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), groups=4, **kw).numpy()
    np.testing.assert_allclose(y, yt, rtol=1e-12, atol=1e-12)

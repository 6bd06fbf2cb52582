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


# ------------------------------------------------------------ backward (the backend's conv_backward)
def _torch_grads(x, w, g, stride, padding, bias=None):
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    bt = torch.tensor(bias, requires_grad=True) if bias is not None else None
    yt = torch.nn.functional.conv2d(xt, wt, bt, stride, padding, groups=x.shape[1])
    yt.backward(torch.tensor(g))
    return yt.detach().numpy(), xt.grad.numpy(), wt.grad.numpy()


def _out_shape(shape, stride, padding):
    N, C, H, W = shape
    return N, C, (H + 2 * padding - 3) // stride + 1, (W + 2 * padding - 3) // stride + 1


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("padding", [0, 1, 2])
def test_backward_matches_torch(rng, dtype, rtol, stride, padding):
    from convnet.backends.numba_kernels.depthwise import depthwise3x3_backward

    for shape in SHAPES:
        N, C, H, W = shape
        if H + 2 * padding < 3 or W + 2 * padding < 3:
            continue
        x = rng.standard_normal(shape).astype(dtype)
        w = rng.standard_normal((C, 1, 3, 3)).astype(dtype)
        g = rng.standard_normal(_out_shape(shape, stride, padding)).astype(dtype)
        _, gx_ref, gw_ref = _torch_grads(x, w, g, stride, padding)
        gx, gw = depthwise3x3_backward(g, x, w, shape, stride, padding)
        assert gx.shape == shape and gw.shape == w.shape and gx.dtype == gw.dtype == dtype
        np.testing.assert_allclose(gx, gx_ref, rtol=rtol, atol=rtol * np.abs(gx_ref).max(),
                                   err_msg=str(shape))
        np.testing.assert_allclose(gw, gw_ref, rtol=rtol, atol=rtol * np.abs(gw_ref).max(),
                                   err_msg=str(shape))


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("need_input, need_weight", [(True, False), (False, True),
                                                     (False, False)])
def test_backward_subsets_and_non_contiguous(rng, stride, need_input, need_weight):
    from convnet.backends.numba_kernels.depthwise import conv_backward

    x = rng.standard_normal((3, 9, 11, 6)).transpose(0, 3, 1, 2)  # (3, 6, 9, 11), strided
    w = rng.standard_normal((6, 1, 3, 3))
    n, c, ho, wo = _out_shape(x.shape, stride, 1)
    g = rng.standard_normal((n, c, ho, 2 * wo))[..., ::2]  # every other column
    assert not (x.flags.c_contiguous or g.flags.c_contiguous)
    _, gx_ref, gw_ref = _torch_grads(np.ascontiguousarray(x), w, np.ascontiguousarray(g),
                                     stride, 1)
    gx, gw = conv_backward(g, x, w, x.shape, (stride, stride), ((1, 1), (1, 1)), (1, 1), 6,
                           need_input=need_input, need_weight=need_weight)
    assert (gx is None) != need_input and (gw is None) != need_weight
    if need_input:
        np.testing.assert_allclose(gx, gx_ref, rtol=1e-12, atol=1e-12)
    if need_weight:
        np.testing.assert_allclose(gw, gw_ref, rtol=1e-12, atol=1e-12)


def test_backward_nan_and_inf_reach_the_gradients_torch_gives(rng):
    from convnet.backends.numba_kernels.depthwise import depthwise3x3_backward

    x = rng.standard_normal((1, 2, 7, 7))
    x[0, 0, 0, 0] = np.inf   # read by one tap of one window only (padding 0)
    x[0, 1, 6, 5] = np.nan
    w = np.abs(rng.standard_normal((2, 1, 3, 3))) + 0.1
    for stride in (1, 2):
        g = np.abs(rng.standard_normal(_out_shape(x.shape, stride, 0))) + 0.1
        g[0, 1, 0, 1] = np.nan
        _, gx_ref, gw_ref = _torch_grads(x, w, g, stride, 0)
        gx, gw = depthwise3x3_backward(g, x, w, x.shape, stride, 0)
        for got, ref in ((gx, gx_ref), (gw, gw_ref)):
            np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
            np.testing.assert_array_equal(np.isinf(got), np.isinf(ref))
            fin = np.isfinite(ref)
            np.testing.assert_allclose(got[fin], ref[fin], rtol=1e-12, atol=1e-12)
        assert np.isinf(gw).sum() == 1 and np.isnan(gx).any()


@pytest.mark.parametrize("stride,padding,bias,shape", [
    (1, 1, True, (2, 5, 9, 8)), (2, 1, False, (1, 3, 7, 10)), (1, 0, True, (1, 4, 5, 5)),
    (2, 2, True, (3, 2, 6, 9)), (2, 0, False, (2, 3, 8, 7))])
@pytest.mark.parametrize("need", ["both", "input", "weight"])
def test_conv2d_backward_runs_the_compiled_kernels(stride, padding, bias, shape, need,
                                                   monkeypatch):
    from convnet import backends
    from convnet.backends.numba_kernels import depthwise as dw

    calls = []
    real = dw.depthwise3x3_backward
    monkeypatch.setattr(dw, "depthwise3x3_backward",
                        lambda *a: calls.append(a[4:]) or real(*a))
    monkeypatch.setattr(dw, "_numpy_conv_backward", lambda *a, **k: pytest.fail("fell back"))
    rng = np.random.default_rng(hash((stride, padding, shape)) % 2**32)
    C = shape[1]
    x, w = rng.standard_normal(shape), rng.standard_normal((C, 1, 3, 3))
    b = rng.standard_normal(C) if bias else None
    g = rng.standard_normal(_out_shape(shape, stride, padding))
    yt, gx_ref, gw_ref = _torch_grads(x, w, g, stride, padding, b)
    before = backends.get().name
    backends.use("numba")
    try:
        xs = cn.tensor(x, requires_grad=need != "weight")
        ws = cn.tensor(w, requires_grad=need != "input")
        bs = cn.tensor(b, requires_grad=True) if bias else None
        y = F.conv2d(xs, ws, bs, stride, padding, groups=C)
        y.backward(cn.tensor(g))
    finally:
        backends.use(before)
    assert calls == [(stride, padding, need != "weight", need != "input")]
    np.testing.assert_allclose(y.numpy(), yt, rtol=1e-12, atol=1e-12)
    if need != "weight":
        np.testing.assert_allclose(xs.grad.numpy(), gx_ref, rtol=1e-12, atol=1e-12)
    if need != "input":
        np.testing.assert_allclose(ws.grad.numpy(), gw_ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kw", [dict(dilation=2, padding=2), dict(padding=(1, 0)),
                                dict(stride=3, padding=1), dict(stride=(1, 2), padding=1)])
def test_other_conv_backwards_fall_back_to_numpy(kw, monkeypatch):
    from convnet import backends
    from convnet.backends.numba_kernels import depthwise as dw

    monkeypatch.setattr(dw, "depthwise3x3_backward", lambda *a: pytest.fail("not covered"))
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((2, 4, 9, 9)), rng.standard_normal((4, 1, 3, 3))
    yt = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), groups=4, **kw)
    g = rng.standard_normal(yt.shape)
    before = backends.get().name
    backends.use("numba")
    try:
        xs, ws = cn.tensor(x, requires_grad=True), cn.tensor(w, requires_grad=True)
        F.conv2d(xs, ws, groups=4, **kw).backward(cn.tensor(g))
    finally:
        backends.use(before)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    torch.nn.functional.conv2d(xt, wt, groups=4, **kw).backward(torch.tensor(g))
    np.testing.assert_allclose(xs.grad.numpy(), xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ws.grad.numpy(), wt.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("stride,padding,output_padding", [(1, 1, 0), (2, 1, 1), (2, 0, 0)])
def test_depthwise_conv_transpose_backward_through_the_numba_backend(stride, padding,
                                                                     output_padding, monkeypatch):
    """A transposed conv's weight gradient calls conv_backward with g and x swapped (the
    conv's output is the transposed conv's input): the depthwise kernel covers it exactly."""
    from convnet import backends
    from convnet.backends.numba_kernels import depthwise as dw

    calls = []
    real = dw.depthwise3x3_backward
    monkeypatch.setattr(dw, "depthwise3x3_backward",
                        lambda *a: calls.append(a[4:]) or real(*a))

    rng = np.random.default_rng(stride + 7 * padding)
    x, w = rng.standard_normal((2, 3, 5, 6)), rng.standard_normal((3, 1, 3, 3))
    kw = dict(stride=stride, padding=padding, output_padding=output_padding, groups=3)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    yt = torch.nn.functional.conv_transpose2d(xt, wt, **kw)
    g = rng.standard_normal(yt.shape)
    yt.backward(torch.tensor(g))
    before = backends.get().name
    backends.use("numba")
    try:
        xs, ws = cn.tensor(x, requires_grad=True), cn.tensor(w, requires_grad=True)
        F.conv_transpose2d(xs, ws, **kw).backward(cn.tensor(g))
    finally:
        backends.use(before)
    assert calls == [(stride, padding, False, True)]  # the weight gradient, compiled
    np.testing.assert_allclose(xs.grad.numpy(), xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ws.grad.numpy(), wt.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_conv_backward_falls_back_when_g_covers_fewer_windows(rng, monkeypatch):
    """g smaller than the conv's output (a transposed conv's output_padding >= stride, allowed
    with dilation) or in another dtype goes to the NumPy kernel."""
    from convnet.backends.numba_kernels import depthwise as dw

    monkeypatch.setattr(dw, "depthwise3x3_backward", lambda *a: pytest.fail("not covered"))
    x, w = rng.standard_normal((1, 2, 8, 8)), rng.standard_normal((2, 1, 3, 3))
    args = ((1, 1), ((1, 1), (1, 1)), (1, 1), 2)
    ref = dw._numpy_conv_backward(rng.standard_normal((1, 2, 7, 8)), x, w, x.shape, *args)
    got = dw.conv_backward(rng.standard_normal((1, 2, 7, 8)), x, w, x.shape, *args)
    assert got[0].shape == ref[0].shape == x.shape and got[1].shape == w.shape
    got = dw.conv_backward(rng.standard_normal((1, 2, 8, 8)).astype(np.float32), x, w,
                           x.shape, *args)
    assert got[0].shape == x.shape

"""The numba batch-norm kernels against the NumPy reference and torch, alone and through
autograd with the backend switched."""
import numpy as np
import pytest

from convnet import backends

torch = pytest.importorskip("torch")
# loading the backend first points numba's cache at $NUMBA_CACHE_DIR (not the source tree)
if "numba" not in backends.available():
    pytest.skip("numba is not installed", allow_module_level=True)

import torch.nn.functional as TF  # noqa: E402

import convnet as cn  # noqa: E402
import convnet.functional as F  # noqa: E402
from convnet.backends.numba_kernels import norm as nb  # noqa: E402
from convnet.kernels import norm as ref  # noqa: E402

# (N, C, S): odd sizes, batch 1, one channel, S at and above the compiled threshold
SHAPES = [(3, 5, 17), (1, 4, 64), (2, 1, 9), (7, 3, nb._MIN_S), (16, 6, 33)]
TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=2e-5, atol=2e-5)}


@pytest.fixture
def restore_backend():
    before = backends.get().name
    yield
    backends.use(before)


def _data(rng, shape, dtype):
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    w = rng.standard_normal(shape[1]).astype(dtype)
    b = rng.standard_normal(shape[1]).astype(dtype)
    return x, w, b


def _close(a, b, dtype, scale=1.0):
    t = TOL[dtype]
    np.testing.assert_allclose(a, b, rtol=t["rtol"], atol=t["atol"] * scale)


def _torch_forward(x, w, b, eps):
    tx = torch.from_numpy(x.astype(np.float64))
    var, mean = torch.var_mean(tx, dim=(0, 2), unbiased=False)
    y = TF.batch_norm(tx, None, None, None if w is None else torch.from_numpy(w.astype(np.float64)),
                      None if b is None else torch.from_numpy(b.astype(np.float64)), True, 0.1, eps)
    return y.numpy(), mean.numpy(), var.numpy()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("affine", [(True, True), (True, False), (False, False)])
def test_forward_matches_numpy_and_torch(rng, shape, dtype, affine):
    x, w, b = _data(rng, shape, dtype)
    w = w if affine[0] else None
    b = b if affine[1] else None
    got = nb.normalize_forward(x, shape, shape, w, b, 1e-3)
    want = ref.normalize_forward(x, shape, shape, w, b, 1e-3)
    for name, g, r in zip(["y", "xc", "mean", "var", "invstd"], got, want):
        assert g.shape == r.shape and g.dtype == r.dtype == dtype, name
        _close(g, r, dtype, scale=10)
    y, mean, var, invstd = got[0], got[2], got[3], got[4]
    np.testing.assert_allclose(got[1], x - mean.reshape(1, -1, 1), rtol=0, atol=0)
    ty, tmean, tvar = _torch_forward(x, w, b, 1e-3)
    _close(y, ty, dtype, scale=10)
    _close(mean, tmean, dtype, scale=10)
    _close(var, tvar, dtype, scale=10)
    _close(invstd, 1 / np.sqrt(tvar + 1e-3), dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", SHAPES)
def test_backward_matches_numpy_and_torch(rng, shape, dtype):
    x, w, b = _data(rng, shape, dtype)
    g = rng.standard_normal(shape).astype(dtype)
    _, xc, _, _, invstd = ref.normalize_forward(x, shape, shape, w, b, 1e-3)
    gx, gw, gb = nb.normalize_backward(g, xc, invstd, shape, w, True)
    rgx, rgw, rgb = ref.normalize_backward(g, xc, invstd, shape, w, True)
    for got, want in ((gx, rgx), (gw, rgw), (gb, rgb)):
        assert got.shape == want.shape and got.dtype == want.dtype == dtype
        _close(got, want, dtype, scale=10)
    tx, tw, tb = (torch.tensor(a.astype(np.float64), requires_grad=True) for a in (x, w, b))
    ty = TF.batch_norm(tx, None, None, tw, tb, True, 0.1, 1e-3)
    ty.backward(torch.from_numpy(g.astype(np.float64)))
    _close(gx, tx.grad.numpy(), dtype, scale=10)
    _close(gw, tw.grad.numpy(), dtype, scale=10 * shape[0] * shape[2])
    _close(gb, tb.grad.numpy(), dtype, scale=10 * shape[0] * shape[2])
    # no input gradient asked: the sums only, the same values
    none, gw2, gb2 = nb.normalize_backward(g, xc, invstd, shape, w, False)
    assert none is None
    np.testing.assert_array_equal(gw2, gw)
    np.testing.assert_array_equal(gb2, gb)
    # no weight: k = invstd
    gx_nw, _, _ = nb.normalize_backward(g, xc, invstd, shape, None, True)
    _close(gx_nw, ref.normalize_backward(g, xc, invstd, shape, None, True)[0], dtype, scale=10)


def test_non_contiguous_and_broadcast_inputs(rng):
    base = rng.standard_normal((4, 40, 3))
    x = base.transpose(0, 2, 1)[:, :, ::2]  # (4, 3, 20), neither C- nor F-contiguous
    assert not x.flags.c_contiguous
    shape = x.shape
    w, b = rng.standard_normal(3)[::-1], rng.standard_normal(6)[::2]  # strided parameters
    got = nb.normalize_forward(x, shape, shape, w, b, 1e-5)
    want = ref.normalize_forward(np.ascontiguousarray(x), shape, shape, w, b, 1e-5)
    for g, r in zip(got, want):
        _close(g, r, np.float64)
    g = np.broadcast_to(rng.standard_normal((1, 3, 1)), shape)  # stride-0 cotangent
    gc = np.ascontiguousarray(g)
    for gg, rr in zip(nb.normalize_backward(g, got[1], got[4], shape, w, True),
                      ref.normalize_backward(gc, want[1], want[4], shape, w, True)):
        _close(gg, rr, np.float64)
    s, h = rng.standard_normal(3), rng.standard_normal(3)
    _close(nb.scale_shift_forward(x, s, h), x * s[:, None] + h[:, None], np.float64)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # the NumPy kernel's inf - inf
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_nan_and_inf_propagate_like_numpy_and_torch(rng, dtype):
    shape = (3, 4, 16)
    x, w, b = _data(rng, shape, dtype)
    x[1, 0, 5] = np.nan   # channel 0: NaN mean -> all NaN
    x[2, 1, 7] = np.inf   # channel 1: inf mean, inf - inf -> NaN
    x[0, 2, 3] = -np.inf  # channel 2: likewise; channel 3 stays finite
    got = nb.normalize_forward(x, shape, shape, w, b, 1e-5)
    want = ref.normalize_forward(x, shape, shape, w, b, 1e-5)
    for g, r in zip(got, want):
        np.testing.assert_array_equal(np.isnan(g), np.isnan(r))
        np.testing.assert_array_equal(np.isposinf(g), np.isposinf(r))
        np.testing.assert_array_equal(np.isneginf(g), np.isneginf(r))
        fin = np.isfinite(r)
        _close(g[fin], r[fin], dtype, scale=10)
    assert np.isnan(got[0][:, :3]).all() and np.isfinite(got[0][:, 3]).all()
    ty = _torch_forward(x, w, b, 1e-5)[0]
    np.testing.assert_array_equal(np.isnan(got[0]), np.isnan(ty))
    # backward with a non-finite cotangent in one channel only
    g = rng.standard_normal(shape).astype(dtype)
    g[0, 3, 0] = np.inf
    xf = rng.standard_normal(shape).astype(dtype)
    _, xc, _, _, invstd = ref.normalize_forward(xf, shape, shape, w, b, 1e-5)
    for gg, rr in zip(nb.normalize_backward(g, xc, invstd, shape, w, True),
                      ref.normalize_backward(g, xc, invstd, shape, w, True)):
        np.testing.assert_array_equal(np.isnan(gg), np.isnan(rr))
        np.testing.assert_array_equal(np.isinf(gg), np.isinf(rr))
    s, h = rng.standard_normal(4).astype(dtype), rng.standard_normal(4).astype(dtype)
    np.testing.assert_array_equal(nb.scale_shift_forward(x, s, h), ref.scale_shift_forward(x, s, h))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 7, 17), (5, 2, 3), (3, 4)])
def test_scale_shift_matches_numpy_and_torch(rng, shape, dtype):
    x = rng.standard_normal(shape).astype(dtype)
    s, h = rng.standard_normal(shape[1]).astype(dtype), rng.standard_normal(shape[1]).astype(dtype)
    y = nb.scale_shift_forward(x, s, h)
    assert y.shape == x.shape and y.dtype == x.dtype
    _close(y, ref.scale_shift_forward(x, s, h), dtype)
    rs = (1, -1) + (1,) * (len(shape) - 2)
    _close(y, (torch.from_numpy(x) * torch.from_numpy(s).reshape(rs)
               + torch.from_numpy(h).reshape(rs)).numpy(), dtype)


def test_other_views_fall_back_to_the_numpy_kernel(rng):
    """Instance, group and layer norm views are not compiled: the results are the NumPy
    kernel's, bit for bit."""
    x = rng.standard_normal((2, 6, 10))
    w, b = rng.standard_normal(6), rng.standard_normal(6)
    for stat in [(1, 12, 10), (1, 4, 30)]:  # instance norm, group norm (G=2)
        got = nb.normalize_forward(x, stat, (2, 6, 10), w, b, 1e-5)
        want = ref.normalize_forward(x, stat, (2, 6, 10), w, b, 1e-5)
        for g, r in zip(got, want):
            np.testing.assert_array_equal(g, r)
        g = rng.standard_normal(x.shape)
        for gg, rr in zip(nb.normalize_backward(g, got[1], got[4], (2, 6, 10), w, True),
                          ref.normalize_backward(g, want[1], want[4], (2, 6, 10), w, True)):
            np.testing.assert_array_equal(gg, rr)


@pytest.mark.parametrize("name", ["numba", "numpy"])
def test_batch_norm_through_autograd_with_backend_switched(rng, restore_backend, name):
    """F.batch_norm (training: forward and backward; eval: scale-shift) on the chosen backend
    matches torch, and the numba backend really routes to the compiled kernels."""
    backends.use(name)
    if name == "numba":
        for k in ("normalize_forward", "normalize_backward", "scale_shift_forward"):
            assert getattr(backends.get(), k) is getattr(nb, k)
    x, w, b = _data(rng, (4, 3, 5, 6), np.float64)
    g = rng.standard_normal(x.shape)
    cx, cw, cb = (cn.tensor(a, requires_grad=True) for a in (x, w, b))
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    y = F.batch_norm(cx, None, None, cw, cb, True, 0.1, 1e-5)
    ty = TF.batch_norm(tx, None, None, tw, tb, True, 0.1, 1e-5)
    y.backward(cn.tensor(g))
    ty.backward(torch.from_numpy(g))
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    for c, t in ((cx, tx), (cw, tw), (cb, tb)):
        np.testing.assert_allclose(c.grad.numpy(), t.grad.numpy(), rtol=1e-9, atol=1e-11)
    rm, rv = rng.standard_normal(3), rng.random(3) + 0.5
    ye = F.batch_norm(cn.tensor(x), cn.tensor(rm), cn.tensor(rv), cn.tensor(w), cn.tensor(b), False)
    tye = TF.batch_norm(torch.from_numpy(x), torch.from_numpy(rm), torch.from_numpy(rv),
                        torch.from_numpy(w), torch.from_numpy(b), False)
    np.testing.assert_allclose(ye.numpy(), tye.numpy(), rtol=1e-10, atol=1e-12)

"""Global average pooling kernels (numba and the NumPy reference) against each other and torch,
alone and through adaptive_avg_pool2d(x, 1) / global_avg_pool with the backend switched."""
import numpy as np
import pytest

from convnet import backends

torch = pytest.importorskip("torch")
# loading the backend first points numba's cache at $NUMBA_CACHE_DIR (not the source tree)
if "numba" not in backends.available():
    pytest.skip("numba is not installed", allow_module_level=True)

import convnet as cn  # noqa: E402
import convnet.functional as F  # noqa: E402
import convnet.nn as nn  # noqa: E402
from convnet.backends.numba_kernels import global_pool as nb  # noqa: E402
from convnet.kernels import pool as ref  # noqa: E402

# odd sizes, batch 1, rows shorter and longer than a vector, 1-D and 3-D spatial dims
SHAPES = [(2, 3, 5, 7), (1, 1, 1, 1), (1, 4, 3, 3), (3, 2, 8, 8), (2, 5, 11, 13),
          (2, 3, 9), (1, 2, 3, 4, 5), (4, 64, 4, 4)]
# float32: the sums run in float32 in a different order in each implementation
TOL = {np.float64: dict(rtol=1e-12, atol=1e-12), np.float32: dict(rtol=1e-6, atol=1e-6)}


@pytest.fixture
def restore_backend():
    before = backends.get().name
    yield
    backends.use(before)


def _torch_mean(x):
    return torch.tensor(x.copy()).mean(dim=tuple(range(2, x.ndim)), keepdim=True).numpy()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_matches_reference_and_torch(shape, dtype):
    x = (np.random.default_rng(0).standard_normal(shape) + 0.5).astype(dtype)
    y = nb.global_avg_pool_forward(x)
    r = ref.global_avg_pool_forward(x)
    assert y.shape == r.shape == shape[:2] + (1,) * (len(shape) - 2)
    assert y.dtype == r.dtype == x.dtype
    np.testing.assert_allclose(y, r, **TOL[dtype])
    np.testing.assert_allclose(y, _torch_mean(x), **TOL[dtype])
    np.testing.assert_allclose(r, _torch_mean(x), **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", SHAPES)
def test_backward_matches_reference_and_torch(shape, dtype):
    rng = np.random.default_rng(1)
    g = rng.standard_normal(shape[:2] + (1,) * (len(shape) - 2)).astype(dtype)
    gx = nb.global_avg_pool_backward(g, shape)
    assert gx.shape == shape and gx.dtype == g.dtype and gx.flags.c_contiguous
    # g / L per element, rounded once: the same bits in every implementation
    np.testing.assert_array_equal(gx, ref.global_avg_pool_backward(g, shape))
    xt = torch.zeros(shape, dtype=torch.from_numpy(g).dtype, requires_grad=True)
    xt.mean(dim=tuple(range(2, len(shape))), keepdim=True).backward(torch.from_numpy(g))
    np.testing.assert_array_equal(gx, xt.grad.numpy())


def test_nan_and_inf_propagate_like_reference_and_torch():
    x = np.random.default_rng(2).standard_normal((2, 6, 5, 5))
    x[0, 0, 1, 2] = np.nan
    x[0, 1, 4, 4] = np.inf
    x[0, 2, 0, 0], x[0, 2, 3, 1] = np.inf, -np.inf  # inf - inf: NaN
    x[0, 3, 2, 2] = -np.inf
    x[1, 4] = np.nan
    for dtype in (np.float64, np.float32):
        xd = x.astype(dtype)
        y = nb.global_avg_pool_forward(xd)[..., 0, 0]
        np.testing.assert_array_equal(np.isnan(y), np.isnan(_torch_mean(xd)[..., 0, 0]))
        assert np.isnan(y[0, 0]) and np.isnan(y[0, 2]) and np.isnan(y[1, 4])
        assert y[0, 1] == np.inf and y[0, 3] == -np.inf and np.isfinite(y[1, :4]).all()
        np.testing.assert_allclose(y, ref.global_avg_pool_forward(xd)[..., 0, 0], **TOL[dtype])
        np.testing.assert_allclose(y, _torch_mean(xd)[..., 0, 0], **TOL[dtype])
    g = np.array([np.nan, np.inf, -np.inf, 1.0]).reshape(1, 4, 1, 1)
    np.testing.assert_array_equal(nb.global_avg_pool_backward(g, (1, 4, 2, 3)),
                                  ref.global_avg_pool_backward(g, (1, 4, 2, 3)))


def test_non_contiguous_and_fallbacks():
    rng = np.random.default_rng(3)
    base = rng.standard_normal((3, 8, 6, 10))
    for x in (base[:, ::2], base[..., ::-1], base.transpose(0, 1, 3, 2)):
        assert not x.flags.c_contiguous
        np.testing.assert_allclose(nb.global_avg_pool_forward(x), _torch_mean(x), rtol=1e-12,
                                   atol=1e-12)
    g = rng.standard_normal((3, 4, 2))[..., :1, None]  # (3, 4, 1, 1), strided
    assert not g.flags.c_contiguous
    np.testing.assert_array_equal(nb.global_avg_pool_backward(g, (3, 4, 5, 5)),
                                  ref.global_avg_pool_backward(g, (3, 4, 5, 5)))
    # other dtypes and empty arrays: the NumPy kernel's results
    x16 = base.astype(np.float16)
    np.testing.assert_array_equal(nb.global_avg_pool_forward(x16), ref.global_avg_pool_forward(x16))
    assert nb.global_avg_pool_forward(np.zeros((0, 3, 4, 4))).shape == (0, 3, 1, 1)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_through_autograd(backend, dtype, restore_backend):
    backends.use(backend)
    assert (backends.get().global_avg_pool_forward is nb.global_avg_pool_forward) == (
        backend == "numba")
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 5, 7, 6)).astype(dtype)
    w = rng.standard_normal((3, 5, 1, 1)).astype(dtype)
    xt = torch.tensor(x, requires_grad=True)
    (torch.nn.functional.adaptive_avg_pool2d(xt, 1) * torch.tensor(w)).sum().backward()
    for fn in (lambda t: F.adaptive_avg_pool2d(t, 1), nn.AdaptiveAvgPool2d((1, 1)),
               lambda t: F.global_avg_pool(t)):
        xc = cn.tensor(x, requires_grad=True)
        y = fn(xc)
        (y * cn.tensor(w)).sum().backward()
        assert y.shape == (3, 5, 1, 1) and y.dtype == x.dtype
        np.testing.assert_allclose(y.numpy(), _torch_mean(x), **TOL[dtype])
        np.testing.assert_allclose(xc.grad.numpy(), xt.grad.numpy(), **TOL[dtype])


def test_adaptive_output_one_calls_the_backend_kernel(monkeypatch):
    """The output-size-1 case goes through the backend's global pooling kernels."""
    calls = []
    be = backends.get()
    fwd, bwd = be.global_avg_pool_forward, be.global_avg_pool_backward
    monkeypatch.setattr(be, "global_avg_pool_forward", lambda x: calls.append("fwd") or fwd(x))
    monkeypatch.setattr(be, "global_avg_pool_backward",
                        lambda g, s: calls.append("bwd") or bwd(g, s))
    xc = cn.tensor(np.ones((2, 3, 4, 4)), requires_grad=True)
    F.adaptive_avg_pool2d(xc, (1, 1)).sum().backward()
    assert calls == ["fwd", "bwd"]
    np.testing.assert_array_equal(xc.grad.numpy(), np.full((2, 3, 4, 4), 1 / 16))

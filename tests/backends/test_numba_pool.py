"""The numba pooling kernels against the NumPy reference and torch, alone and through autograd
with the backend switched: ties, NaN/inf, padding, ceil_mode, non-contiguous inputs."""
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
from convnet.backends.numba_kernels import pool as nb  # noqa: E402
from convnet.kernels import pool as ref  # noqa: E402

# (ks, ss, ps, ceil_mode): every compiled window, with and without padding / ceil overhang
COMPILED = [((2, 2), (2, 2), (0, 0), False), ((2, 2), (2, 2), (1, 0), True),
            ((3, 3), (2, 2), (1, 1), False), ((3, 3), (2, 2), (0, 1), True),
            ((3, 3), (1, 1), (1, 1), False), ((3, 3), (1, 1), (0, 0), True),
            ((2, 2), (1, 1), (1, 1), True), ((2, 2), (1, 1), (0, 0), False)]
SHAPES = [(2, 3, 9, 11), (1, 1, 4, 4), (3, 2, 7, 6), (1, 4, 3, 5)]
TOL = {np.float64: dict(rtol=1e-12, atol=1e-12), np.float32: dict(rtol=1e-5, atol=1e-5)}


@pytest.fixture
def restore_backend():
    before = backends.get().name
    yield
    backends.use(before)


def _flat_indices(arg, shape, ks, ss, ps):
    return ref.offsets_to_flat_indices(arg, shape[2:], ks, ss, ps, (1, 1))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cfg", COMPILED)
def test_max_pool_matches_reference_exactly(cfg, dtype):
    ks, ss, ps, ceil = cfg
    rng = np.random.default_rng(0)
    for shape in SHAPES:
        if any(o < 1 for o in ref.pool_output_shape(shape[2:], ks, ss, ps, (1, 1), ceil)):
            continue
        # rounded values: plenty of ties inside windows
        x = np.round(rng.standard_normal(shape) * 2).astype(dtype)
        for use_min in (False, True):
            out, arg = nb.max_pool_forward(x, ks, ss, ps, (1, 1), ceil, True, use_min)
            r_out, r_arg = ref.max_pool_forward(x, ks, ss, ps, (1, 1), ceil, True, use_min)
            assert out.dtype == x.dtype and arg.dtype == r_arg.dtype
            np.testing.assert_array_equal(out, r_out)
            np.testing.assert_array_equal(arg, r_arg)
            out2, none = nb.max_pool_forward(x, ks, ss, ps, (1, 1), ceil, False, use_min)
            assert none is None
            np.testing.assert_array_equal(out2, r_out)
            g = rng.standard_normal(out.shape).astype(dtype)
            gx = nb.max_pool_backward(g, arg, x.shape, ks, ss, ps, (1, 1))
            assert gx.shape == x.shape and gx.dtype == x.dtype
            np.testing.assert_allclose(gx, ref.max_pool_backward(g, r_arg, x.shape, ks, ss, ps,
                                                                 (1, 1)), **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cfg", COMPILED)
def test_avg_pool_matches_reference(cfg, dtype):
    ks, ss, ps, ceil = cfg
    rng = np.random.default_rng(1)
    for shape in SHAPES:
        if any(o < 1 for o in ref.pool_output_shape(shape[2:], ks, ss, ps, (1, 1), ceil)):
            continue
        x = rng.standard_normal(shape).astype(dtype)
        for cip, override in ((True, None), (False, None), (True, 3)):
            out, div = nb.avg_pool_forward(x, ks, ss, ps, ceil, cip, override)
            r_out, r_div = ref.avg_pool_forward(x, ks, ss, ps, ceil, cip, override)
            np.testing.assert_array_equal(out, r_out)  # same sum order, same divisor
            np.testing.assert_array_equal(np.asarray(div), np.asarray(r_div))
            g = rng.standard_normal(out.shape).astype(dtype)
            gx = nb.avg_pool_backward(g, div, x.shape, ks, ss, ps)
            assert gx.shape == x.shape and gx.dtype == x.dtype
            np.testing.assert_allclose(gx, ref.avg_pool_backward(g, r_div, x.shape, ks, ss, ps),
                                       **TOL[dtype])


@pytest.mark.parametrize("cfg", COMPILED)
def test_against_torch(cfg):
    ks, ss, ps, ceil = cfg
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 9, 8))
    xt = torch.tensor(x)
    out, arg = nb.max_pool_forward(x, ks, ss, ps, (1, 1), ceil, True)
    t_out, t_idx = TF.max_pool2d(xt, ks, ss, ps, 1, ceil, return_indices=True)
    np.testing.assert_array_equal(out, t_out.numpy())
    np.testing.assert_array_equal(_flat_indices(arg, x.shape, ks, ss, ps), t_idx.numpy())
    g = rng.standard_normal(out.shape)
    t_gx = torch.ops.aten.max_pool2d_with_indices_backward(torch.tensor(g), xt, ks, ss, ps,
                                                           (1, 1), ceil, t_idx)
    np.testing.assert_allclose(nb.max_pool_backward(g, arg, x.shape, ks, ss, ps, (1, 1)),
                               t_gx.numpy(), rtol=1e-12, atol=1e-12)
    for cip, override in ((True, None), (False, None), (True, 5)):
        out, div = nb.avg_pool_forward(x, ks, ss, ps, ceil, cip, override)
        np.testing.assert_allclose(out, TF.avg_pool2d(xt, ks, ss, ps, ceil, cip, override).numpy(),
                                   rtol=1e-12, atol=1e-12)
        g = rng.standard_normal(out.shape)
        t_gx = torch.ops.aten.avg_pool2d_backward(torch.tensor(g), xt, ks, ss, ps, ceil, cip,
                                                  override)
        np.testing.assert_allclose(nb.avg_pool_backward(g, div, x.shape, ks, ss, ps),
                                   t_gx.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # inf - inf in the reference
@pytest.mark.parametrize("ks, ss, ps", [((2, 2), (2, 2), (0, 0)), ((3, 3), (2, 2), (1, 1)),
                                        ((3, 3), (1, 1), (1, 1))])
def test_ties_nan_inf_like_torch_and_reference(ks, ss, ps):
    rng = np.random.default_rng(3)
    x = np.round(rng.standard_normal((2, 2, 8, 7)))  # many ties
    flat = x.reshape(-1)
    flat[rng.choice(flat.size, 12, replace=False)] = np.nan
    flat[rng.choice(flat.size, 6, replace=False)] = np.inf
    flat[rng.choice(flat.size, 6, replace=False)] = -np.inf
    x[0, 0] = 1.0  # a plane of ties only
    x[0, 1] = -np.inf  # a plane of -inf only: padding must not win
    out, arg = nb.max_pool_forward(x, ks, ss, ps, (1, 1), False, True)
    r_out, r_arg = ref.max_pool_forward(x, ks, ss, ps, (1, 1), False, True)
    np.testing.assert_array_equal(out, r_out)  # NaN == NaN here
    np.testing.assert_array_equal(arg, r_arg)
    assert np.isnan(out).any() and np.isinf(out).any()
    t_out, t_idx = TF.max_pool2d(torch.tensor(x), ks, ss, ps, return_indices=True)
    np.testing.assert_array_equal(out, t_out.numpy())
    # where the window holds a finite or NaN winner torch's index is the same tap
    np.testing.assert_array_equal(_flat_indices(arg, x.shape, ks, ss, ps)[0, 0],
                                  t_idx.numpy()[0, 0])
    finite = ~np.isneginf(out)
    np.testing.assert_array_equal(_flat_indices(arg, x.shape, ks, ss, ps)[finite],
                                  t_idx.numpy()[finite])
    # min pooling: NaN propagates too, +inf padding never wins
    m_out, m_arg = nb.max_pool_forward(x, ks, ss, ps, (1, 1), False, True, use_min=True)
    r_out, r_arg = ref.max_pool_forward(x, ks, ss, ps, (1, 1), False, True, use_min=True)
    np.testing.assert_array_equal(m_out, r_out)
    np.testing.assert_array_equal(m_arg, r_arg)
    # average: NaN and inf propagate as in the reference and torch
    a_out, _ = nb.avg_pool_forward(x, ks, ss, ps, False, True, None)
    np.testing.assert_array_equal(a_out, ref.avg_pool_forward(x, ks, ss, ps, False, True, None)[0])
    np.testing.assert_array_equal(a_out, TF.avg_pool2d(torch.tensor(x), ks, ss, ps).numpy())


def test_non_contiguous_and_fallbacks():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 2, 10, 12, 2))[..., 1][:, :, ::-1]  # strided, reversed rows
    assert not x.flags.c_contiguous
    for name, args in (("max_pool_forward", ((3, 3), (2, 2), (1, 1), (1, 1), True, True)),
                       ("avg_pool_forward", ((2, 2), (2, 2), (1, 1), True, False, None))):
        r = getattr(ref, name)(x, *args)
        o = getattr(nb, name)(x, *args)
        np.testing.assert_array_equal(o[0], r[0])
        np.testing.assert_array_equal(np.asarray(o[1]), np.asarray(r[1]))
    # windows outside FAST_WINDOWS, dilation, 1-D and 3-D: the NumPy kernels' results
    for xs, ks, ss, ps, ds in (((2, 3, 9, 9), (4, 4), (4, 4), (1, 1), (1, 1)),
                               ((2, 3, 9, 9), (3, 3), (2, 2), (1, 1), (2, 2)),
                               ((2, 3, 9), (2,), (2,), (0,), (1,)),
                               ((1, 2, 5, 6, 7), (2, 2, 2), (2, 2, 2), (1, 0, 1), (1, 1, 1))):
        x = rng.standard_normal(xs)
        out, arg = nb.max_pool_forward(x, ks, ss, ps, ds, False, True)
        r_out, r_arg = ref.max_pool_forward(x, ks, ss, ps, ds, False, True)
        np.testing.assert_array_equal(out, r_out)
        np.testing.assert_array_equal(arg, r_arg)
        g = rng.standard_normal(out.shape)
        np.testing.assert_allclose(nb.max_pool_backward(g, arg, xs, ks, ss, ps, ds),
                                   ref.max_pool_backward(g, r_arg, xs, ks, ss, ps, ds),
                                   rtol=1e-12, atol=1e-12)  # overlapping windows: sum order


def test_max_backward_accepts_any_2d_window():
    """Backward is compiled for every 2-D window (a scatter through an offset table)."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 11, 10))
    ks, ss, ps, ds = (3, 2), (2, 3), (1, 1), (2, 1)
    _, arg = ref.max_pool_forward(x, ks, ss, ps, ds, True, True)
    g = rng.standard_normal(arg.shape)
    np.testing.assert_allclose(nb.max_pool_backward(g, arg, x.shape, ks, ss, ps, ds),
                               ref.max_pool_backward(g, arg, x.shape, ks, ss, ps, ds),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_through_autograd(backend, restore_backend):
    backends.use(backend)
    assert (backends.get().max_pool_forward is nb.max_pool_forward) == (backend == "numba")
    rng = np.random.default_rng(6)
    x = rng.permutation(2 * 3 * 9 * 9).reshape(2, 3, 9, 9) * 0.01  # tie-free
    xc = cn.tensor(x, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    w = rng.standard_normal((2, 3, 5, 5))
    y, idx = F.max_pool2d(xc, 3, 2, 1, ceil_mode=True, return_indices=True)
    yt, idxt = TF.max_pool2d(xt, 3, 2, 1, ceil_mode=True, return_indices=True)
    w2 = rng.standard_normal((2, 3, 5, 5))
    z = F.avg_pool2d(xc, 2, 2, 1, count_include_pad=False)
    zt = TF.avg_pool2d(xt, 2, 2, 1, count_include_pad=False)
    ((y * cn.tensor(w)).sum() + (z * cn.tensor(w2)).sum()).backward()
    ((yt * torch.tensor(w)).sum() + (zt * torch.tensor(w2)).sum()).backward()
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy())
    np.testing.assert_array_equal(idx.numpy(), idxt.numpy())
    np.testing.assert_allclose(z.numpy(), zt.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(xc.grad.numpy(), xt.grad.numpy(), rtol=1e-12, atol=1e-12)

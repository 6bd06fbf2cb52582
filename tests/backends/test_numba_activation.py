"""The numba ReLU kernels against the NumPy reference and torch, alone and through autograd."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("numba")

import convnet as cn  # noqa: E402
from convnet import backends  # noqa: E402
from convnet.backends.numba_kernels import activation as nb  # noqa: E402
from convnet.kernels import activation as ref  # noqa: E402

SHAPES = [(1, 3, 5, 7), (2, 16, 9, 9), (7,), (3, 1, 1, 1), (), (0, 4), (128, 300)]


def _special(rng, shape, dtype):
    """Random values with zeros, -0.0, NaN and +-inf mixed in."""
    x = rng.standard_normal(shape).astype(dtype)
    if x.size >= 6:
        flat = x.reshape(-1)
        idx = rng.choice(flat.size, size=6, replace=False)
        flat[idx] = [0.0, -0.0, np.nan, np.inf, -np.inf, np.nan]
    return x


@pytest.fixture
def restore_backend():
    before = backends.get().name
    yield
    backends.use(before)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_matches_numpy_and_torch(rng, shape, dtype):
    x = _special(rng, shape, dtype)
    y = nb.relu_forward(x)
    assert isinstance(y, np.ndarray) and y.shape == x.shape and y.dtype == x.dtype
    # exact: the same comparisons, no arithmetic; -0.0 -> +0.0 as np.maximum(x, 0) does
    np.testing.assert_array_equal(y, ref.relu_forward(x))
    assert not np.signbit(y[y == 0]).any()
    np.testing.assert_array_equal(y, torch.relu(torch.from_numpy(x)).numpy())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", SHAPES)
def test_backward_matches_numpy_and_torch(rng, shape, dtype):
    x = _special(rng, shape, dtype)
    g = rng.standard_normal(shape).astype(dtype)
    y = ref.relu_forward(x)
    gx = nb.relu_backward(g, y)
    assert gx.shape == g.shape and gx.dtype == g.dtype
    np.testing.assert_array_equal(gx, ref.relu_backward(g, y))
    tx = torch.from_numpy(x).requires_grad_()
    torch.relu(tx).backward(torch.from_numpy(g))
    np.testing.assert_array_equal(gx, tx.grad.numpy())


def test_nonfinite_gradient_is_zeroed_where_relu_is_off_like_torch():
    # threshold_backward selects, it does not multiply: inf * 0 would be NaN
    y = np.array([0.0, 0.0, 1.0, np.nan, 0.0])
    g = np.array([np.inf, np.nan, np.inf, np.inf, -np.inf])
    gx = nb.relu_backward(g, y)
    tx = torch.tensor([-1.0, 0.0, 1.0, np.nan, -2.0], dtype=torch.float64, requires_grad=True)
    torch.relu(tx).backward(torch.from_numpy(g))
    np.testing.assert_array_equal(gx, [0.0, 0.0, np.inf, np.inf, 0.0])
    np.testing.assert_array_equal(gx, tx.grad.numpy())


def test_non_contiguous_inputs(rng):
    base = _special(rng, (4, 6, 10, 12), np.float32)
    views = [base.transpose(0, 2, 3, 1), base[:, ::2, :, 1::3], base[::-1]]
    for x in views:
        assert not x.flags.c_contiguous
        y = nb.relu_forward(x)
        np.testing.assert_array_equal(y, np.maximum(x, 0))
        g = rng.standard_normal(x.shape).astype(np.float32)[..., ::-1]  # non-contiguous too
        np.testing.assert_array_equal(nb.relu_backward(g, y), ref.relu_backward(g, y))
        assert y.flags.c_contiguous


def test_mixed_dtypes_keep_g_dtype(rng):
    y = nb.relu_forward(rng.standard_normal((5, 5)))  # float64
    g = rng.standard_normal((5, 5)).astype(np.float32)
    gx = nb.relu_backward(g, y)
    assert gx.dtype == np.float32
    np.testing.assert_array_equal(gx, ref.relu_backward(g, y))


@pytest.mark.parametrize("dtype", [np.int64, np.float16])
def test_other_dtypes_fall_back_to_numpy(dtype):
    x = np.array([-2, 0, 3], dtype=dtype)
    y = nb.relu_forward(x)
    assert y.dtype == ref.relu_forward(x).dtype
    np.testing.assert_array_equal(y, [0, 0, 3])
    np.testing.assert_array_equal(nb.relu_backward(np.ones(3, dtype), y), [0, 0, 1])


def test_numba_backend_exports_the_compiled_kernels(restore_backend):
    ns = backends.use("numba")
    assert ns.relu_forward is nb.relu_forward and ns.relu_backward is nb.relu_backward


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_relu_through_autograd(rng, restore_backend, backend):
    backends.use(backend)
    x = _special(rng, (2, 3, 5, 5), np.float64)
    g = rng.standard_normal(x.shape)
    t = cn.tensor(x, requires_grad=True)
    out = t.relu()
    out.backward(cn.tensor(g))
    tx = torch.from_numpy(x).requires_grad_()
    ty = torch.relu(tx)
    ty.backward(torch.from_numpy(g))
    np.testing.assert_array_equal(out.numpy(), ty.detach().numpy())
    np.testing.assert_array_equal(t.grad.numpy(), tx.grad.numpy())


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("value, grad", [(-1.5, 0.0), (2.5, 1.0), (0.0, 0.0)])
def test_scalar_relu_backward(restore_backend, backend, value, grad):
    # a 0-d forward gives NumPy a scalar, not an array; backward used to fail on it
    backends.use(backend)
    t = cn.tensor(value, requires_grad=True)
    t.relu().backward()
    assert t.grad.item() == grad

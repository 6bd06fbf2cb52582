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

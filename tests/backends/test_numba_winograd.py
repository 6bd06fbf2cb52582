"""The Winograd F(2x2, 3x3) forward study kernel against torch's conv2d and convnet's own."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("numba")

import convnet as cn  # noqa: E402
import convnet.functional as F  # noqa: E402
from convnet.backends.numba_kernels import winograd as wg  # noqa: E402

# (N, C, H, W, K): odd and even output sizes, batch 1, one channel, 1x1 and 2x2 inputs
SHAPES = [(1, 1, 3, 3, 1), (2, 3, 5, 7, 4), (3, 5, 9, 6, 2), (2, 2, 1, 1, 3), (1, 3, 2, 5, 5),
          (4, 8, 8, 8, 8), (2, 4, 11, 10, 6)]


def _torch(x, w, padding):
    return torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w),
                                      padding=padding).numpy()


@pytest.mark.parametrize("padding", [0, 1, 2])
def test_float64_matches_torch_tightly(rng, padding):
    for n, c, h, wd, k in SHAPES:
        if h + 2 * padding < 3 or wd + 2 * padding < 3:
            continue
        x = rng.standard_normal((n, c, h, wd))
        w = rng.standard_normal((k, c, 3, 3))
        y = wg.winograd3x3_forward(x, w, padding)
        ref = _torch(x, w, padding)
        assert y.shape == ref.shape and y.dtype == np.float64
        assert np.abs(y - ref).max() <= 1e-10 * np.abs(ref).max(), (n, c, h, wd, k)


# float32: the transforms add and subtract up to 9 inputs and halve weights before the GEMM, so
# the error is a few ulps of the largest terms, not of y. Measured on ResNet-20-like data (unit
# inputs, He-scaled weights) max |y - torch| / max |y| = 2e-7..8e-7; asserted: 5e-6.
F32_RTOL = 5e-6


@pytest.mark.parametrize("c, size", [(16, 32), (32, 16), (64, 8)])
def test_float32_resnet20_layers_within_documented_tolerance(rng, c, size):
    x = rng.standard_normal((2, c, size, size)).astype(np.float32)
    w = (rng.standard_normal((c, c, 3, 3)) * np.sqrt(2 / (9 * c))).astype(np.float32)
    y = wg.winograd3x3_forward(x, w, 1)
    ref = _torch(x.astype(np.float64), w.astype(np.float64), 1)  # exact reference
    assert y.dtype == np.float32
    assert np.abs(y - ref).max() <= F32_RTOL * np.abs(ref).max()


def test_float32_odd_sizes_and_no_padding(rng):
    for n, c, h, wd, k in SHAPES[1:]:
        x = rng.standard_normal((n, c, h + 2, wd + 2)).astype(np.float32)
        w = rng.standard_normal((k, c, 3, 3)).astype(np.float32)
        for padding in (0, 1):
            y = wg.winograd3x3_forward(x, w, padding)
            ref = _torch(x.astype(np.float64), w.astype(np.float64), padding)
            assert np.abs(y - ref).max() <= F32_RTOL * np.abs(ref).max()


def test_stages_compose_and_match_convnet_conv2d_non_contiguous(rng):
    x = rng.standard_normal((3, 10, 12, 6)).transpose(0, 3, 1, 2)  # (3, 6, 10, 12), strided
    w = rng.standard_normal((5, 6, 3, 3))
    u = wg.weight_transform(w)
    v = wg.input_transform(x, 1)
    assert u.shape == (16, 5, 6) and v.shape == (16, 6, 3 * 5 * 6)
    y = wg.output_transform(np.matmul(u, v), 3, 10, 12)
    ref = F.conv2d(cn.tensor(x), cn.tensor(w), padding=1).numpy()
    np.testing.assert_allclose(y, ref, rtol=1e-10, atol=1e-10 * np.abs(ref).max())
    np.testing.assert_allclose(wg.winograd3x3_forward(x, w, 1), y, rtol=0, atol=0)


def test_nan_reaches_exactly_the_windows_that_hold_it(rng):
    x = rng.standard_normal((1, 2, 7, 6))
    x[0, 0, 2, 3] = np.nan
    x[0, 1, 6, 0] = np.inf
    w = rng.standard_normal((3, 2, 3, 3))
    y = wg.winograd3x3_forward(x, w, 1)
    ref = _torch(x, w, 1)
    # NaN: same outputs; inf: non-finite in the same outputs (possibly NaN where torch has inf)
    np.testing.assert_array_equal(np.isfinite(y), np.isfinite(ref))
    assert (~np.isfinite(ref)).sum() > 0
    fin = np.isfinite(ref)
    np.testing.assert_allclose(y[fin], ref[fin], rtol=1e-10, atol=1e-10)


def test_rejects_shapes_it_does_not_cover(rng):
    with pytest.raises(ValueError, match="w .K, C, 3, 3."):
        wg.winograd3x3_forward(np.zeros((1, 2, 5, 5)), np.zeros((3, 2, 5, 5)), 1)
    with pytest.raises(ValueError, match="no output"):
        wg.winograd3x3_forward(np.zeros((1, 2, 2, 2)), np.zeros((3, 2, 3, 3)), 0)

"""`convnet filter` on photos: the shifted-slice filter equals the depthwise F.conv2d and its
memory stays a small multiple of the image (im2col of a 5x5 kernel would be 25 copies)."""
import tracemalloc

import numpy as np
import pytest

import convnet.functional as F
from convnet import filters, viz
from convnet.cli.filter_cmd import filter_image
from convnet.tensor import Tensor


def _conv2d_reference(img4, k, mode):
    """The definition: pad, then F.conv2d with one copy of the kernel per channel."""
    pad = {"reflect": "reflect", "replicate": "edge", "zeros": "constant"}[mode]
    ph, pw = k.shape[0] // 2, k.shape[1] // 2
    x = np.pad(img4, ((0, 0), (0, 0), (ph, ph), (pw, pw)), mode=pad)
    c = img4.shape[1]
    w = np.ascontiguousarray(np.broadcast_to(k.astype(img4.dtype), (c, 1, *k.shape)))
    return F.conv2d(Tensor._make(x), Tensor._make(w), groups=c).numpy()


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("kshape", [(3, 3), (5, 5), (1, 5), (7, 3)])
@pytest.mark.parametrize("mode", ["reflect", "replicate", "zeros"])
def test_equals_depthwise_conv2d(dtype, tol, kshape, mode):
    rng = np.random.default_rng(sum(kshape))
    img = rng.random((2, 3, 13, 17)).astype(dtype)
    k = rng.standard_normal(kshape)
    out = filters.apply(img, k, padding_mode=mode)
    assert out.dtype == dtype and out.shape == img.shape
    np.testing.assert_allclose(out, _conv2d_reference(img, k, mode), rtol=tol, atol=tol)


def test_row_blocks_do_not_change_the_result():
    rng = np.random.default_rng(0)
    padded, k = rng.random((40, 23)), rng.standard_normal((5, 3))
    whole = filters.correlate2d(padded, k, tile=1 << 20)
    for tile in (1, 21, 50, 500):  # one row, one row (tile < W), 2 rows, a ragged last block
        np.testing.assert_array_equal(filters.correlate2d(padded, k, tile=tile), whole)


def _peak(fn, *args):
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        fn(*args)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_stays_a_small_multiple_of_a_3_megapixel_photo():
    img = np.random.default_rng(1).random((3, 1000, 1000), dtype=np.float32)  # 12 MB
    size = img.nbytes
    # output (1x) + one padded plane (1/3) + a row block: im2col would need 25x for 5x5
    assert _peak(filters.apply, img, "gaussian_blur") < 2 * size
    # the CLI path: Sobel magnitude (Gx, Gy, in place) scaled to [0, 1]
    assert _peak(filter_image, img, "sobel") < 3 * size
    # and the PNG conversion: one float32 working copy, not float64 temporaries
    assert _peak(viz.to_uint8, img) < 1.5 * size

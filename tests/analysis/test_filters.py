"""Classic named kernels applied through convnet's own conv2d, against torch."""
import numpy as np
import pytest
import torch

from convnet import filters


def _torch_filter(img4, k, mode):
    c = img4.shape[1]
    pad = {"reflect": "reflect", "replicate": "replicate", "zeros": "constant"}[mode]
    ph, pw = k.shape[0] // 2, k.shape[1] // 2
    x = torch.nn.functional.pad(torch.tensor(img4), (pw, pw, ph, ph), mode=pad)
    w = torch.tensor(np.ascontiguousarray(np.broadcast_to(k, (c, 1, *k.shape))))
    return torch.nn.functional.conv2d(x, w, groups=c).numpy()


@pytest.mark.parametrize("name", filters.names())
@pytest.mark.parametrize("mode", ["reflect", "replicate", "zeros"])
def test_named_kernels_match_torch(name, mode):
    rng = np.random.default_rng(len(name))
    img = rng.random((2, 3, 11, 14))
    out = filters.apply(img, name, padding_mode=mode)
    assert out.shape == img.shape and out.dtype == np.float64
    np.testing.assert_allclose(out, _torch_filter(img, filters.kernel(name), mode), atol=1e-12)


def test_shapes_dtypes_and_grey_2d():
    img = np.random.default_rng(0).random((9, 10)).astype(np.float32)
    out = filters.apply(img, "gaussian_blur")
    assert out.shape == (9, 10) and out.dtype == np.float32
    assert filters.apply(np.zeros((3, 8, 8), np.uint8), "box_blur").dtype == np.float64


def test_kernel_properties():
    for blur in ("box_blur", "gaussian_blur", "sharpen", "emboss", "identity"):
        assert filters.kernel(blur).sum() == pytest.approx(1.0)
    for edge in ("sobel_x", "sobel_y", "prewitt_x", "prewitt_y", "laplacian", "laplacian_diag"):
        assert filters.kernel(edge).sum() == pytest.approx(0.0)
    g = filters.gaussian_kernel(7, 2.0)
    np.testing.assert_allclose(g, g.T)
    assert g.argmax() == 24  # peak at the centre


def test_behaviour_on_simple_images():
    ramp = np.tile(np.arange(12.0), (10, 1))  # brightness grows to the right
    sx = filters.apply(ramp, "sobel_x", padding_mode="replicate")
    np.testing.assert_allclose(sx[:, 1:-1], 8.0)  # (1 + 2 + 1) * 2 per pixel of slope
    np.testing.assert_allclose(filters.apply(ramp, "sobel_y", padding_mode="replicate"), 0.0)
    np.testing.assert_allclose(filters.apply(ramp, "laplacian")[1:-1, 1:-1], 0.0)  # linear
    flat = np.full((6, 6), 0.3)
    np.testing.assert_allclose(filters.apply(flat, "gaussian_blur"), 0.3)
    np.testing.assert_allclose(filters.apply(flat, "sharpen"), 0.3)
    step = np.zeros((8, 8))
    step[:, 4:] = 1
    mag = filters.edge_magnitude(step)
    assert mag[:, 3:5].min() > 0 and mag[:, :2].max() == 0 and mag[:, 6:].max() == 0


def test_flip_is_true_convolution():
    img = np.random.default_rng(3).random((7, 9))
    a = filters.apply(img, "sobel_x", flip=True)
    np.testing.assert_allclose(a, -filters.apply(img, "sobel_x"), atol=1e-12)
    np.testing.assert_allclose(filters.apply(img, "gaussian_blur", flip=True),
                               filters.apply(img, "gaussian_blur"), atol=1e-12)
    k = np.random.default_rng(4).random((3, 5))
    x = torch.tensor(np.pad(img, ((1, 1), (2, 2)), mode="reflect"))[None, None]
    ref = torch.nn.functional.conv2d(x, torch.tensor(k[::-1, ::-1].copy())[None, None])[0, 0]
    np.testing.assert_allclose(filters.apply(img, k, flip=True), ref.numpy(), atol=1e-12)


def test_errors():
    with pytest.raises(ValueError, match="unknown kernel 'blurry'"):
        filters.apply(np.zeros((5, 5)), "blurry")
    with pytest.raises(ValueError, match="odd sides"):
        filters.apply(np.zeros((5, 5)), np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"image must be \(H, W\)"):
        filters.apply(np.zeros(5), "sobel_x")
    with pytest.raises(ValueError, match="padding_mode"):
        filters.apply(np.zeros((5, 5)), "sobel_x", padding_mode="wrap")
    with pytest.raises(ValueError, match="too small to reflect-pad"):
        filters.apply(np.zeros((2, 2)), "gaussian_blur")
    with pytest.raises(ValueError, match="odd int"):
        filters.gaussian_kernel(4)
    with pytest.raises(ValueError, match="operator"):
        filters.edge_magnitude(np.zeros((5, 5)), "canny")

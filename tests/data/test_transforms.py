"""Transforms: exact results where the maths is known, per-image randomness in batches."""
import numpy as np
import pytest
from PIL import Image

from convnet.data import transforms as T


def batch(n=6, c=2, h=7, w=9, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, c, h, w)).astype(np.uint8)


def test_to_tensor_uint8_pil_and_float():
    x = batch(1)[0]
    y = T.ToTensor()(x.transpose(1, 2, 0))  # ndarrays are (H, W, C), as torchvision
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_allclose(y.numpy(), x / 255, rtol=1e-6)
    pil = Image.fromarray(x[0])  # grayscale HW
    assert T.ToTensor()(pil).shape == (1, 7, 9)
    rgb = Image.fromarray(np.dstack([x[0], x[1], x[0]]))
    out = T.ToTensor()(rgb)
    assert out.shape == (3, 7, 9)
    np.testing.assert_allclose(out[1], x[1] / 255, rtol=1e-6)
    assert T.ToTensor()(np.ones((2, 3), np.float64)).dtype == np.float64  # unscaled, as torchvision
    with pytest.raises(ValueError, match="ToTensor"):
        T.ToTensor()(np.zeros(5))
    assert T.ToTensor()._batch(x[None]).dtype == np.float32  # the datasets' batched form


def test_normalize_formula_and_errors():
    x = batch().astype(np.float32) / 255
    out = T.Normalize([0.1, 0.7], [0.2, 0.5])(x)
    np.testing.assert_allclose(out[:, 0], (x[:, 0] - 0.1) / 0.2, rtol=1e-5)
    np.testing.assert_allclose(out[:, 1], (x[:, 1] - 0.7) / 0.5, rtol=1e-5)
    np.testing.assert_allclose(T.Normalize([0.1, 0.7], [0.2, 0.5])(x[3]), out[3], rtol=1e-6)
    assert out.dtype == np.float32
    with pytest.raises(ValueError, match="image has 2 channels but mean/std have 3"):
        T.Normalize([0, 0, 0], [1, 1, 1])(x)
    with pytest.raises(ValueError, match="non-zero"):
        T.Normalize([0], [0])


def test_random_crop_windows_come_from_the_padded_image():
    x = batch(20)
    with T.use_rng(np.random.default_rng(3)):
        out = T.RandomCrop((7, 9), padding=3)(x)
    padded = np.pad(x, ((0, 0), (0, 0), (3, 3), (3, 3)))
    offsets = set()
    for n in range(len(x)):
        hits = [(i, j) for i in range(7) for j in range(7)
                if np.array_equal(padded[n, :, i:i + 7, j:j + 9], out[n])]
        assert hits, f"image {n} is not a window of its padded input"
        offsets.add(hits[0])
    assert len(offsets) > 5  # offsets drawn per image, not one for the batch


def test_random_crop_deterministic_and_single_image():
    x = batch()
    a = T.RandomCrop(5, padding=2)
    with T.use_rng(np.random.default_rng(1)):
        o1 = a(x)
    with T.use_rng(np.random.default_rng(1)):
        o2 = a(x)
    np.testing.assert_array_equal(o1, o2)
    assert a(x[0]).shape == (2, 5, 5)
    with pytest.raises(ValueError, match="larger than"):
        T.RandomCrop(20)(x)


def test_center_crop_and_pad_modes():
    x = batch()
    np.testing.assert_array_equal(T.CenterCrop((3, 5))(x), x[:, :, 2:5, 2:7])
    np.testing.assert_array_equal(T.Pad(1, padding_mode="edge")(x), np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge"))
    np.testing.assert_array_equal(T.Pad((1, 2, 3, 4), fill=9)(x[0])[:, 0], np.full((2, 1 + 9 + 3), 9))


def test_flips():
    x = batch()
    np.testing.assert_array_equal(T.RandomHorizontalFlip(1.0)(x), x[..., ::-1])
    np.testing.assert_array_equal(T.RandomVerticalFlip(1.0)(x), x[..., ::-1, :])
    np.testing.assert_array_equal(T.RandomHorizontalFlip(0.0)(x), x)
    with T.use_rng(np.random.default_rng(0)):
        out = T.RandomHorizontalFlip(0.5)(batch(40))
    x40 = batch(40)
    flipped = [np.array_equal(o, xi[..., ::-1]) for o, xi in zip(out, x40)]
    kept = [np.array_equal(o, xi) for o, xi in zip(out, x40)]
    assert all(f or k for f, k in zip(flipped, kept)) and 5 < sum(flipped) < 35
    with pytest.raises(ValueError, match="p must be in"):
        T.RandomHorizontalFlip(2)


def test_affine_identity_rotation_and_shift():
    x = batch(3, h=9, w=9)
    np.testing.assert_array_equal(T.RandomAffine(0)(x), x)
    # +90 degrees turns the picture counter-clockwise (torchvision's convention) = np.rot90
    np.testing.assert_array_equal(T.RandomAffine((90, 90))(x), np.rot90(x, axes=(2, 3)))
    np.testing.assert_allclose(T.RandomAffine((90, 90), interpolation="bilinear")(x.astype(np.float64)),
                               np.rot90(x, axes=(2, 3)), atol=1e-9)
    # a shift moves content and fills the uncovered border with `fill`
    with T.use_rng(np.random.default_rng(5)):
        out = T.RandomAffine(0, translate=(0.3, 0.0), fill=0)(x.astype(np.int64) + 1)
    for o, xi in zip(out, x.astype(np.int64) + 1):
        shifts = [s for s in range(-3, 4) if np.array_equal(
            o[:, :, max(s, 0):9 + min(s, 0)], xi[:, :, max(-s, 0):9 - max(s, 0)])]
        assert shifts
        s = shifts[0]
        if s > 0:
            assert (o[:, :, :s] == 0).all()


def test_affine_preserves_dtype_and_validates():
    x = batch()
    with T.use_rng(np.random.default_rng(0)):
        out = T.RandomAffine(20, translate=(0.1, 0.1), scale=(0.9, 1.1), shear=5, interpolation="bilinear")(x)
    assert out.dtype == np.uint8 and out.shape == x.shape
    assert T.RandomRotation(10)(x.astype(np.float32)).dtype == np.float32
    with pytest.raises(ValueError, match="translate"):
        T.RandomAffine(0, translate=(2, 0))
    with pytest.raises(ValueError, match="interpolation"):
        T.RandomAffine(0, interpolation="cubic")


def test_random_erasing_one_rectangle_per_image():
    x = np.ones((30, 3, 16, 16), np.float32)
    with T.use_rng(np.random.default_rng(2)):
        out = T.RandomErasing(p=1.0, scale=(0.05, 0.2), value=0)(x)
    for o in out:
        mask = o[0] == 0
        assert (o == 0).sum(0).max() in (0, 3)  # all channels erased together
        rows, cols = np.nonzero(mask)
        assert mask.sum() > 0
        # the erased pixels form exactly a rectangle
        assert mask.sum() == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert 0.02 <= mask.mean() <= 0.3
    np.testing.assert_array_equal(T.RandomErasing(p=0.0)(x), x)
    per_channel = T.RandomErasing(p=1.0, value=(5, 6, 7))(x)
    assert set(np.unique(per_channel[:, 1])) <= {1.0, 6.0}
    assert (x == 1).all()  # not in place by default


def test_compose_batched_flag_and_global_rng():
    import convnet as cn

    c = T.Compose([T.ToTensor(), T.RandomHorizontalFlip(), T.Normalize([0.5], [0.5])])
    assert c.batched
    assert not T.Compose([T.ToTensor(), T.Lambda(lambda im: im)]).batched
    x = batch(8, c=1)
    cn.manual_seed(4)
    a = c._batch(x)
    cn.manual_seed(4)
    np.testing.assert_array_equal(a, c._batch(x))


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 4), c=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9),
       pad=st.integers(0, 3), seed=st.integers(0, 2**16))
def test_random_crop_any_shape(n, c, h, w, pad, seed):
    x = np.random.default_rng(seed).integers(0, 256, (n, c, h, w)).astype(np.uint8)
    ch, cw = max(1, h + 2 * pad - seed % 3), max(1, w + 2 * pad - seed % 2)
    ch, cw = min(ch, h + 2 * pad), min(cw, w + 2 * pad)
    with T.use_rng(np.random.default_rng(seed)):
        out = T.RandomCrop((ch, cw), padding=pad)(x) if pad else T.RandomCrop((ch, cw))(x)
    assert out.shape == (n, c, ch, cw) and out.dtype == np.uint8
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    for i in range(n):
        assert any(np.array_equal(padded[i, :, a:a + ch, b:b + cw], out[i])
                   for a in range(h + 2 * pad - ch + 1) for b in range(w + 2 * pad - cw + 1))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 5), size=st.integers(3, 12), seed=st.integers(0, 2**16))
def test_affine_quarter_turns_and_erasing_shapes(n, size, seed):
    x = np.random.default_rng(seed).standard_normal((n, 2, size, size))
    k = seed % 4
    np.testing.assert_array_equal(T.RandomAffine((90 * k, 90 * k))(x), np.rot90(x, k, axes=(2, 3)))
    with T.use_rng(np.random.default_rng(seed)):
        e = T.RandomErasing(p=1.0, value=np.inf)(x)
    assert e.shape == x.shape and np.isinf(e).any(axis=(1, 2, 3)).all()
    np.testing.assert_array_equal(e[np.isfinite(e)], x[np.isfinite(e)])

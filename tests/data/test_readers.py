"""Dataset readers on files the tests write: IDX (MNIST / Fashion-MNIST), CIFAR-10, folders."""
import pickle

import numpy as np
import pytest
from PIL import Image

from convnet.data import datasets as D
from convnet.data.datasets import mnist as mnist_mod


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    # never find real files in the user's cache or the system folder
    monkeypatch.setenv("CONVNET_DATA", str(tmp_path / "cache"))
    monkeypatch.setattr(mnist_mod, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "system")


def write_mnist(folder, n_train=12, n_test=5, gz=True, rng=None):
    rng = rng or np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    data = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        imgs = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n).astype(np.uint8)
        sfx = ".gz" if gz else ""
        D.write_idx(folder / f"{prefix}-images-idx3-ubyte{sfx}", imgs)
        D.write_idx(folder / f"{prefix}-labels-idx1-ubyte{sfx}", labels)
        data[prefix] = (imgs, labels)
    return data


@pytest.mark.parametrize("dtype", ["u1", "i1", "i2", "i4", "f4", "f8"])
@pytest.mark.parametrize("gz", [False, True])
def test_idx_roundtrip(tmp_path, dtype, gz):
    a = (np.random.default_rng(1).standard_normal((3, 4, 5)) * 50).astype(dtype)
    path = tmp_path / ("a.idx.gz" if gz else "a.idx")
    D.write_idx(path, a)
    b = D.read_idx(path)
    assert b.dtype == a.dtype.newbyteorder("=") and b.shape == a.shape
    np.testing.assert_array_equal(a, b)


def test_idx_gzip_detected_by_content_not_name(tmp_path):
    a = np.arange(10, dtype=np.uint8)
    D.write_idx(tmp_path / "labels", a, compress=True)
    np.testing.assert_array_equal(D.read_idx(tmp_path / "labels"), a)


def test_idx_truncated_raw(tmp_path):
    D.write_idx(tmp_path / "x", np.zeros((4, 28, 28), np.uint8))
    raw = (tmp_path / "x").read_bytes()
    (tmp_path / "x").write_bytes(raw[:-100])
    with pytest.raises(D.IDXError, match=r"truncated IDX file.*\(4, 28, 28\)"):
        D.read_idx(tmp_path / "x")
    (tmp_path / "x").write_bytes(raw[:6])
    with pytest.raises(D.IDXError, match="truncated"):
        D.read_idx(tmp_path / "x")


def test_idx_truncated_gzip(tmp_path):
    D.write_idx(tmp_path / "x.gz", np.random.default_rng(0).integers(0, 255, (50, 28, 28), dtype=np.uint8))
    raw = (tmp_path / "x.gz").read_bytes()
    (tmp_path / "x.gz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(D.IDXError, match="gzip"):
        D.read_idx(tmp_path / "x.gz")


def test_idx_wrong_magic_and_trailing_bytes(tmp_path):
    (tmp_path / "x").write_bytes(b"\x12\x34\x08\x01" + b"\0" * 8)
    with pytest.raises(D.IDXError, match="not an IDX file.*magic"):
        D.read_idx(tmp_path / "x")
    (tmp_path / "y").write_bytes(b"\x00\x00\x07\x01" + b"\0" * 8)  # unknown type code 07
    with pytest.raises(D.IDXError, match="not an IDX file"):
        D.read_idx(tmp_path / "y")
    D.write_idx(tmp_path / "z", np.zeros(3, np.uint8))
    (tmp_path / "z").write_bytes((tmp_path / "z").read_bytes() + b"junk")
    with pytest.raises(D.IDXError, match="unexpected bytes"):
        D.read_idx(tmp_path / "z")


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_reads_both_splits(tmp_path, gz):
    data = write_mnist(tmp_path / "m", gz=gz)
    tr, te = D.MNIST(tmp_path / "m", train=True), D.MNIST(tmp_path / "m", train=False)
    assert len(tr) == 12 and len(te) == 5
    img, label = tr[3]  # as torchvision: a PIL image (mode 'L') and an int
    assert img.mode == "L" and img.size == (28, 28) and type(label) is int
    np.testing.assert_array_equal(np.asarray(img), data["train"][0][3])
    assert label == data["train"][1][3]
    np.testing.assert_array_equal(te.targets, data["t10k"][1])


def test_torchvision_layout_is_found(tmp_path):
    write_mnist(tmp_path / "FashionMNIST" / "raw")
    assert len(D.FashionMNIST(tmp_path, train=True)) == 12


def test_fashion_found_in_system_folder(tmp_path, monkeypatch):
    write_mnist(tmp_path / "sysdir", n_test=7)
    monkeypatch.setattr(mnist_mod, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "sysdir")
    ds = D.FashionMNIST(train=False)
    assert len(ds) == 7 and ds.classes[0] == "T-shirt/top"


def test_missing_dataset_message_names_files_and_remedy(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        D.FashionMNIST(tmp_path / "nowhere", train=True)
    msg = str(e.value)
    assert "train-images-idx3-ubyte" in msg and "train-labels-idx1-ubyte" in msg
    assert "apt-get install dataset-fashion-mnist" in msg and "--download" in msg
    assert str(tmp_path / "nowhere") in msg


def test_label_image_count_mismatch(tmp_path):
    write_mnist(tmp_path / "m")
    D.write_idx(tmp_path / "m" / "train-labels-idx1-ubyte.gz", np.zeros(11, np.uint8))
    with pytest.raises(D.IDXError, match="12 images but .* 11 labels"):
        D.MNIST(tmp_path / "m")


def test_labels_out_of_range_and_wrong_rank(tmp_path):
    write_mnist(tmp_path / "m")
    D.write_idx(tmp_path / "m" / "train-labels-idx1-ubyte.gz", np.full(12, 10, np.uint8))
    with pytest.raises(D.IDXError, match="outside 0..9"):
        D.MNIST(tmp_path / "m")
    D.write_idx(tmp_path / "m" / "train-images-idx3-ubyte.gz", np.zeros((12, 784), np.uint8))
    with pytest.raises(D.IDXError, match=r"\(N, rows, cols\)"):
        D.MNIST(tmp_path / "m")


def test_bundled_digits_are_real_and_split():
    tr, te = D.BundledMNIST(train=True), D.BundledMNIST(train=False)
    assert len(tr) == 8000 and len(te) == 2000
    assert tr.images.dtype == np.uint8 and tr.images.shape[1:] == (1, 28, 28)
    # every class present in both splits, roughly balanced
    assert np.bincount(tr.targets, minlength=10).min() > 500
    assert np.bincount(te.targets, minlength=10).min() > 100
    # MNIST digits: dark background, bright centred strokes
    mean_img = tr.images[:500, 0].astype(float).mean(0)
    assert mean_img[:3].mean() < 5 and mean_img[10:18, 10:18].mean() > 60
    # train and test do not share images
    tr_keys = {im.tobytes() for im in tr.images[:, 0]}
    assert not any(im.tobytes() in tr_keys for im in te.images[:300, 0])


# ----------------------------------------------------------------------------- CIFAR-10
def write_cifar(folder, n=6, names=None, rng=None):
    rng = rng or np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    names = names or [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    out = {}
    for name in names:
        d = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
             b"labels": [int(v) for v in rng.integers(0, 10, n)], b"batch_label": b"x"}
        (folder / name).write_bytes(pickle.dumps(d, protocol=2))
        out[name] = d
    return out


def test_cifar_reads_channels_first(tmp_path):
    data = write_cifar(tmp_path / "cifar-10-batches-py")
    tr, te = D.CIFAR10(tmp_path, train=True), D.CIFAR10(tmp_path, train=False)
    assert len(tr) == 30 and len(te) == 6
    img, label = te[2]  # as torchvision: a PIL RGB image and an int
    raw = data["test_batch"][b"data"][2]
    assert img.mode == "RGB"
    img = np.asarray(img).transpose(2, 0, 1)
    np.testing.assert_array_equal(img[0].ravel(), raw[:1024])  # red plane first
    np.testing.assert_array_equal(img[2].ravel(), raw[2048:])
    assert label == data["test_batch"][b"labels"][2]
    np.testing.assert_array_equal(tr.targets[6:12], data["data_batch_2"][b"labels"])


def test_cifar_truncated_and_inconsistent(tmp_path):
    write_cifar(tmp_path)
    raw = (tmp_path / "test_batch").read_bytes()
    (tmp_path / "test_batch").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(D.CIFARError, match="test_batch.*truncated or corrupt"):
        D.CIFAR10(tmp_path, train=False)
    d = {b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 2]}
    (tmp_path / "test_batch").write_bytes(pickle.dumps(d))
    with pytest.raises(D.CIFARError, match="4 images but 3 labels"):
        D.CIFAR10(tmp_path, train=False)
    d = {b"data": np.zeros((4, 100), np.uint8), b"labels": [0, 1, 2, 3]}
    (tmp_path / "test_batch").write_bytes(pickle.dumps(d))
    with pytest.raises(D.CIFARError, match=r"\(N, 3072\)"):
        D.CIFAR10(tmp_path, train=False)


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned",))


def test_cifar_refuses_code_in_pickle(tmp_path):
    write_cifar(tmp_path)
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": _Evil(), b"labels": []}))
    with pytest.raises(D.CIFARError, match="refusing to load"):
        D.CIFAR10(tmp_path, train=False)


def test_cifar_missing_message(tmp_path):
    with pytest.raises(FileNotFoundError, match="data_batch_1.*cifar-10-python.tar.gz"):
        D.CIFAR10(tmp_path, train=True)


# --------------------------------------------------------------------------- ImageFolder
def make_folder(root, sizes=((20, 30), (8, 8), (40, 25))):
    rng = np.random.default_rng(0)
    for ci, cls in enumerate(["cat", "dog"]):
        (root / cls).mkdir(parents=True)
        for i, (h, w) in enumerate(sizes):
            arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / cls / f"{i}.png")
    (root / "dog" / "notes.txt").write_text("not an image")


def test_image_folder(tmp_path):
    make_folder(tmp_path)
    ds = D.ImageFolder(tmp_path, size=16)
    assert ds.classes == ["cat", "dog"] and len(ds) == 6
    np.testing.assert_array_equal(ds.targets, [0, 0, 0, 1, 1, 1])
    img, label = ds[4]  # as torchvision: a PIL image and an int
    assert img.mode == "RGB" and img.size == (16, 16) and label == 1
    g = D.ImageFolder(tmp_path, mode="L")
    assert g[0][0].mode == "L" and g[0][0].size == (30, 20) and g.num_channels == 1
    # without resizing, pixels are exact
    arr = np.asarray(Image.open(tmp_path / "cat" / "1.png"))
    np.testing.assert_array_equal(np.asarray(D.ImageFolder(tmp_path)[1][0]), arr)


def test_image_folder_keeps_aspect_as_predict_frames_it(tmp_path):
    """A wide image is not squashed: shorter side to the size, centre cropped - the same pixels
    `convnet predict` gives the model, so training and prediction see images alike."""
    from convnet.data.user_images import prepare_image

    (tmp_path / "a").mkdir()
    ramp = np.tile(np.linspace(0, 255, 90).astype(np.uint8), (30, 1))  # 30x90, dark -> light
    arr = np.stack([ramp, ramp[:, ::-1], np.full_like(ramp, 128)], axis=-1)
    Image.fromarray(arr).save(tmp_path / "a" / "wide.png")
    img = np.asarray(D.ImageFolder(tmp_path, size=15)[0][0]).transpose(2, 0, 1)
    assert img.shape == (3, 15, 15)
    # the centre third of the ramp survives (values ~85..170), not the whole 0..255 range
    assert 70 < img[0].min() < 100 and 155 < img[0].max() < 185
    seen = prepare_image(tmp_path / "a" / "wide.png", 15, 3, "resize", "no").pixels
    np.testing.assert_allclose(seen, img / 255, atol=1e-6)
    exact = np.asarray(D.ImageFolder(tmp_path, size=(15, 15))[0][0]).transpose(2, 0, 1)
    # an explicit (h, w) resizes exactly
    assert exact[0].min() < 20 and exact[0].max() > 235


def test_image_folder_errors(tmp_path):
    make_folder(tmp_path)
    (tmp_path / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    ds = D.ImageFolder(tmp_path)
    idx = [i for i, (p, _) in enumerate(ds.samples) if p.name == "broken.png"][0]
    with pytest.raises(ValueError, match="broken.png: not a readable image"):
        ds[idx]
    with pytest.raises(FileNotFoundError, match="not a folder"):
        D.ImageFolder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no class sub-folders"):
        D.ImageFolder(tmp_path / "empty")

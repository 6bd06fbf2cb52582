"""The vision side of the PyTorch drop-in (issue 14): torch.utils.data's names, torchvision's
transforms, dataset attributes, make_grid/save_image and model factory defaults.

torchvision does not import beside torch 2.13 here, so its definitions are written out as
plain-loop NumPy / Pillow references in this file; torch.utils.data is compared to torch.
"""
import math

import numpy as np
import pytest
import torch
from PIL import Image

import convnet as cn
from convnet.data import transforms as T


def _rgb(h=7, w=9, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# ---- torch.utils.data ----------------------------------------------------------------------

def test_utils_data_is_an_alias_of_data():
    import convnet.utils.data
    from convnet.utils.data import (  # noqa: F401
        ConcatDataset, DataLoader, Dataset, Subset, TensorDataset, random_split)
    from convnet.utils.data.dataset import Dataset as D2

    assert convnet.utils.data is cn.data and D2 is cn.data.Dataset
    assert cn.utils.data.DataLoader is cn.data.DataLoader  # reachable from `import convnet`


def test_tensor_dataset_and_concat_match_torch():
    x, y = np.arange(12.0).reshape(6, 2), np.arange(6)
    ours = cn.utils.data.TensorDataset(cn.tensor(x), cn.tensor(y))
    theirs = torch.utils.data.TensorDataset(torch.tensor(x), torch.tensor(y))
    assert all(isinstance(t, cn.Tensor) for t in ours.tensors)
    for i in (0, 3, -1):
        for a, b in zip(ours[i], theirs[i]):
            assert isinstance(a, cn.Tensor)
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    cat = cn.utils.data.ConcatDataset([ours, cn.utils.data.Subset(ours, [5, 4])])
    tcat = torch.utils.data.ConcatDataset([theirs, torch.utils.data.Subset(theirs, [5, 4])])
    assert len(cat) == len(tcat) == 8 and cat.cumulative_sizes == tcat.cumulative_sizes
    for i in range(-8, 8):
        np.testing.assert_array_equal(cat[i][0].numpy(), tcat[i][0].numpy())
    assert len(ours + ours) == 12
    with pytest.raises(ValueError, match="absolute value of index"):
        cat[-9]


def test_random_split_lengths_and_fractions_as_torch():
    ds = cn.utils.data.TensorDataset(np.arange(10))
    for lengths in ([0.3, 0.3, 0.4], [0.5, 0.5], [3, 7], [0.34, 0.33, 0.33]):
        ours = cn.utils.data.random_split(ds, lengths, np.random.default_rng(0))
        theirs = torch.utils.data.random_split(range(10), lengths)
        assert [len(p) for p in ours] == [len(p) for p in theirs]
        assert sorted(i for p in ours for i in p.indices) == list(range(10))
        assert isinstance(ours[0].indices, list)
    with pytest.raises(ValueError, match="do not add up"):
        cn.utils.data.random_split(ds, [3, 3])


def test_dataloader_batches_are_tensors_and_collate_like_torch():
    samples = [(np.full((2, 2), i, np.float32), i, float(i), f"s{i}") for i in range(5)]

    class L(cn.utils.data.Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return samples[i]

    x, y, f, s = next(iter(cn.utils.data.DataLoader(L(), batch_size=4)))
    tx, ty, tf, ts = next(iter(torch.utils.data.DataLoader(samples, batch_size=4)))
    for a, b in ((x, tx), (y, ty), (f, tf)):
        assert isinstance(a, cn.Tensor) and a.shape == tuple(b.shape)
        assert str(a.dtype) == str(b.dtype).replace("torch.", "")
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert s == list(ts)

    class PIL(cn.utils.data.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return Image.new("L", (3, 3)), i

    with pytest.raises(TypeError, match="PIL"):
        next(iter(cn.utils.data.DataLoader(PIL(), batch_size=2)))


def test_iterable_dataset_is_batched_in_order():
    class Stream(cn.utils.data.IterableDataset):
        def __iter__(self):
            return iter(range(7))

    got = [b.numpy().tolist() for b in cn.utils.data.DataLoader(Stream(), batch_size=3)]
    assert got == [[0, 1, 2], [3, 4, 5], [6]]
    with pytest.raises(ValueError, match="IterableDataset"):
        cn.utils.data.DataLoader(Stream(), shuffle=True)


# ---- transforms: references of torchvision's definitions ------------------------------------

def test_to_tensor_and_pil_to_tensor():
    a = _rgb()
    for pic in (a, Image.fromarray(a)):
        t = T.ToTensor()(pic)
        assert isinstance(t, cn.Tensor) and t.shape == (3, 7, 9) and t.dtype == np.float32
        # torchvision: permute(2, 0, 1), then .float().div(255) -- exactly torch's division
        ref = torch.from_numpy(a).permute(2, 0, 1).float().div(255).numpy()
        np.testing.assert_array_equal(t.numpy(), ref)
    g = T.ToTensor()(Image.fromarray(a[..., 0]))
    assert g.shape == (1, 7, 9)
    p = T.PILToTensor()(Image.fromarray(a))
    assert p.dtype == np.uint8 and p.shape == (3, 7, 9)
    np.testing.assert_array_equal(p.numpy(), a.transpose(2, 0, 1))
    with pytest.raises(TypeError, match="PIL Image"):
        T.PILToTensor()(a)


def test_to_pil_image_round_trip():
    a = _rgb()
    img = T.ToPILImage()(T.ToTensor()(a))
    assert img.mode == "RGB"
    # float -> mul(255) -> truncating byte(): x/255*255 may land just below the integer
    ref = (a.astype(np.float32) / np.float32(255) * np.float32(255)).astype(np.uint8)
    np.testing.assert_array_equal(np.asarray(img), ref)
    assert T.ToPILImage()(cn.tensor(a[..., :1].transpose(2, 0, 1))).mode == "L"
    assert T.ToPILImage()(a).mode == "RGB"


def test_normalize_formula_and_errors():
    x = torch.rand(2, 3, 4, 5)
    mean, std = (0.1, 0.5, 0.9), (0.2, 0.3, 0.7)
    out = T.Normalize(mean, std)(cn.tensor(x.numpy()))
    # torchvision: tensor.sub_(mean[:, None, None]).div_(std[:, None, None])
    ref = x.sub(torch.tensor(mean)[:, None, None]).div(torch.tensor(std)[:, None, None])
    assert isinstance(out, cn.Tensor)
    np.testing.assert_array_equal(out.numpy(), ref.numpy())
    with pytest.raises(TypeError, match="float tensor"):
        T.Normalize(mean, std)(cn.tensor(np.zeros((3, 2, 2), np.uint8)))
    with pytest.raises(TypeError, match="Tensor Image"):
        T.Normalize(mean, std)(Image.fromarray(_rgb()))
    t = cn.tensor(x.numpy()[0])
    assert T.Normalize(mean, std, inplace=True)(t) is t


def _resize_ref(h, w, size):
    """torchvision's _compute_resized_output_size, without max_size."""
    if isinstance(size, int):
        short, long = (w, h) if w <= h else (h, w)
        new_short, new_long = size, int(size * long / short)
        new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
        return new_h, new_w
    return size


@pytest.mark.parametrize("hw, size", [((30, 45), 20), ((45, 30), 20), ((31, 17), 12),
                                      ((30, 45), (10, 14)), ((20, 20), 20)])
def test_resize_sizes_and_pil_pixels(hw, size):
    a = np.random.default_rng(1).integers(0, 256, hw + (3,), dtype=np.uint8)
    out = T.Resize(size)(Image.fromarray(a))
    h, w = _resize_ref(*hw, size)
    assert (out.height, out.width) == (h, w)
    ref = Image.fromarray(a) if (h, w) == hw else Image.fromarray(a).resize((w, h), Image.BILINEAR)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(ref))
    t = T.Resize(size)(cn.tensor(a.transpose(2, 0, 1).astype(np.float32) / 255))
    assert isinstance(t, cn.Tensor) and t.shape == (3, h, w)
    # the tensor path is antialiased bilinear too: within a grey level of Pillow's 8-bit result
    np.testing.assert_allclose(t.numpy() * 255, np.asarray(ref).transpose(2, 0, 1), atol=1.01)


def test_center_crop_offsets_and_padding():
    x = np.random.default_rng(2).random((2, 3, 9, 12)).astype(np.float32)
    for size in ((4, 5), (9, 12), (3, 8), (12, 14)):
        out = T.CenterCrop(size)(cn.tensor(x)).numpy()
        ref = np.zeros((2, 3) + size, np.float32)
        H, W, (h, w) = 9, 12, size
        # torchvision pads (left, top, right, bottom) = ((w-W)//2, (h-H)//2, (w-W+1)//2, ...)
        pt, pl = max(h - H, 0) // 2, max(w - W, 0) // 2
        Hp, Wp = H + max(h - H, 0), W + max(w - W, 0)
        top, left = int(round((Hp - h) / 2.0)), int(round((Wp - w) / 2.0))
        for i in range(h):
            for j in range(w):
                si, sj = top + i - pt, left + j - pl
                if 0 <= si < H and 0 <= sj < W:
                    ref[:, :, i, j] = x[:, :, si, sj]
        np.testing.assert_array_equal(out, ref)
    img = T.CenterCrop(4)(Image.fromarray(_rgb()))
    np.testing.assert_array_equal(np.asarray(img), _rgb()[2:6, 2:6])  # round(1.5) = 2, round(2.5) = 2


def test_random_crop_tensor_one_draw_and_padding():
    x = cn.tensor(np.random.default_rng(3).random((4, 2, 6, 6)).astype(np.float32))
    cn.manual_seed(0)
    out = T.RandomCrop(6, padding=2)(x).numpy()
    padded = np.pad(x.numpy(), ((0, 0), (0, 0), (2, 2), (2, 2)))
    hits = [(i, j) for i in range(5) for j in range(5)
            if np.array_equal(padded[:, :, i:i + 6, j:j + 6], out)]
    assert hits  # one window for the whole batch tensor, as torchvision
    img = T.RandomCrop((3, 4), pad_if_needed=True)(Image.fromarray(_rgb(2, 2)))
    assert img.size == (4, 3)
    with pytest.raises(ValueError, match="larger than"):
        T.RandomCrop(10)(x)


def _rrc_params_ref(H, W, scale, ratio, u):
    """torchvision's RandomResizedCrop.get_params with the uniforms drawn from ``u``."""
    area = H * W
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * u.uniform(scale[0], scale[1])
        aspect = math.exp(u.uniform(*log_ratio))
        w, h = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if 0 < w <= W and 0 < h <= H:
            return int(u.integers(0, H - h + 1)), int(u.integers(0, W - w + 1)), h, w
    in_ratio = W / H
    if in_ratio < min(ratio):
        w, h = W, int(round(W / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = H, int(round(H * max(ratio)))
    else:
        w, h = W, H
    return (H - h) // 2, (W - w) // 2, h, w


@pytest.mark.parametrize("hw, scale, ratio", [((40, 30), (0.08, 1.0), (3 / 4, 4 / 3)),
                                              ((10, 50), (0.9, 1.0), (1.0, 1.0)),
                                              ((50, 10), (0.9, 1.0), (1.0, 1.0))])
def test_random_resized_crop_params_and_pixels(hw, scale, ratio):
    t = T.RandomResizedCrop(8, scale=scale, ratio=ratio)
    for seed in range(20):
        got = t.get_params(*hw, np.random.default_rng(seed))
        assert got == _rrc_params_ref(*hw, scale, ratio, np.random.default_rng(seed))
        i, j, h, w = got
        assert 0 <= i and i + h <= hw[0] and 0 <= j and j + w <= hw[1]
    a = np.random.default_rng(4).integers(0, 256, hw + (3,), dtype=np.uint8)
    with T.use_rng(np.random.default_rng(7)):
        out = t(Image.fromarray(a))
    i, j, h, w = _rrc_params_ref(*hw, scale, ratio, np.random.default_rng(7))
    ref = Image.fromarray(a).crop((j, i, j + w, i + h)).resize((8, 8), Image.BILINEAR)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(ref))
    assert T.RandomResizedCrop((5, 6))(cn.tensor(a.transpose(2, 0, 1))).shape == (3, 5, 6)


def test_flip_grayscale_lambda_compose():
    a = _rgb()
    assert np.array_equal(np.asarray(T.RandomHorizontalFlip(1.0)(Image.fromarray(a))), a[:, ::-1])
    t = cn.tensor(a.transpose(2, 0, 1).copy())
    np.testing.assert_array_equal(T.RandomVerticalFlip(1.0)(t).numpy(), t.numpy()[:, ::-1])
    g = T.Grayscale()(Image.fromarray(a))
    # ITU-R 601-2 luma as Pillow computes it: L = R*299/1000 + G*587/1000 + B*114/1000
    ref = np.empty(a.shape[:2], np.uint8)
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            r, gg, b = (int(v) for v in a[i, j])
            ref[i, j] = (r * 19595 + gg * 38470 + b * 7471 + 0x8000) >> 16
    assert g.mode == "L"
    np.testing.assert_array_equal(np.asarray(g), ref)
    assert T.Grayscale(3)(Image.fromarray(a)).mode == "RGB"
    f = torch.rand(3, 4, 5)
    tg = T.Grayscale(3)(cn.tensor(f.numpy()))
    ref = (0.2989 * f[0] + 0.587 * f[1] + 0.114 * f[2]).expand(3, 4, 5)  # torchvision's tensor rule
    np.testing.assert_allclose(tg.numpy(), ref.numpy(), rtol=1e-6)
    with pytest.raises(TypeError, match="callable"):
        T.Lambda(3)
    pipe = T.Compose([T.Resize(5), T.CenterCrop(5), T.ToTensor(), T.Normalize([0.5] * 3, [0.5] * 3),
                      T.Lambda(lambda x: x * 2)])
    out = pipe(Image.fromarray(a))
    assert isinstance(out, cn.Tensor) and out.shape == (3, 5, 5)
    assert -2 <= float(out.min()) and float(out.max()) <= 2


# ---- datasets -------------------------------------------------------------------------------

def test_mnist_like_attributes_and_items():
    from convnet.data.datasets import BundledMNIST

    ds = BundledMNIST(None, train=False, transform=T.ToTensor())
    assert isinstance(ds.data, cn.Tensor) and ds.data.dtype == np.uint8 and ds.data.shape == (2000, 28, 28)
    assert isinstance(ds.targets, cn.Tensor) and ds.targets.dtype == np.int64
    assert ds.classes[0] == "0" and ds.class_to_idx["3"] == 3
    img, label = ds[5]
    assert isinstance(img, cn.Tensor) and img.shape == (1, 28, 28) and img.dtype == np.float32
    assert type(label) is int and label == int(ds.targets[5].item())
    np.testing.assert_array_equal(img.numpy()[0], ds.data.numpy()[5] / np.float32(255))
    raw, _ = BundledMNIST(train=False)[5]
    assert raw.mode == "L"
    # the usual subsampling idiom: assigning .data / .targets changes the dataset
    ds.data, ds.targets = ds.data[:100], ds.targets[:100]
    assert len(ds) == 100
    x, y = next(iter(cn.utils.data.DataLoader(ds, batch_size=100)))
    assert isinstance(x, cn.Tensor) and x.shape == (100, 1, 28, 28) and y.dtype == np.int64
    np.testing.assert_array_equal(y.numpy(), ds.targets.numpy())


def test_cifar_layout_as_torchvision(tmp_path):
    import pickle

    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        d = {b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8),
             b"labels": [int(v) for v in rng.integers(0, 10, 4)]}
        (folder / name).write_bytes(pickle.dumps(d, protocol=2))
    ds = cn.data.datasets.CIFAR10(tmp_path, train=False)
    assert isinstance(ds.data, np.ndarray) and ds.data.shape == (4, 32, 32, 3)
    assert isinstance(ds.targets, list) and ds.targets == d[b"labels"]
    img, label = ds[1]
    np.testing.assert_array_equal(np.asarray(img), d[b"data"][1].reshape(3, 32, 32).transpose(1, 2, 0))
    assert label == d[b"labels"][1]


# ---- make_grid / save_image ------------------------------------------------------------------

def _make_grid_ref(x, nrow=8, padding=2, normalize=False, value_range=None, scale_each=False,
                   pad_value=0.0):
    """torchvision's make_grid, loop for loop."""
    x = np.array(x, dtype=np.float64)
    if x.ndim == 2:
        x = x[None]
    if x.ndim == 3:
        if x.shape[0] == 1:
            x = np.concatenate([x, x, x], 0)
        x = x[None]
    if x.ndim == 4 and x.shape[1] == 1:
        x = np.concatenate([x, x, x], 1)
    if normalize:
        def norm(t, lo, hi):
            np.clip(t, lo, hi, out=t)
            t -= lo
            t /= max(hi - lo, 1e-5)
        for t in (x if scale_each else [x]):
            norm(t, *(value_range if value_range is not None else (t.min(), t.max())))
    if x.shape[0] == 1:
        return x[0]
    nmaps = x.shape[0]
    xmaps = min(nrow, nmaps)
    ymaps = int(math.ceil(nmaps / xmaps))
    height, width = x.shape[2] + padding, x.shape[3] + padding
    grid = np.full((x.shape[1], height * ymaps + padding, width * xmaps + padding), pad_value)
    k = 0
    for yy in range(ymaps):
        for xx in range(xmaps):
            if k >= nmaps:
                break
            grid[:, yy * height + padding:(yy + 1) * height,
                 xx * width + padding:(xx + 1) * width] = x[k]
            k += 1
    return grid


@pytest.mark.parametrize("shape, kw", [
    ((5, 3, 4, 6), {}), ((5, 1, 4, 6), {"nrow": 2, "padding": 1, "pad_value": 0.7}),
    ((9, 3, 3, 3), {"nrow": 4, "normalize": True}), ((3, 3, 5, 5), {"normalize": True, "scale_each": True}),
    ((4, 2, 3, 3), {"normalize": True, "value_range": (-0.5, 0.5), "padding": 0}),
    ((1, 3, 4, 4), {}), ((4, 5), {}), ((1, 4, 5), {"normalize": True}), ((7, 3, 2, 2), {"nrow": 10})])
def test_make_grid_matches_torchvision_definition(shape, kw):
    x = np.random.default_rng(len(shape) + sum(shape)).standard_normal(shape)
    got = cn.viz.make_grid(cn.tensor(x), **kw)
    assert isinstance(got, cn.Tensor)
    np.testing.assert_allclose(got.numpy(), _make_grid_ref(x, **kw), rtol=1e-12, atol=1e-12)
    lst = cn.viz.make_grid([cn.tensor(im) for im in x], **kw) if len(shape) == 4 else got
    np.testing.assert_array_equal(lst.numpy(), got.numpy())
    with pytest.raises(TypeError, match="value_range"):
        cn.viz.make_grid(cn.tensor(x), normalize=True, value_range=[0, 1])


def test_save_image_writes_the_grid(tmp_path):
    x = np.random.default_rng(5).random((10, 3, 6, 5))
    p = tmp_path / "grid.png"
    cn.viz.save_image(cn.tensor(x), p, nrow=4)
    got = np.asarray(Image.open(p))
    ref = np.clip(_make_grid_ref(x, nrow=4) * 255 + 0.5, 0, 255).astype(np.uint8).transpose(1, 2, 0)
    assert got.shape == (3 * 8 + 2, 4 * 7 + 2, 3)
    np.testing.assert_array_equal(got, ref)
    grey = tmp_path / "grey.png"
    cn.viz.save_image(cn.tensor(x[:, :1]), str(grey), nrow=5, padding=1)
    g = np.asarray(Image.open(grey))
    np.testing.assert_array_equal(
        g, np.clip(_make_grid_ref(x[:, :1], nrow=5, padding=1)[0] * 255 + 0.5, 0, 255).astype(np.uint8))


# ---- model factories -------------------------------------------------------------------------

def _shapes_only(fn):
    from convnet.models import registry

    with registry._shapes_only():
        return fn()


@pytest.mark.parametrize("name", ["alexnet", "vgg11", "resnet18", "resnet50", "mobilenet_v2",
                                  "googlenet", "squeezenet1_1", "shufflenet_v2_x0_5", "vit_b_16"])
def test_torchvision_named_factories_take_torchvision_defaults(name):
    import inspect

    factory = getattr(cn.models, name)
    params = inspect.signature(factory).parameters
    assert params["num_classes"].default == 1000 and params["in_channels"].default == 3
    assert params["weights"].default is None
    m = _shapes_only(factory)
    last = [mod for mod in m.modules() if isinstance(mod, (cn.nn.Linear, cn.nn.Conv2d))]
    first_conv = next(mod for mod in m.modules() if isinstance(mod, cn.nn.Conv2d))
    assert first_conv.in_channels == 3
    out = last[-1].out_features if isinstance(last[-1], cn.nn.Linear) else last[-1].out_channels
    assert out == 1000
    with pytest.raises(ValueError, match="load_weights"):
        factory(weights="IMAGENET1K_V1")
    with pytest.raises(ValueError, match="does not download pretrained weights"):
        cn.models.create(name, pretrained=True)
    assert "weights" not in cn.models.model_options(name)


def test_create_keeps_dataset_defaults():
    m = _shapes_only(lambda: cn.models.create("resnet18"))
    assert m.fc.out_features == 10 and m.conv1.in_channels == 1


def test_vgg_pools_as_torchvision_and_small_inputs_still_fit():
    m = _shapes_only(cn.models.vgg16)
    pools = [mod for mod in m.features if isinstance(mod, cn.nn.MaxPool2d)]
    assert len(pools) == 5 and not any(p.ceil_mode for p in pools)
    assert cn.models.fit_input("vgg16", 28) == ({"small_input": True}, {"small_input": True})
    assert cn.models.fit_input("vgg16", 32) == ({}, {})
    small = _shapes_only(lambda: cn.models.vgg11(num_classes=10, in_channels=1, small_input=True))
    assert all(p.ceil_mode for p in small.features if isinstance(p, cn.nn.MaxPool2d))
    with pytest.raises(cn.models.InputSizeError, match="small_input=True fixes it"):
        cn.models.check_input_size("vgg11", 28)

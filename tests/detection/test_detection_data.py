"""Digit canvases for detection (MNISTDetection), COCO export, box-moving transforms, collate."""
import time

import numpy as np
import pytest

from convnet.data import DataLoader
from convnet.data import detection_transforms as DT
from convnet.data.datasets import (BundledMNIST, FashionMNISTDetection, MNISTDetection,
                                   collate_detection, to_coco)
from convnet.data.transforms import use_rng


@pytest.fixture(scope="module")
def train():
    return MNISTDetection(train=True, length=200, return_masks=True)


@pytest.fixture(scope="module")
def test_split():
    return MNISTDetection(train=False, length=200)


def _np(t):
    return t.numpy() if hasattr(t, "numpy") else np.asarray(t)


def test_items_layout_and_dtypes(train):
    image, target = train[3]
    assert image.shape == (1, 64, 64) and image.dtype == np.float32
    x = image.numpy()
    assert 0 <= x.min() and x.max() <= 1 and x.max() > 0.9
    levels = np.rint(x * 255).astype(np.uint8)  # whole grey levels, exactly ToTensor's v / 255
    np.testing.assert_array_equal(levels.astype(np.float32) / np.float32(255), x)
    k = len(target["labels"])
    assert 1 <= k <= 4
    assert target["boxes"].shape == (k, 4) and target["boxes"].dtype == np.float32
    assert target["labels"].dtype == np.int64 and target["iscrowd"].dtype == np.int64
    assert target["image_id"] == 3 and isinstance(target["image_id"], int)
    b = target["boxes"].numpy()
    np.testing.assert_array_equal(target["area"].numpy(), (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))
    assert ((b[:, 0] >= 0) & (b[:, 1] >= 0) & (b[:, 2] <= 64) & (b[:, 3] <= 64)).all()
    assert ((b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])).all()
    assert train.classes[0] == "__background__" and train.num_classes == 11
    assert set(target["labels"].numpy()) <= set(range(1, 11))


def test_deterministic_per_seed_and_index(train):
    again = MNISTDetection(train=True, length=200, return_masks=True)
    for i in (0, 7, 199):
        a, ta = train[i]
        b, tb = again[i]
        np.testing.assert_array_equal(a.numpy(), b.numpy())
        np.testing.assert_array_equal(ta["boxes"].numpy(), tb["boxes"].numpy())
        np.testing.assert_array_equal(ta["labels"].numpy(), tb["labels"].numpy())
    # order-independent: item 7 alone equals item 7 after others; negative index
    np.testing.assert_array_equal(again[-1][0].numpy(), train[199][0].numpy())
    other = MNISTDetection(train=True, length=5, seed=1)
    assert not all(np.array_equal(other[i][0].numpy(), train[i][0].numpy()) for i in range(5))


def test_boxes_tight_around_each_objects_ink(train):
    level = train._ink_level / 255
    for i in range(60):
        image, target = train[i]
        x = image.numpy()[0]
        masks = target["masks"].numpy()
        for (x1, y1, x2, y2), m in zip(target["boxes"].numpy().astype(int), masks):
            # none of the object's ink outside its box
            outside = m.copy()
            outside[y1:y2, x1:x2] = 0
            assert not outside.any()
            inner = m[y1:y2, x1:x2]
            # ink on every border row and column of the box
            assert inner[0].any() and inner[-1].any() and inner[:, 0].any() and inner[:, -1].any()
            # the canvas is at least as bright as the ink of every object (max composite)
            assert (x[m.astype(bool)] >= level - 1e-7).all()
        # every ink pixel of the canvas belongs to some object
        ink = x >= level - 1e-7
        assert not (ink & ~masks.any(axis=0).astype(bool)).any()


def test_classes_match_the_source_digits(train):
    src = BundledMNIST(train=True)
    for i in range(40):
        _, target = train[i]
        layout = train.layout(i)
        assert [o["label"] for o in layout] == target["labels"].numpy().tolist()
        for o in layout:
            assert o["label"] == int(src.targets[o["source_index"]].item()) + 1
            assert list(o["box"]) == target["boxes"].numpy()[layout.index(o)].tolist()


def test_object_pixels_come_from_the_source_digit(train):
    """Re-render one object alone: its ink equals the resized source digit's."""
    from convnet.data.datasets.detection import _resize_plane

    o = train.layout(5)[0]
    patch = _resize_plane(train._images[o["source_index"]], o["size"])
    x1, y1, x2, y2 = o["box"]
    top, left = o["offset"]
    ink = patch >= train._ink_level
    mask = train[5][1]["masks"].numpy()[0]
    np.testing.assert_array_equal(mask[y1:y2, x1:x2], ink[y1 - top:y2 - top, x1 - left:x2 - left])


def test_train_and_test_use_disjoint_source_images(train, test_split):
    assert train.source.train and not test_split.source.train
    tr = {train._images[o["source_index"]].tobytes() for i in range(100)
          for o in train.layout(i)}
    te = {test_split._images[o["source_index"]].tobytes() for i in range(100)
          for o in test_split.layout(i)}
    assert tr and te and not tr & te
    # the whole bundled test split shares no image with the bundled train split
    all_train = {im.tobytes() for im in train._images}
    assert not any(im.tobytes() in all_train for im in test_split._images)
    # the same seed and index give different canvases in the two splits
    assert not np.array_equal(train[0][0].numpy(), test_split[0][0].numpy())


def test_object_counts_and_overlap_limit():
    ds = MNISTDetection(length=300, min_objects=2, max_objects=5, max_overlap_iou=0.0)
    counts = []
    for i in range(len(ds)):
        b = ds[i][1]["boxes"].numpy()
        counts.append(len(b))
        for p in range(len(b)):
            for q in range(p + 1, len(b)):
                iw = min(b[p, 2], b[q, 2]) - max(b[p, 0], b[q, 0])
                ih = min(b[p, 3], b[q, 3]) - max(b[p, 1], b[q, 1])
                assert iw <= 0 or ih <= 0  # IoU 0: boxes never overlap
    assert min(counts) >= 1 and max(counts) <= 5 and 5 in counts
    assert np.mean(np.asarray(counts) >= 2) > 0.97  # objects left out only rarely


def test_scale_and_canvas_size_options():
    ds = MNISTDetection(canvas_size=(40, 96), scale=(0.5, 0.5), length=20)
    image, target = ds[0]
    assert image.shape == (1, 40, 96)
    assert all(o["size"] == 14 for i in range(20) for o in ds.layout(i))
    assert len(MNISTDetection(length=0)) == 0


def test_generation_is_fast():
    ds = MNISTDetection(length=1000)
    t = time.perf_counter()
    for i in range(1000):
        ds[i]
    assert time.perf_counter() - t < 3.0  # ~0.4 s measured on one core


@pytest.mark.parametrize("kwargs, match", [
    ({"min_objects": 3, "max_objects": 2}, "max_objects"),
    ({"min_objects": 0}, "min_objects"),
    ({"canvas_size": 32}, "smaller than the largest digit"),
    ({"canvas_size": 40, "scale": (0.5, 2.0)}, "smaller than the largest digit"),
    ({"scale": (1.5, 1.0)}, "scale"),
    ({"max_overlap_iou": 1.5}, "max_overlap_iou"),
    ({"source": "cifar"}, "source"),
    ({"length": -1}, "length"),
])
def test_bad_arguments_are_clear(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MNISTDetection(**kwargs)


def test_bad_index_and_exclusive_transforms(train):
    with pytest.raises(IndexError, match="out of range"):
        train[200]
    with pytest.raises(TypeError, match="index"):
        train[1.5]
    with pytest.raises(ValueError, match="either transforms"):
        MNISTDetection(transforms=DT.ToTensor(), transform=lambda x: x)


def test_fashion_detection_errors_clearly_without_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="FashionMNISTDetection needs the Fashion-MNIST"):
        FashionMNISTDetection(root=tmp_path)


def test_fashion_detection_from_a_loaded_source():
    class Fake:  # a stand-in Fashion-MNIST split: bright squares of class k
        images = np.zeros((10, 1, 28, 28), np.uint8)
        targets = np.arange(10)
    for k in range(10):
        Fake.images[k, 0, 4:4 + 2 * k + 2, 6:20] = 255
    ds = FashionMNISTDetection(source=Fake(), length=10)
    assert ds.classes[1:] == FashionMNISTDetection.source_classes
    _, t = ds[0]
    assert len(t["labels"]) >= 1


# ------------------------------------------------------------------------------- COCO
def test_coco_export_loads_with_pycocotools_and_round_trips(tmp_path, test_split):
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO

    ds = MNISTDetection(train=False, length=12)
    path = tmp_path / "sub" / "canvases.json"
    written = to_coco(ds, path, image_dir=tmp_path / "img")
    coco = COCO(str(path))
    assert sorted(coco.getImgIds()) == list(range(12))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == [str(d) for d in range(10)]
    n = 0
    for i in range(12):
        _, t = ds[i]
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[i]))
        boxes = np.asarray([a["bbox"] for a in anns]).reshape(-1, 4)
        xyxy = np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)
        np.testing.assert_array_equal(xyxy, t["boxes"].numpy())
        assert [a["category_id"] for a in anns] == t["labels"].numpy().tolist()
        assert all(a["iscrowd"] == 0 and a["area"] == a["bbox"][2] * a["bbox"][3] for a in anns)
        img = coco.loadImgs([i])[0]
        assert (img["width"], img["height"]) == (64, 64)
        n += len(anns)
    assert len(coco.getAnnIds()) == n and n == len(written["annotations"])
    assert len({a["id"] for a in written["annotations"]}) == n
    # the saved PNG is the canvas, exactly (whole grey levels)
    from PIL import Image

    png = np.asarray(Image.open(tmp_path / "img" / "000003.png"), np.float32) / 255
    np.testing.assert_array_equal(png, ds[3][0].numpy()[0])
    assert not list(path.parent.glob(".*.tmp"))  # atomic write left no temporary behind


def test_coco_export_rejects_bad_labels(tmp_path):
    class Bad:
        classes = ["__background__", "a"]

        def __len__(self):
            return 1

        def __getitem__(self, i):
            return np.zeros((1, 4, 4), np.float32), {"boxes": np.zeros((1, 4)),
                                                      "labels": np.array([0])}
    with pytest.raises(ValueError, match="labels"):
        to_coco(Bad(), tmp_path / "x.json")


# ------------------------------------------------------------------------- transforms
def _sample(ds, i):
    image, target = ds[i]
    return image, target


def _pixels(image, box):
    x1, y1, x2, y2 = np.rint(_np(box)).astype(int)
    return _np(image)[:, y1:y2, x1:x2]


def test_flip_moves_boxes_and_twice_is_identity(train):
    image, target = _sample(train, 2)
    flip = DT.RandomHorizontalFlip(p=1.0)
    fi, ft = flip(image, target)
    W = image.shape[2]
    b, fb = target["boxes"].numpy(), ft["boxes"].numpy()
    np.testing.assert_array_equal(fb[:, [0, 2]], W - b[:, [2, 0]])
    for k in range(len(b)):  # a box's pixels follow the image (mirrored)
        np.testing.assert_array_equal(_pixels(fi, fb[k]), _pixels(image, b[k])[:, :, ::-1])
        np.testing.assert_array_equal(ft["masks"].numpy()[k], target["masks"].numpy()[k][:, ::-1])
    ii, tt = flip(fi, ft)
    np.testing.assert_array_equal(ii.numpy(), image.numpy())
    np.testing.assert_array_equal(tt["boxes"].numpy(), b)
    assert target["boxes"] is not ft["boxes"]  # input target untouched
    same_i, same_t = DT.RandomHorizontalFlip(p=0.0)(image, target)
    np.testing.assert_array_equal(same_t["boxes"].numpy(), b)
    # a PIL image comes back as a PIL image, flipped with its boxes
    from PIL import Image

    pil = Image.fromarray(np.rint(image.numpy()[0] * 255).astype(np.uint8))
    pi, pt = flip(pil, target)
    assert isinstance(pi, Image.Image)
    np.testing.assert_array_equal(np.asarray(pi), np.asarray(pil)[:, ::-1])
    np.testing.assert_array_equal(pt["boxes"].numpy(), fb)
    ri, rt = DT.Resize(32)(pil, target)
    assert isinstance(ri, Image.Image) and ri.size == (32, 32)
    np.testing.assert_allclose(rt["boxes"].numpy(), b / 2)


def test_random_crop_keeps_boxes_inside_and_pixels_follow(train):
    crop = DT.RandomCrop(40)
    with use_rng(np.random.default_rng(0)):
        for i in range(40):
            image, target = _sample(train, i)
            ci, ct = crop(image, target)
            assert ci.shape == (1, 40, 40)
            b = ct["boxes"].numpy()
            assert len(b) >= 1  # at least one object kept (every canvas has one that fits)
            assert ((b >= 0) & (b <= 40)).all()
            assert len(ct["labels"]) == len(b) == len(ct["area"]) == len(ct["masks"])
            # recover the window offset from a fully visible kept box and check pixels
            ob = target["boxes"].numpy()
            for k, box in enumerate(b):
                j = np.flatnonzero(target["labels"].numpy() == ct["labels"].numpy()[k])
                full = [jj for jj in j if (ob[jj, 2] - ob[jj, 0]) == box[2] - box[0] and
                        (ob[jj, 3] - ob[jj, 1]) == box[3] - box[1]]
                if full:
                    dx, dy = ob[full[0], 0] - box[0], ob[full[0], 1] - box[1]
                    window = image.numpy()[:, int(dy):int(dy) + 40, int(dx):int(dx) + 40]
                    np.testing.assert_array_equal(ci.numpy(), window)
                    break
            area = ct["area"].numpy()
            np.testing.assert_allclose(area, (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))


def test_crop_drops_boxes_that_leave_the_window():
    image = np.zeros((1, 20, 20), np.float32)
    target = {"boxes": np.array([[0, 0, 4, 4], [10, 10, 14, 14], [16, 2, 20, 6]], np.float32),
              "labels": np.array([1, 2, 3]), "area": np.full(3, 16, np.float32)}
    out_i, out_t = DT._crop(image, target, 1, 1, 14, 14, 0.5, False, "test")
    # box 0 keeps 3x3 of 4x4 (>= 0.5), box 1 stays whole, box 2 is outside
    np.testing.assert_array_equal(out_t["boxes"], [[0, 0, 3, 3], [9, 9, 13, 13]])
    np.testing.assert_array_equal(out_t["labels"], [1, 2])
    np.testing.assert_array_equal(out_t["area"], [9, 16])
    strict = DT._crop(image, target, 2, 2, 14, 14, 0.5, False, "test")[1]
    np.testing.assert_array_equal(strict["labels"], [2])  # box 0 now 2x2 of 4x4 < 0.5


def test_scale_and_resize_move_boxes_with_the_image(train):
    image, target = _sample(train, 4)
    ri, rt = DT.Resize((32, 128))(image, target)
    assert ri.shape == (1, 32, 128)
    b, rb = target["boxes"].numpy(), rt["boxes"].numpy()
    np.testing.assert_allclose(rb, b * np.array([2, 0.5, 2, 0.5]), rtol=1e-6)
    assert rt["masks"].shape == (len(b), 32, 128)
    with use_rng(np.random.default_rng(3)):
        si, st = DT.RandomScale((2.0, 2.0))(image, target)
    assert si.shape == (1, 128, 128)
    sb = st["boxes"].numpy()
    np.testing.assert_allclose(sb, 2 * b)
    for k in range(len(b)):  # upscaled ink stays inside its scaled box
        m = st["masks"].numpy()[k].copy()
        x1, y1, x2, y2 = sb[k].astype(int)
        assert m[y1:y2, x1:x2].sum() == m.sum() > 0
        m2 = si.numpy()[0] * (st["masks"].numpy()[k] > 0)
        assert m2.max() > 0.5  # bright ink under the scaled mask


def test_iou_crop_and_compose_pipeline(train):
    pipe = DT.Compose([DT.RandomIoUCrop(), DT.Resize((64, 64)), DT.ToTensor(),
                       DT.Normalize([0.1307], [0.3081])])
    with use_rng(np.random.default_rng(0)):
        for i in range(30):
            image, target = train[i]
            pi, pt = pipe(image, target)
            assert pi.shape == (1, 64, 64) and pi.dtype == np.float32
            b = pt["boxes"].numpy()
            assert len(b) >= 1 and ((b >= 0) & (b <= 64 + 1e-4)).all()
            assert pt["labels"].dtype == np.int64
    # empty targets pass through
    empty = {"boxes": np.zeros((0, 4), np.float32), "labels": np.zeros(0, np.int64)}
    out = DT.RandomIoUCrop()(np.zeros((1, 8, 8), np.float32), empty)
    assert out[1]["boxes"].shape == (0, 4)
    crop = DT.RandomCrop(4)(np.zeros((1, 8, 8), np.float32), empty)
    assert crop[0].shape == (1, 4, 4) and crop[1]["boxes"].shape == (0, 4)


def test_transforms_are_seeded_by_current_rng(train):
    image, target = train[1]
    pipe = DT.Compose([DT.RandomScale((0.7, 1.3)), DT.RandomCrop(48, pad_if_needed=True)])
    runs = []
    for _ in range(2):
        with use_rng(np.random.default_rng(11)):
            runs.append(pipe(image, target))
    np.testing.assert_array_equal(runs[0][0].numpy(), runs[1][0].numpy())
    np.testing.assert_array_equal(runs[0][1]["boxes"].numpy(), runs[1][1]["boxes"].numpy())
    assert runs[0][0].shape == (1, 48, 48)


def test_transform_errors_are_clear():
    img = np.zeros((1, 8, 8), np.float32)
    with pytest.raises(ValueError, match="RandomCrop: crop size"):
        DT.RandomCrop(10)(img, {"boxes": np.zeros((0, 4))})
    with pytest.raises(ValueError, match=r"boxes'\] must be \(K, 4\)"):
        DT.RandomHorizontalFlip(1.0)(img, {"boxes": np.zeros((2, 3))})
    with pytest.raises(TypeError, match="target must be a dict"):
        DT.Resize(4)(img, [1, 2])
    with pytest.raises(ValueError, match=r"expected an image \(C, H, W\)"):
        DT.Resize(4)(np.zeros((8, 8)), {"boxes": np.zeros((0, 4))})
    with pytest.raises(ValueError, match="RandomScale"):
        DT.RandomScale((0, 1))


# --------------------------------------------------------------------------- loading
def test_collate_detection_with_the_dataloader(train):
    loader = DataLoader(train, batch_size=5, collate_fn=collate_detection, seed=0)
    images, targets = next(iter(loader))
    assert images.shape == (5, 1, 64, 64)
    assert len(targets) == 5 and targets[2]["image_id"] == 2
    np.testing.assert_array_equal(images.numpy()[2], train[2][0].numpy())
    # different sizes: the images stay a list
    a = (np.zeros((1, 4, 4), np.float32), {"boxes": np.zeros((0, 4))})
    b = (np.zeros((1, 5, 4), np.float32), {"boxes": np.zeros((0, 4))})
    imgs, tg = collate_detection([a, b])
    assert isinstance(imgs, list) and len(imgs) == 2 and len(tg) == 2
    with pytest.raises(ValueError, match="empty batch"):
        collate_detection([])

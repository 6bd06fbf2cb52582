"""DataLoader: batching, shuffling determinism, threads, resume, errors."""
import threading
import time

import numpy as np
import pytest

import convnet as cn
from convnet.data import ArrayImageDataset, DataLoader, Dataset, Subset, TensorDataset, random_split
from convnet.data import transforms as T


def tensor_ds(n=23):
    return TensorDataset(np.arange(n, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32),
                         np.arange(n))


@pytest.mark.parametrize("bs,drop,expected", [(5, False, [5, 5, 5, 5, 3]), (5, True, [5, 5, 5, 5]),
                                              (23, False, [23]), (50, False, [23]), (50, True, [])])
def test_batch_sizes(bs, drop, expected):
    dl = DataLoader(tensor_ds(), bs, drop_last=drop)
    sizes = [len(y.numpy()) for _, y in dl]
    assert sizes == expected and len(dl) == len(expected)


def test_batches_are_tensors_with_int64_labels():
    x, y = next(iter(DataLoader(tensor_ds(), 4)))
    assert isinstance(x, cn.Tensor) and x.shape == (4, 3) and x.dtype == np.float32
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y.numpy(), [0, 1, 2, 3])


def test_shuffle_is_a_permutation_fresh_each_epoch_and_seeded():
    dl = DataLoader(tensor_ds(), 4, shuffle=True, seed=7)
    e1 = np.concatenate([y.numpy() for _, y in dl])
    e2 = np.concatenate([y.numpy() for _, y in dl])
    assert sorted(e1) == list(range(23)) and sorted(e2) == list(range(23))
    assert not np.array_equal(e1, e2)
    again = DataLoader(tensor_ds(), 4, shuffle=True, seed=7)
    np.testing.assert_array_equal(np.concatenate([y.numpy() for _, y in again]), e1)
    other = DataLoader(tensor_ds(), 4, shuffle=True, seed=8)
    assert not np.array_equal(np.concatenate([y.numpy() for _, y in other]), e1)


def test_seed_from_global_generator_and_generator_argument():
    cn.manual_seed(3)
    a = np.concatenate([y.numpy() for _, y in DataLoader(tensor_ds(), 5, shuffle=True)])
    cn.manual_seed(3)
    b = np.concatenate([y.numpy() for _, y in DataLoader(tensor_ds(), 5, shuffle=True)])
    np.testing.assert_array_equal(a, b)
    g1, g2 = np.random.default_rng(1), np.random.default_rng(1)
    assert DataLoader(tensor_ds(), shuffle=True, generator=g1).seed == DataLoader(tensor_ds(), generator=g2).seed


def test_state_dict_resumes_the_next_epoch():
    dl = DataLoader(tensor_ds(), 4, shuffle=True, seed=1)
    list(dl)
    state = dl.state_dict()
    expected = [y.numpy().copy() for _, y in dl]
    fresh = DataLoader(tensor_ds(), 4, shuffle=True, seed=99)
    fresh.load_state_dict(state)
    for got, exp in zip([y.numpy() for _, y in fresh], expected):
        np.testing.assert_array_equal(got, exp)


def images_ds(transform):
    rng = np.random.default_rng(0)
    return ArrayImageDataset(rng.integers(0, 256, (37, 1, 8, 8), dtype=np.uint8), rng.integers(0, 10, 37),
                             transform=transform)


def test_workers_give_identical_batches_including_random_augmentation():
    tf = T.Compose([T.ToTensor(), T.RandomCrop(8, padding=2), T.RandomHorizontalFlip(),
                    T.RandomErasing(p=0.5)])
    runs = []
    for workers in (0, 1, 3):
        dl = DataLoader(images_ds(tf), 5, shuffle=True, num_workers=workers, seed=11)
        runs.append([(x.numpy().copy(), y.numpy().copy()) for _ in range(2) for x, y in dl])
    for other in runs[1:]:
        assert len(other) == len(runs[0])
        for (xa, ya), (xb, yb) in zip(runs[0], other):
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)


def test_batched_path_equals_per_sample_path():
    """A dataset without __getitems__ (per-sample + collate) yields the same batches."""
    tf = T.Compose([T.ToTensor(), T.Normalize([0.5], [0.25])])
    ds = images_ds(tf)

    class PerSample(Dataset):
        def __len__(self):
            return len(ds)

        def __getitem__(self, i):
            return ds[i]

    for (xa, ya), (xb, yb) in zip(DataLoader(ds, 6, shuffle=True, seed=2),
                                  DataLoader(PerSample(), 6, shuffle=True, seed=2)):
        np.testing.assert_allclose(xa.numpy(), xb.numpy(), rtol=1e-6)
        np.testing.assert_array_equal(ya.numpy(), yb.numpy())


def test_non_batched_user_transform_is_applied_per_image():
    # samples reach a per-image transform as uint8 Tensors (C, H, W)
    ds = images_ds(T.Lambda(lambda im: im.numpy().astype(np.float32).sum(keepdims=True)))
    x, _ = next(iter(DataLoader(ds, 4)))
    assert x.shape == (4, 1, 1, 1)
    np.testing.assert_allclose(x.numpy().ravel(), ds.images[:4].reshape(4, -1).sum(1))


class SlowDataset(Dataset):
    def __init__(self, n=8, delay=0.05):
        self.n, self.delay = n, delay
        self.threads = set()

    def __len__(self):
        return self.n

    def __getitems__(self, idx):
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)  # stands for decoding/augmenting; sleeping releases the GIL
        return np.asarray(idx, dtype=np.float32), np.asarray(idx)


def test_prefetch_overlaps_loading_with_compute():
    ds = SlowDataset()

    def consume(dl):
        t = time.perf_counter()
        for _ in dl:
            time.sleep(0.05)  # stands for the forward/backward pass
        return time.perf_counter() - t

    serial = consume(DataLoader(ds, 1, num_workers=0))
    ds2 = SlowDataset()
    overlapped = consume(DataLoader(ds2, 1, num_workers=2))
    assert serial > 0.75
    assert overlapped < 0.7 * serial
    assert all(name.startswith("convnet-loader") for name in ds2.threads)


def test_early_break_and_errors_propagate():
    dl = DataLoader(SlowDataset(n=50, delay=0.01), 1, num_workers=2)
    start = time.perf_counter()
    for i, _ in enumerate(dl):
        if i == 2:
            break
    assert time.perf_counter() - start < 0.4  # did not wait for the remaining 47 batches

    class Broken(Dataset):
        def __len__(self):
            return 10

        def __getitem__(self, i):
            if i == 6:
                raise RuntimeError("bad sample 6")
            return np.zeros(2), i

    for workers in (0, 2):
        with pytest.raises(RuntimeError, match="bad sample 6"):
            list(DataLoader(Broken(), 3, num_workers=workers))


def test_argument_errors():
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        DataLoader(tensor_ds(), 0)
    with pytest.raises(ValueError, match="num_workers"):
        DataLoader(tensor_ds(), 2, num_workers=-1)
    with pytest.raises(ValueError, match="mutually exclusive"):
        DataLoader(tensor_ds(), 2, shuffle=True, sampler=[0, 1])
    with pytest.raises(ValueError, match="share their first dimension"):
        TensorDataset(np.zeros((3, 2)), np.zeros(4))


def test_sampler_subset_and_random_split():
    dl = DataLoader(tensor_ds(), 2, sampler=[5, 3, 9])
    np.testing.assert_array_equal(np.concatenate([y.numpy() for _, y in dl]), [5, 3, 9])
    sub = Subset(tensor_ds(), [4, 2])
    assert len(sub) == 2 and int(sub[1][1].item()) == 2
    np.testing.assert_array_equal(next(iter(DataLoader(sub, 2)))[1].numpy(), [4, 2])
    parts = random_split(tensor_ds(), [0.5, 0.5], np.random.default_rng(0))
    assert sorted(len(p) for p in parts) == [11, 12]
    assert sorted(np.concatenate([p.indices for p in parts])) == list(range(23))
    with pytest.raises(ValueError, match="do not add up"):
        random_split(tensor_ds(), [3, 4])

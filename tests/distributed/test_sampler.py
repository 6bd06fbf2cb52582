"""DistributedSampler: torch's index rule (torch's own sampler is the oracle for padding,
truncation and lengths), disjoint shares, epochs, and the global-batch property."""
import itertools

import numpy as np
import pytest
import torch.utils.data.distributed as tdist

from convnet.data import DataLoader, TensorDataset
from convnet.distributed import DistributedSampler

GRID = [(n, k) for n in range(1, 12) for k in range(1, 5) if k <= n]


@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("n,k", GRID)
def test_matches_torch_without_shuffle(n, k, drop_last):
    data = list(range(n))
    for r in range(k):
        ours = DistributedSampler(data, num_replicas=k, rank=r, shuffle=False,
                                  drop_last=drop_last)
        theirs = tdist.DistributedSampler(data, num_replicas=k, rank=r, shuffle=False,
                                          drop_last=drop_last)
        assert list(ours) == list(theirs)
        assert len(ours) == len(theirs)
        assert ours.total_size == theirs.total_size


@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("n,k", [(10, 3), (9, 3), (7, 4), (5, 1)])
def test_shuffle_is_the_permutation_taken_through_torchs_rule(n, k, drop_last):
    # torch shuffles with randperm(n) seeded seed + epoch; we use NumPy's generator with the
    # same seed, and otherwise the same rule: the positions torch's unshuffled sampler picks
    for epoch in range(3):
        perm = np.random.default_rng(7 + epoch).permutation(n)
        for r in range(k):
            ours = DistributedSampler(range(n), k, r, shuffle=True, seed=7, drop_last=drop_last)
            ours.set_epoch(epoch)
            positions = list(tdist.DistributedSampler(range(n), k, r, shuffle=False,
                                                      drop_last=drop_last))
            assert list(ours) == perm[positions].tolist()


@pytest.mark.parametrize("n,k", [(12, 3), (13, 3), (5, 4), (8, 1)])
def test_shares_are_disjoint_and_cover_the_dataset(n, k):
    shares = [list(DistributedSampler(range(n), k, r, seed=1)) for r in range(k)]
    everything = list(itertools.chain(*shares))
    assert len({len(s) for s in shares}) == 1  # equal lengths: the ranks stay in step
    assert len(everything) == k * -(-n // k)
    assert set(everything) == set(range(n))
    assert len(everything) - len(set(everything)) == k * -(-n // k) - n  # only padding repeats
    dropped = [list(DistributedSampler(range(n), k, r, seed=1, drop_last=True))
               for r in range(k)]
    flat = list(itertools.chain(*dropped))
    assert len(flat) == len(set(flat)) == k * (n // k)  # truncated: no repeats


def test_epochs_reshuffle_identically_on_every_rank():
    a = DistributedSampler(range(20), 2, 0, seed=5)
    b = DistributedSampler(range(20), 2, 1, seed=5)
    first = list(a) + list(b)
    assert list(a) + list(b) == first  # no set_epoch: the same order again
    a.set_epoch(1)
    b.set_epoch(1)
    second = list(a) + list(b)
    assert second != first and sorted(second) == sorted(first) == list(range(20))
    assert list(DistributedSampler(range(20), 2, 0, seed=6)) != first[:10]  # the seed matters


@pytest.mark.parametrize("k,b", [(2, 3), (4, 2), (3, 5)])
def test_local_batches_make_up_the_global_batch(k, b):
    """Batch j of every rank (size b) together = batch j (size K b) of one process."""
    n = 50
    ds = TensorDataset(np.arange(n))
    single = DistributedSampler(ds, num_replicas=1, rank=0, seed=11)
    single.set_epoch(2)
    global_batches = [bt[0].numpy().tolist()
                      for bt in DataLoader(ds, batch_size=k * b, sampler=single, seed=0)]
    local = []
    for r in range(k):
        s = DistributedSampler(ds, num_replicas=k, rank=r, seed=11)
        s.set_epoch(2)
        local.append([bt[0].numpy().tolist()
                      for bt in DataLoader(ds, batch_size=b, sampler=s, seed=0)])
    assert len({len(batches) for batches in local}) == 1
    full = n // (k * b)
    for j in range(full):
        union = sorted(itertools.chain(*(batches[j] for batches in local)))
        assert union == sorted(global_batches[j])
    # the rest: the last global batch, plus padding repeated from the start of the order
    rest = set(itertools.chain(*(itertools.chain(*batches[full:]) for batches in local)))
    last = set(itertools.chain(*global_batches[full:]))
    assert last <= rest <= last | set(global_batches[0])


def test_defaults_are_a_world_of_one():
    s = DistributedSampler(range(5), shuffle=False)
    assert (s.num_replicas, s.rank, len(s), list(s)) == (1, 0, 5, [0, 1, 2, 3, 4])
    assert s.indices().dtype == np.int64


def test_errors():
    with pytest.raises(ValueError, match=r"DistributedSampler: world size 4 is larger than the "
                                         r"dataset \(3 samples\); every rank needs at least "
                                         r"one sample"):
        DistributedSampler(range(3), num_replicas=4, rank=0)
    with pytest.raises(ValueError, match=r"invalid rank 2, rank should be in the interval "
                                         r"\[0, 1\]"):
        DistributedSampler(range(3), num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="invalid rank -1"):
        DistributedSampler(range(3), num_replicas=2, rank=-1)
    with pytest.raises(ValueError, match="num_replicas must be a positive integer, got 0"):
        DistributedSampler(range(3), num_replicas=0, rank=0)
    s = DistributedSampler(range(3))
    with pytest.raises(ValueError, match="sampler and shuffle=True are mutually exclusive"):
        DataLoader(range(3), sampler=s, shuffle=True)

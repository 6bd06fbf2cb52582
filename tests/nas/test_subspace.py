"""Cell spaces over a subset of the operations, DARTS on them, and DARTS' warm-up."""
import numpy as np
import pytest

from convnet.nas.cell import OPS, CellSpace
from convnet.nas.darts import DARTS, Supernet


def test_cell_space_op_subsets():
    s = CellSpace(C=4, ops=("nor_conv_3x3", "none", "skip_connect"))
    assert s.ops == ("none", "skip_connect", "nor_conv_3x3")  # NB201's order, always
    assert s.size == 729 and all(v == list(s.ops) for v in s.choices.values())
    assert "ops=" in repr(s) and "ops=" not in repr(CellSpace())
    with pytest.raises(ValueError, match="is not allowed"):
        s.validate({**s.sample(0), "edge_2_1": "avg_pool_3x3"})
    for bad, msg in ((["conv7"], "distinct names"), (["none", "none"], "distinct names"),
                     ([], "distinct names"), (["none"], "empty space")):
        with pytest.raises(ValueError, match=msg):
            CellSpace(ops=bad)


def test_supernet_on_a_subset_mixes_and_derives_its_ops():
    space = CellSpace(C=4, ops=("none", "skip_connect", "nor_conv_3x3"))
    net = Supernet(space)
    assert tuple(net.alpha.shape) == (6, 3)
    a = net.alpha.numpy()
    a[:] = 0
    a[:, 0] = 5.0  # 'none' strongest everywhere: derive skips it
    a[0, 2] = 1.0
    arch = net.derive()
    assert arch["edge_1_0"] == "nor_conv_3x3" and set(arch.values()) <= {"skip_connect", "nor_conv_3x3"}
    x = np.random.default_rng(0).standard_normal((2, 1, 8, 8)).astype(np.float32)
    from convnet import tensor

    assert net(tensor(x)).shape == (2, 10)
    child = net.build(arch)  # weights inherited op by op from the subset's columns
    assert child(tensor(x)).shape == (2, 10)
    assert tuple(Supernet(CellSpace(C=4)).alpha.shape) == (6, len(OPS))


def test_warmup_epochs_train_weights_only():
    space = CellSpace(C=4, ops=("none", "skip_connect", "nor_conv_3x3"))
    rng = np.random.default_rng(0)
    batches = [(rng.standard_normal((8, 1, 8, 8)).astype(np.float32), rng.integers(0, 10, 8))
               for _ in range(2)]
    darts = DARTS(space, warmup_epochs=1, alpha_lr=0.1, seed=0)
    alpha0 = darts.supernet.alpha.numpy().copy()
    w0 = darts.supernet.weights()[0].numpy().copy()
    darts.search(batches, batches, epochs=1)
    assert np.array_equal(darts.supernet.alpha.numpy(), alpha0)
    assert not np.array_equal(darts.supernet.weights()[0].numpy(), w0)
    assert np.isnan(darts.history[0]["val_loss"])  # no architecture step, no validation loss
    darts.search(batches, batches, epochs=2)
    assert not np.array_equal(darts.supernet.alpha.numpy(), alpha0)
    with pytest.raises(ValueError, match="warmup_epochs"):
        DARTS(space, warmup_epochs=-1)


def test_odd_feature_maps_keep_the_reduction_branches_aligned():
    from convnet import tensor

    space = CellSpace(C=4)
    model = space.build({e: "nor_conv_3x3" for e in space.choices})
    x = np.zeros((1, 1, 14, 14), np.float32)  # 14 -> 7 -> 4: the odd 7 used to break the add
    assert model(tensor(x)).shape == (1, 10)


def test_perturbation_selection_measures_each_ops_removal():
    from convnet import tensor
    from convnet.autograd.grad_mode import no_grad

    space = CellSpace(C=4, ops=("none", "skip_connect", "nor_conv_3x3"))
    net = Supernet(space)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((16, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 10, 16)
    net.train(False)
    with no_grad():
        y = net(tensor(x)).numpy().argmax(1)  # labels the full mixture gets all right
    net.train(True)
    arch, drops = net.derive_by_perturbation([(x[:8], y[:8]), (x[8:], y[8:])])
    assert set(drops) == set(space.choices) and all(set(d) == {"skip_connect", "nor_conv_3x3"}
                                                  for d in drops.values())
    assert all(arch[e] == max(drops[e], key=drops[e].get) for e in arch)
    w = net.mixing_weights().numpy().copy()
    w[2, 2] = 0.0  # edge_2_1 without its conv
    net.train(False)
    with no_grad():
        acc = float((net(tensor(x), tensor(w)).numpy().argmax(1) == y).mean())
    assert abs(drops["edge_2_1"]["nor_conv_3x3"] - (1.0 - acc)) < 1e-9
    net.train(True)
    net.derive_by_perturbation([(x, y)])
    assert net.training  # the mode it had is restored
    with pytest.raises(ValueError, match="empty"):
        net.derive_by_perturbation([])

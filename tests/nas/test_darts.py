"""DARTS on the cell space: alpha gradients against torch, the second-order hypergradient
against finite differences and torch's exact unrolled gradient, MixedOp/Supernet/derive,
a short search, resume."""
import numpy as np
import pytest

import convnet
from convnet.functional import cross_entropy
from convnet.nas.cell import EDGES, OPS, Cell, CellSpace
from convnet.nas.darts import DARTS, MixedCell, MixedOp, Supernet

torch = pytest.importorskip("torch")
from .nb201_torch import TNet, copy_from  # noqa: E402

ARCH = {"edge_1_0": "nor_conv_3x3", "edge_2_0": "avg_pool_3x3", "edge_2_1": "nor_conv_1x1",
        "edge_3_0": "skip_connect", "edge_3_1": "none", "edge_3_2": "nor_conv_3x3"}


def _batches(seed, n=6, size=8, classes=10):
    rng = np.random.default_rng(seed)
    return ((rng.standard_normal((n, 1, size, size)), rng.integers(0, classes, n)),
            (rng.standard_normal((n, 1, size, size)), rng.integers(0, classes, n)))


def _tiny(order, xi=None, seed=0, **kw):
    d = DARTS(CellSpace(C=4, N=1), order=order, xi=xi, seed=seed, dtype=np.float64, **kw)
    d.supernet.alpha.data = convnet.tensor(np.random.default_rng(seed + 1).standard_normal((6, 5)))
    return d


def _torch_loss(tnet, batch, params=None):
    x, y = torch.tensor(batch[0]), torch.tensor(batch[1])
    logits = tnet(x) if params is None else torch.func.functional_call(tnet, params, (x,))
    return torch.nn.functional.cross_entropy(logits, y)


def test_first_order_alpha_gradient_matches_torch():
    d = _tiny(order=1)
    train, val = _batches(0)
    tnet = copy_from(TNet(4, 1, 10, 1), d.supernet)
    g, val_loss = d.hypergradient(train, val)
    loss = _torch_loss(tnet, val)
    loss.backward()
    assert val_loss == pytest.approx(loss.item(), rel=1e-12)
    np.testing.assert_allclose(g, tnet.alpha.grad.numpy(), rtol=1e-8, atol=1e-12)
    assert np.abs(g).max() > 1e-4  # a real gradient, not zeros on both sides


def _unrolled_val_loss(d, train, val, alpha):
    """L_val(w - xi dL_train(w, alpha)/dw, alpha) with convnet, w restored afterwards."""
    net = d.supernet
    net.alpha._data = alpha.copy()
    ws = net.weights()
    w0 = [p._data for p in ws]
    for p in net.parameters():
        p.grad = None
    x, y = (convnet.tensor(a) for a in train)
    cross_entropy(net(x), y).backward()
    for p, w in zip(ws, w0):
        p._data = w - d.xi * (p.grad._data if p.grad is not None else 0)
    with convnet.no_grad():
        xv, yv = (convnet.tensor(a) for a in val)
        out = float(cross_entropy(net(xv), yv).item())
    for p, w in zip(ws, w0):
        p._data, p.grad = w, None
    return out


def test_second_order_hypergradient_matches_finite_differences_and_torch():
    # a large virtual step makes the Hessian term count; DARTS' step 0.01/||g|| crosses ReLU kinks
    # in this tiny random net (where dL/dalpha jumps), so the difference step is 1e-4/||g||
    d = _tiny(order=2, xi=0.5, hvp_eps=1e-4)
    train, val = _batches(1)
    tnet = copy_from(TNet(4, 1, 10, 1), d.supernet)
    alpha = d.supernet.alpha.numpy().copy()
    g2, _ = d.hypergradient(train, val)
    np.testing.assert_array_equal(d.supernet.alpha.numpy(), alpha)  # parameters restored

    # oracle 1: central differences of the unrolled objective in alpha
    h, fd = 1e-5, np.zeros_like(alpha)
    for idx in np.ndindex(alpha.shape):
        a = alpha.copy()
        a[idx] += h
        fp = _unrolled_val_loss(d, train, val, a)
        a[idx] -= 2 * h
        fd[idx] = (fp - _unrolled_val_loss(d, train, val, a)) / (2 * h)
    d.supernet.alpha._data = alpha

    # oracle 2: torch's exact unrolled gradient (double backward through the virtual step)
    names = [n for n, _ in tnet.named_parameters() if n != "alpha"]
    params = dict(tnet.named_parameters())
    gw = torch.autograd.grad(_torch_loss(tnet, train), [params[n] for n in names], create_graph=True)
    unrolled = {n: params[n] - 0.5 * g for n, g in zip(names, gw)}
    unrolled["alpha"] = params["alpha"]
    exact = torch.autograd.grad(_torch_loss(tnet, val, unrolled), params["alpha"])[0].numpy()

    np.testing.assert_allclose(fd, exact, rtol=1e-5, atol=1e-8)  # the two oracles agree
    # the finite-difference Hessian-vector product is accurate to O(eps^2)
    np.testing.assert_allclose(g2, exact, rtol=1e-4, atol=1e-6)
    # ... and the test can tell orders apart: the first-order gradient is far from it
    d1 = _tiny(order=1, xi=0.5)
    g1, _ = d1.hypergradient(train, val)
    assert np.abs(g1 - exact).max() > 100 * np.abs(g2 - exact).max()


def test_mixed_op_one_hot_equals_the_chosen_op():
    convnet.manual_seed(0)
    mixed = MixedOp(3).double()
    x = convnet.tensor(np.random.default_rng(0).standard_normal((2, 3, 6, 6)))
    for o, name in enumerate(OPS):
        w = convnet.tensor(np.eye(len(OPS))[o])
        expected = np.zeros(x.shape) if name == "none" else mixed.ops[o](x).numpy()
        np.testing.assert_allclose(mixed(x, w).numpy(), expected, rtol=1e-12, atol=1e-12)
    w = np.random.default_rng(1).dirichlet(np.ones(5))
    mix = sum(w[o] * mixed.ops[o](x).numpy() for o in range(1, 5))
    np.testing.assert_allclose(mixed(x, convnet.tensor(w)).numpy(), mix, rtol=1e-12)
    with pytest.raises(ValueError, match=r"MixedOp: weights must have shape \(5,\)"):
        mixed(x, convnet.ones(4))


@pytest.mark.parametrize("N", [1, 2])
def test_built_network_equals_supernet_with_one_hot_alpha(N):
    convnet.manual_seed(3)
    sn = Supernet(CellSpace(C=4, N=N), num_classes=6, in_channels=2).double()
    net = sn.build(ARCH)
    assert not any(isinstance(m, (MixedOp, MixedCell)) for m in net.modules())
    assert sum(isinstance(m, Cell) for m in net.modules()) == 3 * N
    assert all(p.dtype == np.float64 for p in net.parameters())
    onehot = convnet.tensor(np.stack([np.eye(5)[OPS.index(ARCH[e])] for e in EDGES]))
    x = convnet.tensor(np.random.default_rng(0).standard_normal((3, 2, 8, 8)))
    np.testing.assert_allclose(net(x).numpy(), sn(x, onehot).numpy(), rtol=1e-10, atol=1e-12)
    # the weights are copies (inherited), not shared
    w = net.cells[0].edges["edge_1_0"].op[1].weight
    np.testing.assert_array_equal(w.numpy(), sn.cells[0].edges["edge_1_0"].ops[3].op[1].weight.numpy())
    w.data.numpy()[...] = 0
    assert np.abs(sn.cells[0].edges["edge_1_0"].ops[3].op[1].weight.numpy()).sum() > 0


def test_supernet_splits_weights_and_alpha():
    sn = Supernet(CellSpace(C=4))
    assert sn.alpha.shape == (6, 5) and sn.arch_parameters() == [sn.alpha]
    assert all(p is not sn.alpha for p in sn.weights())
    assert len(sn.weights()) + 1 == len(list(sn.parameters()))
    assert np.abs(sn.alpha.numpy()).max() < 1e-2  # DARTS' near-uniform start
    with pytest.raises(ValueError, match=r"Supernet: weights must have shape \(6, 5\)"):
        sn(convnet.randn(1, 1, 8, 8), convnet.ones(6, 4))


def test_derive_takes_the_argmax_excluding_none():
    d = DARTS(CellSpace(C=4))
    a = np.zeros((6, 5), np.float32)
    picks = [1, 2, 3, 4, 2, 3]
    for k, o in enumerate(picks):
        a[k, o] = 1.0
    a[0, 0] = 5.0  # none is strongest on edge_1_0 but never chosen
    d.supernet.alpha.data = convnet.tensor(a)
    assert d.derive() == {e: OPS[o] for e, o in zip(EDGES, picks)}
    assert CellSpace().validate(d.derive())


def test_bad_order_is_refused():
    with pytest.raises(ValueError, match="order must be 1 or 2"):
        DARTS(CellSpace(C=4), order=3)


@pytest.mark.parametrize("order", [1, 2])
def test_short_search_lowers_training_loss(order):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 4, 16)
    d = DARTS(CellSpace(C=4), num_classes=4, order=order, w_lr=0.05, alpha_lr=3e-3, seed=0)

    def loss():
        with convnet.no_grad():
            return float(cross_entropy(d.supernet(convnet.tensor(x)), convnet.tensor(y)).item())

    before, alpha0 = loss(), d.supernet.alpha.numpy().copy()
    events = []
    arch = d.search([(x, y)] * 4, [(x[::-1].copy(), y[::-1].copy())], epochs=3, callback=events.append)
    assert loss() < 0.8 * before
    assert not np.allclose(d.supernet.alpha.numpy(), alpha0)  # alpha moved
    assert CellSpace().validate(arch) == arch and d.epoch == 3 and d.steps == 12
    assert [e["event"] for e in events].count("epoch") == 3 and len(events) == 15
    assert [h["epoch"] for h in d.history] == [0, 1, 2]


def test_resume_gives_the_uninterrupted_result():
    train = [_batches(s, n=4)[0] for s in range(2)]
    val = [_batches(s, n=4)[1] for s in range(2)]
    loader = lambda data: [data[i] for i in convnet.random.generator().permutation(len(data))]  # noqa: E731

    class Shuffled:  # draws its order from convnet's generator, like a shuffling DataLoader
        def __init__(self, data):
            self.data = data

        def __iter__(self):
            return iter(loader(self.data))

    full = DARTS(CellSpace(C=4), order=2, seed=5)
    full.search(Shuffled(train), Shuffled(val), epochs=2)
    first = DARTS(CellSpace(C=4), order=2, seed=5)
    first.search(Shuffled(train), Shuffled(val), epochs=1)
    state = first.state_dict()
    convnet.manual_seed(123)  # disturb the global generator: the state restores it
    resumed = DARTS(CellSpace(C=4), order=2, seed=99)
    resumed.load_state_dict(state)
    resumed.search(Shuffled(train), Shuffled(val), epochs=2)
    np.testing.assert_array_equal(resumed.supernet.alpha.numpy(), full.supernet.alpha.numpy())
    for (k, a), b in zip(full.supernet.state_dict().items(), resumed.supernet.state_dict().values()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=k)
    assert resumed.history == full.history and resumed.steps == full.steps == 4
    with pytest.raises(ValueError, match="order"):
        DARTS(CellSpace(C=4), order=1).load_state_dict(state)

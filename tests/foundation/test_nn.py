"""nn.Module bookkeeping, containers, layers and initialisation."""
from collections import OrderedDict

import numpy as np
import pytest
import torch

import convnet as cn
import convnet.nn as nn
from tests.helpers.oracle import check


class Block(nn.Module):
    def __init__(self, in_features=4):
        super().__init__()
        self.fc = nn.Linear(in_features, 3)
        self.scale = nn.Parameter(np.ones(3, dtype=np.float32))
        self.register_buffer("running", cn.zeros(3))
        self.register_buffer("scratch", cn.zeros(2), persistent=False)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.fc(x)) * self.scale


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([Block(4), Block(3)])
        self.head = nn.Sequential(nn.Linear(3, 2), nn.Tanh())
        self.shared = self.head  # the same module twice is counted once

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return self.head(x)


def test_registration_and_names():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["blocks.0.scale", "blocks.0.fc.weight", "blocks.0.fc.bias", "blocks.1.scale",
                     "blocks.1.fc.weight", "blocks.1.fc.bias", "head.0.weight", "head.0.bias"]
    assert len(list(net.parameters())) == 8
    assert [n for n, _ in net.named_buffers()] == ["blocks.0.running", "blocks.0.scratch",
                                                  "blocks.1.running", "blocks.1.scratch"]
    sd = net.state_dict()
    assert "blocks.0.running" in sd and "blocks.0.scratch" not in sd
    assert [n for n, _ in net.named_children()] == ["blocks", "head"]
    mods = [n for n, _ in net.named_modules()]
    assert mods[:3] == ["", "blocks", "blocks.0"] and "shared" not in mods
    assert isinstance(net.get_submodule("blocks.1.fc"), nn.Linear)


def test_train_eval_propagates():
    net = Net()
    net.eval()
    assert all(not m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())


def test_state_dict_round_trip_and_strictness():
    a, b = Net(), Net()
    x = cn.randn(2, 4)
    assert not np.allclose(a(x).numpy(), b(x).numpy())
    res = b.load_state_dict(a.state_dict())
    assert res.missing_keys == [] and res.unexpected_keys == []
    assert np.allclose(a(x).numpy(), b(x).numpy())
    numpy_state = {k: v.numpy().copy() for k, v in a.state_dict().items()}
    b.load_state_dict(numpy_state)
    sd = a.state_dict()
    del sd["head.0.bias"]
    sd["extra"] = cn.zeros(1)
    with pytest.raises(RuntimeError, match=r'Missing key\(s\) in state_dict: "head.0.bias". \n\t'
                       r'Unexpected key\(s\) in state_dict: "extra". '):
        b.load_state_dict(sd)
    res = b.load_state_dict(sd, strict=False)
    assert res.missing_keys == ["head.0.bias"] and res.unexpected_keys == ["extra"]
    bad = a.state_dict()
    bad["head.0.weight"] = cn.zeros(5, 5)
    with pytest.raises(RuntimeError, match=r"size mismatch for head.0.weight: copying a param with "
                       r"shape \(5, 5\) from checkpoint, the shape in current model is \(2, 3\)"):
        b.load_state_dict(bad)


def test_state_dict_matches_torch_layout():
    tnet = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2, bias=False))
    cnet = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2, bias=False))
    assert list(cnet.state_dict()) == list(tnet.state_dict())
    cnet.load_state_dict({k: v.numpy() for k, v in tnet.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    np.testing.assert_allclose(cnet(cn.tensor(x)).numpy(), tnet(torch.tensor(x)).detach().numpy(), rtol=1e-5)


def test_zero_grad_apply_and_double():
    net = Net()
    net(cn.randn(2, 4)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all(np.all(p.grad.numpy() == 0) for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    seen = []
    net.apply(lambda m: seen.append(type(m).__name__))
    assert seen[-1] == "Net" and seen.count("Linear") == 3 and seen.count("Block") == 2
    net.double()
    assert all(p.dtype == cn.float64 for p in net.parameters())
    assert net(cn.randn(2, 4).double()).dtype == cn.float64


def test_forward_hooks():
    lin = nn.Linear(3, 2)
    seen = {}
    h = lin.register_forward_hook(lambda m, i, o: seen.update(shape=o.shape))
    pre = lin.register_forward_pre_hook(lambda m, i: (i[0] * 0,))
    out = lin(cn.ones(4, 3))
    assert seen["shape"] == (4, 2)
    assert np.allclose(out.numpy(), lin.bias.numpy())
    h.remove()
    pre.remove()
    seen.clear()
    lin(cn.ones(1, 3))
    assert seen == {}


def test_containers():
    seq = nn.Sequential(OrderedDict([("fc", nn.Linear(2, 2)), ("act", nn.ReLU())]))
    assert list(seq.state_dict()) == ["fc.weight", "fc.bias"]
    assert isinstance(seq[0], nn.Linear) and len(seq) == 2 and isinstance(seq[1:], nn.Sequential)
    ml = nn.ModuleList([nn.Linear(1, 1)])
    ml.append(nn.Linear(1, 1))
    assert len(ml) == 2 and len(list(ml.parameters())) == 4
    md = nn.ModuleDict({"a": nn.Linear(1, 2)})
    assert "a" in md and list(md.state_dict()) == ["a.weight", "a.bias"]
    assert nn.Identity(5)(cn.ones(2)).shape == (2,)
    x = cn.ones(2, 3, 4, 5)
    assert nn.Flatten()(x).shape == (2, 60)
    assert nn.Unflatten(1, (3, 20))(nn.Flatten()(x)).shape == (2, 3, 20)


def test_repr_and_assignment_errors():
    net = Net()
    text = repr(net)
    assert "(head): Sequential(" in text and "Linear(in_features=4, out_features=3, bias=True)" in text
    with pytest.raises(TypeError, match="parameter 'weight'"):
        net.head[0].weight = cn.zeros(2, 3)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        net.nothing


@pytest.mark.parametrize("layer,tlayer", [
    (lambda: nn.LeakyReLU(0.3), lambda: torch.nn.LeakyReLU(0.3)),
    (lambda: nn.ELU(), lambda: torch.nn.ELU()),
    (lambda: nn.GELU(), lambda: torch.nn.GELU()),
    (lambda: nn.Sigmoid(), lambda: torch.nn.Sigmoid()),
    (lambda: nn.Tanh(), lambda: torch.nn.Tanh()),
    (lambda: nn.Softmax(dim=1), lambda: torch.nn.Softmax(dim=1)),
    (lambda: nn.LogSoftmax(dim=1), lambda: torch.nn.LogSoftmax(dim=1)),
    (lambda: nn.ReLU6(), lambda: torch.nn.ReLU6()),
])
def test_activation_modules(layer, tlayer):
    check(layer(), tlayer(), [np.random.default_rng(2).standard_normal((3, 5)) * 3])


def test_loss_modules():
    x = np.random.default_rng(3).standard_normal((4, 3))
    t = np.array([0, 2, 1, 1])
    check(lambda a: nn.CrossEntropyLoss(label_smoothing=0.1)(a, cn.tensor(t)),
          lambda a: torch.nn.CrossEntropyLoss(label_smoothing=0.1)(a, torch.tensor(t)), [x])
    y = np.random.default_rng(4).standard_normal((4, 3))
    check(lambda a, b: nn.MSELoss(reduction="sum")(a, b), lambda a, b: torch.nn.MSELoss(reduction="sum")(a, b), [x, y])


def test_linear_default_init_distribution_matches_torch():
    cn.manual_seed(0)
    w = np.concatenate([nn.Linear(400, 100).weight.numpy().ravel() for _ in range(5)])
    bound = 1 / np.sqrt(400)  # kaiming_uniform(a=sqrt(5)) gives U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert w.min() >= -bound and w.max() <= bound
    assert abs(w.std() - bound / np.sqrt(3)) < 0.01 * bound
    tw = torch.nn.Linear(400, 100).weight.detach().numpy()
    assert abs(tw.std() - w.std()) < 0.02 * bound
    assert nn.Linear(3, 2).weight.dtype == cn.float32


@pytest.mark.parametrize("fn,expected_std", [
    (lambda t: nn.init.kaiming_normal_(t, nonlinearity="relu"), np.sqrt(2 / 300)),
    (lambda t: nn.init.kaiming_uniform_(t, nonlinearity="relu"), np.sqrt(2 / 300)),
    (lambda t: nn.init.kaiming_normal_(t, mode="fan_out", nonlinearity="relu"), np.sqrt(2 / 200)),
    (lambda t: nn.init.xavier_uniform_(t), np.sqrt(2 / 500)),
    (lambda t: nn.init.xavier_normal_(t, gain=2.0), 2 * np.sqrt(2 / 500)),
    (lambda t: nn.init.normal_(t, 0.0, 0.3), 0.3),
    (lambda t: nn.init.uniform_(t, -1, 1), 1 / np.sqrt(3)),
])
def test_init_functions(fn, expected_std):
    cn.manual_seed(1)
    t = cn.empty(200, 300)
    fn(t)
    assert abs(t.numpy().std() - expected_std) < 0.03 * expected_std
    assert t.dtype == cn.float32


def test_init_conv_shaped_fans_and_constants():
    t = cn.empty(16, 8, 3, 3)
    assert nn.init._calculate_fan_in_and_fan_out(t) == (72, 144)
    nn.init.constant_(t, 0.5)
    assert np.all(t.numpy() == 0.5)
    nn.init.zeros_(t)
    assert np.all(t.numpy() == 0)
    with pytest.raises(ValueError, match="at least 2 dims"):
        nn.init.xavier_uniform_(cn.empty(5))
    assert np.isclose(nn.init.calculate_gain("leaky_relu", 0.2), np.sqrt(2 / 1.04))


def test_dropout_module_respects_mode():
    d = nn.Dropout(0.5)
    x = cn.ones(100, 100)
    assert (d(x).numpy() == 0).any()
    d.eval()
    assert d(x) is x
    assert "p=0.5" in repr(d)


def test_functional_is_reachable_both_ways():
    import convnet.functional as F1
    import convnet.nn.functional as F2

    assert F1 is F2 and F2.cross_entropy is F1.cross_entropy


def test_subpackages_load_lazily_from_the_top_level():
    import convnet

    assert convnet.models.create("lenet5").__class__.__name__ == "LeNet5"
    assert convnet.train.Trainer is convnet.training.Trainer
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        convnet.nope

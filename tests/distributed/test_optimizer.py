"""DistributedOptimizer in one process: a transparent Optimizer, so schedulers work through
either the wrapper or the wrapped optimizer (averaging across ranks: test_mpi)."""
import numpy as np
import pytest

import convnet as cn
import convnet.distributed as dist
import convnet.functional as F
from convnet import nn, optim
from convnet.optim import lr_scheduler as sch


def _model(seed=0):
    cn.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


def _train(opt_factory, steps=5):
    model = _model()
    opt = opt_factory(model.parameters())
    rng = np.random.default_rng(0)
    for _ in range(steps):
        x = cn.tensor(rng.standard_normal((6, 4)).astype(np.float32))
        y = cn.tensor(rng.integers(0, 3, 6))
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return [p.numpy() for p in model.parameters()], opt


def test_steps_like_the_wrapped_optimizer_in_a_world_of_one():
    plain, _ = _train(lambda ps: optim.Adam(ps, lr=0.01))
    wrapped, opt = _train(lambda ps: dist.DistributedOptimizer(optim.Adam(ps, lr=0.01)))
    for a, b in zip(plain, wrapped):
        np.testing.assert_array_equal(a, b)
    assert isinstance(opt, optim.Optimizer)
    assert opt.param_groups is opt.optimizer.param_groups
    assert opt.state is opt.optimizer.state and len(opt.state) == 4
    assert opt.defaults is opt.optimizer.defaults
    assert opt.bucket_size_mb == 25
    assert repr(opt).startswith("DistributedOptimizer(Adam (")


@pytest.mark.parametrize("target", ["wrapper", "inner"])
def test_lr_schedulers_drive_the_same_learning_rate(target):
    model = _model()
    inner = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    opt = dist.DistributedOptimizer(inner)
    step_lr = sch.StepLR(opt if target == "wrapper" else inner, step_size=2, gamma=0.5)
    lrs = []
    for _ in range(5):
        opt.step()
        step_lr.step()
        lrs.append((opt.param_groups[0]["lr"], inner.param_groups[0]["lr"]))
    assert lrs == [(0.1, 0.1), (0.05, 0.05), (0.05, 0.05), (0.025, 0.025), (0.025, 0.025)]


def test_schedulers_that_read_defaults_or_metrics_accept_the_wrapper():
    opt = dist.DistributedOptimizer(optim.SGD(_model().parameters(), lr=0.1, momentum=0.9))
    one_cycle = sch.OneCycleLR(opt, max_lr=1.0, total_steps=10)  # reads opt.defaults
    first = (opt.param_groups[0]["lr"], opt.optimizer.param_groups[0]["momentum"])
    one_cycle.step()
    assert opt.optimizer.param_groups[0]["lr"] > first[0]  # warming up
    assert opt.optimizer.param_groups[0]["momentum"] < first[1]  # momentum cycles down
    opt2 = dist.DistributedOptimizer(optim.SGD(_model().parameters(), lr=0.1))
    plateau = sch.ReduceLROnPlateau(opt2, factor=0.5, patience=0)
    plateau.step(1.0)
    plateau.step(2.0)
    assert opt2.optimizer.param_groups[0]["lr"] == 0.05
    chained = sch.ChainedScheduler([sch.ExponentialLR(opt2, 0.5), sch.ConstantLR(opt2, 0.5, 1)])
    assert chained.optimizer is opt2


def test_state_dict_param_groups_and_zero_grad_pass_through():
    model = _model()
    opt = dist.DistributedOptimizer(optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    model(cn.randn(2, 4)).sum().backward()
    opt.step()
    state = opt.state_dict()
    assert state["state"][0]["momentum_buffer"].shape == (8, 4)
    fresh = optim.SGD(_model().parameters(), lr=0.1, momentum=0.9)
    fresh.load_state_dict(state)  # an unwrapped optimizer takes the wrapper's state
    np.testing.assert_array_equal(fresh.state_dict()["state"][0]["momentum_buffer"],
                                  state["state"][0]["momentum_buffer"])
    opt.load_state_dict(fresh.state_dict())
    assert opt.state is opt.optimizer.state  # the wrapped optimizer's new dict, seen through
    extra = nn.Parameter(cn.zeros(2)._data)
    opt.add_param_group({"params": [extra], "lr": 0.5})
    assert opt.optimizer.param_groups[1]["params"][0] is extra
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    opt.optimizer.custom_setting = 3
    assert opt.custom_setting == 3  # other attributes are looked up in the wrapped optimizer


def test_closure_loss_is_returned():
    model = _model()
    opt = dist.DistributedOptimizer(optim.SGD(model.parameters(), lr=0.1))
    x = cn.randn(3, 4)

    def closure():
        opt.zero_grad()
        loss = model(x).sum()
        loss.backward()
        return loss

    before = model[0].weight.numpy().copy()
    loss = opt.step(closure)
    assert loss.item() == pytest.approx(float(loss.numpy()))
    assert not np.array_equal(before, model[0].weight.numpy())


def test_errors():
    with pytest.raises(TypeError, match="DistributedOptimizer: expected a "
                                        "convnet.optim.Optimizer, got list"):
        dist.DistributedOptimizer([])
    opt = dist.DistributedOptimizer(optim.SGD(_model().parameters(), lr=0.1))
    with pytest.raises(TypeError, match="already distributed"):
        dist.DistributedOptimizer(opt)
    with pytest.raises(ValueError, match="bucket_size_mb must be >= 0, got -2"):
        dist.DistributedOptimizer(optim.SGD(_model().parameters(), lr=0.1), bucket_size_mb=-2)

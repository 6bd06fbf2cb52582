"""Optimizer and scheduler trajectories against torch over many steps (float64)."""
import copy

import numpy as np
import pytest
import torch

import convnet as cn
import convnet.nn as nn
import convnet.optim as optim
from convnet.optim import lr_scheduler as sched


def _models(seed=0):
    """The same tiny MLP in both frameworks (float64, identical weights)."""
    torch.manual_seed(seed)
    t = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3)).double()
    c = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).double()
    c.load_state_dict({k: v.numpy() for k, v in t.state_dict().items()})
    return c, t


def _data(step, seed=0):
    rng = np.random.default_rng(seed + step)
    return rng.standard_normal((8, 5)), rng.integers(0, 3, 8)


def _run(c_opt_fn, t_opt_fn, steps=20, c_sched_fn=None, t_sched_fn=None, groups=False):
    c, t = _models()
    if groups:
        c_params = [{"params": c[0].parameters()}, {"params": c[2].parameters(), "lr": 0.03}]
        t_params = [{"params": t[0].parameters()}, {"params": t[2].parameters(), "lr": 0.03}]
    else:
        c_params, t_params = c.parameters(), t.parameters()
    co, to = c_opt_fn(c_params), t_opt_fn(t_params)
    cs = c_sched_fn(co) if c_sched_fn else None
    ts = t_sched_fn(to) if t_sched_fn else None
    for step in range(steps):
        x, y = _data(step)
        co.zero_grad()
        to.zero_grad()
        cn.functional.cross_entropy(c(cn.tensor(x)), cn.tensor(y)).backward()
        torch.nn.functional.cross_entropy(t(torch.tensor(x)), torch.tensor(y)).backward()
        co.step()
        to.step()
        if cs:
            cs.step()
            ts.step()
            assert np.allclose(cs.get_last_lr(), ts.get_last_lr(), rtol=1e-12)
    for (name, cp), tp in zip(c.named_parameters(), t.parameters()):
        np.testing.assert_allclose(cp.numpy(), tp.detach().numpy(), rtol=1e-7, atol=1e-12, err_msg=name)
    return co, to


OPTIMIZERS = [
    ("sgd", lambda p: optim.SGD(p, lr=0.1), lambda p: torch.optim.SGD(p, lr=0.1)),
    ("sgd_momentum", lambda p: optim.SGD(p, 0.05, momentum=0.9), lambda p: torch.optim.SGD(p, 0.05, momentum=0.9)),
    ("sgd_dampening_wd", lambda p: optim.SGD(p, 0.05, momentum=0.8, dampening=0.3, weight_decay=0.01),
     lambda p: torch.optim.SGD(p, 0.05, momentum=0.8, dampening=0.3, weight_decay=0.01)),
    ("sgd_nesterov", lambda p: optim.SGD(p, 0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
     lambda p: torch.optim.SGD(p, 0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)),
    ("sgd_maximize", lambda p: optim.SGD(p, 0.01, maximize=True), lambda p: torch.optim.SGD(p, 0.01, maximize=True)),
    ("adam", lambda p: optim.Adam(p, lr=0.01), lambda p: torch.optim.Adam(p, lr=0.01)),
    ("adam_wd_amsgrad", lambda p: optim.Adam(p, 0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, amsgrad=True),
     lambda p: torch.optim.Adam(p, 0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, amsgrad=True)),
    ("adamw", lambda p: optim.AdamW(p, lr=0.01), lambda p: torch.optim.AdamW(p, lr=0.01)),
    ("adamw_amsgrad", lambda p: optim.AdamW(p, 0.02, weight_decay=0.3, amsgrad=True),
     lambda p: torch.optim.AdamW(p, 0.02, weight_decay=0.3, amsgrad=True)),
    ("rmsprop", lambda p: optim.RMSprop(p, lr=0.01), lambda p: torch.optim.RMSprop(p, lr=0.01)),
    ("rmsprop_full", lambda p: optim.RMSprop(p, 0.01, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.01),
     lambda p: torch.optim.RMSprop(p, 0.01, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.01)),
]


@pytest.mark.parametrize("name,copt,topt", OPTIMIZERS, ids=[o[0] for o in OPTIMIZERS])
def test_optimizer_trajectory(name, copt, topt):
    _run(copt, topt, steps=20)


@pytest.mark.parametrize("name,copt,topt", OPTIMIZERS[:2] + OPTIMIZERS[5:6], ids=["sgd", "momentum", "adam"])
def test_parameter_groups(name, copt, topt):
    co, to = _run(copt, topt, steps=15, groups=True)
    assert co.param_groups[1]["lr"] == 0.03


SCHEDULERS = [
    ("step", lambda o: sched.StepLR(o, 3, 0.5), lambda o: torch.optim.lr_scheduler.StepLR(o, 3, 0.5)),
    ("multistep", lambda o: sched.MultiStepLR(o, [2, 5, 9], 0.3),
     lambda o: torch.optim.lr_scheduler.MultiStepLR(o, [2, 5, 9], 0.3)),
    ("exp", lambda o: sched.ExponentialLR(o, 0.9), lambda o: torch.optim.lr_scheduler.ExponentialLR(o, 0.9)),
    ("cosine", lambda o: sched.CosineAnnealingLR(o, 7, 1e-3),
     lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 7, 1e-3)),
    ("linear", lambda o: sched.LinearLR(o, 0.2, 1.0, 6), lambda o: torch.optim.lr_scheduler.LinearLR(o, 0.2, 1.0, 6)),
    ("onecycle", lambda o: sched.OneCycleLR(o, 0.2, total_steps=25),
     lambda o: torch.optim.lr_scheduler.OneCycleLR(o, 0.2, total_steps=25)),
    ("onecycle_3phase_linear", lambda o: sched.OneCycleLR(o, 0.2, epochs=5, steps_per_epoch=5, three_phase=True,
                                                          anneal_strategy="linear", pct_start=0.25),
     lambda o: torch.optim.lr_scheduler.OneCycleLR(o, 0.2, epochs=5, steps_per_epoch=5, three_phase=True,
                                                   anneal_strategy="linear", pct_start=0.25)),
]


@pytest.mark.parametrize("name,cs,ts", SCHEDULERS, ids=[s[0] for s in SCHEDULERS])
def test_scheduler_with_sgd_momentum(name, cs, ts):
    _run(lambda p: optim.SGD(p, 0.1, momentum=0.9), lambda p: torch.optim.SGD(p, 0.1, momentum=0.9),
         steps=20, c_sched_fn=cs, t_sched_fn=ts)


def test_onecycle_cycles_adam_beta1():
    co, to = _run(lambda p: optim.Adam(p, 0.01), lambda p: torch.optim.Adam(p, 0.01), steps=18,
                  c_sched_fn=lambda o: sched.OneCycleLR(o, 0.05, total_steps=20),
                  t_sched_fn=lambda o: torch.optim.lr_scheduler.OneCycleLR(o, 0.05, total_steps=20))
    assert np.isclose(co.param_groups[0]["betas"][0], to.param_groups[0]["betas"][0])


def test_optimizer_state_dict_resume_matches_uninterrupted():
    c1, _ = _models()
    o1 = optim.Adam(c1.parameters(), 0.01)
    c2 = copy.deepcopy(c1)
    for step in range(10):
        x, y = _data(step)
        o1.zero_grad()
        cn.functional.cross_entropy(c1(cn.tensor(x)), cn.tensor(y)).backward()
        o1.step()
        if step == 4:
            saved_model = {k: v.numpy().copy() for k, v in c1.state_dict().items()}
            saved_opt = o1.state_dict()
    c2.load_state_dict(saved_model)
    o2 = optim.Adam(c2.parameters(), 0.01)
    o2.load_state_dict(saved_opt)
    for step in range(5, 10):
        x, y = _data(step)
        o2.zero_grad()
        cn.functional.cross_entropy(c2(cn.tensor(x)), cn.tensor(y)).backward()
        o2.step()
    for a, b in zip(c1.parameters(), c2.parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_zero_grad_and_errors():
    lin = nn.Linear(2, 1)
    o = optim.SGD(lin.parameters(), 0.1)
    lin(cn.ones(1, 2)).sum().backward()
    o.zero_grad()
    assert all(p.grad is None for p in lin.parameters())
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], 0.1)
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD(lin.parameters(), 0.1, nesterov=True)
    with pytest.raises(ValueError, match="betas"):
        optim.Adam(lin.parameters(), betas=(1.0, 0.9))


def test_float32_updates_keep_dtype():
    lin = nn.Linear(3, 2)
    o = optim.Adam(lin.parameters(), 0.1)
    lin(cn.ones(4, 3)).sum().backward()
    o.step()
    assert all(p.dtype == cn.float32 for p in lin.parameters())

"""Training staples of torch against torch 2.13: gradient clipping, parameter vectors,
Adadelta/Adagrad, optimizer parameter handling, the extra lr schedulers, grad-mode
decorators, PixelShuffle, nn.init and the DataParallel stand-in."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import convnet as cn
from convnet import nn
from convnet import optim

TS = torch.optim.lr_scheduler
CS = optim.lr_scheduler


def _pair_params(rng, shapes, dtype=np.float64):
    arrays = [rng.standard_normal(s).astype(dtype) for s in shapes]
    cps = [nn.Parameter(cn.tensor(a.copy())) for a in arrays]
    tps = [torch.nn.Parameter(torch.tensor(a.copy())) for a in arrays]
    return cps, tps


def _set_grads(rng, cps, tps, scale=1.0):
    for c, t in zip(cps, tps):
        g = rng.standard_normal(c.shape) * scale
        c.grad = cn.tensor(g.astype(c.dtype))
        t.grad = torch.tensor(g.astype(c.dtype))


# ------------------------------------------------------------------ gradient clipping
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.5, math.inf, "inf", 0.0])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm_matches_torch(rng, norm_type, max_norm):
    cps, tps = _pair_params(rng, [(3, 4), (5,), (2, 2, 2)])
    _set_grads(rng, cps, tps)
    cps[1].grad = None  # a parameter without grad is skipped
    tps[1].grad = None
    c = nn.utils.clip_grad_norm_(cps, max_norm, norm_type=norm_type)
    t = torch.nn.utils.clip_grad_norm_(tps, max_norm, norm_type=norm_type)
    assert isinstance(c, cn.Tensor) and c.shape == ()
    np.testing.assert_allclose(c.item(), t.item(), rtol=1e-12)
    for cp, tp in zip(cps, tps):
        if tp.grad is None:
            assert cp.grad is None
        else:
            np.testing.assert_allclose(cp.grad.numpy(), tp.grad.numpy(), rtol=1e-12)


def test_clip_grad_norm_single_tensor_float32_and_errors(rng):
    cps, tps = _pair_params(rng, [(6,)], np.float32)
    _set_grads(rng, cps, tps, scale=10)
    held = cps[0].grad
    c = nn.utils.clip_grad_norm_(cps[0], 1.0)
    t = torch.nn.utils.clip_grad_norm_(tps[0], 1.0)
    assert c.dtype == np.float32
    assert cps[0].grad is held  # same grad Tensor, new values
    np.testing.assert_allclose(cps[0].grad.numpy(), tps[0].grad.numpy(), rtol=1e-6)
    np.testing.assert_allclose(c.item(), t.item(), rtol=1e-6)
    # no gradients at all: a zero norm
    p = nn.Parameter(cn.zeros(3))
    assert nn.utils.clip_grad_norm_([p], 1.0).item() == 0.0
    p.grad = cn.tensor(np.array([1.0, np.inf, 0.0], np.float32))
    with pytest.raises(RuntimeError, match="non-finite"):
        nn.utils.clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
    tp = torch.nn.Parameter(torch.zeros(3))
    tp.grad = torch.tensor([1.0, np.inf, 0.0])
    with pytest.raises(RuntimeError, match="non-finite"):
        torch.nn.utils.clip_grad_norm_([tp], 1.0, error_if_nonfinite=True)


def test_clip_grad_value(rng):
    cps, tps = _pair_params(rng, [(4, 3), (7,)])
    _set_grads(rng, cps, tps, scale=3)
    assert nn.utils.clip_grad_value_(cps, 0.7) is None
    torch.nn.utils.clip_grad_value_(tps, 0.7)
    for cp, tp in zip(cps, tps):
        np.testing.assert_array_equal(cp.grad.numpy(), tp.grad.numpy())


def test_parameters_to_vector_roundtrip_and_gradient(rng):
    cps, tps = _pair_params(rng, [(2, 3), (4,)])
    cv = nn.utils.parameters_to_vector(cps)
    tv = torch.nn.utils.parameters_to_vector(tps)
    np.testing.assert_array_equal(cv.numpy(), tv.detach().numpy())
    w = rng.standard_normal(10)
    (cv * cn.tensor(w)).sum().backward()
    (tv * torch.tensor(w)).sum().backward()
    for cp, tp in zip(cps, tps):
        np.testing.assert_array_equal(cp.grad.numpy(), tp.grad.numpy())
    new = rng.standard_normal(10)
    nn.utils.vector_to_parameters(cn.tensor(new), cps)
    torch.nn.utils.vector_to_parameters(torch.tensor(new), tps)
    for cp, tp in zip(cps, tps):
        np.testing.assert_array_equal(cp.numpy(), tp.detach().numpy())
    with pytest.raises(TypeError, match="expected"):
        nn.utils.vector_to_parameters(new, cps)
    with pytest.raises(RuntimeError):
        nn.utils.vector_to_parameters(cn.zeros(3, dtype=cn.float64), cps)


# ------------------------------------------------------------------ optimizers
OPTS = [
    ("adadelta", lambda p: optim.Adadelta(p), lambda p: torch.optim.Adadelta(p)),
    ("adadelta-opts", lambda p: optim.Adadelta(p, lr=0.5, rho=0.8, eps=1e-4, weight_decay=0.1),
     lambda p: torch.optim.Adadelta(p, lr=0.5, rho=0.8, eps=1e-4, weight_decay=0.1)),
    ("adadelta-max", lambda p: optim.Adadelta(p, maximize=True),
     lambda p: torch.optim.Adadelta(p, maximize=True)),
    ("adagrad", lambda p: optim.Adagrad(p), lambda p: torch.optim.Adagrad(p)),
    ("adagrad-opts", lambda p: optim.Adagrad(p, lr=0.1, lr_decay=0.05, weight_decay=0.2,
                                             initial_accumulator_value=0.3, eps=1e-6),
     lambda p: torch.optim.Adagrad(p, lr=0.1, lr_decay=0.05, weight_decay=0.2,
                                   initial_accumulator_value=0.3, eps=1e-6)),
    ("adagrad-max", lambda p: optim.Adagrad(p, maximize=True),
     lambda p: torch.optim.Adagrad(p, maximize=True)),
]


@pytest.mark.parametrize("name,copt,topt", OPTS, ids=[o[0] for o in OPTS])
def test_new_optimizers_follow_torch(rng, name, copt, topt):
    cps, tps = _pair_params(rng, [(3, 4), (5,)])
    co, to = copt(cps), topt(tps)
    for _ in range(6):
        _set_grads(rng, cps, tps)
        co.step()
        to.step()
    for cp, tp in zip(cps, tps):
        np.testing.assert_allclose(cp.numpy(), tp.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_new_optimizers_state_dict_resume(rng):
    for Cls in (optim.Adadelta, optim.Adagrad):
        cps, _ = _pair_params(rng, [(4,)])
        a = Cls(cps, lr=0.3)
        cps[0].grad = cn.tensor(rng.standard_normal(4))
        a.step()
        sd = a.state_dict()
        b = Cls([nn.Parameter(cn.tensor(cps[0].numpy().copy()))], lr=0.3)
        b.load_state_dict(sd)
        assert set(b.state_dict()["state"][0]) == set(sd["state"][0])
    with pytest.raises(ValueError, match="rho"):
        optim.Adadelta(cps, rho=1.5)
    with pytest.raises(ValueError, match="lr_decay"):
        optim.Adagrad(cps, lr_decay=-1)
    # torch creates Adagrad's accumulators at construction
    assert optim.Adagrad(cps, initial_accumulator_value=0.5).state_dict()["state"][0]["sum"][0] == 0.5


def test_optimizer_skips_frozen_parameters_and_groups(rng):
    frozen = nn.Parameter(cn.tensor(np.ones(3)), requires_grad=False)
    live = nn.Parameter(cn.tensor(np.ones(3)))
    opt = optim.SGD([frozen, live], lr=0.1)  # torch accepts parameters that need no grad
    (live * 2).sum().backward()
    opt.step()
    np.testing.assert_array_equal(frozen.numpy(), np.ones(3))
    np.testing.assert_allclose(live.numpy(), np.full(3, 0.8))
    # groups as dicts, add_param_group, option fallbacks
    a, b, c = (nn.Parameter(cn.tensor(np.ones(2))) for _ in range(3))
    opt = optim.Adagrad([{"params": [a]}, {"params": b, "lr": 0.5}], lr=0.1)
    opt.add_param_group({"params": [c], "lr_decay": 0.1})
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5, 0.1]
    assert opt.param_groups[2]["lr_decay"] == 0.1 and opt.param_groups[0]["lr_decay"] == 0
    for p in (a, b, c):
        p.grad = cn.tensor(np.ones(2))
    opt.step()
    assert c.numpy()[0] < 1
    # zero_grad: None by default (torch 2.x); set_to_none=False keeps a zeroed grad Tensor
    held = a.grad
    opt.zero_grad(set_to_none=False)
    assert a.grad is held and not a.grad.numpy().any()
    opt.zero_grad()
    assert a.grad is None and b.grad is None
    # named parameters are accepted, as torch 2.6+
    model = nn.Linear(2, 3)
    opt = optim.SGD(model.named_parameters(), lr=0.1)
    assert opt.param_groups[0]["param_names"] == ["weight", "bias"]


def test_optimizer_parameter_errors():
    p = nn.Parameter(cn.ones(2))
    with pytest.raises(TypeError, match="iterable of Tensors or dicts"):
        optim.SGD(p, lr=0.1)
    with pytest.raises(TypeError, match="ordered collections"):
        optim.SGD([{"params": {p}}], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1)
    with pytest.raises(ValueError, match="non-leaf"):
        optim.SGD([p * 2], lr=0.1)
    with pytest.raises(TypeError, match="only optimize Tensors"):
        optim.SGD([np.ones(2)], lr=0.1)


# ------------------------------------------------------------------ lr schedulers
def _opt_pair(lrs=(0.1,), Copt=optim.SGD, Topt=torch.optim.SGD, **kw):
    cgroups = [{"params": [nn.Parameter(cn.ones(1))], "lr": lr} for lr in lrs]
    tgroups = [{"params": [torch.nn.Parameter(torch.ones(1))], "lr": lr} for lr in lrs]
    return Copt(cgroups, **kw), Topt(tgroups, **kw)


class _Warm:  # a callable object: its __dict__ goes into state_dict, as torch
    def __init__(self):
        self.k = 4

    def __call__(self, e):
        return min(1.0, (e + 1) / self.k)


SCHEDS = [
    ("lambda", lambda o: CS.LambdaLR(o, lambda e: 0.9**e),
     lambda o: TS.LambdaLR(o, lambda e: 0.9**e)),
    ("lambda-per-group", lambda o: CS.LambdaLR(o, [lambda e: 1 / (e + 1), _Warm()]),
     lambda o: TS.LambdaLR(o, [lambda e: 1 / (e + 1), _Warm()])),
    ("multiplicative", lambda o: CS.MultiplicativeLR(o, lambda e: 0.95 if e % 3 else 0.5),
     lambda o: TS.MultiplicativeLR(o, lambda e: 0.95 if e % 3 else 0.5)),
    ("constant", lambda o: CS.ConstantLR(o, 0.25, 4), lambda o: TS.ConstantLR(o, 0.25, 4)),
    ("poly", lambda o: CS.PolynomialLR(o, 12, 2.0), lambda o: TS.PolynomialLR(o, 12, 2.0)),
    ("cosine-past-tmax", lambda o: CS.CosineAnnealingLR(o, 8, 1e-3),
     lambda o: TS.CosineAnnealingLR(o, 8, 1e-3)),
    ("sequential-warmup-cosine",
     lambda o: CS.SequentialLR(o, [CS.LinearLR(o, 0.1, 1.0, 5), CS.CosineAnnealingLR(o, 20)], [5]),
     lambda o: TS.SequentialLR(o, [TS.LinearLR(o, 0.1, 1.0, 5), TS.CosineAnnealingLR(o, 20)], [5])),
    ("sequential-three",
     lambda o: CS.SequentialLR(o, [CS.ConstantLR(o, 0.1, 2), CS.ExponentialLR(o, 0.9),
                                   CS.StepLR(o, 4, 0.5)], [3, 12]),
     lambda o: TS.SequentialLR(o, [TS.ConstantLR(o, 0.1, 2), TS.ExponentialLR(o, 0.9),
                                   TS.StepLR(o, 4, 0.5)], [3, 12])),
    ("chained",
     lambda o: CS.ChainedScheduler([CS.ConstantLR(o, 0.1, 4), CS.ExponentialLR(o, 0.9)]),
     lambda o: TS.ChainedScheduler([TS.ConstantLR(o, 0.1, 4), TS.ExponentialLR(o, 0.9)])),
    ("chained-multistep",
     lambda o: CS.ChainedScheduler([CS.MultiStepLR(o, [3, 7, 7], 0.5), CS.LinearLR(o, 0.5)]),
     lambda o: TS.ChainedScheduler([TS.MultiStepLR(o, [3, 7, 7], 0.5), TS.LinearLR(o, 0.5)])),
]


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name,cs_fn,ts_fn", SCHEDS, ids=[s[0] for s in SCHEDS])
def test_scheduler_sequences_match_torch_over_30_epochs(name, cs_fn, ts_fn):
    co, to = _opt_pair((0.1, 0.02))
    cs, ts = cs_fn(co), ts_fn(to)
    for epoch in range(30):
        np.testing.assert_allclose(cs.get_last_lr(), ts.get_last_lr(), rtol=1e-12,
                                   err_msg=f"epoch {epoch}")
        np.testing.assert_allclose([g["lr"] for g in co.param_groups],
                                   [g["lr"] for g in to.param_groups], rtol=1e-12)
        co.step()
        to.step()
        cs.step()
        ts.step()


@pytest.mark.parametrize("kw", [
    dict(),
    dict(mode="max", factor=0.5, patience=2, threshold=0.01, threshold_mode="abs",
         cooldown=2, min_lr=[1e-3, 5e-3]),
    dict(patience=0, factor=0.3, cooldown=1, min_lr=1e-4, eps=1e-3),
    dict(mode="max", patience=1, threshold=0.05),
])
def test_reduce_lr_on_plateau_matches_torch(kw):
    co, to = _opt_pair((0.1, 0.02))
    cs = CS.ReduceLROnPlateau(co, **kw)
    ts = TS.ReduceLROnPlateau(to, **kw)
    metrics = np.random.default_rng(3).standard_normal(30).cumsum() * 0.05 + 1.0
    metrics[10:18] = metrics[10]  # a plateau
    for m in metrics:
        cs.step(cn.tensor(m))  # a 0-d tensor works, as torch's float(metric)
        ts.step(m)
        np.testing.assert_allclose(cs.get_last_lr(), ts.get_last_lr(), rtol=1e-12)
        assert cs.num_bad_epochs == ts.num_bad_epochs and cs.best == ts.best
    with pytest.raises(ValueError, match="factor"):
        CS.ReduceLROnPlateau(co, factor=1.0)
    with pytest.raises(ValueError, match="mode"):
        CS.ReduceLROnPlateau(co, mode="up")


def test_scheduler_state_dicts_resume():
    co, _ = _opt_pair((0.1,))
    s = CS.ReduceLROnPlateau(co, patience=1)
    for m in (1.0, 1.0, 1.0):
        s.step(m)
    sd = s.state_dict()
    co2, _ = _opt_pair((0.1,))
    s2 = CS.ReduceLROnPlateau(co2, patience=5)
    s2.load_state_dict(sd)
    assert s2.patience == 1 and s2.best == 1.0
    # SequentialLR: members' states travel with it; lambdas are not saved, objects are
    w = _Warm()
    co, _ = _opt_pair((0.1,))
    seq = CS.SequentialLR(co, [CS.LambdaLR(co, w), CS.ExponentialLR(co, 0.5)], [3])
    for _ in range(5):
        seq.step()
    sd = seq.state_dict()
    assert sd["_schedulers"][0]["lr_lambdas"] == [{"k": 4}]
    w2 = _Warm()
    w2.k = 9
    co2, _ = _opt_pair((0.1,))
    seq2 = CS.SequentialLR(co2, [CS.LambdaLR(co2, w2), CS.ExponentialLR(co2, 0.5)], [3])
    seq2.load_state_dict(sd)
    assert w2.k == 4 and seq2.last_epoch == seq.last_epoch
    assert seq2._schedulers[1].last_epoch == seq._schedulers[1].last_epoch


def test_scheduler_errors():
    co, _ = _opt_pair((0.1, 0.2))
    with pytest.raises(ValueError, match="expected 2 lr_lambdas"):
        CS.LambdaLR(co, [lambda e: 1.0])
    with pytest.raises(ValueError, match="milestone"):
        CS.SequentialLR(co, [CS.ExponentialLR(co, 0.9), CS.ExponentialLR(co, 0.9)], [])
    with pytest.raises(ValueError, match="ReduceLROnPlateau"):
        CS.ChainedScheduler([CS.ReduceLROnPlateau(co)])
    other, _ = _opt_pair((0.1,))
    with pytest.raises(ValueError, match="same optimizer"):
        CS.ChainedScheduler([CS.ExponentialLR(co, 0.9), CS.ExponentialLR(other, 0.9)])
    with pytest.raises(TypeError, match="not an Optimizer"):
        CS.LambdaLR(object(), lambda e: 1.0)


# ------------------------------------------------------------------ grad modes
def test_bare_and_called_grad_mode_decorators():
    x = cn.tensor([1.0], requires_grad=True)

    @cn.no_grad
    def bare(a):
        return a * 2

    @cn.no_grad()
    def called(a):
        return a * 2

    @cn.inference_mode
    def inf_bare(a):
        return a * 2

    @cn.inference_mode(mode=False)
    def inf_off(a):
        return a * 2

    assert bare.__name__ == "bare"
    assert not bare(x).requires_grad and not called(x).requires_grad
    assert not inf_bare(x).requires_grad and inf_off(x).requires_grad
    with cn.inference_mode():
        assert not (x * 2).requires_grad and cn.is_inference_mode_enabled()
    with cn.no_grad():
        @cn.enable_grad
        def on(a):
            return a * 2
        assert on(x).requires_grad and not (x * 2).requires_grad

        @cn.set_grad_enabled(True)
        def on2(a):
            return a * 2
        assert on2(x).requires_grad and not cn.is_grad_enabled()
    assert cn.is_grad_enabled()

    @cn.no_grad
    def gen(a):
        for i in range(3):
            yield a * i
    outs = list(gen(x))
    assert len(outs) == 3 and not any(o.requires_grad for o in outs)
    assert (x * 2).requires_grad  # the mode is restored between and after items

    # torch agrees on each of these
    tx = torch.tensor([1.0], requires_grad=True)
    assert not torch.no_grad(lambda a: a * 2)(tx).requires_grad
    assert torch.inference_mode(mode=False)(lambda a: a * 2)(tx).requires_grad


# ------------------------------------------------------------------ pixel shuffle
@pytest.mark.parametrize("shape,r", [((2, 18, 3, 4), 3), ((8, 5, 2), 2), ((2, 3, 4, 2, 2), 2)])
def test_pixel_shuffle_and_unshuffle_match_torch(rng, shape, r):
    from tests.helpers.oracle import check

    x = rng.standard_normal(shape)
    check(lambda t: cn.functional.pixel_shuffle(t, r),
          lambda t: torch.nn.functional.pixel_shuffle(t, r), [x])
    y = rng.standard_normal((*shape[:-3], shape[-3], shape[-2] * r, shape[-1] * r))
    check(lambda t: nn.PixelUnshuffle(r)(t), lambda t: torch.nn.PixelUnshuffle(r)(t), [y])
    back = nn.PixelUnshuffle(r)(nn.PixelShuffle(r)(cn.tensor(x)))
    np.testing.assert_array_equal(back.numpy(), x)
    assert repr(nn.PixelShuffle(r)) == repr(torch.nn.PixelShuffle(r))


def test_pixel_shuffle_errors():
    with pytest.raises(RuntimeError, match="divisible"):
        cn.functional.pixel_shuffle(cn.zeros(1, 5, 2, 2), 2)
    with pytest.raises(RuntimeError, match="divisible"):
        cn.functional.pixel_unshuffle(cn.zeros(1, 1, 3, 4), 2)
    with pytest.raises(RuntimeError, match="at least 3 dimensions"):
        cn.functional.pixel_shuffle(cn.zeros(4, 4), 2)
    with pytest.raises(RuntimeError):
        torch.nn.functional.pixel_shuffle(torch.zeros(1, 5, 2, 2), 2)


# ------------------------------------------------------------------ nn.init
def test_init_works_on_parameters_in_grad_mode_and_bumps_version():
    init = nn.init
    w = nn.Parameter(cn.zeros(6, 4, 3, 3))
    for fn in (init.kaiming_uniform_, init.kaiming_normal_, init.xavier_uniform_,
               init.xavier_normal_, init.orthogonal_, init.normal_, init.uniform_,
               init.trunc_normal_, init.ones_, init.zeros_, init.dirac_):
        assert fn(w) is w and w.requires_grad and w.is_leaf
    # re-initialising a weight saved for backward is caught, as torch's version counter does
    x = nn.Parameter(cn.ones(3))
    y = (x * x).sum()
    init.constant_(x, 2.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()


@pytest.mark.parametrize("shape,gain", [((6, 6), 1.0), ((4, 10), 2.0), ((12, 3, 2, 2), 0.5),
                                        ((10, 3), 1.3)])
def test_orthogonal_is_orthogonal_and_haar_signed(shape, gain):
    w = cn.zeros(*shape, dtype=cn.float64)
    nn.init.orthogonal_(w, gain=gain)
    m = w.numpy().reshape(shape[0], -1)
    rows, cols = m.shape
    gram = m @ m.T if rows <= cols else m.T @ m
    np.testing.assert_allclose(gram, gain**2 * np.eye(min(rows, cols)), atol=1e-10)
    t = torch.empty(shape, dtype=torch.float64)
    torch.nn.init.orthogonal_(t, gain=gain)
    tm = t.numpy().reshape(shape[0], -1)
    np.testing.assert_allclose(np.linalg.svd(m, compute_uv=False),
                               np.linalg.svd(tm, compute_uv=False), atol=1e-10)
    # Haar: entries are centred with variance gain^2 / max(rows, cols) (over many draws)
    cn.manual_seed(0)
    draws = np.stack([nn.init.orthogonal_(cn.zeros(*shape, dtype=cn.float64), gain=gain).numpy()
                      for _ in range(200)])
    assert abs(draws.mean()) < 0.05 * gain
    np.testing.assert_allclose(draws.var(), gain**2 / max(rows, cols), rtol=0.1)


def test_dirac_eye_gain_and_deterministic_inits_match_torch():
    for shape, groups in [((4, 2, 3, 3), 2), ((3, 5, 4), 1), ((6, 2, 3, 3, 3), 3)]:
        c = nn.init.dirac_(cn.zeros(*shape), groups)
        t = torch.nn.init.dirac_(torch.zeros(shape), groups)
        np.testing.assert_array_equal(c.numpy(), t.numpy())
    np.testing.assert_array_equal(nn.init.eye_(cn.zeros(3, 5)).numpy(),
                                  torch.nn.init.eye_(torch.zeros(3, 5)).numpy())
    for nl, p in [("relu", None), ("leaky_relu", 0.2), ("tanh", None), ("selu", None),
                  ("conv2d", None), ("sigmoid", None), ("leaky_relu", None)]:
        assert nn.init.calculate_gain(nl, p) == pytest.approx(torch.nn.init.calculate_gain(nl, p))
    with pytest.raises(ValueError, match="nonlinearity"):
        nn.init.calculate_gain("swish")
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        nn.init.xavier_uniform_(cn.zeros(3))
    with pytest.raises(ValueError, match="3, 4, or 5"):
        nn.init.dirac_(cn.zeros(3, 3))
    with pytest.warns(FutureWarning):
        nn.init.xavier_uniform(cn.zeros(3, 3))


@pytest.mark.parametrize("fn,kw,std", [
    ("kaiming_uniform_", dict(mode="fan_out", nonlinearity="relu"), math.sqrt(2 / (64 * 9))),
    ("kaiming_normal_", dict(a=0.1), math.sqrt(2 / 1.01 / (32 * 9))),
    ("xavier_normal_", dict(gain=2.0), 2 * math.sqrt(2 / (96 * 9))),
    ("trunc_normal_", dict(std=0.02, a=-0.04, b=0.04), None),
])
def test_random_inits_have_torch_statistics(fn, kw, std):
    cn.manual_seed(1)
    c = getattr(nn.init, fn)(cn.zeros(64, 32, 3, 3, dtype=cn.float64), **kw).numpy()
    t = getattr(torch.nn.init, fn)(torch.zeros(64, 32, 3, 3, dtype=torch.float64), **kw).numpy()
    np.testing.assert_allclose(c.std(), t.std(), rtol=0.05)
    assert abs(c.mean()) < 0.05 * c.std()
    if std is not None:
        np.testing.assert_allclose(c.std(), std, rtol=0.05)
    else:
        assert c.min() >= -0.04 and c.max() <= 0.04


def test_sparse_init_zero_count():
    w = nn.init.sparse_(cn.zeros(10, 7), sparsity=0.3, std=0.5)
    assert ((w.numpy() == 0).sum(axis=0) == 3).all()


# ------------------------------------------------------------------ DataParallel
def test_data_parallel_stand_in():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    dp = nn.DataParallel(model, device_ids=[0, 1])
    tdp = torch.nn.DataParallel(torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(),
                                                    torch.nn.Linear(4, 2)))
    assert dp.module is model
    assert list(dp.state_dict()) == list(tdp.state_dict())  # 'module.0.weight', ...
    x = cn.randn(5, 3)
    np.testing.assert_array_equal(dp(x).numpy(), model(x).numpy())
    assert nn.parallel.DataParallel is nn.DataParallel
    with pytest.raises(RuntimeError, match="convnet.distributed"):
        nn.parallel.DistributedDataParallel(model)

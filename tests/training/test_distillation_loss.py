"""F.distillation_loss / nn.DistillationLoss against the same formula built from torch's ops."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import convnet as cn
import convnet.functional as F
from convnet import nn
from convnet.autograd.gradcheck import gradcheck
from tests.helpers.oracle import check


def torch_distill(s, t, y, T, alpha, reduction="mean", **ce):
    """Hinton et al.'s loss as a torch user writes it (teacher detached)."""
    kl_red = {"mean": "batchmean", "sum": "sum", "none": "none"}[reduction]
    kl = TF.kl_div(TF.log_softmax(s / T, 1), TF.log_softmax(t.detach() / T, 1),
                   reduction=kl_red, log_target=True)
    if reduction == "none":
        kl = kl.sum(1)
    return alpha * T * T * kl + (1 - alpha) * TF.cross_entropy(s, y, reduction=reduction, **ce)


def data(n, c, seed=0, scale=3.0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, c)) * scale, rng.standard_normal((n, c)) * scale,
            rng.integers(0, c, n))


@pytest.mark.parametrize("n,c", [(1, 2), (1, 10), (5, 3), (32, 10), (7, 100)])
@pytest.mark.parametrize("T,alpha", [(1.0, 0.5), (4.0, 0.9), (20.0, 0.3), (2.5, 1.0), (3.0, 0.0)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_forward_and_gradient_match_torch(n, c, T, alpha, reduction):
    s, t, y = data(n, c, seed=n * c)
    # teacher logits are constants (grad False); 'none' gets a random cotangent from check()
    check(lambda a, b, z: F.distillation_loss(a, b, z, T, alpha, reduction),
          lambda a, b, z: torch_distill(a, b, z, T, alpha, reduction),
          [s, t, y], grad=[True, False, False], atol=1e-10, rtol=1e-8)


@pytest.mark.parametrize("kw", [{"label_smoothing": 0.2}, {"ignore_index": 1},
                                {"weight": np.linspace(0.5, 2.0, 6)}])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_cross_entropy_options_pass_through(kw, reduction):
    s, t, y = data(9, 6, seed=3)
    y[:3] = 1  # ignore_index=1 drops these from the hard term only
    cn_kw = {k: (cn.tensor(v) if k == "weight" else v) for k, v in kw.items()}
    th_kw = {k: (torch.tensor(v) if k == "weight" else v) for k, v in kw.items()}
    check(lambda a, b, z: F.distillation_loss(a, b, z, 3.0, 0.6, reduction, **cn_kw),
          lambda a, b, z: torch_distill(a, b, z, 3.0, 0.6, reduction, **th_kw),
          [s, t, y], grad=[True, False, False], atol=1e-10, rtol=1e-8)
    loss = nn.DistillationLoss(3.0, 0.6, reduction, **cn_kw)
    expect = torch_distill(torch.tensor(s), torch.tensor(t), torch.tensor(y), 3.0, 0.6,
                           reduction, **th_kw)
    got = loss(cn.tensor(s), cn.tensor(t), cn.tensor(y))
    np.testing.assert_allclose(got.numpy(), expect.numpy(), rtol=1e-10)


def test_probability_targets():
    s, t, _ = data(4, 5, seed=1)
    p = np.random.default_rng(2).dirichlet(np.ones(5), 4)
    check(lambda a, b, z: F.distillation_loss(a, b, z, 2.0, 0.7),
          lambda a, b, z: torch_distill(a, b, z, 2.0, 0.7),
          [s, t, p], grad=[True, False, False], atol=1e-10, rtol=1e-8)


def test_gradcheck_student_logits():
    s, t, y = data(6, 4, seed=5)
    ts, yt = cn.tensor(t), cn.tensor(y)
    for reduction in ("mean", "none"):
        assert gradcheck(lambda a: F.distillation_loss(a, ts, yt, 3.0, 0.8, reduction),
                         [cn.tensor(s, requires_grad=True)])


def test_no_gradient_reaches_the_teacher():
    s, t, y = data(3, 4)
    st, tt = cn.tensor(s, requires_grad=True), cn.tensor(t, requires_grad=True)
    F.distillation_loss(st, tt, cn.tensor(y)).backward()
    assert st.grad is not None and tt.grad is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("T", [1.0, 2.0, 4.0, 20.0])
def test_extreme_logits_stay_finite(dtype, T):
    rng = np.random.default_rng(0)
    s = (rng.choice([-1e4, 1e4], (8, 10)) + rng.standard_normal((8, 10))).astype(dtype)
    t = (rng.choice([-1e4, 1e4], (8, 10)) + rng.standard_normal((8, 10))).astype(dtype)
    y = rng.integers(0, 10, 8)
    for reduction in ("mean", "none"):
        st = cn.tensor(s, requires_grad=True)
        out = F.distillation_loss(st, cn.tensor(t), cn.tensor(y), T, 0.9, reduction)
        out.sum().backward()
        assert out.dtype == dtype and st.grad.dtype == dtype
        assert np.isfinite(out.numpy()).all() and np.isfinite(st.grad.numpy()).all()
        ref = torch_distill(torch.tensor(s, dtype=torch.float64, requires_grad=True),
                            torch.tensor(t, dtype=torch.float64), torch.tensor(y), T, 0.9,
                            reduction)
        np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=1e-5)


def test_soft_term_weighting():
    s, t, y = data(5, 4)
    args = cn.tensor(s), cn.tensor(t), cn.tensor(y)
    # alpha 0 is plain cross-entropy; the teacher is then irrelevant
    np.testing.assert_allclose(F.distillation_loss(*args, 4.0, 0.0).numpy(),
                               F.cross_entropy(args[0], args[2]).numpy())
    # identical logits: the KL term vanishes for any temperature
    same = F.distillation_loss(args[0], args[0], args[2], 7.0, 1.0)
    assert abs(float(same.numpy())) < 1e-12
    # the teacher's logits in float32 are cast to a float64 student's dtype
    mixed = F.distillation_loss(args[0], cn.tensor(t.astype(np.float32)), args[2], 2.0, 0.5)
    assert mixed.dtype == np.float64


def test_t_squared_keeps_soft_gradients_comparable_across_temperatures():
    # the gradient of the T^2-scaled soft term tends to (s - t) / C as T grows: its size
    # does not fall as 1/T^2 (it would without the factor)
    s, t, y = data(16, 10, seed=4, scale=1.0)
    norms = []
    for T in (5.0, 10.0, 40.0):
        st = cn.tensor(s, requires_grad=True)
        F.distillation_loss(st, cn.tensor(t), cn.tensor(y), T, 1.0).backward()
        norms.append(np.linalg.norm(st.grad.numpy()))
    assert max(norms) / min(norms) < 1.2


def test_module_matches_functional_and_repr():
    s, t, y = data(4, 3)
    loss = nn.DistillationLoss(temperature=2.0, alpha=0.25, reduction="sum")
    args = cn.tensor(s), cn.tensor(t), cn.tensor(y)
    np.testing.assert_array_equal(loss(*args).numpy(),
                                  F.distillation_loss(*args, 2.0, 0.25, "sum").numpy())
    assert repr(loss) == "DistillationLoss(temperature=2.0, alpha=0.25, reduction='sum')"
    assert repr(nn.DistillationLoss()) == "DistillationLoss(temperature=4.0, alpha=0.9)"


def test_bad_arguments_are_named():
    s, t, y = (cn.tensor(a) for a in data(4, 3))
    cases = [
        (dict(student_logits=s, teacher_logits=cn.tensor(np.zeros((4, 5))), target=y),
         ValueError, r"teacher_logits shape \(4, 5\) != student_logits shape \(4, 3\)"),
        (dict(student_logits=s, teacher_logits=t, target=cn.tensor(np.zeros(3, dtype=np.int64))),
         ValueError, r"target shape \(3,\) does not fit student_logits \(4, 3\)"),
        (dict(student_logits=cn.tensor(np.zeros((2, 3, 4))), teacher_logits=cn.tensor(np.zeros((2, 3, 4))),
              target=y), ValueError, r"student_logits must be \(N, C\)"),
        (dict(student_logits=s, teacher_logits=t, target=y, temperature=0.0),
         ValueError, "temperature must be a positive"),
        (dict(student_logits=s, teacher_logits=t, target=y, temperature=-1),
         ValueError, "temperature must be a positive"),
        (dict(student_logits=s, teacher_logits=t, target=y, alpha=1.5),
         ValueError, r"alpha must be in \[0, 1\]"),
        (dict(student_logits=s, teacher_logits=t, target=y, reduction="batchmean"),
         ValueError, "reduction must be one of"),
        (dict(student_logits=s, teacher_logits=t.numpy(), target=y), TypeError, "student_logits and teacher_logits must be Tensors"),
    ]
    for kw, exc, msg in cases:
        with pytest.raises(exc, match="distillation_loss: " + msg):
            F.distillation_loss(**kw)
    for kw in ({"temperature": 0}, {"temperature": float("inf")}, {"alpha": -0.1},
               {"reduction": "batchmean"}):
        with pytest.raises(ValueError, match="DistillationLoss: " + next(iter(kw))):
            nn.DistillationLoss(**kw)

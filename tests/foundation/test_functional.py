"""Activations, linear, dropout and losses against torch (float64)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import convnet as cn
import convnet.functional as F
from convnet.autograd import gradcheck
from tests.helpers.oracle import check

R = np.random.default_rng(7)


def randn(*shape):
    return R.standard_normal(shape) * 2


ACTS = [
    ("relu", F.relu, TF.relu),
    ("relu6", F.relu6, TF.relu6),
    ("leaky_relu", lambda x: F.leaky_relu(x, 0.2), lambda x: TF.leaky_relu(x, 0.2)),
    ("elu", lambda x: F.elu(x, 0.7), lambda x: TF.elu(x, 0.7)),
    ("gelu", F.gelu, TF.gelu),
    ("gelu_tanh", lambda x: F.gelu(x, "tanh"), lambda x: TF.gelu(x, approximate="tanh")),
    ("silu", F.silu, TF.silu),
    ("hardswish", F.hardswish, TF.hardswish),
    ("hardtanh", lambda x: F.hardtanh(x, -0.5, 2.0), lambda x: TF.hardtanh(x, -0.5, 2.0)),
    ("softplus", F.softplus, TF.softplus),
    ("sigmoid", F.sigmoid, torch.sigmoid),
    ("tanh", F.tanh, torch.tanh),
]


@pytest.mark.parametrize("name,cfn,tfn", ACTS)
def test_activations(name, cfn, tfn):
    check(cfn, tfn, [randn(4, 7)], atol=1e-10, rtol=1e-8)


def test_gelu_erf_at_large_inputs():
    x = np.array([-40.0, -8.0, -5.5, -3.0, 0.0, 1e-8, 2.5, 6.0, 30.0])
    check(F.gelu, TF.gelu, [x], atol=1e-12, rtol=1e-10)


def test_gelu_propagates_nan_and_inf_like_torch():
    x = np.array([np.nan, np.inf, -2.0, 0.3])  # (torch gives NaN at -inf, the limit is 0)
    got = F.gelu(cn.tensor(x)).numpy()
    want = TF.gelu(torch.tensor(x)).numpy()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got[1:], want[1:], rtol=1e-12)


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_log_softmax(dim):
    a = randn(3, 5, 4)
    check(lambda x: F.softmax(x, dim), lambda x: TF.softmax(x, dim), [a])
    check(lambda x: F.log_softmax(x, dim), lambda x: TF.log_softmax(x, dim), [a])


def test_softmax_is_stable_for_huge_logits():
    x = cn.tensor(np.array([[1000.0, 0.0, -1000.0]]))
    assert np.all(np.isfinite(F.log_softmax(x, 1).numpy()))
    assert np.allclose(F.softmax(x, 1).numpy(), [[1, 0, 0]])


@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4), (4,)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear(shape, bias):
    arrays = [randn(*shape), randn(3, 4)] + ([randn(3)] if bias else [])
    check(lambda *a: F.linear(*a), lambda *a: TF.linear(*a), arrays)


def test_linear_errors():
    with pytest.raises(ValueError, match=r"linear: input of shape \(2, 5\) has 5 features but weight \(3, 4\) expects 4"):
        F.linear(cn.ones(2, 5), cn.ones(3, 4))
    with pytest.raises(ValueError, match="bias"):
        F.linear(cn.ones(2, 4), cn.ones(3, 4), cn.ones(4))


def test_dropout_statistics_and_modes():
    cn.manual_seed(0)
    x = cn.ones(200, 500, requires_grad=True)
    y = F.dropout(x, 0.3, training=True)
    kept = y.numpy() != 0
    assert abs(kept.mean() - 0.7) < 0.01
    assert np.allclose(y.numpy()[kept], 1 / 0.7)
    y.sum().backward()
    assert np.array_equal(x.grad.numpy() != 0, kept)
    assert F.dropout(x, 0.3, training=False) is x
    assert np.all(F.dropout(x, 1.0).numpy() == 0)
    with pytest.raises(ValueError, match="dropout: p must be in"):
        F.dropout(x, 1.5)


def test_dropout2d_zeroes_whole_channels():
    cn.manual_seed(1)
    y = F.dropout2d(cn.ones(8, 16, 5, 5), 0.5).numpy()
    per_channel = y.reshape(8, 16, -1)
    assert np.all((per_channel == 0).all(-1) | (per_channel == 2).all(-1))
    assert 0 < (per_channel == 0).all(-1).mean() < 1
    with pytest.warns(UserWarning, match="dropout2d"):  # torch warns and drops elements
        F.dropout2d(cn.ones(3, 4), 0.5)


# ---------------------------------------------------------------- losses
CE_CASES = [
    dict(),
    dict(reduction="sum"),
    dict(reduction="none"),
    dict(label_smoothing=0.2),
    dict(label_smoothing=0.1, reduction="sum"),
    dict(weight=True),
    dict(weight=True, label_smoothing=0.3),
    dict(weight=True, reduction="none", label_smoothing=0.1),
    dict(ignore_index=1),
    dict(ignore_index=2, weight=True, label_smoothing=0.15),
]


@pytest.mark.parametrize("kw", CE_CASES, ids=[str(k) for k in CE_CASES])
@pytest.mark.parametrize("spatial", [(), (3,), (2, 3)])
def test_cross_entropy_index_targets(kw, spatial):
    n, c = 6, 4
    x = randn(n, c, *spatial)
    t = R.integers(0, c, (n, *spatial))
    kw = dict(kw)
    w = R.uniform(0.2, 2.0, c) if kw.pop("weight", False) else None
    ckw = dict(kw, weight=None if w is None else cn.tensor(w))
    tkw = dict(kw, weight=None if w is None else torch.tensor(w))
    check(lambda a: F.cross_entropy(a, cn.tensor(t), **ckw), lambda a: TF.cross_entropy(a, torch.tensor(t), **tkw), [x])


@pytest.mark.parametrize("kw", [dict(), dict(reduction="sum"), dict(reduction="none"),
                                dict(label_smoothing=0.2), dict(weight=True)])
def test_cross_entropy_probability_targets(kw):
    x = randn(5, 3, 2)
    p = R.dirichlet(np.ones(3), size=(5, 2)).transpose(0, 2, 1)
    kw = dict(kw)
    w = R.uniform(0.5, 1.5, 3) if kw.pop("weight", False) else None
    ckw = dict(kw, weight=None if w is None else cn.tensor(w))
    tkw = dict(kw, weight=None if w is None else torch.tensor(w))
    check(lambda a, b: F.cross_entropy(a, b, **ckw), lambda a, b: TF.cross_entropy(a, b, **tkw), [x, p],
          grad=[True, False])


def test_cross_entropy_unbatched_and_gradcheck():
    x = randn(5)
    check(lambda a: F.cross_entropy(a, cn.tensor(2)), lambda a: TF.cross_entropy(a, torch.tensor(2)), [x])
    xt = cn.tensor(randn(4, 3), requires_grad=True)
    assert gradcheck(lambda a: F.cross_entropy(a, cn.tensor([0, 2, 1, 2]), label_smoothing=0.1), [xt])


def test_cross_entropy_errors():
    x = cn.randn(4, 3)
    with pytest.raises(ValueError, match="target contains class 3 but input has 3 classes"):
        F.cross_entropy(x, cn.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match=r"target shape \(3,\) does not match input \(4, 3\)"):
        F.cross_entropy(x, cn.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(x, cn.tensor([0, 1, 2, 1]), reduction="avg")


@pytest.mark.parametrize("kw", [dict(), dict(reduction="sum"), dict(reduction="none"), dict(weight=True),
                                dict(ignore_index=0), dict(weight=True, ignore_index=2)])
def test_nll_loss(kw):
    x = np.log(R.dirichlet(np.ones(4), size=7))
    t = R.integers(0, 4, 7)
    kw = dict(kw)
    w = R.uniform(0.2, 2.0, 4) if kw.pop("weight", False) else None
    check(lambda a: F.nll_loss(a, cn.tensor(t), None if w is None else cn.tensor(w), **kw),
          lambda a: TF.nll_loss(a, torch.tensor(t), None if w is None else torch.tensor(w), **kw), [x])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_regression_losses(reduction):
    a, b = randn(3, 4), randn(3, 4)
    check(lambda x, y: F.mse_loss(x, y, reduction=reduction), lambda x, y: TF.mse_loss(x, y, reduction=reduction), [a, b])
    check(lambda x, y: F.l1_loss(x, y, reduction=reduction), lambda x, y: TF.l1_loss(x, y, reduction=reduction), [a, b])
    check(lambda x, y: F.smooth_l1_loss(x, y, reduction=reduction, beta=0.7),
          lambda x, y: TF.smooth_l1_loss(x, y, reduction=reduction, beta=0.7), [a, b])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
def test_binary_cross_entropy(reduction, weighted):
    p = R.uniform(0.05, 0.95, (4, 3))
    t = R.uniform(0, 1, (4, 3))
    w = R.uniform(0.5, 2, (3,)) if weighted else None
    check(lambda x, y: F.binary_cross_entropy(x, y, None if w is None else cn.tensor(w), reduction=reduction),
          lambda x, y: TF.binary_cross_entropy(x, y, None if w is None else torch.tensor(w), reduction=reduction),
          [p, t])


def test_binary_cross_entropy_saturated_is_finite():
    x = cn.tensor(np.array([0.0, 1.0]), requires_grad=True)
    loss = F.binary_cross_entropy(x, cn.tensor(np.array([1.0, 0.0])))
    assert np.isclose(loss.item(), 100.0)
    with pytest.raises(ValueError, match="probabilities"):
        F.binary_cross_entropy(cn.tensor([1.5]), cn.tensor([1.0]))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("pos", [False, True])
def test_bce_with_logits(reduction, weighted, pos):
    x = randn(4, 3) * 5
    t = R.uniform(0, 1, (4, 3))
    w = R.uniform(0.5, 2, (3,)) if weighted else None
    pw = R.uniform(0.5, 3, (3,)) if pos else None
    c = lambda v: None if v is None else cn.tensor(v)  # noqa: E731
    th = lambda v: None if v is None else torch.tensor(v)  # noqa: E731
    check(lambda a, b: F.binary_cross_entropy_with_logits(a, b, c(w), reduction=reduction, pos_weight=c(pw)),
          lambda a, b: TF.binary_cross_entropy_with_logits(a, b, th(w), reduction=reduction, pos_weight=th(pw)),
          [x, t])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none", "batchmean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div(reduction, log_target):
    inp = np.log(R.dirichlet(np.ones(5), size=4))
    tgt = R.dirichlet(np.ones(5), size=4)
    tgt[0, 1] = 0.0  # a zero-probability target contributes 0
    if log_target:
        tgt = np.log(tgt + 1e-3)
    check(lambda x, y: F.kl_div(x, y, reduction=reduction, log_target=log_target),
          lambda x, y: TF.kl_div(x, y, reduction=reduction, log_target=log_target), [inp, tgt], grad=[True, False])


def test_loss_shape_errors():
    with pytest.raises(ValueError, match=r"mse_loss: input shape \(2, 3\) and target shape \(3, 2\) differ"):
        F.mse_loss(cn.ones(2, 3), cn.ones(3, 2))


@pytest.mark.parametrize("name,cfn,tfn", ACTS)
def test_activations_keep_float32(name, cfn, tfn):
    x = cn.randn(3, 4, requires_grad=True)
    y = cfn(x)
    y.sum().backward()
    assert y.dtype == cn.float32 and x.grad.dtype == cn.float32


def test_relu_special_values_match_torch():
    """NaN stays NaN and passes its gradient, -0.0 and -inf give 0, inf passes, as in torch."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 4, 5, 6))
    x[0, 0, 0, :5] = [np.nan, -0.0, np.inf, -np.inf, 0.0]
    xc, xt = cn.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, yt = F.relu(xc), TF.relu(xt)
    np.testing.assert_array_equal(y.numpy(), yt.detach().numpy())
    gy = rng.standard_normal(x.shape)
    y.backward(cn.tensor(gy))
    yt.backward(torch.tensor(gy))
    np.testing.assert_array_equal(xc.grad.numpy(), xt.grad.numpy())

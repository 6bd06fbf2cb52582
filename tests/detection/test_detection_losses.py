"""sigmoid_focal_loss and the IoU losses against torchvision's formulas: plain loops in
float64 (1e-12), torch autograd of the same formula, finite differences, bad input."""
import math

import numpy as np
import pytest

import convnet as cn
import convnet.ops as ops
from convnet.autograd.gradcheck import gradcheck


def T(a, grad=False):
    return cn.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


# ----------------------------------------------------------------------- focal loss
def ref_focal(x, y, alpha, gamma):
    out = np.zeros_like(x)
    for i, (xi, yi) in enumerate(zip(x.ravel(), y.ravel())):
        p = 1 / (1 + math.exp(-xi))
        ce = max(xi, 0) - xi * yi + math.log1p(math.exp(-abs(xi)))
        p_t = p * yi + (1 - p) * (1 - yi)
        loss = ce * (1 - p_t) ** gamma
        if alpha >= 0:
            loss *= alpha * yi + (1 - alpha) * (1 - yi)
        out.ravel()[i] = loss
    return out


@pytest.mark.parametrize("alpha,gamma", [(0.25, 2), (-1, 2), (0.5, 0), (0.75, 1.5)])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_sigmoid_focal_loss_forward_and_gradient_match_torch(alpha, gamma, reduction):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(0)
    x = rng.normal(0, 3, (4, 6))
    y = (rng.random((4, 6)) < 0.3).astype(np.float64)
    y[0, :3] = [0.2, 0.7, 1.0]  # soft targets follow the same formula
    cx = T(x, True)
    out = ops.sigmoid_focal_loss(cx, T(y), alpha, gamma, reduction)
    want = ref_focal(x, y, alpha, gamma)
    want = {"none": want, "mean": want.mean(), "sum": want.sum()}[reduction]
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-12, atol=1e-14)

    tx = torch.tensor(x, requires_grad=True)  # torchvision's definition, written in torch
    ty = torch.tensor(y)
    p = torch.sigmoid(tx)
    loss = F.binary_cross_entropy_with_logits(tx, ty, reduction="none") * (1 - (p * ty + (1 - p) * (1 - ty))) ** gamma
    if alpha >= 0:
        loss = (alpha * ty + (1 - alpha) * (1 - ty)) * loss
    loss = {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]
    w = rng.standard_normal(np.shape(want))
    (loss * torch.tensor(w)).sum().backward()
    (out * T(w)).sum().backward()
    np.testing.assert_allclose(cx.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_sigmoid_focal_loss_defaults_gradcheck_and_float32():
    rng = np.random.default_rng(1)
    x, y = T(rng.normal(0, 2, (3, 5)), True), T(rng.random((3, 5)) < 0.5)
    out = ops.sigmoid_focal_loss(x, y)  # alpha 0.25, gamma 2, no reduction
    assert tuple(out.shape) == (3, 5)
    np.testing.assert_allclose(out.numpy(), ref_focal(x.numpy(), y.numpy(), 0.25, 2), rtol=1e-12)
    assert gradcheck(lambda t: ops.sigmoid_focal_loss(t, y, reduction="sum"), [x])
    f32 = ops.sigmoid_focal_loss(cn.tensor(x.numpy().astype(np.float32)), cn.tensor(y.numpy().astype(np.float32)))
    assert f32.dtype == cn.float32


# ----------------------------------------------------------------------- IoU losses
def ref_iou_losses(b1, b2, eps=1e-7):
    """Rows of (giou_loss, diou_loss, ciou_loss) per matched pair, as torchvision."""
    out = []
    for a, g in zip(b1, b2):
        xk1, yk1, xk2, yk2 = max(a[0], g[0]), max(a[1], g[1]), min(a[2], g[2]), min(a[3], g[3])
        inter = (xk2 - xk1) * (yk2 - yk1) if (yk2 > yk1 and xk2 > xk1) else 0.0
        union = (a[2] - a[0]) * (a[3] - a[1]) + (g[2] - g[0]) * (g[3] - g[1]) - inter
        iou = inter / (union + eps)
        xc1, yc1, xc2, yc2 = min(a[0], g[0]), min(a[1], g[1]), max(a[2], g[2]), max(a[3], g[3])
        area_c = (xc2 - xc1) * (yc2 - yc1)
        giou = 1 - (iou - (area_c - union) / (area_c + eps))
        diag = (xc2 - xc1) ** 2 + (yc2 - yc1) ** 2 + eps
        rho = ((a[0] + a[2]) / 2 - (g[0] + g[2]) / 2) ** 2 + ((a[1] + a[3]) / 2 - (g[1] + g[3]) / 2) ** 2
        diou = 1 - iou + rho / diag
        v = 4 / math.pi ** 2 * (math.atan((g[2] - g[0]) / (g[3] - g[1]))
                                - math.atan((a[2] - a[0]) / (a[3] - a[1]))) ** 2
        ciou = diou + v / (1 - iou + v + eps) * v
        out.append((giou, diou, ciou))
    return np.array(out).reshape(-1, 3)


def pairs(rng, n):
    def boxes():
        xy = rng.uniform(0, 10, (n, 2))
        return np.concatenate([xy, xy + rng.uniform(0.5, 6, (n, 2))], 1)
    b1, b2 = boxes(), boxes()
    b2[0] = b1[0]                     # identical
    b2[1] = b1[1] + [20, 0.5, 20, 0.5]  # disjoint
    b2[2, :2] = b1[2, :2] + 0.1       # nested-ish
    return b1, b2


LOSSES = [ops.generalized_box_iou_loss, ops.distance_box_iou_loss, ops.complete_box_iou_loss]


@pytest.mark.parametrize("col,fn", list(enumerate(LOSSES)))
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_iou_losses_match_reference(col, fn, reduction):
    rng = np.random.default_rng(2)
    b1, b2 = pairs(rng, 7)
    want = ref_iou_losses(b1, b2)[:, col]
    want = {"none": want, "mean": want.mean(), "sum": want.sum()}[reduction]
    np.testing.assert_allclose(fn(T(b1), T(b2), reduction).numpy(), want, rtol=1e-12, atol=1e-12)
    one = fn(T(b1[3]), T(b2[3]))  # a single (4,) pair gives a scalar
    assert one.shape == () or tuple(one.shape) == ()
    np.testing.assert_allclose(one.numpy(), ref_iou_losses(b1[3:4], b2[3:4])[0, col], rtol=1e-12)


@pytest.mark.parametrize("fn", LOSSES[:2])
def test_giou_and_diou_losses_gradcheck(fn):
    rng = np.random.default_rng(3)
    b1, b2 = pairs(rng, 5)
    b1[0] += 0.3  # no exactly identical pair: min/max would tie under finite differences
    p, g = T(b1, True), T(b2, True)
    assert gradcheck(lambda a, b: fn(a, b), [p, g], atol=1e-7, rtol=1e-5)


def test_giou_and_ciou_loss_gradients_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    b1, b2 = pairs(rng, 6)
    b1[0] += 0.3

    def torch_losses(p, g, eps=1e-7):  # torchvision's giou / ciou loss written in torch
        x1, y1, x2, y2 = p.unbind(-1)
        x1g, y1g, x2g, y2g = g.unbind(-1)
        xk1, yk1, xk2, yk2 = torch.max(x1, x1g), torch.max(y1, y1g), torch.min(x2, x2g), torch.min(y2, y2g)
        inter = torch.zeros_like(x1)
        m = (yk2 > yk1) & (xk2 > xk1)
        inter[m] = (xk2[m] - xk1[m]) * (yk2[m] - yk1[m])
        union = (x2 - x1) * (y2 - y1) + (x2g - x1g) * (y2g - y1g) - inter
        iou = inter / (union + eps)
        xc1, yc1, xc2, yc2 = torch.min(x1, x1g), torch.min(y1, y1g), torch.max(x2, x2g), torch.max(y2, y2g)
        area_c = (xc2 - xc1) * (yc2 - yc1)
        giou = 1 - (iou - (area_c - union) / (area_c + eps))
        diag = (xc2 - xc1) ** 2 + (yc2 - yc1) ** 2 + eps
        rho = ((x1 + x2) / 2 - (x1g + x2g) / 2) ** 2 + ((y1 + y2) / 2 - (y1g + y2g) / 2) ** 2
        v = 4 / torch.pi ** 2 * (torch.atan((x2g - x1g) / (y2g - y1g)) - torch.atan((x2 - x1) / (y2 - y1))) ** 2
        with torch.no_grad():
            alpha = v / (1 - iou + v + eps)
        return giou, 1 - iou + rho / diag + alpha * v

    for k, fn in ((0, ops.generalized_box_iou_loss), (1, ops.complete_box_iou_loss)):
        tp, tg = torch.tensor(b1, requires_grad=True), torch.tensor(b2, requires_grad=True)
        w = rng.standard_normal(len(b1))
        (torch_losses(tp, tg)[k] * torch.tensor(w)).sum().backward()
        cp, cg = T(b1, True), T(b2, True)
        (fn(cp, cg) * T(w)).sum().backward()
        np.testing.assert_allclose(cp.grad.numpy(), tp.grad.numpy(), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(cg.grad.numpy(), tg.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_iou_loss_of_empty_input_and_bad_input():
    empty = cn.zeros((0, 4), dtype=cn.float64)
    for fn in LOSSES:
        assert fn(empty, empty, "mean").item() == 0.0  # not NaN, as torchvision
        assert fn(empty, empty, "sum").item() == 0.0
    good = T([[0, 0, 1, 1]])
    with pytest.raises(ValueError, match=r"generalized_box_iou_loss: bad box in boxes1 at index "
                                         r"\(0,\): \[2.0, 0.0, 1.0, 1.0\] has x2 < x1"):
        ops.generalized_box_iou_loss(T([[2, 0, 1, 1]]), good)
    with pytest.raises(ValueError, match=r"complete_box_iou_loss: bad box in boxes2"):
        ops.complete_box_iou_loss(good, T([[0, 3, 1, 1]]))
    with pytest.raises(ValueError, match=r"boxes1 and boxes2 must hold matched pairs of the same "
                                         r"shape, got \(1, 4\) and \(2, 4\)"):
        ops.distance_box_iou_loss(good, T([[0, 0, 1, 1], [0, 0, 2, 2]]))
    with pytest.raises(ValueError, match=r"invalid value for reduction: 'avg'"):
        ops.generalized_box_iou_loss(good, good, "avg")
    with pytest.raises(ValueError, match=r"sigmoid_focal_loss: invalid value for reduction"):
        ops.sigmoid_focal_loss(T([1.0]), T([1.0]), reduction="avg")
    with pytest.raises(ValueError, match=r"sigmoid_focal_loss: targets must have the shape of inputs"):
        ops.sigmoid_focal_loss(T([1.0, 2.0]), T([1.0]))

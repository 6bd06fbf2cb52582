"""convnet.ops box operations against plain-loop transcriptions of torchvision's
definitions (float64, 1e-12), finite-difference gradchecks, and bad input."""
import math

import numpy as np
import pytest

import convnet as cn
import convnet.ops as ops
from convnet.autograd.gradcheck import gradcheck


# ------------------------------------------------------------------ reference loops
def ref_area(b):
    return (b[2] - b[0]) * (b[3] - b[1])


def ref_inter_union(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter, ref_area(a) + ref_area(b) - inter


def ref_pairwise(b1, b2, kind, eps=1e-7):
    out = np.zeros((len(b1), len(b2)))
    for i, a in enumerate(b1):
        for j, b in enumerate(b2):
            inter, union = ref_inter_union(a, b)
            iou = inter / union
            cw = max(0.0, max(a[2], b[2]) - min(a[0], b[0]))
            ch = max(0.0, max(a[3], b[3]) - min(a[1], b[1]))
            if kind == "iou":
                out[i, j] = iou
            elif kind == "giou":
                out[i, j] = iou - (cw * ch - union) / (cw * ch)
            else:
                rho2 = ((a[0] + a[2]) / 2 - (b[0] + b[2]) / 2) ** 2 + \
                       ((a[1] + a[3]) / 2 - (b[1] + b[3]) / 2) ** 2
                diou = iou - rho2 / (cw * cw + ch * ch + eps)
                if kind == "diou":
                    out[i, j] = diou
                else:
                    v = 4 / math.pi ** 2 * (math.atan((a[2] - a[0]) / (a[3] - a[1]))
                                            - math.atan((b[2] - b[0]) / (b[3] - b[1]))) ** 2
                    out[i, j] = diou - v / (1 - iou + v + eps) * v
    return out


def ref_nms(boxes, scores, thr):
    order = sorted(range(len(scores)), key=lambda i: -scores[i])  # Python's sort is stable
    suppressed, keep = set(), []
    for pos, i in enumerate(order):
        if i in suppressed:
            continue
        keep.append(i)
        for j in order[pos + 1:]:
            inter, union = ref_inter_union(boxes[i], boxes[j])
            if inter / union > thr:
                suppressed.add(j)
    return keep


def random_boxes(rng, n, degenerate=True):
    xy = rng.uniform(-5, 20, (n, 2))
    wh = rng.uniform(0.5, 12, (n, 2))
    if degenerate and n >= 4:
        wh[0, 0] = 0.0          # zero width
        wh[1] = 0.0             # a point
        xy[2], wh[2] = xy[3], wh[3]  # a duplicate
    return np.concatenate([xy, xy + wh], axis=1)


def T(a, grad=False):
    return cn.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


# -------------------------------------------------------------------------- pairwise
@pytest.mark.filterwarnings("ignore:invalid value encountered")  # the 0/0 pair, on purpose
@pytest.mark.parametrize("kind,fn", [("iou", ops.box_iou), ("giou", ops.generalized_box_iou),
                                     ("diou", ops.distance_box_iou), ("ciou", ops.complete_box_iou)])
def test_pairwise_measures_match_reference(kind, fn):
    rng = np.random.default_rng(0)
    b1, b2 = random_boxes(rng, 9), random_boxes(rng, 7, degenerate=False)
    b2[0] = b1[4]  # an identical pair
    got = fn(T(b1), T(b2))
    assert got.dtype == cn.float64 and tuple(got.shape) == (9, 7)
    want = ref_pairwise(b1, b2, kind)
    finite = np.isfinite(want)  # the point box against a zero-height one is 0/0 in both
    np.testing.assert_allclose(got.numpy()[finite], want[finite], rtol=1e-12, atol=1e-12)
    assert np.array_equal(np.isfinite(got.numpy()), finite)


@pytest.mark.filterwarnings("ignore:invalid value encountered")  # a zero-area box with itself
def test_box_area_and_integer_boxes():
    b = np.array([[0, 0, 2, 3], [1, 1, 4, 5], [2, 2, 2, 9]])
    area = ops.box_area(cn.tensor(b))
    assert area.dtype == cn.int64 and area.tolist() == [6, 12, 0]
    iou = ops.box_iou(cn.tensor(b), cn.tensor(b))  # integer boxes: float32 IoU as torch
    assert iou.dtype == cn.float32
    np.testing.assert_allclose(iou.numpy(), ref_pairwise(b.astype(float), b.astype(float), "iou"),
                               rtol=1e-6)


def test_giou_of_disjoint_boxes_is_negative_and_iou_zero():
    a, b = T([[0, 0, 1, 1]]), T([[3, 0, 4, 1]])
    assert ops.box_iou(a, b).item() == 0.0
    assert ops.generalized_box_iou(a, b).item() == pytest.approx(-0.5)  # 0 - (4 - 2) / 4


@pytest.mark.parametrize("fn", [ops.box_iou, ops.generalized_box_iou, ops.distance_box_iou])
def test_pairwise_gradcheck(fn):
    rng = np.random.default_rng(1)
    b1, b2 = T(random_boxes(rng, 4, False), True), T(random_boxes(rng, 3, False), True)
    assert gradcheck(fn, [b1, b2], eps=1e-6, atol=1e-7, rtol=1e-5)


def test_complete_box_iou_gradient_matches_torch_with_alpha_constant():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    b1, b2 = random_boxes(rng, 4, False), random_boxes(rng, 3, False)
    w = rng.standard_normal((4, 3))

    def torch_ciou(p, g, eps=1e-7):  # torchvision's definition written in torch
        lt, rb = torch.max(p[:, None, :2], g[:, :2]), torch.min(p[:, None, 2:], g[:, 2:])
        wh = (rb - lt).clamp(min=0)
        inter = wh[..., 0] * wh[..., 1]
        area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])  # noqa: E731
        iou = inter / (area(p)[:, None] + area(g) - inter)
        whi = (torch.max(p[:, None, 2:], g[:, 2:]) - torch.min(p[:, None, :2], g[:, :2])).clamp(min=0)
        diag = whi[..., 0] ** 2 + whi[..., 1] ** 2 + eps
        cp, cg = (p[:, :2] + p[:, 2:]) / 2, (g[:, :2] + g[:, 2:]) / 2
        rho = ((cp[:, None] - cg[None]) ** 2).sum(-1)
        v = 4 / torch.pi ** 2 * (torch.atan((p[:, None, 2] - p[:, None, 0]) / (p[:, None, 3] - p[:, None, 1]))
                                 - torch.atan((g[:, 2] - g[:, 0]) / (g[:, 3] - g[:, 1]))) ** 2
        with torch.no_grad():
            alpha = v / (1 - iou + v + eps)
        return iou - rho / diag - alpha * v

    tp, tg = (torch.tensor(b, requires_grad=True) for b in (b1, b2))
    (torch_ciou(tp, tg) * torch.tensor(w)).sum().backward()
    cp, cg = T(b1, True), T(b2, True)
    out = ops.complete_box_iou(cp, cg)
    (out * T(w)).sum().backward()
    np.testing.assert_allclose(out.numpy(), torch_ciou(torch.tensor(b1), torch.tensor(b2)).numpy(),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cp.grad.numpy(), tp.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cg.grad.numpy(), tg.grad.numpy(), rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------- convert, clip, remove
def test_box_convert_round_trips_and_formulas():
    rng = np.random.default_rng(3)
    b = random_boxes(rng, 6)
    x1, y1, x2, y2 = b.T
    want = {"xyxy": b, "xywh": np.stack([x1, y1, x2 - x1, y2 - y1], 1),
            "cxcywh": np.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], 1)}
    for fi, a in want.items():
        for fo, c in want.items():
            got = ops.box_convert(T(a), fi, fo)
            np.testing.assert_allclose(got.numpy(), c, rtol=1e-12, atol=1e-12)
    batch = ops.box_convert(T(b.reshape(2, 3, 4)), "xyxy", "cxcywh")  # (..., 4) works
    np.testing.assert_allclose(batch.numpy().reshape(6, 4), want["cxcywh"], rtol=1e-12)
    same = T(b)
    assert ops.box_convert(same, "xyxy", "xyxy") is not same  # a copy, as torchvision
    p = T(b, True)
    assert gradcheck(lambda t: ops.box_convert(t, "cxcywh", "xywh"), [p])


def test_clip_boxes_to_image_and_remove_small_boxes():
    b = np.array([[-3.0, -1.0, 5.0, 20.0], [2.0, 3.0, 4.0, 4.5], [9.0, 9.0, 12.0, 11.0]])
    got = ops.clip_boxes_to_image(T(b), (10, 8))  # size is (height, width)
    want = b.copy()
    want[:, 0::2] = want[:, 0::2].clip(0, 8)
    want[:, 1::2] = want[:, 1::2].clip(0, 10)
    np.testing.assert_array_equal(got.numpy(), want)
    keep = ops.remove_small_boxes(T(b), 1.5)
    assert keep.dtype == cn.int64 and keep.tolist() == [0, 1, 2]
    assert ops.remove_small_boxes(T(b), 2.0).tolist() == [0, 2]  # side 1.5 < 2 removed
    assert ops.remove_small_boxes(T(b), 3.0).tolist() == [0]     # >= keeps side exactly 3


# ------------------------------------------------------------------------------ NMS
def test_nms_matches_reference_on_random_cases_with_ties():
    rng = np.random.default_rng(4)
    for trial in range(30):
        n = int(rng.integers(0, 40))
        b = random_boxes(rng, n, degenerate=False)
        s = rng.integers(0, 4, n).astype(np.float64) if trial % 2 else rng.random(n)
        thr = float(rng.choice([0.0, 0.3, 0.5, 0.7, 1.0]))
        keep = ops.nms(T(b), T(s), thr)
        assert keep.dtype == cn.int64
        assert keep.tolist() == ref_nms(b, s, thr), (trial, thr)


def test_nms_ties_keep_input_order_and_threshold_is_strict():
    # Two identical boxes with equal scores: the first one (lower index) wins.
    b = T([[0, 0, 2, 2], [0, 0, 2, 2], [5, 5, 6, 6]])
    assert ops.nms(b, T([0.5, 0.5, 0.5]), 0.5).tolist() == [0, 2]
    # IoU exactly 0.5: kept at threshold 0.5 (strictly greater suppresses), gone below it.
    b = T([[0, 0, 4, 1], [0, 0, 2, 1]])
    assert ops.nms(b, T([0.9, 0.8]), 0.5).tolist() == [0, 1]
    assert ops.nms(b, T([0.9, 0.8]), 0.4999).tolist() == [0]
    # Kept indices come out by decreasing score.
    b = T([[0, 0, 1, 1], [3, 3, 4, 4], [6, 6, 7, 7]])
    assert ops.nms(b, T([0.1, 0.9, 0.5]), 0.5).tolist() == [1, 2, 0]


def test_nms_empty_and_float32():
    assert ops.nms(cn.zeros((0, 4)), cn.zeros(0), 0.5).tolist() == []
    rng = np.random.default_rng(5)
    b, s = random_boxes(rng, 30, False), rng.random(30)
    keep = ops.nms(cn.tensor(b.astype(np.float32)), cn.tensor(s.astype(np.float32)), 0.3)
    assert keep.tolist() == ref_nms(b.astype(np.float32).astype(float), s.astype(np.float32), 0.3)


def test_batched_nms_equals_coordinate_offset_trick():
    rng = np.random.default_rng(6)
    for trial in range(20):
        n = int(rng.integers(0, 50))
        b = random_boxes(rng, n, degenerate=False) + 5.0  # >= 0, where the trick is exact
        s = rng.integers(0, 5, n).astype(np.float64)
        idxs = rng.integers(0, 3, n)
        keep = ops.batched_nms(T(b), T(s), cn.tensor(idxs), 0.5)
        offset = b.max() + 1 if n else 0.0
        want = ref_nms(b + (idxs * offset)[:, None], s, 0.5)
        assert keep.dtype == cn.int64 and keep.tolist() == want, trial


def test_batched_nms_never_suppresses_across_classes():
    b = T([[0, 0, 2, 2], [0, 0, 2, 2]])
    assert ops.batched_nms(b, T([0.9, 0.8]), cn.tensor([0, 1]), 0.5).tolist() == [0, 1]
    assert ops.batched_nms(b, T([0.9, 0.8]), cn.tensor([1, 1]), 0.5).tolist() == [0]


# ------------------------------------------------------------------------ bad input
def test_bad_input_errors_are_clear():
    good = T([[0, 0, 1, 1], [1, 1, 2, 2]])
    with pytest.raises(ValueError, match=r"nms: scores contain NaN"):
        ops.nms(good, T([0.5, float("nan")]), 0.5)
    with pytest.raises(ValueError, match=r"nms: boxes contain NaN"):
        ops.nms(T([[0, 0, 1, float("nan")]]), T([0.5]), 0.5)
    with pytest.raises(ValueError, match=r"nms: scores must have shape \(N,\).*\(2, 4\).*\(3,\)"):
        ops.nms(good, T([0.5, 0.4, 0.3]), 0.5)
    with pytest.raises(ValueError, match=r"box_iou: boxes1 must have shape \(N, 4\), got \(2, 5\)"):
        ops.box_iou(T(np.zeros((2, 5))), good)
    with pytest.raises(ValueError, match=r"batched_nms: idxs must have shape"):
        ops.batched_nms(good, T([0.5, 0.4]), cn.tensor([0]), 0.5)
    with pytest.raises(TypeError, match=r"box_area: boxes must be a Tensor"):
        ops.box_area(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"box_convert: unsupported in_fmt 'xyxyxyxy'"):
        ops.box_convert(good, "xyxyxyxy", "xyxy")
    with pytest.raises(ValueError, match=r"clip_boxes_to_image: size must be \(height, width\)"):
        ops.clip_boxes_to_image(good, 5)


def test_inverted_boxes_follow_the_formula_as_torchvision():
    # No check in the pairwise measures (as torchvision): a negative width is used as is.
    b = np.array([[2.0, 0.0, 0.0, 1.0]])
    assert ops.box_area(T(b)).item() == -2.0
    np.testing.assert_allclose(ops.box_iou(T(b), T([[0, 0, 1, 1]])).numpy(),
                               ref_pairwise(b, np.array([[0.0, 0, 1, 1]]), "iou"))


def test_public_names_import():
    from convnet.ops import batched_nms, box_iou, nms, roi_align  # noqa: F401
    assert set(ops.__all__) >= {"box_area", "box_iou", "generalized_box_iou", "distance_box_iou",
                                "complete_box_iou", "box_convert", "clip_boxes_to_image",
                                "remove_small_boxes", "nms", "batched_nms", "roi_pool",
                                "roi_align", "MultiScaleRoIAlign", "sigmoid_focal_loss",
                                "generalized_box_iou_loss"}
    with pytest.raises(AttributeError):
        ops.not_an_op  # noqa: B018

"""The detectors (retinanet_tiny, fasterrcnn_tiny): torchvision's train/eval contract, losses
that fall when overfitting two canvases, post-processing, gradients, float64, bad input.

The canvases are drawn here (filled and hollow rectangles), so nothing needs a dataset."""
import math

import numpy as np
import pytest

import convnet as cn
import convnet.ops as ops
from convnet import models
from convnet.models.detection import FasterRCNN, RetinaNet
from convnet.models.detection._utils import Matcher

NAMES = ["retinanet_tiny", "fasterrcnn_tiny"]
LOSS_KEYS = {"retinanet_tiny": {"classification", "bbox_regression"},
             "fasterrcnn_tiny": {"loss_classifier", "loss_box_reg", "loss_objectness",
                                 "loss_rpn_box_reg"}}


def canvas(rng, n_objects, size=64, dtype=np.float32):
    """A (1, size, size) image with non-overlapping rectangles: label 1 filled, 2 hollow."""
    img = np.zeros((1, size, size), dtype=dtype)
    boxes, labels = [], []
    while len(boxes) < n_objects:
        h, w = rng.integers(14, 30, size=2)
        y, x = rng.integers(0, size - h), rng.integers(0, size - w)
        b = [x, y, x + w, y + h]
        if any(not (b[2] <= c[0] or c[2] <= b[0] or b[3] <= c[1] or c[3] <= b[1]) for c in boxes):
            continue
        label = int(rng.integers(1, 3))
        img[0, y:y + h, x:x + w] = 1.0
        if label == 2:
            img[0, y + 3:y + h - 3, x + 3:x + w - 3] = 0.0
        boxes.append(b)
        labels.append(label)
    return cn.tensor(img), {"boxes": cn.tensor(np.asarray(boxes, dtype=dtype).reshape(-1, 4)),
                            "labels": cn.tensor(np.asarray(labels, dtype=np.int64))}


def batch(n=2, seed=0, objects=(2, 1), dtype=np.float32):
    rng = np.random.default_rng(seed)
    pairs = [canvas(rng, objects[i % len(objects)], dtype=dtype) for i in range(n)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def build(name, **kw):
    cn.manual_seed(0)
    return models.create(name, num_classes=3, in_channels=1, **kw)


def total(losses):
    return sum(losses.values())


# ------------------------------------------------------------------ structure
@pytest.mark.parametrize("name", NAMES)
def test_train_mode_returns_named_finite_scalar_losses(name):
    model = build(name)
    images, targets = batch()
    losses = model(images, targets)
    assert set(losses) == LOSS_KEYS[name]
    for k, v in losses.items():
        assert v.shape == () and np.isfinite(v.item()), k
    # a (N, C, H, W) batch is accepted as torchvision's list of images
    losses4 = model(cn.stack(images), targets)
    assert set(losses4) == LOSS_KEYS[name]


@pytest.mark.parametrize("name", NAMES)
def test_eval_mode_returns_one_dict_per_image(name):
    model = build(name).eval()
    images, _ = batch(3)
    with cn.no_grad():
        out = model(images)
    assert isinstance(out, list) and len(out) == 3
    for d in out:
        assert set(d) == {"boxes", "scores", "labels"}
        n = d["boxes"].shape[0]
        assert d["boxes"].shape == (n, 4) and d["scores"].shape == (n,)
        assert d["labels"].shape == (n,) and d["labels"].dtype == np.int64
        assert d["boxes"].dtype == np.float32


def test_images_of_different_sizes_are_padded_and_boxes_clipped_to_each():
    model = build("retinanet_tiny", score_thresh=0.0).eval()
    images = [cn.rand(1, 40, 56), cn.rand(1, 64, 48)]
    with cn.no_grad():
        out = model(images)
    for d, (h, w) in zip(out, [(40, 56), (64, 48)]):
        b = d["boxes"].numpy()
        assert len(b) > 0
        assert b[:, 0::2].min() >= 0 and b[:, 0::2].max() <= w
        assert b[:, 1::2].min() >= 0 and b[:, 1::2].max() <= h


# ------------------------------------------------------------------ learning
def _overfit(name, steps, lr):
    model = build(name)
    images, targets = batch()
    opt = cn.optim.Adam(model.parameters(), lr=lr)
    history = []
    for _ in range(steps):
        losses = model(images, targets)
        loss = total(losses)
        history.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model, images, targets, history


def test_fasterrcnn_losses_finite_and_decreasing_when_overfitting_two_canvases():
    _, _, _, history = _overfit("fasterrcnn_tiny", 30, 3e-3)
    assert all(math.isfinite(v) for v in history)
    assert np.mean(history[-5:]) < 0.5 * np.mean(history[:3]), history


def test_retinanet_overfits_two_canvases_and_then_finds_their_objects():
    model, images, targets, history = _overfit("retinanet_tiny", 40, 3e-3)
    assert all(math.isfinite(v) for v in history)
    assert np.mean(history[-5:]) < 0.5 * np.mean(history[:3]), history
    model.eval()
    with cn.no_grad():
        out = model(images)
    for d, t in zip(out, targets):
        iou = ops.box_iou(t["boxes"], d["boxes"]).numpy()
        best = iou.argmax(axis=1)
        # every object's best-overlapping detection has IoU > 0.5 and the object's class
        assert (iou.max(axis=1) > 0.5).all()
        assert (d["labels"].numpy()[best] == t["labels"].numpy()).all()


# ------------------------------------------------------------------ gradients, dtypes
@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_parameter(name):
    model = build(name)
    images, targets = batch()
    total(model(images, targets)).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        g = p.grad.numpy()
        assert np.isfinite(g).all() and np.abs(g).max() > 0, pname


@pytest.mark.parametrize("name", NAMES)
def test_float64_model_and_images(name):
    model = build(name).double()
    images, targets = batch(dtype=np.float64)
    losses = model(images, targets)
    assert all(v.dtype == np.float64 for v in losses.values())
    total(losses).backward()
    assert all(p.grad.dtype == np.float64 for p in model.parameters())
    model.eval()
    with cn.no_grad():
        out = model(images)
    assert out[0]["boxes"].dtype == np.float64 and out[0]["scores"].dtype == np.float64


# ------------------------------------------------------------------ losses equal torchvision's
def test_retinanet_loss_equals_per_image_torchvision_formula():
    """The batched loss equals torchvision's per-image loop: focal loss summed over
    non-ignored anchors / max(1, foreground), L1 over foreground / max(1, foreground), mean
    over images (written out here with NumPy, float64)."""
    model = build("retinanet_tiny").double()
    images, targets = batch(3, objects=(2, 0, 3), dtype=np.float64)
    il, tg = model.transform(images, targets)
    feats = list(model.backbone(il.tensors).values())
    head = model.head(feats)
    anchors = model.anchor_generator(il, feats)
    got = model.compute_loss(tg, head, anchors)
    logits, reg = head["cls_logits"].numpy(), head["bbox_regression"].numpy()
    cls_l, reg_l = [], []
    for i, t in enumerate(tg):
        a = anchors[i].numpy()
        gt = t["boxes"].numpy()
        if len(gt):
            m = model.proposal_matcher(ops.box_iou(t["boxes"], anchors[i])).numpy()
        else:
            m = np.full(len(a), -1)
        fg = m >= 0
        nfg = max(1, fg.sum())
        y = np.zeros_like(logits[i])
        y[fg, t["labels"].numpy()[m[fg]]] = 1
        x = logits[i]
        p = 1 / (1 + np.exp(-x))
        ce = np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))
        pt = p * y + (1 - p) * (1 - y)
        fl = (0.25 * y + 0.75 * (1 - y)) * ce * (1 - pt) ** 2
        cls_l.append(fl[m != Matcher.BETWEEN_THRESHOLDS].sum() / nfg)
        g, an = gt[m[fg]] if len(gt) else np.zeros((0, 4)), a[fg]
        aw, ah = an[:, 2] - an[:, 0], an[:, 3] - an[:, 1]
        gw, gh = g[:, 2] - g[:, 0], g[:, 3] - g[:, 1]
        tgt = np.stack([(g[:, 0] + gw / 2 - an[:, 0] - aw / 2) / aw,
                        (g[:, 1] + gh / 2 - an[:, 1] - ah / 2) / ah,
                        np.log(gw / aw), np.log(gh / ah)], axis=1)
        reg_l.append(np.abs(reg[i][fg] - tgt).sum() / nfg)
    np.testing.assert_allclose(got["classification"].item(), np.mean(cls_l), rtol=1e-12)
    np.testing.assert_allclose(got["bbox_regression"].item(), np.mean(reg_l), rtol=1e-12)


# ------------------------------------------------------------------ post-processing
def _crafted_retinanet_outputs(model, logits_at, k):
    """Head outputs with zero regression and the given logits at (anchor, class) places."""
    images = [cn.zeros(1, 64, 64)]
    il, _ = model.transform(images)
    feats = list(model.backbone(il.tensors).values())
    anchors = model.anchor_generator(il, feats)
    a_total = anchors[0].shape[0]
    cls = np.full((1, a_total, k), -20.0, dtype=np.float32)
    for (a, c), v in logits_at.items():
        cls[0, a, c] = v
    per_level = [f.shape[-2] * f.shape[-1] * model.anchor_generator.num_anchors_per_location()[0]
                 for f in feats]
    heads = {"cls_logits": cn.tensor(cls), "bbox_regression": cn.zeros(1, a_total, 4)}
    return heads, anchors, il.image_sizes, per_level


def test_retinanet_postprocess_threshold_nms_and_limit():
    model = build("retinanet_tiny").eval()
    heads, anchors, sizes, per_level = _crafted_retinanet_outputs(model, {}, 3)
    a = anchors[0].numpy()
    iou = ops.box_iou(anchors[0], anchors[0]).numpy()
    first = 200                                    # an anchor inside the image
    overlap = int(np.flatnonzero((iou[first] > 0.55) & (np.arange(len(a)) != first))[0])
    apart = int(np.flatnonzero(iou[first] == 0)[-1])
    logit = lambda p: math.log(p / (1 - p))  # noqa: E731
    places = {(first, 1): logit(0.9), (overlap, 1): logit(0.8),   # suppressed by NMS
              (overlap, 2): logit(0.7),                          # other class: kept
              (apart, 1): logit(0.6), (apart, 2): logit(0.04)}   # below score_thresh
    heads, anchors, sizes, per_level = _crafted_retinanet_outputs(model, places, 3)
    d = model.postprocess_detections(heads, anchors, sizes, per_level)[0]
    np.testing.assert_allclose(d["scores"].numpy(), [0.9, 0.7, 0.6], rtol=1e-5)
    assert d["labels"].numpy().tolist() == [1, 2, 1]
    want = ops.clip_boxes_to_image(cn.tensor(a[[first, overlap, apart]]), (64, 64)).numpy()
    np.testing.assert_allclose(d["boxes"].numpy(), want, atol=1e-5)
    model.detections_per_img = 2
    d = model.postprocess_detections(heads, anchors, sizes, per_level)[0]
    assert d["scores"].shape == (2,)
    model.score_thresh = 0.75
    d = model.postprocess_detections(heads, anchors, sizes, per_level)[0]
    np.testing.assert_allclose(d["scores"].numpy(), [0.9], rtol=1e-5)


def test_fasterrcnn_postprocess_drops_background_thresholds_and_nms():
    model = build("fasterrcnn_tiny").eval()
    rh = model.roi_heads
    proposals = [np.array([[10, 10, 30, 30], [11, 11, 31, 31], [40, 40, 60, 60]], np.float32)]
    probs = np.array([[0.05, 0.9, 0.05],     # class 1
                      [0.1, 0.8, 0.1],       # class 1, overlaps the first: suppressed
                      [0.97, 0.01, 0.02]])   # background: nothing above 0.05
    logits = cn.tensor(np.log(probs).astype(np.float32))
    out = rh.postprocess_detections(logits, cn.zeros(3, 12), proposals, [(64, 64)])[0]
    np.testing.assert_allclose(out["scores"].numpy(), [0.9, 0.1], rtol=1e-5)
    assert out["labels"].numpy().tolist() == [1, 2]
    np.testing.assert_allclose(out["boxes"].numpy(), proposals[0][[0, 1]], atol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_detections_per_img_limits_the_output(name):
    opt = {"retinanet_tiny": {"detections_per_img": 5, "score_thresh": 0.0},
           "fasterrcnn_tiny": {"box_detections_per_img": 5, "box_score_thresh": 0.0}}[name]
    model = build(name, **opt).eval()
    images, _ = batch()
    with cn.no_grad():
        out = model(images)
    assert all(d["scores"].shape[0] == 5 for d in out)
    for d in out:
        s = d["scores"].numpy()
        assert (np.diff(s) <= 0).all()


def test_fasterrcnn_proposals_sorted_and_limited():
    model = build("fasterrcnn_tiny", rpn_post_nms_top_n_test=20)
    images, _ = batch()
    props = model.proposals(images)
    assert model.training  # proposals() restores the mode
    for p in props:
        assert p["boxes"].shape[0] <= 20 and p["boxes"].shape == (p["scores"].shape[0], 4)
        assert (np.diff(p["scores"].numpy()) <= 0).all()


# ------------------------------------------------------------------ images without objects
@pytest.mark.parametrize("name", NAMES)
def test_images_without_objects_train(name):
    model = build(name)
    images, targets = batch(objects=(2, 0))
    assert targets[1]["boxes"].shape == (0, 4)
    losses = model(images, targets)
    assert all(np.isfinite(v.item()) for v in losses.values())
    empty = [{"boxes": cn.zeros(0, 4), "labels": cn.zeros(0, dtype=cn.int64)}] * 2
    losses = model(images, empty)
    reg = "bbox_regression" if name == "retinanet_tiny" else "loss_box_reg"
    assert losses[reg].item() == 0.0
    total(losses).backward()


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("name", NAMES)
def test_bad_input_gives_clear_errors(name):
    model = build(name)
    images, targets = batch()
    with pytest.raises(ValueError, match="targets should not be None in training"):
        model(images)
    bad = [dict(targets[0], boxes=cn.tensor([[30.0, 10, 20, 40], [1, 1, 5, 5]])), targets[1]]
    bad[0]["labels"] = cn.tensor([1, 1])
    with pytest.raises(ValueError, match=r"positive height and width.*\[30\.0, 10\.0, 20\.0, 40\.0\]"):
        model(images, bad)
    with pytest.raises(ValueError, match=r"shape \(K, 4\), got \(2, 3\)"):
        model(images, [dict(targets[0], boxes=cn.zeros(2, 3)), targets[1]])
    with pytest.raises(ValueError, match="2 targets for 3 images"):
        model(images + images[:1], targets)
    with pytest.raises(ValueError, match="labels"):
        model(images, [dict(targets[0], labels=cn.tensor([1])), targets[1]])
    with pytest.raises(ValueError, match=r"must lie in \[\d, 3\)"):
        model(images, [dict(targets[0], labels=cn.tensor([1, 7])), targets[1]])
    with pytest.raises(ValueError, match=r"\(C, H, W\), got shape \(64, 64\)"):
        model([images[0][0]], targets[:1])
    with pytest.raises(ValueError, match="NaN"):
        model(images, [dict(targets[0], boxes=cn.tensor([[np.nan, 0, 5, 5], [1, 1, 5, 5]])),
                       targets[1]])


def test_fasterrcnn_label_zero_is_the_background():
    model = build("fasterrcnn_tiny")
    images, targets = batch()
    t0 = dict(targets[0], labels=cn.tensor([0, 1]))
    with pytest.raises(ValueError, match="background"):
        model(images, [t0, targets[1]])
    # RetinaNet has no background output: label 0 trains output 0
    assert np.isfinite(total(build("retinanet_tiny")(images, [t0, targets[1]])).item())


# ------------------------------------------------------------------ zoo
def test_zoo_entries_and_summary():
    from convnet.analysis import summary

    assert models.model_info("retinanet_tiny").family == "Detection"
    assert isinstance(models.create("retinanet_tiny"), RetinaNet)
    m = models.create("fasterrcnn_tiny", num_classes=11, in_channels=3)
    assert isinstance(m, FasterRCNN) and m.roi_heads.box_predictor.cls_score.out_features == 11
    assert models.count_parameters("fasterrcnn_tiny") == sum(p.numel() for p in
                                                             models.create("fasterrcnn_tiny").parameters())
    s = summary(models.create("retinanet_tiny"), (1, 64, 64))
    assert s.total_params == models.count_parameters("retinanet_tiny")
    assert any(r.name == "head.classification_head.cls_logits" for r in s.rows)

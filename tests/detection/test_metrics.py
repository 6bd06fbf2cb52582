"""convnet.metrics.mean_average_precision against pycocotools' COCOeval on random cases."""
import contextlib
import io

import numpy as np
import pytest

import convnet as cn
from convnet.metrics import mean_average_precision

pycocotools = pytest.importorskip("pycocotools")
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402


def coco_numbers(predictions, targets):
    """COCOeval's 12 stats and per-class AP / AR@100 for torchmetrics-format inputs."""
    images, anns, results = [], [], []
    classes = sorted({int(c) for x in predictions + targets for c in np.asarray(x["labels"]).tolist()})
    for i, (p, t) in enumerate(zip(predictions, targets)):
        images.append({"id": i + 1, "width": 500, "height": 500})
        for box, label in zip(np.asarray(t["boxes"], dtype=np.float64).reshape(-1, 4), t["labels"]):
            x1, y1, x2, y2 = box.tolist()
            w, h = x2 - x1, y2 - y1
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": int(label),
                         "bbox": [x1, y1, w, h], "area": w * h, "iscrowd": 0})
        for box, score, label in zip(np.asarray(p["boxes"], dtype=np.float64).reshape(-1, 4),
                                     p["scores"], p["labels"]):
            x1, y1, x2, y2 = box.tolist()
            results.append({"image_id": i + 1, "category_id": int(label),
                            "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(score)})
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": anns,
                      "categories": [{"id": c, "name": str(c)} for c in classes]}
        gt.createIndex()
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    prec, rec = ev.eval["precision"], ev.eval["recall"]
    per_class = []
    for k in range(len(classes)):
        s = prec[:, :, k, 0, -1]
        per_class.append(float(np.mean(s[s > -1])) if (s > -1).any() else -1.0)
    per_class_ar = []
    for k in range(len(classes)):
        s = rec[:, k, 0, -1]
        per_class_ar.append(float(np.mean(s[s > -1])) if (s > -1).any() else -1.0)
    return ev.stats, classes, per_class, per_class_ar


STAT_KEYS = ["map", "map_50", "map_75", "map_small", "map_medium", "map_large",
             "mar_1", "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large"]


def random_case(seed, n_images=7, n_classes=4, big_image=False):
    rng = np.random.default_rng(seed)
    preds, targets = [], []
    for i in range(n_images):
        kind = rng.integers(0, 5)
        n_gt = 0 if kind == 0 else int(rng.integers(1, 9))        # some images without objects
        side = np.exp(rng.uniform(np.log(8), np.log(160), size=(n_gt, 2)))  # small..large
        xy = rng.uniform(0, 300, size=(n_gt, 2))
        gt = np.concatenate([xy, xy + side], axis=1)
        gl = rng.integers(0, n_classes, size=n_gt)
        boxes, scores, labels = [], [], []
        if kind != 1:                                             # some images without predictions
            for b, c in zip(gt, gl):
                for _ in range(int(rng.integers(0, 3))):          # misses and duplicates
                    wh = b[2:] - b[:2]
                    jit = rng.normal(scale=0.12, size=4) * np.r_[wh, wh]
                    boxes.append(b + jit)
                    labels.append(c if rng.random() > 0.15 else rng.integers(0, n_classes + 1))
            for _ in range(int(rng.integers(0, 5))):              # false positives
                xy0 = rng.uniform(0, 300, size=2)
                boxes.append(np.r_[xy0, xy0 + rng.uniform(5, 120, size=2)])
                labels.append(rng.integers(0, n_classes + 1))     # class n_classes has no gt
            scores = list(np.round(rng.uniform(0, 1, size=len(boxes)), 1))  # many ties
        if big_image and i == 0:                                  # > 100 detections of one class
            for _ in range(130):
                xy0 = rng.uniform(0, 300, size=2)
                boxes.append(np.r_[xy0, xy0 + rng.uniform(5, 120, size=2)])
                labels.append(0)
                scores.append(float(np.round(rng.uniform(), 2)))
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 0.5)
        preds.append({"boxes": boxes, "scores": np.asarray(scores, dtype=np.float64),
                      "labels": np.asarray(labels, dtype=np.int64)})
        targets.append({"boxes": gt, "labels": gl.astype(np.int64)})
    return preds, targets


def check_against_coco(preds, targets):
    stats, classes, per_class, per_class_ar = coco_numbers(preds, targets)
    ours = mean_average_precision(preds, targets)
    got = np.array([ours[k] for k in STAT_KEYS])
    np.testing.assert_allclose(got, stats, rtol=0, atol=1e-6)
    assert ours["classes"] == classes
    np.testing.assert_allclose(ours["map_per_class"], per_class, rtol=0, atol=1e-6)
    np.testing.assert_allclose(ours["mar_100_per_class"], per_class_ar, rtol=0, atol=1e-6)
    return ours


@pytest.mark.parametrize("seed", range(10))
def test_matches_pycocotools_on_random_cases(seed):
    preds, targets = random_case(seed, big_image=(seed % 3 == 0))
    ours = check_against_coco(preds, targets)
    assert 0.0 < ours["map"] < 1.0


def test_matches_pycocotools_with_tensors_and_exact_ties():
    # identical duplicates with equal scores across and within images: the stable order decides
    box = [10.0, 10.0, 60.0, 50.0]
    preds = [{"boxes": cn.tensor([box, box, [12.0, 9.0, 61.0, 52.0]], dtype=cn.float64),
              "scores": cn.tensor([0.5, 0.5, 0.5], dtype=cn.float64), "labels": cn.tensor([1, 1, 1])},
             {"boxes": cn.tensor([box, [200.0, 200.0, 230.0, 260.0]], dtype=cn.float64),
              "scores": cn.tensor([0.5, 0.5], dtype=cn.float64), "labels": cn.tensor([1, 2])},
             {"boxes": cn.zeros(0, 4), "scores": cn.zeros(0), "labels": cn.zeros(0, dtype=cn.int64)}]
    targets = [{"boxes": cn.tensor([box, [11.0, 11.0, 60.0, 50.0]]), "labels": cn.tensor([1, 1])},
               {"boxes": cn.tensor([[0.0, 0.0, 5.0, 5.0]]), "labels": cn.tensor([1])},
               {"boxes": cn.tensor([[100.0, 100.0, 250.0, 300.0]]), "labels": cn.tensor([2])}]
    np_preds = [{k: v.numpy() for k, v in p.items()} for p in preds]
    np_targets = [{k: v.numpy() for k, v in t.items()} for t in targets]
    ours = check_against_coco(np_preds, np_targets)
    assert mean_average_precision(preds, targets) == ours


def test_matches_pycocotools_on_iou_ties_and_area_priority():
    # a detection with exactly equal IoU (9/11) to two ground truths: COCOeval gives it the later
    # one, so the second detection (a copy of that one) must fall back to the first at IoU 2/3
    tie = ({"boxes": np.array([[1.0, 0, 11, 10], [2, 0, 12, 10]]), "scores": np.array([0.9, 0.8]),
            "labels": np.array([0, 0])},
           {"boxes": np.array([[0.0, 0, 10, 10], [2, 0, 12, 10]]), "labels": np.array([0, 0])})
    # in the 'small' range the 30x30 ground truth is regular and the 34x34 one is ignored: the
    # detection takes the regular one although its IoU with the ignored one is higher
    area = ({"boxes": np.array([[0.0, 0, 33, 33]]), "scores": np.array([0.7]), "labels": np.array([0])},
            {"boxes": np.array([[0.0, 0, 30, 30], [0, 0, 34, 34]]), "labels": np.array([0, 0])})
    for preds, targets in ([tie[0]], [tie[1]]), ([area[0]], [area[1]]), ([tie[0], area[0]], [tie[1], area[1]]):
        check_against_coco(preds, targets)
    out = mean_average_precision([tie[0]], [tie[1]])
    assert 0.5 < out["map_50"] and out["map"] < out["map_50"]


def test_hand_case_values():
    # one gt, two detections: the higher-scored one misses, the second hits -> AP 0.5 at every IoU
    preds = [{"boxes": [[100, 100, 120, 120], [0, 0, 10, 10]], "scores": [0.9, 0.8], "labels": [3, 3]}]
    targets = [{"boxes": [[0, 0, 10, 10]], "labels": [3]}]
    out = mean_average_precision(preds, targets)
    assert out["map"] == pytest.approx(0.5, abs=1e-12)
    assert out["mar_1"] == 0.0 and out["mar_10"] == 1.0
    assert out["map_small"] == pytest.approx(0.5) and out["map_medium"] == -1.0
    # a prediction-only class: -1 for that class, ignored by the means
    preds[0]["labels"] = [7, 3]
    out = mean_average_precision(preds, targets)
    assert out["classes"] == [3, 7] and out["map_per_class"][1] == -1.0
    assert out["map"] == pytest.approx(1.0, abs=1e-12)
    # no ground truth at all: everything -1
    out = mean_average_precision([{"boxes": [[0, 0, 1, 1]], "scores": [1.0], "labels": [0]}],
                                 [{"boxes": np.zeros((0, 4)), "labels": []}])
    assert out["map"] == -1.0 and out["mar_100"] == -1.0


def test_custom_thresholds():
    preds, targets = random_case(3)
    out = mean_average_precision(preds, targets, iou_thresholds=[0.5], max_detection_thresholds=[5])
    full = mean_average_precision(preds, targets)
    assert out["map_75"] == -1.0 and "mar_5" in out and "mar_100" not in out
    assert out["map"] == pytest.approx(out["map_50"]) and out["map_50"] <= full["map_50"] + 1e-12
    xywh = [{**p, "boxes": np.c_[p["boxes"][:, :2], p["boxes"][:, 2:] - p["boxes"][:, :2]]} for p in preds]
    xywh_t = [{**t, "boxes": np.c_[t["boxes"][:, :2], t["boxes"][:, 2:] - t["boxes"][:, :2]]} for t in targets]
    alt = mean_average_precision(xywh, xywh_t, box_format="xywh")
    assert abs(alt["map"] - full["map"]) < 1e-9


def test_bad_inputs():
    p = {"boxes": [[0, 0, 10, 10]], "scores": [0.5], "labels": [1]}
    t = {"boxes": [[0, 0, 10, 10]], "labels": [1]}
    with pytest.raises(ValueError, match="1 predictions but 2 targets"):
        mean_average_precision([p], [t, t])
    with pytest.raises(ValueError, match=r"predictions\[0\]\['scores'\] contains NaN"):
        mean_average_precision([{**p, "scores": [float("nan")]}], [t])
    with pytest.raises(ValueError, match=r"targets\[0\]\['boxes'\]\[0\].*negative width"):
        mean_average_precision([p], [{**t, "boxes": [[10, 0, 0, 10]]}])
    with pytest.raises(ValueError, match=r"must have shape \(N, 4\), got \(1, 3\)"):
        mean_average_precision([{**p, "boxes": [[0, 0, 1]]}], [t])
    with pytest.raises(ValueError, match="1 boxes but 2 labels"):
        mean_average_precision([p], [{**t, "labels": [1, 2]}])
    with pytest.raises(ValueError, match="has no 'scores'"):
        mean_average_precision([{"boxes": p["boxes"], "labels": [1]}], [t])
    with pytest.raises(ValueError, match="crowd"):
        mean_average_precision([p], [{**t, "iscrowd": [1]}])
    with pytest.raises(TypeError, match="lists of dicts"):
        mean_average_precision(p, t)


def test_lazy_attribute():
    assert cn.metrics.mean_average_precision is mean_average_precision

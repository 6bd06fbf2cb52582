"""`convnet train --task detect`, and evaluate / predict / summary on detection runs, end to end
on a few digit canvases (files written here)."""
import json
import sys

import numpy as np
import pytest
from PIL import Image

import convnet.nn as nn
from convnet import models
from convnet.cli.main import main
from convnet.data.datasets import MNISTDetection
from convnet.functional import cross_entropy
from convnet.tensor import Tensor
from convnet.training.detection import DetectionTrainer
from convnet.training.checkpoint import load_file


class StandInDetector(nn.Module):
    """A detector with torchvision's interface that needs no training to give boxes: in eval
    mode each image gets the box of its ink (pixels > 0.5) with score 0.9 and the class of a
    linear layer on the mean pixel, plus the whole image with score 0.3 (label 1). In train
    mode two losses: cross-entropy of that layer against each image's first label, and a
    parameter pulled towards the mean box (so both parts are real and differentiable)."""

    def __init__(self, num_classes=11, in_channels=1):
        super().__init__()
        self.fc = nn.Linear(in_channels, num_classes)
        self.box = nn.Parameter(Tensor._make(np.zeros(4, np.float32)))
        self.num_classes = num_classes

    def forward(self, images, targets=None):
        if isinstance(images, list):
            images = Tensor._make(np.stack([im._data for im in images]))
        logits = self.fc(images.mean(dim=(2, 3)))
        if self.training:
            first = np.array([int(t["labels"]._data[0]) if len(t["labels"]._data) else 0
                              for t in targets])
            mean_box = np.stack([t["boxes"]._data.reshape(-1, 4).mean(0) if len(t["boxes"]._data)
                                 else np.zeros(4, np.float32) for t in targets]).mean(0) / 64
            return {"loss_classifier": cross_entropy(logits, Tensor._make(first)),
                    "loss_box_reg": ((self.box - Tensor._make(mean_box.astype(np.float32))) ** 2)
                    .sum()}
        out = []
        for x, lg in zip(images._data, logits._data):
            ink = x.max(axis=0) > 0.5
            rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
            boxes, scores, labels = [], [], []
            if rows.size:
                boxes.append([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1])
                scores.append(0.9)
                labels.append(1 + int(np.argmax(lg[1:])))
            boxes.append([0, 0, x.shape[2], x.shape[1]])
            scores.append(0.3)
            labels.append(1)
            out.append({"boxes": Tensor._make(np.asarray(boxes, np.float32)),
                        "scores": Tensor._make(np.asarray(scores, np.float32)),
                        "labels": Tensor._make(np.asarray(labels, np.int64))})
        return out


if "zz_detect_standin" not in models.list_models():
    models.register("zz_detect_standin", StandInDetector, family="Detection")

TINY = ["--dataset", "mnist-detect", "--train-canvases", "40", "--test-canvases", "12",
        "--batch-size", "8", "--no-progress", "--workers", "1", "--warmup-steps", "2"]
# the real one-stage detector, narrowed so that a few canvases train in about a second
SMALL_RETINA = ["--model", "retinanet_tiny", "--model-option", "widths=[8,8,16,16,16]",
                "--model-option", "fpn_channels=16", "--model-option", "head_convs=1"]


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVNET_DATA", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)


def train(tmp_path, *extra, name="run", model=("--model", "zz_detect_standin")):
    out = tmp_path / name
    assert main(["train", *model, *TINY, "--out", str(out), *extra]) == 0
    return out


def weights(out):
    return load_file(out / "model.safetensors")


def test_train_detect_writes_outputs(tmp_path, capsys):
    out = train(tmp_path, "--epochs", "2", model=SMALL_RETINA)
    printed = capsys.readouterr().out
    for f in ("model.safetensors", "checkpoint.safetensors", "config.json", "metrics.json",
              "curves.png"):
        assert (out / f).is_file(), f
    # one line per epoch with the loss parts, lr, images/s and the validation mAP
    lines = [ln for ln in printed.splitlines() if ln.startswith("epoch ")]
    assert len(lines) == 2
    for part in ("classification", "bbox_regression", "val mAP@0.5", "mAP", "lr", "img/s"):
        assert part in lines[0], part
    assert "test mAP@0.5" in printed and "COCO mAP" in printed and "mAR@100" in printed
    assert "36 train / 4 validation" in printed
    m = json.loads((out / "metrics.json").read_text())
    h = m["history"][0]
    assert {"train_loss", "train_classification", "train_bbox_regression", "lr", "images_per_s",
            "val_map", "val_map_50", "val_map_75", "val_mar_100"} <= set(h)
    assert h["train_loss"] == pytest.approx(h["train_classification"] + h["train_bbox_regression"],
                                            rel=1e-6)
    for k in ("test_map", "test_map_50", "test_map_75", "test_mar_100", "train_time_s"):
        assert isinstance(m[k], float), k
    assert list(m["per_class_ap"]) == [str(d) for d in range(10)]
    assert m["data"]["train_canvases"] == 40 and m["data"]["canvas_size"] == 64
    assert m["validation"] == {"source": "training canvases", "fraction": 0.1, "images": 4,
                               "seed": 0}
    assert m["test_objects"] == sum(len(MNISTDetection(train=False, length=12)[i][1]["labels"])
                                    for i in range(12))
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["task"] == "detect" and cfg["class_names"][0] == "__background__"
    assert Image.open(out / "curves.png").size == (1000, 400)


def test_detect_defaults_and_task_auto(tmp_path):
    from convnet.cli.main import build_parser
    from convnet.cli.train import resolve_config

    args = build_parser().parse_args(["train", "--model", "retinanet_tiny", "--dataset",
                                      "mnist-detect"])
    cfg, out = resolve_config(args)
    assert cfg["task"] == "detect"  # auto for a detector
    assert (cfg["optimizer"], cfg["lr"], cfg["batch_size"], cfg["epochs"]) == ("adam", 2e-3, 16, 4)
    assert (cfg["train_canvases"], cfg["test_canvases"], cfg["canvas_size"]) == (10000, 1000, 64)
    args = build_parser().parse_args(["train", "--model", "fasterrcnn_tiny", "--dataset",
                                      "mnist-detect", "--lr", "0.01", "--epochs", "2"])
    cfg, _ = resolve_config(args)
    assert (cfg["lr"], cfg["epochs"], cfg["batch_size"]) == (0.01, 2, 16)  # given ones kept


def test_detect_resume_is_exact(tmp_path, capsys):
    extra = ["--augment", "scale", "--epochs", "2"]
    full = train(tmp_path, *extra, name="full", model=SMALL_RETINA)
    part = train(tmp_path, "--augment", "scale", "--epochs", "1", name="part", model=SMALL_RETINA)
    assert main(["train", "--out", str(part), "--resume", "--epochs", "2", "--no-progress"]) == 0
    assert "resuming" in capsys.readouterr().out
    hf = json.loads((full / "metrics.json").read_text())["history"]
    hp = json.loads((part / "metrics.json").read_text())["history"]
    # the 1-epoch run's schedule was cosine over 1 epoch: its first epoch differs, but the
    # stretched schedule gives epoch 2 the full run's learning rate
    assert hp[1]["lr"] == hf[1]["lr"]
    # now an interruption after epoch 1 of a 2-epoch run (Ctrl-C), resumed: identical numbers
    real = DetectionTrainer.train_epoch
    calls = {"n": 0}

    def interrupted(self):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(self)

    DetectionTrainer.train_epoch = interrupted
    try:
        status = main(["train", *SMALL_RETINA, *TINY, *extra, "--out", str(tmp_path / "cut")])
    finally:
        DetectionTrainer.train_epoch = real
    assert status == 130
    err = capsys.readouterr().err
    assert "interrupted during epoch 2/2" in err and "checkpoint of epoch 1" in err
    assert "--resume" in err
    assert main(["train", "--out", str(tmp_path / "cut"), "--resume", "--no-progress"]) == 0
    hc = json.loads((tmp_path / "cut" / "metrics.json").read_text())["history"]
    strip = [[{k: v for k, v in h.items() if k not in ("train_time_s", "images_per_s")}
              for h in hist] for hist in (hf, hc)]
    assert strip[0] == strip[1]
    wf, wc = weights(full), weights(tmp_path / "cut")
    assert all(np.array_equal(wf[k], wc[k]) for k in wf)


def test_existing_run_overwrite(tmp_path, capsys):
    out = train(tmp_path, "--epochs", "1")
    assert main(["train", "--model", "zz_detect_standin", *TINY, "--out", str(out)]) == 2
    assert "already holds a finished run" in capsys.readouterr().err
    assert main(["train", "--model", "zz_detect_standin", *TINY, "--epochs", "2", "--out", str(out),
                 "--overwrite"]) == 0
    assert json.loads((out / "metrics.json").read_text())["epochs_completed"] == 2


def test_evaluate_detection_run(tmp_path, capsys):
    out = train(tmp_path, "--epochs", "1")
    m = json.loads((out / "metrics.json").read_text())
    capsys.readouterr()
    assert main(["evaluate", str(out)]) == 0
    text = capsys.readouterr().out
    for part in ("COCO mAP", "mAP@0.5", "mAP@0.75", "mAR@100", "AP@0.5", "12 canvases"):
        assert part in text, part
    rows = [ln.split() for ln in text.splitlines() if ln.startswith("  ") and
            ln.split()[0] in [str(d) for d in range(10)]]
    assert len(rows) == 10
    assert main(["evaluate", str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    # the same weights on the same test canvases: the numbers training reported
    for k in ("map", "map_50", "map_75", "mar_100"):
        assert res[k] == pytest.approx(m["test_" + k], abs=1e-12)
    assert res["per_class_ap"] == m["per_class_ap"]
    # the stand-in's ink box covers a lone digit exactly: a canvas with one object scores it
    assert 0 < res["map_50"] <= 1


def test_predict_draws_boxes(tmp_path, capsys):
    out = train(tmp_path, "--epochs", "1")
    x, target = MNISTDetection(train=False, length=1, min_objects=1, max_objects=1)[0]
    canvas = (x.numpy()[0] * 255).round().astype(np.uint8)
    Image.fromarray(canvas).save(tmp_path / "canvas.png")
    Image.fromarray(255 - canvas).save(tmp_path / "paper.png")  # dark ink on white paper
    capsys.readouterr()
    assert main(["predict", str(out), "canvas.png", "paper.png", "--scale", "4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("canvas.png: 1 object with score >= 0.5 -> canvas_boxes.png")
    assert lines[2].startswith("paper.png: 1 object") and lines[2].endswith("[inverted]")
    x1, y1, x2, y2 = target["boxes"].numpy()[0]
    name, score = lines[1].split()[:2]
    assert name in [str(d) for d in range(10)] and score == "0.900"
    assert f"box ({x1:.1f}, {y1:.1f}, {x2:.1f}, {y2:.1f})" in lines[1]
    assert lines[3].split()[2:] == lines[1].split()[2:]  # the same box after inverting
    img = np.asarray(Image.open(tmp_path / "canvas_boxes.png").convert("RGB"))
    assert img.shape == (64 * 4, 64 * 4, 3)
    from convnet.cli.predict import _palette

    colour = _palette(11)[int(name) + 1]
    # the box's left edge is drawn in its class colour, below the label
    assert (img[int(y2 * 4) - 4, int(x1 * 4)] == colour).all()
    # lower threshold: the 0.3 whole-image box too; JSON; --out folder
    assert main(["predict", str(out), "canvas.png", "--score-threshold", "0.2", "--json",
                 "--out", "drawn"]) == 0
    r = json.loads(capsys.readouterr().out)[0]
    assert [d["score"] for d in r["detections"]] == pytest.approx([0.9, 0.3])
    assert r["detections"][1]["box"] == [0, 0, 64, 64]
    assert (tmp_path / "drawn" / "canvas_boxes.png").is_file()
    assert main(["predict", str(out), "missing.png", "canvas.png"]) == 2
    assert "missing.png" in capsys.readouterr().err


def test_summary_of_detectors(tmp_path, capsys):
    assert main(["summary", "retinanet_tiny"]) == 0
    text = capsys.readouterr().out
    n = sum(p.numel() for p in models.create("retinanet_tiny", num_classes=11).parameters())
    assert f"Total params: {n:,}" in text
    assert "[1, 16, 64, 64]" in text  # traced on a 64x64 canvas (the stem keeps its size)
    out = train(tmp_path, "--epochs", "1", model=SMALL_RETINA)
    capsys.readouterr()
    assert main(["summary", str(out), "--json"]) == 0
    assert "backbone.body.stem.0" in capsys.readouterr().out


def test_fasterrcnn_reports_proposal_recall(tmp_path, capsys):
    model = ["--model", "fasterrcnn_tiny", "--model-option", "widths=[8,8,16,16,16]",
             "--model-option", "fpn_channels=16", "--model-option", "representation_size=32"]
    out = train(tmp_path, "--epochs", "1", "--train-canvases", "16", "--test-canvases", "8",
                "--val-split", "0", model=model)
    assert "RPN proposal recall@100" in capsys.readouterr().out
    m = json.loads((out / "metrics.json").read_text())
    assert 0 <= m["proposal_recall_100"] <= 1
    assert {"train_loss_classifier", "train_loss_objectness"} <= set(m["history"][0])
    assert "val_map" not in m["history"][0]  # --val-split 0: nothing to validate on


@pytest.mark.parametrize("argv, message", [
    (["--task", "detect", "--model", "lenet5", "--dataset", "mnist-detect"],
     "--task detect: lenet5 is not a detector"),
    (["--model", "retinanet_tiny", "--dataset", "mnist-bundled"],
     "--task detect: --dataset mnist-bundled has no boxes"),
    (["--model", "lenet5", "--dataset", "mnist-detect"], "is for detection"),
    (["--task", "classify", "--model", "retinanet_tiny", "--dataset", "mnist-detect"],
     "retinanet_tiny is a detector"),
    (["--model", "retinanet_tiny", "--dataset", "mnist-detect", "--limit-train", "5"],
     "--limit-train does not apply to --task detect; use --train-canvases"),
    (["--model", "lenet5", "--canvas-size", "64"], "--canvas-size applies to --task detect only"),
    (["--model", "retinanet_tiny", "--dataset", "mnist-detect", "--augment", "flip"],
     "--augment flip: not a detection augmentation"),
    (["--model", "retinanet_tiny", "--dataset", "mnist-detect", "--canvas-size", "32"],
     "--canvas-size 32: smaller than the largest object"),
    (["--model", "retinanet_tiny", "--dataset", "mnist-detect", "--train-canvases", "1"],
     "--train-canvases must be >= 2"),
])
def test_errors(tmp_path, capsys, argv, message):
    assert main(["train", *argv, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_predict_errors(tmp_path, capsys):
    out = train(tmp_path, "--epochs", "1")
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(tmp_path / "c.png")
    assert main(["predict", str(out), "c.png", "--score-threshold", "2"]) == 2
    assert "--score-threshold: expected a score in [0, 1]" in capsys.readouterr().err
    cls = tmp_path / "cls"
    assert main(["train", "--model", "lenet5", "--limit-train", "64", "--limit-test", "32",
                 "--epochs", "1", "--no-progress", "--out", str(cls)]) == 0
    assert main(["predict", str(cls), "c.png", "--score-threshold", "0.3"]) == 2
    assert "not a detection run" in capsys.readouterr().err


def test_progress_bar_on_a_terminal_only(tmp_path, capsys, monkeypatch):
    train(tmp_path, "--epochs", "1", name="piped")  # --no-progress
    assert "img/s" not in capsys.readouterr().err
    argv = ["train", "--model", "zz_detect_standin", *[a for a in TINY if a != "--no-progress"],
            "--epochs", "1"]
    assert main([*argv, "--out", str(tmp_path / "auto")]) == 0  # stderr is no terminal here
    assert "epoch 1/1" not in capsys.readouterr().err
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert main([*argv, "--out", str(tmp_path / "tty")]) == 0
    assert "epoch 1/1" in capsys.readouterr().err  # tqdm's bar, with its description


def test_fashion_canvases_from_idx_files(tmp_path, capsys):
    from convnet.data import datasets as D

    rng = np.random.default_rng(0)
    folder = tmp_path / "fm"
    folder.mkdir()
    for prefix, n in (("train", 32), ("t10k", 16)):
        D.write_idx(folder / f"{prefix}-images-idx3-ubyte.gz",
                    rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        D.write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n).astype(np.uint8))
    out = train(tmp_path, "--dataset", "fashion-detect", "--data-dir", str(folder), "--epochs", "1")
    m = json.loads((out / "metrics.json").read_text())
    assert m["class_names"][10] == "Ankle boot" and m["data"]["source"] == "FashionMNIST"
    assert "Ankle boot" in m["per_class_ap"]
    missing = ["train", "--model", "zz_detect_standin", *TINY, "--dataset", "fashion-detect",
               "--data-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r2")]
    assert main(missing) == 2
    assert "needs the Fashion-MNIST files" in capsys.readouterr().err


def test_explain_refuses_heatmaps_of_a_detector(tmp_path, capsys):
    out = train(tmp_path, "--epochs", "1", model=SMALL_RETINA)
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(tmp_path / "c.png")
    capsys.readouterr()
    assert main(["explain", str(out), "c.png"]) == 2
    assert "is a detection run; Grad-CAM" in capsys.readouterr().err
    assert main(["explain", str(out), "c.png", "--filters", "f.png"]) == 0
    assert (tmp_path / "f.png").is_file()

"""Trainer: learning, metrics, checkpoints, exact resume, early stopping, output files."""
import json
import os

import numpy as np
import pytest

import convnet as cn
import convnet.nn as nn
from convnet.data import DataLoader, TensorDataset
from convnet.io import SafetensorsError
from convnet.training.checkpoint import to_jsonable
from convnet.training import (
    CheckpointError, ConfusionMatrix, EarlyStopping, Trainer, load_checkpoint, load_weights,
    save_checkpoint, save_weights, topk_correct,
)


def blobs(n=240, k=4, d=6, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((k, d)) * 2.5
    y = rng.integers(0, k, n)
    x = (centers[y] + rng.standard_normal((n, d))).astype(np.float32)
    return x, y


def make_run(seed=0, epochs=4, optimizer="adam", out_dir=None, callbacks=(), dtype=None):
    cn.manual_seed(seed)
    x, y = blobs()
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 4))
    if dtype == "float64":
        model = model.double()
    if optimizer == "adam":
        opt = cn.optim.Adam(model.parameters(), lr=0.01)
    else:
        opt = cn.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = cn.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    train = DataLoader(TensorDataset(x[:200], y[:200]), 16, shuffle=True, num_workers=1)
    val = DataLoader(TensorDataset(x[200:], y[200:]), 64)
    return Trainer(model, opt, train, val, scheduler=sched, epochs=epochs, out_dir=out_dir,
                   num_classes=4, progress=False, log=None, callbacks=callbacks,
                   config={"test": True})


def test_training_reduces_loss():
    t = make_run(epochs=3)
    before = t.evaluate(t.val_loader)["loss"]
    hist = t.fit()
    assert len(hist) == 3
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert hist[-1]["val_loss"] < before
    assert hist[-1]["val_accuracy"] > 0.8
    assert [h["lr"] for h in hist] == [0.01, 0.01, 0.005]  # StepLR stepped once per epoch


def test_float64_model_gets_float64_batches():
    t = make_run(epochs=1, dtype="float64")
    t.fit()
    assert next(iter(t.model.parameters())).numpy().dtype == np.float64


def test_topk_and_confusion_against_brute_force():
    rng = np.random.default_rng(0)
    logits, targets = rng.standard_normal((50, 7)), rng.integers(0, 7, 50)
    got = topk_correct(logits, targets, (1, 3, 7))
    for k in (1, 3, 7):
        expected = sum(t in np.argsort(-row)[:k] for row, t in zip(logits, targets))
        assert got[k] == expected
    cm = ConfusionMatrix(7)
    cm.update(logits.argmax(1), targets)
    cm.update(logits.argmax(1)[:10], targets[:10])
    brute = np.zeros((7, 7), int)
    for p, t in zip(list(logits.argmax(1)) + list(logits.argmax(1)[:10]), list(targets) + list(targets[:10])):
        brute[t, p] += 1
    np.testing.assert_array_equal(cm.matrix, brute)
    assert cm.accuracy() == pytest.approx(np.trace(brute) / 60)
    np.testing.assert_allclose(cm.per_class_accuracy(), np.diag(brute) / brute.sum(1))
    rows = cm.format().splitlines()
    assert rows[0].split()[-7:] == [str(i) for i in range(7)]
    assert [int(v) for v in rows[3].split()[1:]] == brute[2].tolist()  # "2" then its counts


def test_evaluate_reports_confusion_and_per_class():
    t = make_run(epochs=1)
    r = t.evaluate(t.val_loader, confusion=True)
    m = np.asarray(r["confusion_matrix"])
    assert m.sum() == 40 and r["accuracy"] == pytest.approx(np.trace(m) / 40)
    assert len(r["per_class_accuracy"]) == 4 and "top5_accuracy" in r
    assert t.model.training  # evaluation restored train mode


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_checkpoint_roundtrip(tmp_path, optimizer):
    t = make_run(epochs=2, optimizer=optimizer)
    t.fit()
    save_checkpoint(tmp_path / "c.safetensors", t.model, t.optimizer, t.scheduler, epoch=2, note="x")
    u = make_run(seed=5, optimizer=optimizer)
    state = load_checkpoint(tmp_path / "c.safetensors", u.model, u.optimizer, u.scheduler)
    assert state == {"epoch": 2, "note": "x"}
    for (ka, a), (kb, b) in zip(t.model.state_dict().items(), u.model.state_dict().items()):
        assert ka == kb
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    sa, sb = t.optimizer.state_dict(), u.optimizer.state_dict()
    assert to_jsonable(sa["param_groups"]) == to_jsonable(sb["param_groups"])
    assert type(sa["param_groups"][0].get("betas", ())) is type(sb["param_groups"][0].get("betas", ()))
    for i in sa["state"]:
        for k, v in sa["state"][i].items():
            np.testing.assert_array_equal(v, sb["state"][i][k])
    assert u.scheduler.last_epoch == t.scheduler.last_epoch


def test_checkpoint_errors(tmp_path):
    t = make_run(epochs=0)
    p = tmp_path / "c.safetensors"
    save_checkpoint(p, t.model)
    with pytest.raises(CheckpointError, match="no optimizer state"):
        load_checkpoint(p, t.model, t.optimizer)
    other = nn.Sequential(nn.Linear(6, 3))
    with pytest.raises(CheckpointError, match="does not fit this model"):
        load_checkpoint(p, other)
    save_weights(t.model, tmp_path / "w.safetensors")
    with pytest.raises(CheckpointError, match="not a convnet checkpoint"):
        load_checkpoint(tmp_path / "w.safetensors", t.model)
    p.write_bytes(p.read_bytes()[:-10])
    with pytest.raises(SafetensorsError, match="truncated"):
        load_checkpoint(p, t.model)


def test_weights_file_roundtrip(tmp_path):
    t = make_run(epochs=1)
    t.fit()
    save_weights(t.model, tmp_path / "m.safetensors", {"epoch": 1})
    u = make_run(seed=9)
    load_weights(u.model, tmp_path / "m.safetensors")
    x = cn.tensor(blobs()[0][:5])
    t.model.eval(), u.model.eval()
    np.testing.assert_array_equal(t.model(x).numpy(), u.model(x).numpy())


def test_resume_equals_uninterrupted_run(tmp_path):
    full = make_run(epochs=4, out_dir=tmp_path / "full")
    full.fit()
    part = make_run(epochs=2, out_dir=tmp_path / "part")
    part.fit()
    # a fresh process would rebuild everything from scratch with a different state
    cn.manual_seed(1234)
    resumed = make_run(seed=77, epochs=4, out_dir=tmp_path / "part")
    resumed.resume(tmp_path / "part")
    assert resumed.epoch == 2
    resumed.fit()
    keys = ["train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr"]
    assert [[h[k] for k in keys] for h in resumed.history] == [[h[k] for k in keys] for h in full.history]
    for a, b in zip(full.model.parameters(), resumed.model.parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_output_files(tmp_path):
    t = make_run(epochs=2, out_dir=tmp_path)
    t.fit()
    names = set(os.listdir(tmp_path))
    assert {"checkpoint.safetensors", "model.safetensors", "metrics.json", "curves.png"} <= names
    assert not [n for n in names if n.endswith(".tmp")]
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["epochs_completed"] == 2 and len(m["history"]) == 2
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_interrupted_checkpoint_write_keeps_previous(tmp_path, monkeypatch):
    t = make_run(epochs=1, out_dir=tmp_path)
    t.fit()
    before = (tmp_path / "checkpoint.safetensors").read_bytes()
    t.epochs = 2

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        t.fit()
    monkeypatch.undo()
    assert (tmp_path / "checkpoint.safetensors").read_bytes() == before
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
    assert load_checkpoint(tmp_path / "checkpoint.safetensors")["epoch"] == 1


def test_early_stopping():
    es = EarlyStopping("val_loss", patience=2)
    t = make_run(epochs=30, callbacks=[es])
    t.optimizer.param_groups[0]["lr"] = 0.0  # nothing improves after the first epoch
    t.scheduler = None
    t.fit()
    assert len(t.history) == 3 and es.best_epoch == 1
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=0)
    with pytest.raises(KeyError, match="not logged"):
        EarlyStopping("nope").on_epoch_end(t, 1, {"val_loss": 1.0})


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_divergence_is_reported():
    t = make_run(epochs=1)
    t.optimizer.param_groups[0]["lr"] = 1e30
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        t.fit()


def test_batchnorm_buffers_roundtrip_including_legacy_files(tmp_path):
    """BatchNorm's 0-d num_batches_tracked survives a checkpoint; files that stored it as
    shape (1,) (an earlier writer) still load."""
    from convnet.io import load_file, save_file

    cn.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 4)) \
        if hasattr(nn, "BatchNorm1d") else None
    if model is None:
        pytest.skip("nn.BatchNorm1d not available")
    model(cn.tensor(blobs()[0][:32]))  # updates running stats and the counter
    save_weights(model, tmp_path / "w.safetensors")
    tensors = load_file(tmp_path / "w.safetensors")
    assert tensors["1.num_batches_tracked"].shape == ()
    other = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 4))
    load_weights(other, tmp_path / "w.safetensors")
    np.testing.assert_array_equal(other.state_dict()["1.running_mean"].numpy(),
                                  model.state_dict()["1.running_mean"].numpy())
    tensors["1.num_batches_tracked"] = tensors["1.num_batches_tracked"].reshape(1)
    save_file(tensors, tmp_path / "legacy.safetensors")
    load_weights(other, tmp_path / "legacy.safetensors")
    assert int(other.state_dict()["1.num_batches_tracked"].numpy()) == 1


def test_dense_metrics_count_pixels_and_iou():
    from convnet.training.metrics import MetricAccumulator

    # 1 image, 2 classes, 2x2 pixels: predictions [[0, 1], [1, 1]], targets [[0, 0], [1, 1]]
    logits = np.zeros((1, 2, 2, 2))
    logits[0, 0, 0, 0] = 1.0
    logits[0, 1, 0, 1] = logits[0, 1, 1, 0] = logits[0, 1, 1, 1] = 1.0
    targets = np.array([[[0, 0], [1, 1]]])
    acc = MetricAccumulator(2, (1,))
    acc.update(0.5, logits, targets)
    res = acc.result()
    assert res["accuracy"] == 0.75 and acc.images == 1 and acc.count == 4
    # class 0: TP 1, FN 1, FP 0 -> 1/2; class 1: TP 2, FP 1 -> 2/3
    np.testing.assert_allclose(acc.confusion.iou(), [0.5, 2 / 3])
    assert res["mean_iou"] == pytest.approx((0.5 + 2 / 3) / 2)
    with pytest.raises(ValueError, match="dense logits"):
        acc.update(0.5, logits, np.zeros((1, 3, 3), dtype=int))


def test_foreground_segmentation_masks_follow_the_image():
    from convnet.data.dataset import TensorDataset
    from convnet.data.datasets import ForegroundSegmentation

    x = np.full((3, 1, 4, 4), -1.0, dtype=np.float32)
    x[0, 0, 1:3, 1:3] = 2.0
    x[2, 0, 0, :] = 0.5
    ds = ForegroundSegmentation(TensorDataset(x, np.array([4, 7, 0])), threshold=0.0)
    img, mask = ds[0]
    want = np.zeros((4, 4), dtype=np.int64)
    want[1:3, 1:3] = 5
    np.testing.assert_array_equal(mask, want)
    assert not ds[1][1].any()  # all background
    xs, masks = ds.__getitems__(np.array([0, 2]))
    np.testing.assert_array_equal(masks[0], want)
    assert (masks[1][0] == 1).all() and not masks[1][1:].any()

"""The `convnet` command end to end on tiny data (bundled digits subsets, files written here)."""
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import convnet.nn as nn
from convnet import models
from convnet.cli.main import SUBCOMMANDS, build_parser, main
from convnet.data import datasets as D
from convnet.data.datasets import mnist as mnist_mod
from convnet.training import Trainer


def cli_test_mlp(num_classes=10, in_channels=1, input_size=28):
    """A small fast model so CLI tests do not depend on convolution speed."""
    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * input_size * input_size, 32), nn.ReLU(),
                         nn.Dropout(0.1), nn.Linear(32, num_classes))


if "cli_test_mlp" not in models.list_models():
    models.register("cli_test_mlp", cli_test_mlp)

TINY = ["--model", "cli_test_mlp", "--limit-train", "512", "--limit-test", "200", "--batch-size", "32",
        "--no-progress", "--workers", "1"]


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVNET_DATA", str(tmp_path / "cache"))
    monkeypatch.setattr(mnist_mod, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "system")
    monkeypatch.chdir(tmp_path)


def train(tmp_path, *extra, name="run"):
    out = tmp_path / name
    assert main(["train", *TINY, "--out", str(out), *extra]) == 0
    return out


def test_train_writes_all_outputs(tmp_path, capsys):
    out = train(tmp_path, "--epochs", "2")
    printed = capsys.readouterr().out
    for f in ("model.safetensors", "checkpoint.safetensors", "config.json", "metrics.json", "curves.png"):
        assert (out / f).is_file(), f
        assert str(out / f) in printed or f in ("config.json", "checkpoint.safetensors")
    m = json.loads((out / "metrics.json").read_text())
    assert 0.5 < m["test_accuracy"] <= 1.0  # well above chance (0.1) after 2 epochs on 512 digits
    assert len(m["history"]) == 2 and len(m["confusion_matrix"]) == 10
    assert sum(map(sum, m["confusion_matrix"])) == 200
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"] == "cli_test_mlp" and cfg["dataset"] == "mnist-bundled" and cfg["epochs"] == 2


def test_evaluate_matches_training_report(tmp_path, capsys):
    out = train(tmp_path, "--epochs", "1")
    m = json.loads((out / "metrics.json").read_text())
    capsys.readouterr()
    assert main(["evaluate", str(out), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["accuracy"] == pytest.approx(m["test_accuracy"])
    assert r["confusion_matrix"] == m["confusion_matrix"] and r["images"] == 200
    assert main(["evaluate", str(out)]) == 0
    text = capsys.readouterr().out
    assert "per-class accuracy" in text and "confusion matrix" in text and f"{m['test_accuracy']:.4f}" in text


def test_predict_on_own_images(tmp_path, capsys):
    out = train(tmp_path, "--epochs", "2")
    te = D.BundledMNIST(train=False)
    digit, label = te.images[0, 0], int(te.targets[0])
    Image.fromarray(digit).resize((56, 56)).save(tmp_path / "big.png")  # other size
    Image.fromarray(255 - digit).convert("RGB").save(tmp_path / "paper.jpg")  # dark on light, colour
    capsys.readouterr()
    assert main(["predict", str(out), str(tmp_path / "big.png"), str(tmp_path / "paper.jpg"),
                 "--topk", "3", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert len(res) == 2 and all(len(r["top"]) == 3 for r in res)
    for r in res:
        probs = [t["probability"] for t in r["top"]]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-9
    # the inverted, recoloured copy is converted back and classified like the original
    assert res[0]["top"][0]["class"] == res[1]["top"][0]["class"]
    assert main(["predict", str(out), str(tmp_path / "big.png")]) == 0
    assert "big.png:" in capsys.readouterr().out
    del label


def test_predict_rejects_non_images(tmp_path, capsys):
    out = train(tmp_path, "--epochs", "1")
    (tmp_path / "notes.txt").write_text("hello")
    assert main(["predict", str(out), str(tmp_path / "notes.txt")]) == 2
    err = capsys.readouterr().err
    assert "notes.txt: not a readable image" in err
    assert main(["predict", str(out), str(tmp_path / "missing.png")]) == 2
    assert "no such file" in capsys.readouterr().err


KEYS = ["train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr"]


def history(out):
    return [[h[k] for k in KEYS] for h in json.loads((out / "metrics.json").read_text())["history"]]


def test_interrupted_run_resumes_exactly(tmp_path, monkeypatch, capsys):
    args = ["--epochs", "3", "--augment", "crop,erase,flip"]
    full = train(tmp_path, *args, name="full")
    # interrupt the second epoch (Ctrl-C): epoch 1's checkpoint must survive and resume
    calls = {"n": 0}
    original = Trainer.train_epoch

    def interrupted(self):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(Trainer, "train_epoch", interrupted)
    out = tmp_path / "part"
    assert main(["train", *TINY, *args, "--out", str(out)]) == 130
    assert "interrupted" in capsys.readouterr().err
    monkeypatch.undo()
    assert len(history(out)) == 1
    assert main(["train", "--out", str(out), "--resume", "--no-progress"]) == 0
    assert history(out) == history(full)


def test_resume_with_more_epochs_extends_the_run(tmp_path):
    full = train(tmp_path, "--epochs", "3", "--scheduler", "none", name="full")
    part = train(tmp_path, "--epochs", "1", "--scheduler", "none", name="part")
    assert main(["train", "--out", str(part), "--resume", "--epochs", "3", "--no-progress"]) == 0
    assert history(part) == history(full)
    cos = train(tmp_path, "--epochs", "1", name="cos")
    assert main(["train", "--out", str(cos), "--resume", "--epochs", "3", "--no-progress"]) == 0
    lrs = [h[-1] for h in history(cos)]
    assert lrs[0] == 0.002 and 0 < lrs[2] < lrs[1] < lrs[0]  # cosine spans the new length


def test_resume_errors(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    out = train(tmp_path, "--epochs", "1")
    assert main(["train", "--out", str(out), "--resume", "--lr", "0.5", "--epochs", "2"]) == 2
    assert "--lr differ" in capsys.readouterr().err


def test_missing_dataset_is_explained(tmp_path, capsys):
    assert main(["train", *TINY, "--dataset", "fashion-mnist", "--data-dir", str(tmp_path / "d"),
                 "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "train-images-idx3-ubyte" in err and "apt-get install dataset-fashion-mnist" in err
    assert main(["train", *TINY, "--dataset", "cifar10", "--out", str(tmp_path / "r")]) == 2
    assert "data_batch_1" in capsys.readouterr().err


def test_fashion_idx_files_end_to_end(tmp_path, capsys):
    rng = np.random.default_rng(0)
    folder = tmp_path / "fm"
    folder.mkdir()
    for prefix, n in (("train", 64), ("t10k", 32)):
        D.write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        D.write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n).astype(np.uint8))
    assert main(["train", *TINY, "--dataset", "fashion-mnist", "--data-dir", str(folder), "--epochs", "1",
                 "--out", str(tmp_path / "r")]) == 0
    assert json.loads((tmp_path / "r" / "config.json").read_text())["class_names"][9] == "Ankle boot"


def test_image_folder_dataset(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("test", 3)):
        for cls, level in (("dark", 40), ("light", 210)):
            d = tmp_path / "imgs" / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                arr = np.clip(rng.normal(level, 20, (20 + i, 24, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(arr).save(d / f"{i}.png")
    assert main(["train", *TINY, "--dataset", "folder", "--data-dir", str(tmp_path / "imgs"),
                 "--image-size", "16", "--epochs", "3", "--out", str(tmp_path / "r")]) == 0
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert m["class_names"] == ["dark", "light"] and sum(map(sum, m["confusion_matrix"])) == 6


def test_lenet5_default_model_runs(tmp_path):
    if "lenet5" not in models.list_models():
        pytest.skip("lenet5 not registered yet")
    assert main(["train", "--limit-train", "128", "--limit-test", "64", "--epochs", "1", "--no-progress",
                 "--out", str(tmp_path / "l")]) == 0
    cfg = json.loads((tmp_path / "l" / "config.json").read_text())
    assert cfg["model"] == "lenet5" and cfg["dataset"] == "mnist-bundled"


def test_bad_arguments(tmp_path, capsys):
    assert main(["train", *TINY, "--augment", "sparkle", "--out", str(tmp_path / "r")]) == 2
    assert "--augment" in capsys.readouterr().err
    assert main(["train", "--model", "nope", "--out", str(tmp_path / "r")]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
    assert main(["train", *TINY, "--epochs", "0"]) == 2
    assert main(["evaluate", str(tmp_path)]) == 2
    assert "no config.json" in capsys.readouterr().err


def test_models_command_and_help(capsys):
    assert main(["models"]) == 0
    assert "cli_test_mlp" in capsys.readouterr().out.split()
    assert main([]) == 0
    assert "train" in capsys.readouterr().out


def test_subcommands_are_pluggable():
    names = {a.dest for a in build_parser()._subparsers._group_actions[0]._choices_actions}
    assert {"train", "evaluate", "predict", "models"} <= names
    assert all(isinstance(m, str) for m in SUBCOMMANDS)


def test_python_dash_m(tmp_path):
    r = subprocess.run([sys.executable, "-m", "convnet", "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "evaluate" in r.stdout


@pytest.mark.parametrize("opt,sched", [("sgd", "step"), ("adamw", "onecycle"), ("rmsprop", "exponential"),
                                       ("adam", "none")])
def test_optimizers_and_schedulers(tmp_path, opt, sched):
    out = train(tmp_path, "--epochs", "2", "--optimizer", opt, "--scheduler", sched, "--step-size", "1",
                "--gamma", "0.5", "--lr", "0.01", "--val-split", "0.1", "--early-stopping", "3",
                "--label-smoothing", "0.1", "--limit-train", "128")
    m = json.loads((out / "metrics.json").read_text())
    lrs = [h["lr"] for h in m["history"]]
    if sched in ("step", "exponential"):
        assert lrs == [0.01, 0.005]
    elif sched == "none":
        assert lrs == [0.01, 0.01]
    assert m["history"][0]["train_loss"] > 0 and 0 <= m["test_accuracy"] <= 1


def test_float64_run(tmp_path):
    out = train(tmp_path, "--epochs", "1", "--dtype", "float64", "--limit-train", "64")
    from convnet.io import load_file

    assert all(v.dtype == np.float64 for v in load_file(out / "model.safetensors").values())


def test_threads_option(monkeypatch):
    from convnet.cli import _blas

    assert _blas.set_blas_threads(2) in (True, False)  # True wherever NumPy uses OpenBLAS
    with pytest.raises(ValueError, match="--threads must be"):
        _blas.configure("many")
    with pytest.raises(ValueError, match="--threads must be"):
        _blas.configure("0")
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    assert _blas.configure("auto") is None  # the user's environment wins
    assert main(["train", "--threads", "x", "--epochs", "1"]) == 2


def test_batchnorm_model_resumes_and_evaluates(tmp_path, capsys):
    if "simple_cnn" not in models.list_models():
        pytest.skip("simple_cnn not registered")
    small = ["--model", "simple_cnn", "--model-option", "widths=[4,8]", "--model-option", "hidden=16",
             "--limit-train", "96", "--limit-test", "64", "--batch-size", "32", "--no-progress"]
    full, part = tmp_path / "full", tmp_path / "part"
    assert main(["train", *small, "--epochs", "2", "--out", str(full)]) == 0
    assert main(["train", *small, "--epochs", "1", "--scheduler", "none", "--out", str(part)]) == 0
    assert main(["train", "--out", str(part), "--resume", "--epochs", "2", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(full), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["accuracy"] == pytest.approx(json.loads((full / "metrics.json").read_text())["test_accuracy"])


def test_unet_trains_as_segmentation_and_evaluates(tmp_path, capsys):
    out = tmp_path / "seg"
    args = ["train", "--model", "unet", "--model-option", "base_channels=4",
            "--model-option", "depth=2", "--limit-train", "256", "--limit-test", "64",
            "--batch-size", "32", "--epochs", "2", "--no-progress", "--workers", "1",
            "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "pixel accuracy" in printed and "mean IoU" in printed
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["task"] == "segment" and cfg["class_names"][0] == "background"
    m = json.loads((out / "metrics.json").read_text())
    # every pixel of the 64 test images is a sample of 11 labels (background + 10 digits)
    assert sum(map(sum, m["confusion_matrix"])) == 64 * 28 * 28
    assert len(m["per_class_iou"]) == 11 and 0 <= m["test_mean_iou"] <= 1
    # the training throughput counts images, not pixels
    assert m["history"][-1]["images_per_s"] < 1e5
    assert main(["evaluate", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["accuracy"] == pytest.approx(m["test_accuracy"])
    # predict draws the per-pixel classes (tests/cli/test_predict_inputs.py checks them)
    assert main(["predict", str(out), str(out / "curves.png"), "--out", str(tmp_path / "m")]) == 0
    assert (tmp_path / "m" / "curves_mask.png").is_file()


def test_task_must_fit_the_model(tmp_path, capsys):
    assert main(["train", *TINY, "--task", "segment", "--out", str(tmp_path / "a")]) == 2
    assert "is a classifier" in capsys.readouterr().err
    assert main(["train", "--model", "unet", "--task", "classify",
                 "--out", str(tmp_path / "b")]) == 2
    assert "per pixel" in capsys.readouterr().err

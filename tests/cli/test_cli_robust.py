"""The CLI under real use: validation on held-out training data, data folders, logs that are
not terminals, Ctrl-C, existing runs, argument errors, pipes, --help examples, readable output."""
import json
import os
import subprocess
import sys
import urllib.error
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

import convnet.nn as nn
from convnet import models
from convnet.cli.main import EXAMPLES, main
from convnet.data import datasets as D
from convnet.data.datasets import download as dl
from convnet.data.datasets import mnist as mnist_mod
from convnet.training import RestoreBestWeights, Trainer
from convnet.io.safetensors import load_file


def robust_test_mlp(num_classes=10, in_channels=1, input_size=28):
    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * input_size * input_size, 16),
                         nn.ReLU(), nn.Linear(16, num_classes))


if "cli_test_robust_mlp" not in models.list_models():
    models.register("cli_test_robust_mlp", robust_test_mlp)

TINY = ["--model", "cli_test_robust_mlp", "--limit-train", "300", "--limit-test", "100",
        "--batch-size", "32", "--no-progress", "--workers", "0"]


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVNET_DATA", str(tmp_path / "cache"))
    monkeypatch.setattr(mnist_mod, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "system")
    monkeypatch.chdir(tmp_path)


def train(tmp_path, *extra, name="run", code=0):
    out = tmp_path / name
    assert main(["train", *TINY, "--out", str(out), *extra]) == code
    return out


def error_lines(err):
    """stderr without the load-dependent BLAS thread note."""
    return [ln for ln in err.strip().splitlines() if not ln.startswith("note:")]


def metrics(out):
    return json.loads((out / "metrics.json").read_text())


# ------------------------------------------------------------------ validation split
def test_validation_is_held_out_of_training_by_default(tmp_path, capsys):
    out = train(tmp_path, "--epochs", "2")
    printed = capsys.readouterr().out
    m = metrics(out)
    assert m["validation"] == {"source": "training set", "fraction": 0.1, "images": 30, "seed": 0}
    assert "270 train / 30 validation (10% of the training set)" in printed
    assert "100 test images are evaluated once, at the end" in printed
    assert all("val_loss" in h for h in m["history"]) and "test_accuracy" in m
    assert sum(map(sum, m["confusion_matrix"])) == 100  # the test set, once


def test_val_split_zero_means_no_validation(tmp_path, capsys):
    out = train(tmp_path, "--epochs", "1", "--val-split", "0")
    m = metrics(out)
    assert m["validation"]["source"] == "none"
    assert not any("val_loss" in h for h in m["history"])  # never the test set in disguise
    assert "no validation (--val-split 0)" in capsys.readouterr().out


@pytest.mark.parametrize("flag", [["--early-stopping", "2"], ["--restore-best"]])
def test_choosing_an_epoch_needs_a_validation_set(tmp_path, capsys, flag):
    train(tmp_path, "--val-split", "0", *flag, code=2)
    err = capsys.readouterr().err
    assert flag[0] in err and "--val-split" in err and len(error_lines(err)) == 1


class _FakeTrainer(SimpleNamespace):
    pass


def test_restore_best_weights_keeps_the_best_epoch_and_survives_resume(tmp_path):
    model = robust_test_mlp()
    trainer = _FakeTrainer(model=model, out_dir=tmp_path, config={}, log=None,
                           restored_epoch=None)
    cb = RestoreBestWeights("val_loss")
    for epoch, loss in enumerate([1.0, 0.5, 0.8], start=1):
        for p in model.parameters():
            p.numpy()[...] = epoch
        cb.on_epoch_end(trainer, epoch, {"val_loss": loss})
    state = cb.state_dict()
    cb.on_train_end(trainer)
    assert trainer.restored_epoch == 2
    assert all((p.numpy() == 2).all() for p in model.parameters())
    saved = load_file(tmp_path / "model.safetensors")
    assert all((v == 2).all() for v in saved.values())
    # a resumed run has no weights in memory: they come back from best_model.safetensors
    for p in model.parameters():
        p.numpy()[...] = 3
    again = RestoreBestWeights("val_loss")
    again.load_state_dict(state)
    again.on_train_end(trainer)
    assert all((p.numpy() == 2).all() for p in model.parameters())


def test_restore_best_from_the_cli(tmp_path, capsys):
    out = train(tmp_path, "--epochs", "3", "--lr", "0.05", "--restore-best")
    m = metrics(out)
    best = min(m["history"], key=lambda h: h["val_loss"])["epoch"]
    assert m["best_epoch"] == best and m["weights_epoch"] == best
    model, best_model = load_file(out / "model.safetensors"), load_file(
        out / "best_model.safetensors")
    assert all(np.array_equal(model[k], best_model[k]) for k in model)
    assert f"restored the weights of epoch {best}" in capsys.readouterr().out


# ------------------------------------------------------------------ data folders
def _idx_folder(folder, splits=("train", "t10k"), n=40):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix in splits:
        D.write_idx(folder / f"{prefix}-images-idx3-ubyte.gz",
                    rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        D.write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz",
                    rng.integers(0, 10, n).astype(np.uint8))


def test_missing_data_dir_is_named_and_never_replaced(tmp_path, capsys):
    _idx_folder(tmp_path / "cache" / "fashionmnist")  # a complete copy the old code fell back to
    train(tmp_path, "--dataset", "fashion-mnist", "--data-dir", str(tmp_path / "nope"), code=2)
    err = capsys.readouterr().err
    assert str(tmp_path / "nope") in err and "does not exist" in err
    assert "train-images-idx3-ubyte" in err
    _idx_folder(tmp_path / "half", splits=("train",))  # test files missing
    train(tmp_path, "--dataset", "fashion-mnist", "--data-dir", str(tmp_path / "half"), code=2)
    err = capsys.readouterr().err
    assert "t10k-images-idx3-ubyte" in err and str(tmp_path / "half") in err
    assert len(error_lines(err)) == 1


def test_splits_never_come_from_two_folders(tmp_path):
    _idx_folder(tmp_path / "cache" / "mnist", splits=("train",))
    _idx_folder(tmp_path / "cache" / "mnist" / "elsewhere", splits=("t10k",))
    with pytest.raises(FileNotFoundError, match="together in one of"):
        D.MNIST(train=True)
    (tmp_path / "a").mkdir()
    _idx_folder(tmp_path / "a", splits=("train",))
    _idx_folder(tmp_path / "a" / "MNIST" / "raw", splits=("t10k",))
    with pytest.raises(FileNotFoundError, match="missing: t10k"):
        D.MNIST(tmp_path / "a", train=False)


def test_offline_download_says_how_to_get_the_files(tmp_path, monkeypatch, capsys):
    def offline(url, timeout=None):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(dl.urllib.request, "urlopen", offline)
    train(tmp_path, "--dataset", "mnist", "--download", code=2)
    err = capsys.readouterr().err
    assert "could not download" in err and "by hand" in err and "Traceback" not in err
    assert len(error_lines(err)) == 1


# ------------------------------------------------------------------ logs and progress
def test_redirected_log_has_no_progress_frames(tmp_path):
    out = tmp_path / "piped"
    code = ("from convnet.cli.main import main; import sys; from convnet import models; "
            "import convnet.nn as nn; models.register('m', lambda num_classes=10, in_channels=1,"
            " input_size=28: nn.Sequential(nn.Flatten(), nn.Linear(784, num_classes))); "
            f"sys.exit(main(['train', '--model', 'm', '--limit-train', '2000', '--epochs', '2', "
            f"'--workers', '0', '--out', {str(out)!r}]))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "\r" not in r.stderr and "\r" not in r.stdout
    epoch_lines = [ln for ln in r.stdout.splitlines() if ln.startswith("epoch ")]
    assert len(epoch_lines) == 2  # one summary line per epoch


def test_trainer_progress_auto_follows_the_terminal(capsys):
    trainer = Trainer(robust_test_mlp(), None, [], progress="auto", log=None)
    assert trainer._bar(10, "x") is None  # pytest's captured stderr is not a terminal
    with pytest.raises(ValueError, match="progress"):
        Trainer(robust_test_mlp(), None, [], progress="sometimes")


# ------------------------------------------------------------------ Ctrl-C and existing runs
def _interrupt_at(monkeypatch, n):
    calls = {"n": 0}
    original = Trainer.train_epoch

    def interrupted(self):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(Trainer, "train_epoch", interrupted)


def test_ctrl_c_before_the_first_checkpoint_says_so(tmp_path, monkeypatch, capsys):
    _interrupt_at(monkeypatch, 1)
    train(tmp_path, "--epochs", "2", code=130)
    err = capsys.readouterr().err
    assert "before the first checkpoint" in err and "nothing was saved" in err
    assert "intact" not in err and "--resume" not in err


def test_ctrl_c_later_names_the_epoch_and_the_resume_command(tmp_path, monkeypatch, capsys):
    _interrupt_at(monkeypatch, 2)
    out = train(tmp_path, "--epochs", "3", code=130)
    err = capsys.readouterr().err
    assert "interrupted during epoch 2/3" in err and "checkpoint of epoch 1" in err
    assert f"convnet train --out {out} --resume" in err
    monkeypatch.undo()
    assert main(["train", "--out", str(out), "--resume", "--no-progress"]) == 0


def test_existing_run_is_not_replaced_without_overwrite(tmp_path, capsys):
    out = train(tmp_path, "--epochs", "1")
    before = (out / "model.safetensors").read_bytes()
    train(tmp_path, "--epochs", "1", "--seed", "5", code=2)
    err = capsys.readouterr().err
    assert "already holds a finished run (1/1 epochs)" in err and "--overwrite" in err
    assert (out / "model.safetensors").read_bytes() == before
    train(tmp_path, "--epochs", "1", "--seed", "5", "--overwrite")
    assert (out / "model.safetensors").read_bytes() != before
    assert metrics(out)["config"]["seed"] == 5


# ------------------------------------------------------------------ argument errors
@pytest.mark.parametrize("args, needle", [
    (["--limit-train", "0"], "--limit-train must be >= 1"),
    (["--limit-train", "-5"], "--limit-train must be >= 1"),
    (["--limit-test", "0"], "--limit-test must be >= 1"),
    (["--epochs", "0"], "--epochs must be >= 1"),
    (["--early-stopping", "-1"], "--early-stopping must be >= 0"),
])
def test_bad_numbers_are_one_line_errors(tmp_path, capsys, args, needle):
    assert main(["train", *TINY, *args, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(error_lines(err)) == 1 and "Traceback" not in err


def test_evaluate_batch_size_must_be_positive(tmp_path, capsys):
    out = train(tmp_path, "--epochs", "1")
    capsys.readouterr()
    assert main(["evaluate", str(out), "--batch-size", "0"]) == 2
    assert "--batch-size must be >= 1" in capsys.readouterr().err


def test_out_pointing_at_a_file(tmp_path, capsys):
    (tmp_path / "f.txt").write_text("x")
    assert main(["train", *TINY, "--out", str(tmp_path / "f.txt")]) == 2
    assert "is a file" in capsys.readouterr().err


def test_internal_names_do_not_reach_the_user(tmp_path, capsys):
    from convnet.cli import main as cli_main

    assert cli_main._INTERNAL_PREFIX.sub("", "load_image: no such file x.png") == \
        "no such file x.png"
    assert cli_main._INTERNAL_PREFIX.sub("", "create(): unknown model") == "unknown model"
    assert cli_main._INTERNAL_PREFIX.sub("", "--lr must be positive") == "--lr must be positive"


def test_broken_pipe_exits_quietly(monkeypatch, capsys):
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader (`| head`) has gone
    stream = os.fdopen(write_end, "w")
    monkeypatch.setattr(sys, "stdout", stream)
    try:
        assert main(["models"]) == 141
    finally:
        stream.close()
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------ readable output
def test_confusion_matrix_columns_are_separated(tmp_path, capsys):
    out = train(tmp_path, "--epochs", "1", "--dataset", "fashion-mnist", "--data-dir",
                str(_fm(tmp_path)))
    capsys.readouterr()
    assert main(["evaluate", str(out)]) == 0
    text = capsys.readouterr().out
    table = text[text.index("true \\ predicted"):].splitlines()
    assert table[0].split()[-10:] == [str(i) for i in range(10)]
    assert table[1].startswith("0 T-shirt/top") and table[10].startswith("9 Ankle boot")
    for row in table[1:11]:  # every count is its own token: 10 numbers after the label
        assert len(row.split()[-10:]) == 10 and all(t.isdigit() for t in row.split()[-10:])


def _fm(tmp_path):
    folder = tmp_path / "fm"
    _idx_folder(folder, n=120)
    return folder


def test_one_epoch_is_singular(tmp_path, capsys):
    train(tmp_path, "--epochs", "1")
    printed = capsys.readouterr().out
    assert "1 epoch," in printed and "1 epochs" not in printed


# ------------------------------------------------------------------ --help examples
def test_help_examples_run_on_the_default_model(tmp_path, capsys):
    digit = D.BundledMNIST(train=False).images[0, 0]
    Image.fromarray(255 - digit).resize((112, 112)).save(tmp_path / "digit.png")
    ran = 0
    for command, lines in EXAMPLES.items():
        for line in lines:
            argv = line.split("#")[0].split()[1:]
            if argv == ["train"]:  # the 10-epoch default: its shorter sibling covers it
                continue
            if argv[0] == "train" and "--resume" not in argv:
                argv += ["--limit-train", "2000", "--no-progress"]
            assert main(argv) == 0, line
            ran += 1
        parser_help = subprocess.run([sys.executable, "-m", "convnet", command, "--help"],
                                     capture_output=True, text=True, timeout=60).stdout
        assert all(line in parser_help for line in lines)
    assert ran >= 12
    assert Path("cam.png").is_file() and Path("edges.png").is_file()


def test_summary_takes_model_as_train_spells_it(capsys):
    from convnet.cli.main import main

    assert main(["summary", "--model", "lenet5"]) == 0
    by_flag = capsys.readouterr().out
    assert main(["summary", "lenet5"]) == 0
    assert capsys.readouterr().out == by_flag and "61,706" in by_flag
    assert main(["summary"]) == 2
    assert "give one model" in capsys.readouterr().err

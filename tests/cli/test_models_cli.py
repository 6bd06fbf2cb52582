"""The CLI's model handling: `convnet models`, models too big for the images, misspelt model
names and options, and `summary --input`."""
import json
import time

import pytest

import convnet.nn as nn
from convnet import models
from convnet.cli._setup import build_model, dataset_info
from convnet.cli.main import main
from convnet.models import registry

FAST = ["--limit-train", "64", "--limit-test", "32", "--epochs", "1", "--batch-size", "32",
        "--no-progress", "--workers", "0", "--threads", "1"]


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVNET_DATA", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)


def _no_weights(monkeypatch):
    """Make any weight draw fail: what runs after this must not initialise a model."""
    def drawn(*args, **kwargs):
        raise AssertionError("a model was initialised")

    for name in ("uniform_", "normal_", "trunc_normal_"):
        monkeypatch.setattr(nn.init, name, drawn)


def test_models_lists_family_parameters_and_min_side_without_building(monkeypatch, capsys):
    _no_weights(monkeypatch)
    start = time.perf_counter()
    assert main(["models"]) == 0
    assert time.perf_counter() - start < 5  # was 56 s with --params (every model built)
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert rows["lenet5"].split()[1:4] == ["LeNet", "61,706", "12"]
    # vgg16 keeps torchvision's floor-mode pools (32 px minimum), so 28x28 adds small_input
    # (ceil-mode pools, a 512-wide head): 14,713,536 conv + 530,442 head parameters
    assert rows["vgg16"].split()[1:3] == ["VGG", "15,243,978"]
    assert "small_input=true (stem needs 32)" in rows["vgg16"]
    # alexnet as `convnet train` builds it for 28x28: small_input (3x3 stem), 15 px minimum
    adapted = models.count_parameters("alexnet", small_input=True)
    assert rows["alexnet"].split()[1:4] == ["AlexNet", f"{adapted:,}", "15"]
    assert "small_input=true" in rows["alexnet"]
    assert "patch_size=7" in rows["vit_b_16"] and "*" in rows["vit_b_16"]
    assert main(["models", "--params"]) == 0  # the old flag still works
    assert "61,706" in capsys.readouterr().out
    assert main(["models", "--names"]) == 0
    assert capsys.readouterr().out.split() == models.list_models()


def test_alexnet_on_28x28_digits_is_adapted_trains_and_reloads(tmp_path, capsys):
    out = tmp_path / "alex"
    assert main(["train", "--model", "alexnet", "--model-option", "hidden=16", *FAST,
                 "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert ("note: alexnet needs images of at least 63x63 (an 11x11/4 stem and three 3x3/2 "
            "max-pools), got 28x28; building it with --model-option small_input=true") in err
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_adapted"] == {"small_input": True}
    assert main(["evaluate", str(out), "--json"]) == 0  # rebuilt the same way: weights load
    assert "small_input" not in capsys.readouterr().err


def test_build_model_adapts_or_passes_input_size():
    info = dataset_info({"dataset": "mnist-bundled"})
    cfg = {"model": "alexnet", "dataset": "mnist-bundled", "model_options": {"hidden": 8}}
    assert build_model(cfg, info).features[0].kernel_size == (3, 3)
    cfg = {"model": "lenet5", "dataset": "mnist-bundled",
           "model_options": {"activation": "tanh"}}
    assert build_model(cfg, info).classifier[1].in_features == 400


@pytest.mark.parametrize("argv, message", [
    (["--model", "alexnet", "--model-option", "small_input=false"],
     "alexnet needs images of at least 63x63 (an 11x11/4 stem and three 3x3/2 max-pools), got "
     "28x28; --model-option small_input=true fixes it"),
    (["--model", "vit_b_16"], "vit_b_16 needs image sides divisible by 16 (one learned position "
                              "per 16x16 patch), got 28x28; --model-option patch_size=7 fixes it"),
    (["--model", "unet", "--model-option", "depth=5"],
     "unet needs images of at least 32x32 (5 max-pools of 2), got 28x28; --model-option depth=4 "
     "fixes it"),
    (["--model", "lenet5", "--model-option", "widht=3"],
     "lenet5 has no option 'widht'; it accepts: activation, input_size, pooling"),
    (["--model", "resnet19"], "unknown model 'resnet19'; did you mean resnet18? (`convnet models` "
                              "lists all)"),
    (["--model", "lenet5", "--model-option", "num_classes=3"],
     "--model-option num_classes: set from the dataset (10 here); remove the option"),
])
def test_train_refuses_before_building_anything(monkeypatch, tmp_path, capsys, argv, message):
    _no_weights(monkeypatch)
    assert main(["train", *argv, *FAST, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err == f"convnet train: error: {message}\n"
    assert "create(" not in err


def test_summary_input_needs_three_numbers(capsys):
    assert main(["summary", "resnet20", "--input", "28,28"]) == 2
    assert capsys.readouterr().err == ("convnet summary: error: --input needs C,H,W such as "
                                       "1,28,28; got 28,28\n")
    assert main(["summary", "resnet20", "--input", "1,1,28,28"]) == 2
    assert "the batch is --batch-size" in capsys.readouterr().err


def test_summary_names_models_adapts_and_takes_options(capsys):
    assert main(["summary", "resnet19"]) == 2
    assert "did you mean resnet18?" in capsys.readouterr().err
    assert main(["summary", "lenet5", "--input", "1,32,32"]) == 0  # input_size set for it
    assert "Total params: 61,706" in capsys.readouterr().out
    assert main(["summary", "alexnet", "--model-option", "hidden=8"]) == 0
    captured = capsys.readouterr()
    assert "small_input=true" in captured.err and "[1, 64, 28, 28]" in captured.out
    assert main(["summary", "vit_b_16", "--model-option", "patch_size=7", "--model-option",
                 "num_layers=1"]) == 0
    assert "heads.head" in capsys.readouterr().out
    assert main(["summary", "runs/missing"]) == 2
    assert "no such training-run folder" in capsys.readouterr().err


def test_python_users_get_the_same_errors():
    with pytest.raises(ValueError, match=r"did you mean resnet18\?"):
        models.create("resnet19")
    with pytest.raises(TypeError, match="lenet5 has no option 'widht'; it accepts: "):
        models.create("lenet5", widht=3)
    assert "create(" not in registry._option_error("lenet5", "x", ["a"])

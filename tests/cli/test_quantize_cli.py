"""``convnet quantize RUN --out RUN-int8``, and evaluate / predict / summary on the result,
on tiny runs trained on the bundled digits."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import convnet.nn as nn
from convnet import models
from convnet.cli.main import main
from convnet.data import datasets as D
from convnet.io.safetensors import load_file
from convnet.quantization.pipeline import fusion_groups

TINY = ["--limit-train", "300", "--limit-test", "100", "--batch-size", "32", "--no-progress",
        "--workers", "0", "--epochs", "1"]


class _Residual(nn.Module):
    """conv -> relu, plus the input: an add between layers, which needs FloatFunctional."""

    def __init__(self, num_classes=10, in_channels=1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, in_channels, 3, padding=1)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(in_channels * 784, num_classes))

    def forward(self, x):
        return self.head(self.conv(x) + x)


def _tanh_mlp(num_classes=10, in_channels=1):
    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * 784, 16), nn.Tanh(),
                         nn.Linear(16, 8), nn.BatchNorm1d(8), nn.Linear(8, num_classes))


for _name, _fn in (("zz_quant_residual", _Residual), ("zz_quant_tanh_mlp", _tanh_mlp)):
    if _name not in models.list_models():
        models.register(_name, _fn)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Float runs trained once for the module: lenet5 and simple_cnn (batch norm)."""
    root = tmp_path_factory.mktemp("quantize_runs")
    out = {}
    for model in ("lenet5", "simple_cnn"):
        out[model] = root / model
        assert main(["train", "--model", model, *TINY, "--out", str(out[model])]) == 0
    return out


def _quantize(run, out, *extra, code=0):
    assert main(["quantize", str(run), "--out", str(out), "--calibrate", "200", *extra]) == code
    return out


def _metrics(out):
    return json.loads((Path(out) / "metrics.json").read_text())


def test_quantize_writes_an_int8_run_that_evaluate_predict_and_summary_read(runs, tmp_path,
                                                                             capsys):
    out = _quantize(runs["simple_cnn"], tmp_path / "int8")
    printed = capsys.readouterr().out
    assert "fused: features.0+features.1+features.2" in printed
    assert "calibrated on 200 training images" in printed and "test accuracy: float32" in printed
    cfg = json.loads((out / "config.json").read_text())
    recipe = cfg["quantization"]
    assert recipe["qconfig"] == "x86" and recipe["calibration_images"] == 200
    assert recipe["qat_epochs"] == 0 and len(recipe["fused"]) == 4
    assert cfg["model"] == "simple_cnn" and cfg["class_names"] == json.loads(
        (runs["simple_cnn"] / "config.json").read_text())["class_names"]
    tensors = load_file(out / "model.safetensors")
    assert tensors["module.features.0.weight"].dtype == np.int8
    # the file alone rebuilds the network: the recipe records classes and channels too
    assert recipe["model_options"]["num_classes"] == 10
    assert recipe["model_options"]["in_channels"] == 1
    from convnet.quantization import load_quantized
    rebuilt = load_quantized(out / "model.safetensors")
    assert rebuilt.module.classifier[5].weight().shape == (10, 128)
    m = _metrics(out)
    assert m["weights_bytes_float"] == (runs["simple_cnn"] / "model.safetensors").stat().st_size
    assert m["weights_bytes_int8"] == (out / "model.safetensors").stat().st_size
    assert 3.5 < m["weights_size_ratio"] < 4.0
    assert m["ms_per_image_float"] > 0 and m["ms_per_image_int8"] > 0
    assert abs(m["float_test_accuracy"] - m["int8_test_accuracy"]) <= 0.03
    assert m["float_test_accuracy"] == _metrics(runs["simple_cnn"])["test_accuracy"]

    assert main(["evaluate", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == m["int8_test_accuracy"]

    digit = D.BundledMNIST(train=False).images[0, 0]
    Image.fromarray(255 - digit).resize((112, 112)).save(tmp_path / "digit.png")
    assert main(["predict", str(out), str(tmp_path / "digit.png"), "--json"]) == 0
    pred = json.loads(capsys.readouterr().out)
    assert len(pred[0]["top"]) == 3

    assert main(["summary", str(out)]) == 0
    table = capsys.readouterr().out
    assert "module.features.0 (ConvReLU2d)" in table and "int8 per-channel" in table
    assert "quint8" in table and f"{m['bytes_per_layer_int8']['total']:,}" in table
    assert main(["summary", str(runs["simple_cnn"])]) == 0
    float_table = capsys.readouterr().out
    assert "Stored bytes per layer" in float_table and "features.0 (Conv2d)" in float_table
    assert f"{m['bytes_per_layer_float']['total']:,}" in float_table


def test_qnnpack_and_no_fuse_on_a_model_without_batch_norm(runs, tmp_path, capsys):
    out = _quantize(runs["lenet5"], tmp_path / "q", "--qconfig", "qnnpack", "--no-fuse")
    recipe = json.loads((out / "config.json").read_text())["quantization"]
    assert recipe["fused"] == [] and recipe["qconfig"] == "qnnpack"
    meta = json.loads(load_file(out / "model.safetensors", with_metadata=True)[1]
                      ["convnet.quantized"])
    assert meta["modules"]["module.features.0"]["weight"]["qscheme"] == "per_tensor_affine"
    assert meta["modules"]["module.features.1"]["type"] == "ReLU"
    assert main(["evaluate", str(out)]) == 0


def test_a_float64_run(tmp_path, capsys):
    run = tmp_path / "f64"
    assert main(["train", *TINY, "--dtype", "float64", "--out", str(run)]) == 0
    out = _quantize(run, tmp_path / "q")
    assert "test accuracy: float64" in capsys.readouterr().out
    assert main(["evaluate", str(out)]) == 0


def test_explain_refuses_an_int8_run_clearly(runs, tmp_path, capsys):
    out = _quantize(runs["lenet5"], tmp_path / "q")
    digit = D.BundledMNIST(train=False).images[0, 0]
    Image.fromarray(255 - digit).save(tmp_path / "d.png")
    assert main(["explain", str(out), str(tmp_path / "d.png"), "--out",
                 str(tmp_path / "cam.png")]) == 2
    assert "int8 run" in capsys.readouterr().err


def test_calibrating_with_no_data_is_a_clear_error(runs, tmp_path, capsys, monkeypatch):
    _quantize(runs["lenet5"], tmp_path / "a", "--calibrate", "0", code=2)
    assert "calibrating with no data" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()
    from convnet.cli import _setup
    from convnet.data.dataset import Subset

    real = _setup.make_dataset

    def empty_train(cfg, info, train, transform):
        ds = real(cfg, info, train, transform)
        return Subset(ds, np.arange(0)) if train else ds

    monkeypatch.setattr(_setup, "make_dataset", empty_train)
    _quantize(runs["lenet5"], tmp_path / "b", code=2)
    err = capsys.readouterr().err
    assert "calibrating with no data" in err and "training set" in err and "empty" in err


def test_unsupported_layers_are_named(tmp_path, capsys):
    run = tmp_path / "tanh"
    assert main(["train", "--model", "zz_quant_tanh_mlp", *TINY, "--out", str(run)]) == 0
    _quantize(run, tmp_path / "q", code=2)
    err = capsys.readouterr().err
    assert "2 layer(s) with no quantized version" in err
    assert "2 (Tanh)" in err and "4 (BatchNorm1d)" in err and "Traceback" not in err


def test_a_model_that_adds_tensors_between_layers_is_a_clear_error(tmp_path, capsys):
    run = tmp_path / "res"
    assert main(["train", "--model", "zz_quant_residual", *TINY, "--out", str(run)]) == 0
    _quantize(run, tmp_path / "q", code=2)
    err = capsys.readouterr().err
    assert "computes on tensors between its layers" in err and "FloatFunctional" in err


def test_existing_out_needs_overwrite_and_other_bad_arguments(runs, tmp_path, capsys):
    out = _quantize(runs["lenet5"], tmp_path / "q")
    capsys.readouterr()
    _quantize(runs["lenet5"], out, code=2)
    assert "--overwrite" in capsys.readouterr().err
    _quantize(runs["lenet5"], out, "--overwrite")
    _quantize(out, tmp_path / "again", code=2)
    assert "already quantized" in capsys.readouterr().err
    _quantize(runs["lenet5"], runs["lenet5"], code=2)
    assert "must differ" in capsys.readouterr().err
    _quantize(tmp_path / "nothing", tmp_path / "x", code=2)
    assert "not a training output folder" in capsys.readouterr().err


def test_qat_with_a_redirected_log(runs, tmp_path):
    """`--qat 1` fine-tunes (one epoch line, as `convnet train` logs it) and the log written
    to a file has whole lines in order, no carriage-return progress frames."""
    out, log = tmp_path / "qat", tmp_path / "log.txt"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    with open(log, "w") as f:
        rc = subprocess.run([sys.executable, "-m", "convnet", "quantize", str(runs["lenet5"]),
                             "--out", str(out), "--calibrate", "100", "--qat", "1",
                             "--batch-size", "64"], stdout=f, stderr=subprocess.STDOUT,
                            env=env, timeout=300).returncode
    text = log.read_text()
    assert rc == 0, text
    assert "\r" not in text
    lines = [ln for ln in text.splitlines() if not ln.startswith("note:")]
    assert lines[0].startswith(f"quantizing {runs['lenet5']} (lenet5 on mnist-bundled)")
    assert "QAT, 1 epoch)" in lines[0]
    assert lines[1].startswith("calibrated on 100 training images")
    assert lines[2].startswith("epoch   1/1  loss")
    assert lines[3].startswith("test accuracy: float32")
    assert lines[-1] == f"wrote {out}/ (config.json, model.safetensors, metrics.json)"
    m = _metrics(out)
    assert m["quantization"]["qat_epochs"] == 1 and m["int8_test_accuracy"] > 0


def test_fusion_groups_walk_sequentials_only():
    model = models.create("simple_cnn")
    assert fusion_groups(model) == [
        ["features.0", "features.1", "features.2"], ["features.4", "features.5", "features.6"],
        ["features.8", "features.9", "features.10"], ["classifier.2", "classifier.3"]]
    assert fusion_groups(_Residual()) == []
    assert fusion_groups(models.create("lenet5")) == [
        ["features.0", "features.1"], ["features.3", "features.4"],
        ["classifier.1", "classifier.2"], ["classifier.3", "classifier.4"]]

"""``convnet export RUN --format onnx|safetensors`` on a tiny run of the bundled digits."""
from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import convnet
from convnet import models
from convnet.cli.evaluate import load_run
from convnet.cli.main import main
from convnet.io.safetensors import load_file, read_metadata


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "digits"
    argv = ["train", "--limit-train", "256", "--limit-test", "64", "--epochs", "1",
            "--no-progress", "--workers", "0", "--out", str(out)]
    assert main(argv) == 0
    return out


def digits(n=5):
    from convnet.data.datasets import BundledMNIST

    x = BundledMNIST(train=False).images[:n].astype(np.float32) / 255.0
    return ((x - 0.1307) / 0.3081).reshape(n, 1, 28, 28).astype(np.float32)


def test_onnx_export_checks_and_matches_convnet(run_dir, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    assert main(["export", str(run_dir), "--format", "onnx", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"wrote {out} (" in text and "kB)" in text
    assert "input (batch, 1, 28, 28) -> output (batch, 10), opset 17" in text
    assert "onnx.checker: ok (full check)" in text
    diff = float(text.split("max |onnxruntime - convnet| = ")[1].split()[0])
    assert diff < 1e-5 and "on 8 test images" in text
    onnx.checker.check_model(str(out), full_check=True)
    _, _, model = load_run(run_dir)
    x = digits()
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(
        None, {"input": x})[0]
    np.testing.assert_allclose(got, model(convnet.tensor(x)).numpy(), rtol=1e-5, atol=1e-5)


def test_onnx_defaults_options_and_static_batch(run_dir, capsys):
    assert main(["export", str(run_dir), "--format", "onnx", "--opset", "13",
                 "--no-dynamic-batch"]) == 0
    text = capsys.readouterr().out
    proto = onnx.load(str(run_dir / "model.onnx"))
    assert proto.opset_import[0].version == 13
    assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim] == \
        [1, 1, 28, 28]
    assert "input (1, 1, 28, 28) -> output (1, 10), opset 13" in text and "on 1 test image " \
        in text


def test_safetensors_export_rebuilds_from_its_metadata_alone(run_dir, tmp_path, capsys):
    out = tmp_path / "w.safetensors"
    assert main(["export", str(run_dir), "--format", "safetensors", "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    meta = read_metadata(out)
    assert meta["model"] == "lenet5" and meta["num_classes"] == "10"
    assert json.loads(meta["input_shape"]) == [1, 1, 28, 28]
    assert json.loads(meta["class_names"]) == [str(i) for i in range(10)]
    assert json.loads(meta["mean"]) == [0.1307] and meta["task"] == "classify"
    rebuilt = models.create(meta["model"], num_classes=int(meta["num_classes"]),
                            in_channels=int(meta["in_channels"]),
                            **json.loads(meta["model_options"]))
    rebuilt.load_state_dict({k: convnet.tensor(v) for k, v in load_file(out).items()})
    rebuilt.eval()
    _, _, model = load_run(run_dir)
    x = convnet.tensor(digits())
    np.testing.assert_array_equal(rebuilt(x).numpy(), model(x).numpy())


def test_errors_are_one_line(run_dir, tmp_path, capsys, monkeypatch):
    def err(argv):
        assert main(argv) == 2
        return capsys.readouterr().err.strip().splitlines()[-1]

    assert "is not a folder" in err(["export", str(tmp_path / "nope"), "--format", "onnx"])
    assert "is a folder; give a file name" in err(["export", str(run_dir), "--format", "onnx",
                                                   "--out", str(tmp_path)])
    assert "opset_version must be an int in [13" in err(["export", str(run_dir), "--format",
                                                         "onnx", "--opset", "7"])
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert "cannot write" in err(["export", str(run_dir), "--format", "onnx", "--out",
                                  str(blocker / "m.onnx")])
    assert "convnet quantize" in err(["export", str(run_dir), "--format", "onnx",
                                      "--quantized"])
    detect = tmp_path / "detect"
    shutil.copytree(run_dir, detect)
    cfg = json.loads((detect / "config.json").read_text())
    (detect / "config.json").write_text(json.dumps(dict(cfg, task="detect")))
    assert "is a detection run" in err(["export", str(detect), "--format", "onnx"])
    monkeypatch.setitem(sys.modules, "onnx", None)
    assert "pip install convnet[onnx]" in err(["export", str(run_dir), "--format", "onnx"])

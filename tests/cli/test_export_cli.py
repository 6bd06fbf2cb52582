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
    detect = tmp_path / "detect"
    shutil.copytree(run_dir, detect)
    cfg = json.loads((detect / "config.json").read_text())
    (detect / "config.json").write_text(json.dumps(dict(cfg, task="detect")))
    assert "is a detection run" in err(["export", str(detect), "--format", "onnx"])
    monkeypatch.setitem(sys.modules, "onnx", None)
    assert "pip install convnet[onnx]" in err(["export", str(run_dir), "--format", "onnx"])


def test_quantized_export_makes_the_int8_run_and_a_qdq_graph(run_dir, capsys):
    from convnet.quantization import load_quantized

    int8 = run_dir.parent / f"{run_dir.name}-int8"
    assert main(["export", str(run_dir), "--format", "onnx", "--quantized"]) == 0
    text = capsys.readouterr().out
    assert f"quantizing {run_dir} into {int8} first" in text
    assert f"wrote {int8 / 'model.onnx'}" in text and "lenet5 int8 QDQ" in text
    assert "output steps (scale" in text
    proto = onnx.load(str(int8 / "model.onnx"))
    ops = [n.op_type for n in proto.graph.node]
    assert ops[0] == "QuantizeLinear" and "DequantizeLinear" in ops
    cfg, _, qmodel = load_run(int8)
    step = [m.scale for m in qmodel.modules() if "scale" in m._buffers][-1]
    x = digits(64)
    got = ort.InferenceSession(str(int8 / "model.onnx"), providers=["CPUExecutionProvider"]
                               ).run(None, {"input": x})[0]
    steps = np.rint(np.abs(got - qmodel(convnet.tensor(x)).numpy()) / step)
    assert (steps <= 1).mean() >= 0.999

    # again: the int8 run is reused; exporting the int8 run itself gives the same graph
    assert main(["export", str(run_dir), "--format", "onnx", "--quantized"]) == 0
    assert f"using the quantized run {int8}" in capsys.readouterr().out
    assert main(["export", str(int8), "--format", "onnx", "--out", str(int8 / "b.onnx")]) == 0
    assert onnx.load(str(int8 / "b.onnx")).graph == proto.graph

    # safetensors of the int8 run: load_quantized(file) alone rebuilds it
    assert main(["export", str(int8), "--format", "safetensors"]) == 0
    assert "int8 weights" in capsys.readouterr().out
    rebuilt = load_quantized(int8 / "weights.safetensors")
    np.testing.assert_array_equal(rebuilt(convnet.tensor(x)).numpy(),
                                  qmodel(convnet.tensor(x)).numpy())


def test_quantized_refuses_a_foreign_int8_folder(tmp_path, capsys):
    run = tmp_path / "a"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"model": "lenet5"}))
    (tmp_path / "a-int8").mkdir()
    (tmp_path / "a-int8" / "notes.txt").write_text("mine")
    assert main(["export", str(run), "--format", "onnx", "--quantized"]) == 2
    assert "is not the quantized copy of" in capsys.readouterr().err

"""The explorer's back end without a server: hooks, layer facts, encodings, session answers."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

import convnet.functional as F
import convnet.nn as nn
from convnet import models
from convnet.explorer import encode
from convnet.explorer.capture import capture, layer_table
from convnet.explorer.session import ApiError, Session, shift_image
from convnet.explorer.sources import PythonSource, RunSource
from convnet.tensor import Tensor

ZOO = {  # name -> (create options, input shape): small variants, nothing is trained
    "lenet5": ({"in_channels": 1}, (1, 28, 28)),
    "resnet20": ({"in_channels": 3}, (3, 32, 32)),
    "unet": ({"in_channels": 1, "base_channels": 8, "depth": 2}, (1, 28, 28)),
    "vit_tiny": ({"in_channels": 1}, (1, 28, 28)),
}


class TwoPath(nn.Module):
    """A user's own model: a shared conv called twice, a functional add and a flatten."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.shared = nn.Conv2d(4, 4, 3, padding=1, dilation=1)
        self.act = nn.LeakyReLU(0.1)
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(4 * 6 * 6, 3))

    def forward(self, x):
        x = self.act(self.stem(x))
        y = self.shared(self.shared(x)) + x  # the same module twice, then a functional add
        return self.head(self.pool(y))


def _model(name):
    opts, shape = ZOO[name]
    m = models.create(name, **opts)
    m.eval()
    return m, shape


def _x(shape, seed=0):
    return Tensor._make(np.random.default_rng(seed).standard_normal((1, *shape)).astype(np.float32))


@pytest.mark.parametrize("name", [*ZOO, "custom"])
def test_every_module_is_a_layer_and_captures_are_the_models_tensors(name):
    m, shape = (TwoPath().eval(), (1, 12, 12)) if name == "custom" else _model(name)
    layers, totals = layer_table(m, shape)
    modules = {n for n, _ in m.named_modules() if n}
    names = {lay["name"].split(" (call")[0] for lay in layers}
    assert names == modules  # every module (leaves and containers) was seen
    x = _x(shape)
    calls, out = capture(m, x)
    ref = m(x)._data
    np.testing.assert_array_equal(out._data, ref)
    # the last top-level call returned the model's output (nothing after it)
    last_top = max(c.index for c in calls if c.parent is None)
    np.testing.assert_array_equal(calls[last_top].output, ref)
    for lay, c in zip(layers, calls):
        assert lay["name"] == c.name and lay["id"] == c.index
        if lay["parent_id"] is not None:  # containers come before their children
            assert lay["parent_id"] < lay["id"]
            assert not layers[lay["parent_id"]]["leaf"]
        if lay["input_from"] is not None and lay["input_from"] >= 0:
            np.testing.assert_array_equal(c.input, calls[lay["input_from"]].output)
        if lay["input_from"] == -1:
            np.testing.assert_array_equal(c.input, x._data)
        # each conv's captured output is its own w * input + b, recomputed here
        if lay["explain"] == "conv":
            cfg = lay["config"]
            mod = c.module
            want = F.conv2d(Tensor._make(c.input), mod.weight, mod.bias, cfg["stride"],
                            cfg["padding"], cfg["dilation"], cfg["groups"])._data
            np.testing.assert_allclose(c.output, want, rtol=1e-5, atol=1e-5)
    assert totals["total_params"] == sum(int(np.prod(p.shape)) for p in m.parameters())
    assert layers[0]["parent_id"] is None and totals["top_layers"][0] == layers[0]["name"]


def test_repeated_calls_and_functional_inputs():
    m, shape = _model("resnet20")
    layers, _ = layer_table(m, shape)
    by_name = {lay["name"]: lay for lay in layers}
    # the block's ReLU runs twice: two layers; the second reads `out + shortcut` (no module)
    assert "layer1.0.relu" in by_name and "layer1.0.relu (call 2)" in by_name
    assert by_name["layer1.0.relu (call 2)"]["input_from"] is None
    assert by_name["layer1.0.relu"]["input_from"] == by_name["layer1.0.bn1"]["id"]
    assert by_name["conv1"]["input_from"] == -1
    # facts: conv params/MACs, a container sums its leaves, receptive fields grow
    conv1 = by_name["conv1"]
    assert conv1["params"] == 3 * 16 * 9 and conv1["macs"] == 16 * 32 * 32 * 3 * 9
    assert conv1["config"]["kernel_size"] == [3, 3] and conv1["config"]["padding"] == [1, 1]
    assert by_name["layer1"]["params"] == sum(by_name[f"layer1.{i}"]["params"] for i in range(3))
    assert by_name["conv1"]["rf"]["size"] == [3, 3]
    assert by_name["layer1.0.conv1"]["rf"]["size"] == [5, 5]
    assert by_name["layer2.0.conv1"]["rf"]["jump"] == [2, 2]
    assert by_name["fc"]["rf"] is None and by_name["fc"]["explain"] == "linear"
    assert by_name["avgpool"]["explain"] == "adaptive_pool"
    assert by_name["bn1"]["explain"] == "batchnorm"
    # a container returns its last child's tensor: said once, on the later layer
    assert by_name["layer1.2.relu (call 2)"]["same_output_as"] == by_name["layer1"]["id"]
    assert by_name["layer1.2"]["same_output_as"] == by_name["layer1"]["id"]
    assert by_name["layer1.0.conv1"]["same_output_as"] is None
    assert set(by_name["bn1"]["param_names"]) >= {"weight", "bias", "running_mean", "running_var"}


def test_explain_configs_of_pool_activation_and_norm_layers():
    m = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding=1, dilation=2),
                      nn.GroupNorm(2, 4), nn.GELU(approximate="tanh"), nn.AvgPool2d(2, 1, 1),
                      nn.LeakyReLU(0.2), nn.Dropout(0.5), nn.Flatten(), nn.LayerNorm(4 * 6 * 6))
    layers, _ = layer_table(m.eval(), (1, 12, 12))
    kinds = [lay["explain"] for lay in layers]
    assert kinds == ["conv", "groupnorm", "activation", "pool", "activation", "identity",
                     "identity", "layernorm"]
    conv, gn, gelu, pool, leaky = (lay["config"] for lay in layers[:5])
    assert conv["dilation"] == [2, 2] and conv["stride"] == [2, 2] and conv["bias"] is True
    assert gn == {"num_groups": 2, "num_channels": 4, "eps": 1e-5, "affine": True}
    assert gelu == {"name": "gelu_tanh"}
    assert pool["kind"] == "avg" and pool["stride"] == [1, 1] and pool["padding"] == [1, 1]
    assert pool["count_include_pad"] is True
    assert leaky["name"] == "leaky_relu" and leaky["negative_slope"] == pytest.approx(0.2)
    assert layers[-1]["config"]["normalized_shape"] == [144]


# ------------------------------------------------------------------------------ encodings
def test_blob_round_trip_and_alignment():
    a = np.random.default_rng(1).standard_normal((1, 3, 5, 7)).astype(np.float32)
    b = encode.encode_blob(a)
    assert b[:4] == b"CNV1"
    n = int.from_bytes(b[4:8], "little")
    head = json.loads(b[8:8 + n])
    assert head == {"shape": [1, 3, 5, 7], "dtype": "float32"}
    assert (8 + n) % 4 == 0 and len(b) == 8 + n + a.size * 4
    np.testing.assert_array_equal(encode.decode_blob(b), a)
    assert encode.blob_sha(a) == __import__("hashlib").sha1(b).hexdigest()
    # float64 arrays travel as float32
    np.testing.assert_array_equal(encode.decode_blob(encode.encode_blob(a.astype(np.float64))), a)


def test_diverging_colours():
    rgb = encode.diverging_rgb(np.array([0.0, 2.0, -2.0, 1.0, 5.0]), 2.0)
    assert rgb[0].tolist() == [255, 255, 255]
    assert rgb[1].tolist() == [0xC2, 0x41, 0x0C] and rgb[4].tolist() == rgb[1].tolist()
    assert rgb[2].tolist() == [0x1D, 0x4E, 0xD8]
    assert 0xC2 < rgb[3][0] < 255  # halfway: between white and orange-red


@pytest.mark.parametrize("shape,size", [((6, 4, 5), (3 * 5, 2 * 4)), ((7, 9), (9, 7)),
                                        ((70,), (32, 3)), ((2, 3, 4, 5), (32, 4))])
def test_sprite_size_matches_layout(shape, size):
    v = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    lay = encode.layout_for(shape)
    im = Image.open(io.BytesIO(encode.sprite_png(v, lay, float(np.abs(v).max()))))
    assert im.mode == "RGB"
    assert im.size == size == (lay["cols"] * lay["tile_w"], lay["rows"] * lay["tile_h"])


def test_sprite_tiles_are_row_major():
    v = np.zeros((6, 4, 5), np.float32)
    v[4, 1, 2] = 1.0  # channel 4 -> tile row 1, column 1 of a 3-column grid
    lay = encode.layout_for(v.shape)
    px = np.asarray(Image.open(io.BytesIO(encode.sprite_png(v, lay, 1.0))))
    hot = np.argwhere((px != 255).any(axis=2))
    assert hot.tolist() == [[1 * 4 + 1, 1 * 5 + 2]]


# ---------------------------------------------------------------------- sessions (Python)
def _session(model=None, n=6, shape=(1, 12, 12), **kw):
    model = model or TwoPath().eval()
    data = np.random.default_rng(3).standard_normal((n, *shape)).astype(np.float32)
    return Session(PythonSource(model, data, **kw), model), model, data


def test_forward_answer_matches_the_model():
    s, m, data = _session(class_names=["a", "b", "c"])
    meta = s.meta()
    assert meta["task"] == "classify" and meta["class_names"] == ["a", "b", "c"]
    assert meta["input"]["drawable"] is True and meta["static"] is False
    f = s.forward("test-2")
    logits = m(Tensor._make(data[2:3]))._data[0]
    np.testing.assert_allclose(f["prediction"]["logits"], logits, rtol=1e-6)
    assert sum(f["prediction"]["probs"]) == pytest.approx(1.0)
    assert f["prediction"]["top"][0]["index"] == int(np.argmax(logits))
    assert len(f["layers"]) == len(meta["layers"])
    np.testing.assert_array_equal(encode.decode_blob(s.blob(f["output_blob"])), logits[None])
    for row in f["layers"]:
        if row["output_blob"]:
            out = encode.decode_blob(s.blob(row["output_blob"]))
            assert row["scale"] == pytest.approx(float(np.abs(out).max()))
            im = Image.open(io.BytesIO(s.maps_png("test-2", row["id"])))
            lay = row["layout"]
            assert im.size == (lay["cols"] * lay["tile_w"], lay["rows"] * lay["tile_h"])
    w = encode.decode_blob(s.param(0, "weight"))
    np.testing.assert_array_equal(w, m.stem.weight._data)
    with pytest.raises(ApiError) as e:
        s.param(0, "running_mean")
    assert e.value.status == 404


def test_bad_ids_are_clear_errors():
    s, _, _ = _session()
    for bad, status in (("test-99", 404), ("../etc", 400), ("upload-abc", 404), ("nope-1", 404)):
        with pytest.raises(ApiError) as e:
            s.forward(bad)
        assert e.value.status == status
    with pytest.raises(ApiError) as e:
        s.maps_png("test-0", 999)
    assert e.value.status == 404


def test_python_source_needs_an_input_shape_without_data():
    with pytest.raises(ValueError, match="input_shape"):
        PythonSource(TwoPath())
    s = Session(PythonSource(TwoPath().eval(), input_shape=(1, 12, 12)))
    assert s.meta()["num_inputs"] == 0 and s.inputs()["total"] == 0
    with pytest.raises(TypeError, match="indexable"):
        PythonSource(TwoPath(), dataset=42)


def test_python_source_takes_image_label_pairs_and_data_loaders():
    from convnet.data import DataLoader, TensorDataset

    rng = np.random.default_rng(3)
    images = rng.standard_normal((5, 1, 12, 12)).astype(np.float32)
    labels = np.array([2, 0, 1, 1, 0])
    for data in ((images, labels), (Tensor._make(images), Tensor._make(labels)),
                 DataLoader(TensorDataset(Tensor._make(images), Tensor._make(labels)),
                            batch_size=2)):
        src = PythonSource(TwoPath().eval(), data, class_names=["a", "b", "c"])
        assert len(src) == 5 and src.input_shape == (1, 12, 12)
        x, y = src.get(3)
        np.testing.assert_array_equal(x, images[3])
        assert y == 1 and list(src.labels()) == list(labels)


def _png(arr) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_upload_resizes_and_normalises_and_rejects_non_images():
    s, _, _ = _session(mean=[0.5], std=[0.25])
    img = np.zeros((40, 40), np.uint8)
    img[10:30, 10:30] = 255
    up = s.upload(_png(img), "square.png")
    assert up["id"].startswith("upload-") and up["notes"]  # resized from 40x40
    x, _ = s._resolve(up["id"])
    assert x.shape == (1, 12, 12)
    assert x.min() == pytest.approx(-2.0) and x.max() == pytest.approx(2.0)  # (0|1 - .5)/.25
    assert s.forward(up["id"])["id"] == up["id"]
    with pytest.raises(ApiError) as e:
        s.upload(b"%PDF-1.4 not a picture", "paper.pdf")
    assert e.value.status == 400 and "paper.pdf is not an image" in e.value.message
    assert "/tmp" not in e.value.message  # the temporary file's name stays inside


def test_transform_turns_uploads_into_inputs():
    calls = []

    def transform(im):
        calls.append(im.size)
        return np.full((1, 12, 12), 0.25, np.float32)

    s, _, _ = _session(transform=transform)
    x, _ = s._resolve(s.upload(_png(np.zeros((5, 9), np.uint8)), "a.png")["id"])
    assert calls == [(9, 5)] and np.all(x == 0.25)


def test_gradcam_and_filters():
    s, _, _ = _session()
    gl = s.gradcam_layers()
    names = [s.layers[i]["name"] for i in gl["layers"]]
    assert "shared" in names and "shared (call 2)" in names and "head.1" not in names
    assert s.layers[gl["default"]]["explain"] == "conv"
    # the two calls of the shared conv are different tensors: different maps
    a = s.gradcam("test-0", gl["layers"][names.index("shared")], 1)
    b = s.gradcam("test-0", gl["layers"][names.index("shared (call 2)")], 1)
    assert a.shape == (12, 12) and 0 <= a.min() and a.max() <= 1 and not np.allclose(a, b)
    im = Image.open(io.BytesIO(s.gradcam_png("test-0", gl["default"], 2)))
    assert max(im.size) >= 224 and im.mode == "RGB"
    with pytest.raises(ApiError) as e:
        s.gradcam_png("test-0", len(s.layers) - 1, 0)
    assert e.value.status == 400 and "not spatial" in e.value.message
    png, info = s.filters(0)
    im = Image.open(io.BytesIO(png))
    assert info["rgb"] is False and im.size == (info["cols"] * 3, info["rows"] * 3)
    assert (info["out_channels"], info["in_shown"]) == (4, 1)


def test_invariance_of_a_conv_is_exact_away_from_borders():
    conv = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.MaxPool2d(2))
    s, _, _ = _session(conv.eval(), shape=(1, 12, 12))
    inv = s.invariance("test-0", 2, 0)
    assert inv["shift_id"] == "shift-test-0-2-0"
    conv_row, pool_row = inv["layers"]  # the root itself is not a layer
    assert conv_row["equivariance"] == pytest.approx(0, abs=1e-6)  # equivariant
    assert conv_row["invariance"] > 0.1                            # but not invariant
    assert pool_row["equivariance"] == pytest.approx(0, abs=1e-6)  # 2 px = one pooled unit
    assert s.invariance("test-0", 1, 0)["layers"][1]["equivariance"] is None  # not whole


def test_shift_image_moves_right_and_down_without_wrapping():
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    y = shift_image(x, 1, 0)
    np.testing.assert_array_equal(y[0, :, 1:], x[0, :, :3])
    np.testing.assert_array_equal(y[0, :, 0], x[0, :, 0])  # the edge repeats
    np.testing.assert_array_equal(shift_image(x, 0, -1)[0, :3], x[0, 1:])


def test_confusion_in_the_background():
    s, m, data = _session(n=10)
    ds = [(data[i], i % 3) for i in range(10)]
    s = Session(PythonSource(m, ds), m)
    first = s.confusion()
    assert first["status"] in ("computing", "ready")
    done = s.confusion(wait=True)
    pred = m(Tensor._make(data))._data.argmax(axis=1)
    want = np.zeros((3, 3), int)
    for i in range(10):
        want[i % 3, pred[i]] += 1
    assert done["status"] == "ready" and done["matrix"] == want.tolist()
    t, p = 0, int(pred[0])
    cell = s.confusion_cell(t, p)
    assert "test-0" in [it["id"] for it in cell["items"]]
    probs = [it["prob_pred"] for it in cell["items"]]
    assert probs == sorted(probs, reverse=True)


# --------------------------------------------------------------------- run folders
def test_run_source_errors(tmp_path, explore_runs):
    run = explore_runs("lenet5")
    with pytest.raises(FileNotFoundError, match="no such run folder"):
        RunSource(tmp_path / "missing")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((run / "config.json").read_text())
    with pytest.raises(FileNotFoundError, match=r"broken.*model\.safetensors"):
        RunSource(broken)
    (broken / "model.safetensors").write_bytes(b"garbage, not safetensors")
    with pytest.raises(ValueError, match=r"broken.*cannot load model\.safetensors"):
        RunSource(broken)
    cfg = json.loads((run / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps({**cfg, "task": "detect"}))
    with pytest.raises(ValueError, match="detection run"):
        RunSource(broken)


def test_run_session_meta_curves_and_drawing(explore_runs):
    s = Session(RunSource(explore_runs("lenet5")))
    meta = s.meta()
    assert meta["model"] == "lenet5" and meta["input"]["drawable"] is True
    assert meta["input"]["mean"] == [pytest.approx(0.1307)] and meta["has_curves"]
    assert meta["top_layers"] == ["features", "classifier"]
    curves = s.curves()
    assert len(curves["history"]) == 2 and curves["best_epoch"] in (1, 2)
    page = s.inputs(0, 5)
    assert page["total"] == len(s.source) and [i["id"] for i in page["items"]][0] == "test-0"
    three = s.inputs(0, 100, label=3)["items"]
    assert three and all(i["label"] == 3 and i["label_name"] == "3" for i in three)
    canvas = np.zeros((280, 280), np.uint8)
    canvas[60:220, 130:150] = 255  # a "1": white strokes on black
    did = s.draw(_png(canvas))["id"]
    x, _ = s._resolve(did)
    assert did.startswith("draw-") and x.shape == (1, 28, 28)
    ink = x[0] > 0  # normalised: background (0 - mean) / std < 0
    assert ink.sum() > 20 and ink[:, 13:15].sum() > ink[:, :5].sum()

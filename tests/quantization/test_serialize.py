"""save_quantized / load_quantized (safetensors + JSON metadata) and quantized_size_bytes."""
import json

import numpy as np
import pytest

import convnet
from convnet import models, nn
from convnet.io.safetensors import load_file, save_file
from convnet.quantization import quantized as Q
from convnet.quantization.convert import convert
from convnet.quantization.serialize import (load_quantized, quantized_size_bytes,
                                            read_quantized_metadata, save_quantized)
from convnet.quantization.stubs import QuantWrapper

from .test_convert import _observe


def _quantized_lenet(seed=0):
    convnet.manual_seed(seed)
    float_model = models.create("lenet5").eval()
    q = convert(_observe(QuantWrapper(float_model), scale=0.1, zero_point=100))
    return float_model, q


def test_round_trip_is_bit_exact_with_a_builder(tmp_path):
    _, q = _quantized_lenet()
    path = tmp_path / "model.safetensors"
    save_quantized(q, path, recipe={"qconfig": "x86"})
    back = load_quantized(path, lambda: models.create("lenet5"))
    assert type(back) is QuantWrapper and not back.training
    x = convnet.randn(3, 1, 28, 28)
    np.testing.assert_array_equal(back(x).numpy(), q(x).numpy())
    assert repr(back) == repr(q)
    for (k, a), (k2, b) in zip(q.state_dict().items(), back.state_dict().items()):
        assert k == k2 and a.numpy().dtype == b.numpy().dtype
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    meta = read_quantized_metadata(path)
    conv = meta["modules"]["module.features.0"]
    assert conv["type"] == "Conv2d" and conv["weight"] == {"dtype": "qint8",
                                                           "qscheme": "per_channel_affine"}
    assert conv["scale"] == pytest.approx(0.1) and conv["zero_point"] == 100
    assert meta["recipe"] == {"qconfig": "x86"}
    assert load_file(path)["module.features.0.weight"].dtype == np.int8


def test_load_from_the_recorded_recipe(tmp_path):
    _, q = _quantized_lenet(1)
    path = tmp_path / "m.safetensors"
    save_quantized(q, path, recipe={"model": "lenet5", "model_options": {}})
    back = load_quantized(path)
    x = convnet.randn(2, 1, 28, 28)
    np.testing.assert_array_equal(back(x).numpy(), q(x).numpy())


def test_without_recipe_or_builder_is_a_clear_error(tmp_path):
    _, q = _quantized_lenet()
    save_quantized(q, tmp_path / "m.safetensors")
    with pytest.raises(ValueError, match="pass float_model_builder"):
        load_quantized(tmp_path / "m.safetensors")


def test_corrupt_truncated_and_foreign_files(tmp_path):
    _, q = _quantized_lenet()
    good = tmp_path / "good.safetensors"
    save_quantized(q, good)
    data = good.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated"):
        load_quantized(tmp_path / "cut.safetensors", lambda: models.create("lenet5"))
    save_file({"w": np.zeros(3, np.float32)}, tmp_path / "float.safetensors")
    with pytest.raises(ValueError, match="not a quantized convnet model"):
        load_quantized(tmp_path / "float.safetensors", lambda: models.create("lenet5"))
    save_file({"w": np.zeros(3, np.float32)}, tmp_path / "bad.safetensors",
              {"convnet.quantized": "{not json"})
    with pytest.raises(ValueError, match="corrupt quantization metadata"):
        load_quantized(tmp_path / "bad.safetensors", lambda: models.create("lenet5"))
    with pytest.raises(ValueError, match="no module 'module.features.0'"):
        load_quantized(good, lambda: nn.Sequential(nn.Linear(2, 2)))
    tensors, meta = load_file(good, with_metadata=True)
    del tensors["module.features.0.bias"]
    save_file(tensors, tmp_path / "short.safetensors", meta)
    with pytest.raises(ValueError, match="do not fit the rebuilt model.*features.0.bias"):
        load_quantized(tmp_path / "short.safetensors", lambda: models.create("lenet5"))
    with pytest.raises(FileNotFoundError):
        load_quantized(tmp_path / "missing.safetensors")


def test_float_model_is_refused_and_nothing_is_written(tmp_path):
    with pytest.raises(ValueError, match="no quantized modules"):
        save_quantized(models.create("lenet5"), tmp_path / "x.safetensors")
    assert not list(tmp_path.iterdir())


def test_save_is_atomic(tmp_path, monkeypatch):
    _, q = _quantized_lenet()
    path = tmp_path / "m.safetensors"
    save_quantized(q, path)
    before = path.read_bytes()
    import convnet.io.atomic as atomic

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "fsync", boom)
    q.module.features[0].scale = 0.5
    with pytest.raises(OSError):
        save_quantized(q, path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == [path.name]


def test_size_bytes_per_layer_float_and_int8():
    float_model, q = _quantized_lenet()
    fb, qb = quantized_size_bytes(float_model), quantized_size_bytes(q)
    # conv1: 6x1x5x5 weights + 6 biases; float32 = 4 bytes each
    assert fb["features.0"] == (150 + 6) * 4
    # int8 weights (1 byte) + per-channel float64 scales and int64 zero points + float32 bias
    # + float64 scale and int64 zero point of the output
    assert qb["module.features.0"] == 150 + 6 * 8 * 2 + 6 * 4 + 8 + 8
    assert fb["total"] == sum(v for k, v in fb.items() if k != "total")
    assert 3.5 < fb["total"] / qb["total"] < 4.0
    assert json.dumps(qb)  # plain ints: goes straight into metrics.json


def test_parent_load_state_dict_switches_weight_schemes():
    """A per-channel state dict loads into a skeleton built per tensor, through the parent."""
    import copy

    _, q = _quantized_lenet()
    skeleton = copy.deepcopy(q)
    f, c = skeleton.module.features, skeleton.module.classifier
    setattr(f, "0", Q.ConvReLU2d(1, 6, 5, padding=2))  # per tensor by default
    setattr(f, "3", Q.ConvReLU2d(6, 16, 5))
    for i, cls, n_in, n_out in (("1", Q.LinearReLU, 400, 120), ("3", Q.LinearReLU, 120, 84),
                                ("5", Q.Linear, 84, 10)):
        setattr(c, i, cls(n_in, n_out))
    assert f[0].weight().qscheme() == "per_tensor_affine"
    skeleton.load_state_dict(q.state_dict())
    assert f[0].weight().qscheme() == "per_channel_affine"
    x = convnet.randn(2, 1, 28, 28)
    np.testing.assert_array_equal(skeleton(x).numpy(), q(x).numpy())

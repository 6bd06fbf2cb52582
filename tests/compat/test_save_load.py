"""convnet.save / convnet.load (issue 14): torch's API over a safetensors file, never pickle."""
import io
import math
import os
from collections import OrderedDict

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file as st_load_file
from safetensors.numpy import save_file as st_save_file

import convnet as cn
from convnet import nn
from convnet.io import SafetensorsError


class Net(nn.Module):
    """A module-level class, so a whole saved model can be rebuilt by name."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3)
        self.bn = nn.BatchNorm2d(3)
        self.fc = nn.Linear(12, 4)
        self.scale = 0.5

    def forward(self, x):
        x = cn.functional.relu(self.bn(self.conv(x)))
        return self.fc(x.reshape(x.shape[0], -1)) * self.scale


def _net(seed=0):
    cn.manual_seed(seed)
    return Net()


def _arr(t):
    return t.numpy() if isinstance(t, cn.Tensor) else np.asarray(t)


# ------------------------------------------------------------------ state dicts
def test_state_dict_file_is_standard_safetensors(tmp_path):
    m = _net()
    sd = m.state_dict()
    p = tmp_path / "model_weights.pth"
    cn.save(sd, p)
    other = st_load_file(str(p))  # the reference safetensors package opens it
    assert set(other) == set(sd)
    for k, v in sd.items():
        assert other[k].dtype == v.numpy().dtype and np.array_equal(other[k], v.numpy())
    assert other["bn.num_batches_tracked"].dtype == np.int64


def test_state_dict_round_trip_and_load_state_dict(tmp_path):
    m = _net()
    m.bn.running_mean.numpy()[:] = [1.0, 2.0, 3.0]  # buffers travel too
    cn.save(m.state_dict(), tmp_path / "w.pth")
    sd = cn.load(tmp_path / "w.pth", weights_only=True)
    assert type(sd) is OrderedDict and list(sd) == list(m.state_dict())  # order kept
    for k, v in sd.items():
        assert isinstance(v, cn.Tensor) and not v.requires_grad
        assert v.dtype == m.state_dict()[k].dtype
    fresh = _net(seed=1)
    assert not np.array_equal(fresh.fc.weight.numpy(), m.fc.weight.numpy())
    res = fresh.load_state_dict(cn.load(str(tmp_path / "w.pth")))
    assert res.missing_keys == [] and res.unexpected_keys == []
    x = cn.randn(2, 1, 4, 4)
    fresh.eval(), m.eval()
    assert np.array_equal(fresh(x).numpy(), m(x).numpy())


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.int32, np.uint8,
                                   np.bool_, np.float16])
def test_dtypes_and_shapes_preserved(tmp_path, dtype):
    arr = (np.arange(24).reshape(2, 3, 4) % 3).astype(dtype)
    obj = {"t": cn.Tensor._make(arr), "scalar": cn.Tensor._make(np.array(7, dtype=dtype))}
    cn.save(obj, tmp_path / "d.pt")
    back = cn.load(tmp_path / "d.pt")
    for k in obj:
        assert back[k].dtype == np.dtype(dtype) and back[k].shape == obj[k].shape
        assert np.array_equal(back[k].numpy(), obj[k].numpy())


def test_foreign_safetensors_file_loads_as_name_to_tensor(tmp_path):
    # torch's state dict written by the safetensors package loads straight into convnet
    tm = torch.nn.Linear(3, 2).double()
    import safetensors.torch
    safetensors.torch.save_file(tm.state_dict(), str(tmp_path / "t.safetensors"))
    sd = cn.load(tmp_path / "t.safetensors")
    assert set(sd) == {"weight", "bias"} and all(isinstance(v, cn.Tensor) for v in sd.values())
    m = nn.Linear(3, 2).double()
    m.load_state_dict(sd)
    x = np.random.default_rng(0).standard_normal((4, 3))
    np.testing.assert_array_equal(m.weight.numpy(), tm.weight.detach().numpy())
    np.testing.assert_allclose(m(cn.tensor(x)).numpy(), tm(torch.tensor(x)).detach().numpy(),
                               rtol=1e-12, atol=1e-14)
    # and the other way: torch reads convnet's state-dict file
    cn.save(m.state_dict(), tmp_path / "c.safetensors")
    back = safetensors.torch.load_file(str(tmp_path / "c.safetensors"))
    np.testing.assert_array_equal(back["weight"].numpy(), m.weight.numpy())


# ------------------------------------------------------------------ nested objects
def test_checkpoint_dict_round_trip_keeps_types(tmp_path):
    t64 = cn.tensor(np.array([[1.5, -2.0]], dtype=np.float64))
    obj = {
        "epoch": 7, "loss": 0.25, "best": float("inf"), "nan": float("nan"), "neg": -math.inf,
        "name": "resnet", "flags": [True, False, None], "betas": (0.9, 0.999),
        "nested": {"a": [t64, {"b": (1, "x", 2.0)}], 3: "int key", (1, 2): "tuple key"},
        "arr": np.arange(5, dtype=np.int16), "npscalar": np.float32(1.25),
        "empty": {}, "elist": [], "etuple": (),
    }
    buf = io.BytesIO()
    cn.save(obj, buf)
    buf.seek(0)
    back = cn.load(buf)
    assert type(back) is dict and list(back) == list(obj)
    assert back["epoch"] == 7 and type(back["epoch"]) is int
    assert back["loss"] == 0.25 and back["best"] == math.inf and math.isnan(back["nan"])
    assert back["neg"] == -math.inf
    assert back["name"] == "resnet" and back["flags"] == [True, False, None]
    assert back["betas"] == (0.9, 0.999) and type(back["betas"]) is tuple
    a = back["nested"]["a"]
    assert isinstance(a[0], cn.Tensor) and a[0].dtype == np.float64
    assert np.array_equal(a[0].numpy(), t64.numpy())
    assert a[1] == {"b": (1, "x", 2.0)}
    assert back["nested"][3] == "int key" and back["nested"][(1, 2)] == "tuple key"
    assert isinstance(back["arr"], np.ndarray) and back["arr"].dtype == np.int16
    assert np.array_equal(back["arr"], obj["arr"])
    assert back["npscalar"] == np.float32(1.25) and back["npscalar"].dtype == np.float32
    assert back["empty"] == {} and back["elist"] == [] and back["etuple"] == ()


def test_nested_tensor_names_are_paths(tmp_path):
    m = nn.Linear(2, 2)
    cn.save({"model": m.state_dict(), "hist": [cn.ones(1)]}, tmp_path / "c.pt")
    assert set(st_load_file(str(tmp_path / "c.pt"))) == {"model.weight", "model.bias", "hist.0"}


def test_colliding_paths_and_shared_tensors(tmp_path):
    w = cn.randn(3)
    obj = {"a.b": w, "a": {"b": w}, "same": [w, w]}
    cn.save(obj, tmp_path / "s.pt")
    back = cn.load(tmp_path / "s.pt")
    for v in (back["a.b"], back["a"]["b"], *back["same"]):
        assert np.array_equal(v.numpy(), w.numpy())


def test_single_tensor_and_parameter(tmp_path):
    cn.save(cn.arange(6).reshape(2, 3), tmp_path / "t.pt")
    t = cn.load(tmp_path / "t.pt")
    assert isinstance(t, cn.Tensor) and t.shape == (2, 3) and t.dtype == np.int64
    p = nn.Parameter(cn.ones(2))
    cn.save([p, p.detach()], tmp_path / "p.pt")
    back = cn.load(tmp_path / "p.pt")
    assert isinstance(back[0], nn.Parameter) and back[0].requires_grad
    assert not isinstance(back[1], nn.Parameter) and not back[1].requires_grad


# ------------------------------------------------------------------ optimizer resume
def _data(seed):
    rng = np.random.default_rng(seed)
    return cn.tensor(rng.standard_normal((8, 1, 4, 4)).astype(np.float32)), \
        cn.tensor(rng.integers(0, 4, size=8))


def _steps(model, opt, seeds):
    model.train()
    for s in seeds:
        x, y = _data(s)
        opt.zero_grad()
        cn.functional.cross_entropy(model(x), y).backward()
        opt.step()


@pytest.mark.parametrize("make_opt", [
    lambda ps: cn.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
    lambda ps: cn.optim.Adam(ps, lr=1e-2, betas=(0.8, 0.99), amsgrad=True),
], ids=["sgd-momentum", "adam"])
def test_training_resumes_bit_for_bit(tmp_path, make_opt):
    ref = _net()
    ref_opt = make_opt(ref.parameters())
    _steps(ref, ref_opt, [0, 1, 2])
    cn.save({"epoch": 3, "model_state_dict": ref.state_dict(),
             "optimizer_state_dict": ref_opt.state_dict()}, tmp_path / "ckpt.tar")
    _steps(ref, ref_opt, [3, 4, 5])  # the uninterrupted run

    ckpt = cn.load(tmp_path / "ckpt.tar")
    model = _net(seed=9)
    opt = make_opt(model.parameters())
    model.load_state_dict(ckpt["model_state_dict"])
    opt.load_state_dict(ckpt["optimizer_state_dict"])
    assert ckpt["epoch"] == 3
    assert opt.param_groups[0]["lr"] == ref_opt.param_groups[0]["lr"]
    _steps(model, opt, [3, 4, 5])
    for (k, a), b in zip(ref.state_dict().items(), model.state_dict().values()):
        assert np.array_equal(a.numpy(), b.numpy()), k


def test_optimizer_state_dict_round_trip(tmp_path):
    m = _net()
    opt = cn.optim.Adam(m.parameters(), lr=1e-3)
    _steps(m, opt, [0])
    sd = opt.state_dict()
    cn.save(sd, tmp_path / "o.pt")
    back = cn.load(tmp_path / "o.pt")
    assert back["param_groups"] == sd["param_groups"]
    assert type(back["param_groups"][0]["betas"]) is tuple
    assert list(back["state"]) == list(sd["state"])  # int keys stay ints
    for i, s in sd["state"].items():
        assert back["state"][i]["step"] == s["step"]
        np.testing.assert_array_equal(back["state"][i]["exp_avg"], s["exp_avg"])


# ------------------------------------------------------------------ strict=
def test_strict_matches_torch(tmp_path):
    m, tm = nn.Linear(2, 3), torch.nn.Linear(2, 3)
    sd = dict(m.state_dict())
    del sd["bias"]
    sd["extra"] = cn.ones(1)
    cn.save(sd, tmp_path / "w.pt")
    loaded = cn.load(tmp_path / "w.pt")
    with pytest.raises(RuntimeError) as ours:
        m.load_state_dict(loaded)
    tsd = {"weight": torch.ones(3, 2), "extra": torch.ones(1)}
    with pytest.raises(RuntimeError) as theirs:
        tm.load_state_dict(tsd)
    assert str(ours.value) == str(theirs.value)
    res, tres = m.load_state_dict(loaded, strict=False), tm.load_state_dict(tsd, strict=False)
    assert res.missing_keys == tres.missing_keys == ["bias"]
    assert res.unexpected_keys == tres.unexpected_keys == ["extra"]
    np.testing.assert_array_equal(m.weight.numpy(), loaded["weight"].numpy())


def test_size_mismatch_matches_torch_text():
    m, tm = nn.Linear(2, 3), torch.nn.Linear(2, 3)
    with pytest.raises(RuntimeError) as ours:
        m.load_state_dict({"weight": cn.ones(3, 3), "bias": cn.ones(3)}, strict=False)
    with pytest.raises(RuntimeError) as theirs:
        tm.load_state_dict({"weight": torch.ones(3, 3), "bias": torch.ones(3)}, strict=False)
    assert str(ours.value) == str(theirs.value).replace("torch.Size([3, 3])", "(3, 3)") \
        .replace("torch.Size([3, 2])", "(3, 2)")


# ------------------------------------------------------------------ whole modules
def test_whole_module_needs_weights_only_false(tmp_path):
    m = _net()
    m.eval()
    cn.save(m, tmp_path / "model.pth")
    with pytest.raises(RuntimeError, match="weights_only=False"):
        cn.load(tmp_path / "model.pth")
    back = cn.load(tmp_path / "model.pth", weights_only=False)
    assert type(back) is Net and back is not m and not back.training and back.scale == 0.5
    assert list(back.state_dict()) == list(m.state_dict())
    x = cn.randn(2, 1, 4, 4)
    np.testing.assert_array_equal(back(x).numpy(), m(x).numpy())
    assert all(p.requires_grad and isinstance(p, nn.Parameter) for p in back.parameters())
    # the tensors are named by state-dict keys, so other tools can read a model file's weights
    assert set(st_load_file(str(tmp_path / "model.pth"))) == set(m.state_dict())


def test_whole_module_class_must_exist(tmp_path):
    def local():
        class Local(nn.Module):
            pass
        return Local()

    with pytest.raises(TypeError, match="inside a function"):
        cn.save(local(), tmp_path / "x.pth")
    cn.save(nn.Linear(2, 2), tmp_path / "lin.pth")
    from safetensors.numpy import load_file, save_file
    import json
    from convnet.io.safetensors import read_metadata
    meta = read_metadata(tmp_path / "lin.pth")
    doc = meta["convnet.save"].replace("convnet.nn.modules.linear:Linear", "os:path")
    save_file(load_file(str(tmp_path / "lin.pth")), str(tmp_path / "evil.pth"),
              {"convnet.save": doc})
    with pytest.raises(RuntimeError, match="not an nn.Module class"):
        cn.load(tmp_path / "evil.pth", weights_only=False)
    doc = json.loads(meta["convnet.save"])
    doc["tree"]["module"] = "not_imported_pkg_xyz:Net"
    save_file(load_file(str(tmp_path / "lin.pth")), str(tmp_path / "missing.pth"),
              {"convnet.save": json.dumps(doc)})
    with pytest.raises(RuntimeError, match="not imported"):
        cn.load(tmp_path / "missing.pth", weights_only=False)


# ------------------------------------------------------------------ map_location
@pytest.mark.parametrize("loc", [None, "cpu", "cpu:0", cn.device("cpu"), {"cuda:0": "cpu"},
                                 lambda storage, location: storage])
def test_map_location_cpu_forms(tmp_path, loc):
    cn.save({"w": cn.ones(2)}, tmp_path / "m.pt")
    assert np.array_equal(cn.load(tmp_path / "m.pt", map_location=loc)["w"].numpy(), [1, 1])


@pytest.mark.parametrize("loc", ["cuda", "cuda:0", cn.device("mps"), {"cpu": "cuda:1"}])
def test_map_location_gpu_raises(tmp_path, loc):
    cn.save({"w": cn.ones(2)}, tmp_path / "m.pt")
    with pytest.raises(RuntimeError, match="convnet runs on the CPU"):
        cn.load(tmp_path / "m.pt", map_location=loc)


def test_weights_only_false_means_the_same(tmp_path):
    cn.save({"w": cn.ones(2), "n": 3}, tmp_path / "m.pt")
    a = cn.load(tmp_path / "m.pt", weights_only=True)
    b = cn.load(tmp_path / "m.pt", weights_only=False)
    assert a["n"] == b["n"] and np.array_equal(a["w"].numpy(), b["w"].numpy())


# ------------------------------------------------------------------ errors and atomic writes
def test_truncated_and_corrupt_files_name_the_file(tmp_path):
    p = tmp_path / "good.pt"
    cn.save(_net().state_dict(), p)
    data = p.read_bytes()
    for name, blob in [("trunc.pt", data[:-10]), ("head.pt", data[:5]),
                       ("junk.pt", b"hello world, not a tensor file"), ("empty.pt", b"")]:
        (tmp_path / name).write_bytes(blob)
        with pytest.raises(ValueError, match=name):
            cn.load(tmp_path / name)
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        cn.load(tmp_path / "nope.pt")


def test_torch_pickle_checkpoint_is_refused_clearly(tmp_path):
    torch.save({"w": torch.ones(2)}, tmp_path / "torch.pth")
    with pytest.raises(SafetensorsError, match=r"torch\.pth is a PyTorch.*never unpickles"):
        cn.load(tmp_path / "torch.pth")


def test_corrupt_structure_metadata(tmp_path):
    st_save_file({"w": np.ones(2, np.float32)}, str(tmp_path / "a.pt"),
                 {"convnet.save": '{"version": 1, "tree": {"tensor": "missing"}}'})
    with pytest.raises(SafetensorsError, match="a.pt.*missing"):
        cn.load(tmp_path / "a.pt")
    st_save_file({"w": np.ones(2, np.float32)}, str(tmp_path / "b.pt"),
                 {"convnet.save": "{not json"})
    with pytest.raises(SafetensorsError, match="b.pt: corrupt convnet.save metadata"):
        cn.load(tmp_path / "b.pt")


def test_unsupported_objects_raise_and_leave_old_file(tmp_path):
    p = tmp_path / "ckpt.pt"
    cn.save({"epoch": 1}, p)
    before = p.read_bytes()
    with pytest.raises(TypeError, match=r"function at obj\['fn'\]"):
        cn.save({"epoch": 2, "fn": lambda x: x}, p)
    with pytest.raises(TypeError, match=r"object at obj\[1\]"):
        cn.save([1, object()], p)
    assert p.read_bytes() == before and os.listdir(tmp_path) == ["ckpt.pt"]  # no temp left
    with pytest.raises(TypeError, match="path or a binary file object"):
        cn.save({}, 3)


def test_save_is_atomic(tmp_path, monkeypatch):
    p = tmp_path / "ckpt.pt"
    cn.save({"epoch": 1}, p)
    import convnet.io.atomic as atomic

    def boom(fd):
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        cn.save({"epoch": 2}, p)
    monkeypatch.undo()
    assert cn.load(p) == {"epoch": 1} and os.listdir(tmp_path) == ["ckpt.pt"]


def test_nothing_executes_on_load(tmp_path):
    # the whole format is JSON + raw bytes: a metadata string that would be code is only data
    st_save_file({}, str(tmp_path / "c.pt"),
                 {"convnet.save": '{"version": 1, "tree": "__import__(\'os\').system(\'x\')"}'})
    assert cn.load(tmp_path / "c.pt") == "__import__('os').system('x')"


# ------------------------------------------------------------------ one argument order
def test_weight_helpers_take_model_then_path(tmp_path):
    from convnet import models
    from convnet.training import load_weights, save_weights

    src, dst, dst2 = _net(0), _net(1), _net(2)
    save_weights(src, tmp_path / "w.safetensors")  # (obj, path), as torch.save
    load_weights(dst, tmp_path / "w.safetensors")  # (model, path), as models.load_weights
    cn.save(src.state_dict(), tmp_path / "sd.safetensors")
    models.load_weights(dst2, tmp_path / "sd.safetensors")  # a cn.save state dict loads too
    for a, b, c in zip(src.state_dict().values(), dst.state_dict().values(),
                       dst2.state_dict().values()):
        assert np.array_equal(a.numpy(), b.numpy()) and np.array_equal(a.numpy(), c.numpy())
    with pytest.warns(DeprecationWarning, match=r"pass \(model, path\)"):
        load_weights(tmp_path / "w.safetensors", _net(3))  # the older order still works
    with pytest.raises(TypeError, match=r"expected \(model, path\)"):
        save_weights(tmp_path / "x.safetensors", tmp_path / "y.safetensors")

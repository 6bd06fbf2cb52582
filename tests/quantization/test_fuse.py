"""Module fusion against torch.ao.quantization.fuse_modules: same structure (fused module
types, Identity slots), same outputs (float64, 1e-10), clear errors."""
import numpy as np
import pytest
import torch
import torch.ao.quantization as tq

import convnet as cn
import convnet.quantization as cq
from convnet import nn
from convnet.quantization import intrinsic as nni

from .torch_twins import copy_weights, randomize_bn


def _pair(layers):
    """(torch model, convnet model): the same layer list built by both, float64, eval."""
    with torch.random.fork_rng():
        torch.manual_seed(len(layers))
        t = torch.nn.Sequential(*[getattr(torch.nn, name)(*args, **kw) for name, args, kw in layers])
    c = nn.Sequential(*[getattr(nn, name)(*args, **kw) for name, args, kw in layers])
    randomize_bn(t, seed=len(layers))
    t.double().eval()
    c.double().eval()
    copy_weights(t, c)
    return t, c


CASES = [
    ("conv+bn", [("Conv2d", (3, 5, 3), {"padding": 1}), ("BatchNorm2d", (5,), {})], [["0", "1"]],
     (2, 3, 7, 7), ["Conv2d", "Identity"]),
    ("conv(no bias)+bn+relu", [("Conv2d", (3, 5, 3), {"bias": False}), ("BatchNorm2d", (5,), {}),
                               ("ReLU", (), {})], ["0", "1", "2"], (2, 3, 7, 7),
     ["ConvReLU2d", "Identity", "Identity"]),
    ("conv+relu", [("Conv2d", (3, 4, 3), {"stride": 2}), ("ReLU", (), {})], [["0", "1"]],
     (2, 3, 9, 9), ["ConvReLU2d", "Identity"]),
    ("linear+relu", [("Linear", (6, 4), {}), ("ReLU", (), {})], [["0", "1"]], (5, 6),
     ["LinearReLU", "Identity"]),
    ("linear+bn", [("Linear", (6, 4), {}), ("BatchNorm1d", (4,), {})], [["0", "1"]], (5, 6),
     ["Linear", "Identity"]),
    ("bn+relu", [("BatchNorm2d", (3,), {}), ("ReLU", (), {})], [["0", "1"]], (2, 3, 4, 4),
     ["BNReLU2d", "Identity"]),
    ("conv1d+bn+relu", [("Conv1d", (3, 4, 3), {}), ("BatchNorm1d", (4,), {}), ("ReLU", (), {})],
     [["0", "1", "2"]], (2, 3, 8), ["ConvReLU1d", "Identity", "Identity"]),
    ("two groups", [("Conv2d", (3, 4, 3), {}), ("BatchNorm2d", (4,), {}), ("ReLU", (), {}),
                    ("Flatten", (), {}), ("Linear", (4 * 25, 3), {}), ("ReLU", (), {})],
     [["0", "1", "2"], ["4", "5"]], (2, 3, 7, 7),
     ["ConvReLU2d", "Identity", "Identity", "Flatten", "LinearReLU", "Identity"]),
]


@pytest.mark.parametrize("name,layers,groups,shape,types", CASES, ids=[c[0] for c in CASES])
def test_fuse_modules_matches_torch(name, layers, groups, shape, types):
    t, c = _pair(layers)
    tf, cf = tq.fuse_modules(t, groups), cq.fuse_modules(c, groups)
    assert [type(m).__name__ for m in cf] == [type(m).__name__ for m in tf] == types
    x = np.random.default_rng(0).standard_normal(shape)
    expected = tf(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(cf(cn.tensor(x)).numpy(), expected, rtol=0, atol=1e-10)
    # fusion does not change what the model computes
    np.testing.assert_allclose(c(cn.tensor(x)).numpy(), expected, rtol=0, atol=1e-10)
    assert cf is not c and not isinstance(c[0], nni._FusedModule)  # a copy; original intact
    torch_state = {k: v.numpy() for k, v in tf.state_dict().items()}
    cn_state = {k: v.numpy() for k, v in cf.state_dict().items()}
    assert set(cn_state) == set(torch_state)
    for k in torch_state:
        np.testing.assert_allclose(cn_state[k], torch_state[k], rtol=0, atol=1e-12, err_msg=k)


def test_fuse_conv_bn_eval_and_weights():
    t, c = _pair([("Conv2d", (2, 3, 3), {"bias": False}), ("BatchNorm2d", (3,), {})])
    tf = torch.nn.utils.fuse_conv_bn_eval(t[0], t[1])
    cf = cq.fuse_conv_bn_eval(c[0], c[1])
    np.testing.assert_allclose(cf.weight.numpy(), tf.weight.detach().numpy(), atol=1e-14)
    np.testing.assert_allclose(cf.bias.numpy(), tf.bias.detach().numpy(), atol=1e-14)
    assert c[0].bias is None and cf.weight is not c[0].weight
    t, c = _pair([("Linear", (4, 3), {}), ("BatchNorm1d", (3,), {})])
    tl = torch.nn.utils.fuse_linear_bn_eval(t[0], t[1])
    cl = cq.fuse_linear_bn_eval(c[0], c[1])
    np.testing.assert_allclose(cl.weight.numpy(), tl.weight.detach().numpy(), atol=1e-14)
    np.testing.assert_allclose(cl.bias.numpy(), tl.bias.detach().numpy(), atol=1e-14)


def test_fuse_float32_keeps_dtype_and_nested_paths():
    m = nn.Sequential()
    m.append(nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU()))
    m.eval()
    fused = cq.fuse_modules(m, [["0.0", "0.1", "0.2"]])
    assert isinstance(fused[0][0], nni.ConvReLU2d) and fused[0][0][0].weight.dtype == np.float32
    assert isinstance(fused[0][1], nn.Identity) and not fused[0][1].training


@pytest.mark.parametrize("with_bn", [False, True])
def test_inplace_and_hooks_move_to_fused_module(with_bn):
    """The first module's pre-hooks and the last one's hooks move to the fused module. (With
    BN, torch's folded conv is a deep copy that keeps its pre-hook too: it runs twice.)"""
    calls = {}
    for lib, nnlib, x in ((cq, nn, cn.tensor(np.ones((1, 1, 4, 4), np.float32))),
                          (tq, torch.nn, torch.ones(1, 1, 4, 4))):
        mods = [nnlib.Conv2d(1, 2, 3)] + ([nnlib.BatchNorm2d(2)] if with_bn else []) + [nnlib.ReLU()]
        m = nnlib.Sequential(*mods).eval()
        log = calls[lib.__name__] = []
        m[0].register_forward_pre_hook(lambda mod, inp, log=log: log.append("pre"))
        m[len(mods) - 1].register_forward_hook(lambda mod, inp, out, log=log: log.append("post"))
        out = lib.fuse_modules(m, [str(i) for i in range(len(mods))], inplace=True)
        assert out is m and type(m[0]).__name__ == "ConvReLU2d"
        m(x)
    assert calls["convnet.quantization"] == calls["torch.ao.quantization"]
    assert calls["convnet.quantization"] == (["pre", "pre", "post"] if with_bn else ["pre", "post"])


def test_fuse_modules_qat_structure_matches_torch():
    t, c = _pair([("Conv2d", (3, 4, 3), {}), ("BatchNorm2d", (4,), {}), ("ReLU", (), {}),
                  ("Flatten", (), {}), ("Linear", (4 * 25, 3), {}), ("BatchNorm1d", (3,), {})])
    t.train()
    c.train()
    groups = [["0", "1", "2"], ["4", "5"]]
    tf, cf = tq.fuse_modules_qat(t, groups), cq.fuse_modules_qat(c, groups)
    assert [type(m).__name__ for m in cf] == [type(m).__name__ for m in tf]
    assert isinstance(cf[0], nni.ConvBnReLU2d) and isinstance(cf[4], nni.LinearBn1d)
    assert isinstance(cf[0][1], nn.BatchNorm2d)  # BN not folded for QAT


def test_fuse_errors_name_paths_and_types():
    m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.MaxPool2d(2), nn.ReLU())
    with pytest.raises(AttributeError, match=r"no submodule '7'"):
        cq.fuse_modules(m.eval(), ["0", "7"])
    with pytest.raises(AttributeError, match=r"'0.weight'"):
        cq.fuse_modules(m.eval(), ["0.weight", "1"])
    with pytest.raises(ValueError, match=r"cannot fuse \['0', '2'\] = \(Conv2d, MaxPool2d\)"):
        cq.fuse_modules(m.eval(), ["0", "2"])
    with pytest.raises(ValueError, match=r"eval mode.*fuse_modules_qat"):
        cq.fuse_modules(m.train(), ["0", "1"])
    with pytest.raises(ValueError, match="same mode"):
        m.train()
        m[1].eval()
        cq.fuse_modules_qat(m, ["0", "1"])
    with pytest.raises(ValueError, match="num_features=3"):
        bad = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(3))
        cq.fuse_modules_qat(bad, ["0", "1"])
    with pytest.raises(TypeError, match=r"expected modules \(Conv2d, ReLU\), got \(Linear, ReLU\)"):
        nni.ConvReLU2d(nn.Linear(2, 2), nn.ReLU())

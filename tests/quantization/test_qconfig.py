"""QConfig presets: the same observer classes with the same arguments as torch 2.13."""
import numpy as np
import pytest
import torch
import torch.ao.quantization as tq

import convnet as cn
import convnet.quantization as cq
from convnet import nn


def _describe(ctor):
    """(class name, bound arguments) of an observer/fake-quant constructor, in convnet's
    spelling (torch dtypes and qschemes as strings); nested observer constructors too."""
    p = getattr(ctor, "p", None)
    if p is None:
        return (ctor.__name__, {})
    kwargs = {}
    for k, v in p.keywords.items():
        if isinstance(v, (torch.dtype, torch.qscheme)):
            v = str(v).removeprefix("torch.")
        elif isinstance(v, cq.QDType):
            v = v.name
        elif isinstance(v, type) or hasattr(v, "p"):
            v = _describe(v)
        kwargs[k] = v
    return (p.func.__name__, kwargs)


PRESETS = [("default_qconfig", None), ("default_per_channel_qconfig", None),
           ("default_qat_qconfig", None), ("default_qat_qconfig_v2", None),
           ("default_symmetric_qnnpack_qconfig", None),
           ("default_per_channel_symmetric_qnnpack_qconfig", None)]


@pytest.mark.parametrize("backend", ["x86", "fbgemm", "qnnpack", "onednn"])
def test_get_default_qconfig_matches_torch(backend):
    t, c = tq.get_default_qconfig(backend), cq.get_default_qconfig(backend)
    assert _describe(c.activation) == _describe(t.activation)
    assert _describe(c.weight) == _describe(t.weight)


@pytest.mark.parametrize("backend", ["x86", "fbgemm", "qnnpack", "onednn"])
@pytest.mark.parametrize("version", [0, 1])
def test_get_default_qat_qconfig_matches_torch(backend, version):
    t, c = tq.get_default_qat_qconfig(backend, version), cq.get_default_qat_qconfig(backend, version)
    assert _describe(c.activation) == _describe(t.activation)
    assert _describe(c.weight) == _describe(t.weight)


@pytest.mark.parametrize("name", [n for n, _ in PRESETS])
def test_named_presets_match_torch(name):
    t, c = getattr(tq, name), getattr(cq, name)
    assert _describe(c.activation) == _describe(t.activation)
    assert _describe(c.weight) == _describe(t.weight)


def test_x86_preset_content():
    """x86: 7-bit histogram activations, per-channel symmetric int8 weights."""
    qc = cq.get_default_qconfig("x86")
    act, w = qc.activation(), qc.weight()
    assert isinstance(act, cq.HistogramObserver) and act.reduce_range
    assert (act.quant_min, act.quant_max, act.dtype) == (0, 127, cq.quint8)
    assert isinstance(w, cq.PerChannelMinMaxObserver)
    assert (w.dtype, w.qscheme, w.ch_axis) == (cq.qint8, cq.per_channel_symmetric, 0)
    assert (w.quant_min, w.quant_max) == (-128, 127)


def test_qconfig_built_observers_give_torch_qparams():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 8)).astype(np.float32)
    w = rng.standard_normal((6, 8)).astype(np.float32)
    for backend in ("x86", "qnnpack"):
        t, c = tq.get_default_qconfig(backend), cq.get_default_qconfig(backend)
        for t_obs, c_obs, a in ((t.activation(), c.activation(), x), (t.weight(), c.weight(), w)):
            t_obs(torch.from_numpy(a))
            c_obs(cn.tensor(a))
            for ta, ca in zip(t_obs.calculate_qparams(), c_obs.calculate_qparams()):
                np.testing.assert_array_equal(ca.numpy(), ta.numpy())


def test_qconfig_errors():
    with pytest.raises(ValueError, match="observer instance"):
        cq.QConfig(activation=cq.MinMaxObserver(), weight=cq.default_weight_observer)
    with pytest.raises(ValueError, match="backend 'arm' not supported"):
        cq.get_default_qconfig("arm")
    with pytest.raises(ValueError, match="version 3"):
        cq.get_default_qat_qconfig("x86", version=3)
    with pytest.raises(ValueError, match="transposed"):
        m = nn.Sequential(nn.ConvTranspose2d(2, 2, 3))
        m.qconfig = cq.get_default_qconfig("x86")
        cq.propagate_qconfig_(m)


def test_qconfig_equals():
    assert cq.qconfig_equals(cq.get_default_qconfig("x86"), cq.get_default_qconfig("fbgemm"))
    assert not cq.qconfig_equals(cq.get_default_qconfig("x86"), cq.get_default_qconfig("qnnpack"))
    assert cq.qconfig_equals(None, None) and not cq.qconfig_equals(cq.default_qconfig, None)

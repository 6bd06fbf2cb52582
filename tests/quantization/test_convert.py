"""convert: module swapping, the default mapping, errors naming unsupported modules, hooks.

Most tests attach fixed-qparams stand-in observers by hand (what ``prepare`` and
calibration leave behind), so they test convert alone; the last ones run the whole pipeline
(fuse -> prepare or prepare_qat -> calibrate/train -> convert) in convnet and in torch on
the same weights and data and compare the int8 outputs.
"""
from collections import namedtuple

import numpy as np
import pytest

import convnet
import convnet.quantization as cq
from convnet import nn
from convnet.quantization import quantized as Q
from convnet.quantization.convert import (UnsupportedModuleError, convert,
                                          get_default_static_quant_module_mappings)
from convnet.quantization.stubs import DeQuantStub, QuantStub

QConfig = namedtuple("QConfig", ["activation", "weight"])


class FixedObserver(nn.Module):
    """Output observer stand-in: fixed qparams, as if calibrated."""

    def __init__(self, scale=0.05, zero_point=64, dtype=cq.quint8):
        super().__init__()
        self.scale, self.zp, self.dtype = scale, zero_point, dtype
        self.qscheme = "per_tensor_affine"

    def forward(self, x):
        return x

    def calculate_qparams(self):
        return convnet.tensor([self.scale]), convnet.tensor([self.zp])


class WeightObserver(nn.Module):
    """Weight observer stand-in: per-channel symmetric qint8, scale = max|w| / 127.5."""

    dtype, qscheme, ch_axis = cq.qint8, "per_channel_symmetric", 0

    def forward(self, w):
        self.amax = np.abs(w.numpy()).reshape(w.shape[0], -1).max(1)
        return w

    def calculate_qparams(self):
        return (convnet.tensor((self.amax / 127.5).astype(np.float32)),
                convnet.tensor(np.zeros(len(self.amax), np.int64)))


QCONFIG = QConfig(FixedObserver, WeightObserver)


def _observe(model, scale=0.05, zero_point=64):
    """What prepare + calibration leave: qconfig everywhere, observers on quantizable
    leaves (QuantStub, Conv2d, Linear)."""
    for m in model.modules():
        m.qconfig = QCONFIG
        if isinstance(m, (QuantStub, nn.Conv2d, nn.Linear)):
            m.activation_post_process = FixedObserver(scale, zero_point)
    return model


def _small_net():
    convnet.manual_seed(0)
    return nn.Sequential(QuantStub(), nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.AvgPool2d(1), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                         nn.Dropout(0.3), nn.Linear(16, 3), nn.Identity(), DeQuantStub()).eval()


def test_default_mapping_covers_torchs_static_mapping_and_native_ops():
    mapping = get_default_static_quant_module_mappings()
    names = {(k.__module__.split(".")[-1], k.__name__): v.__name__ for k, v in mapping.items()}
    for key, qname in [(("stubs", "QuantStub"), "Quantize"), (("stubs", "DeQuantStub"),
                                                             "DeQuantize"),
                       (("conv", "Conv2d"), "Conv2d"), (("linear", "Linear"), "Linear"),
                       (("intrinsic", "ConvReLU2d"), "ConvReLU2d"),
                       (("intrinsic", "LinearReLU"), "LinearReLU"),
                       (("stubs", "FloatFunctional"), "QFunctional"),
                       (("activation", "ReLU"), "ReLU"), (("pooling", "MaxPool2d"), "MaxPool2d")]:
        assert names.get(key) == qname, key


def test_convert_swaps_every_module_and_runs_in_integers():
    model = _observe(_small_net())
    x = convnet.randn(2, 1, 8, 8)
    want = model(x).numpy()
    q = convert(model)
    kinds = [type(m).__name__ for m in q]
    assert kinds == ["Quantize", "Conv2d", "ReLU", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d",
                     "Flatten", "Dropout", "Linear", "Identity", "DeQuantize"]
    assert all(type(m).__module__ == "convnet.quantization.quantized" for m in q)
    assert isinstance(model[1], nn.Conv2d)  # not in place: the prepared model is untouched
    assert not hasattr(q[1], "qconfig")
    got = q(x).numpy()
    assert got.dtype == np.float32 and got.shape == want.shape
    assert np.abs(got - want).max() < 0.2  # a few steps of 0.05 on values of order 1
    assert q[1].scale == pytest.approx(0.05) and q[1].zero_point == 64
    assert q[1].weight().qscheme() == "per_channel_affine"


def test_convert_inplace():
    model = _observe(_small_net())
    out = convert(model, inplace=True)
    assert out is model and isinstance(model[1], Q.Conv2d)


def test_unsupported_modules_are_all_named_with_paths_and_nothing_changes():
    convnet.manual_seed(0)
    model = nn.Sequential(QuantStub(), nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)),
                          nn.Tanh(), nn.Linear(2, 2), DeQuantStub())
    _observe(model)
    with pytest.raises(UnsupportedModuleError) as info:
        convert(model, inplace=True)
    msg = str(info.value)
    assert "'1.1' (BatchNorm2d)" in msg and "'2' (Tanh)" in msg and "2 module(s)" in msg
    assert "fuse_modules" in msg
    assert isinstance(model[1][0], nn.Conv2d)  # no partial conversion
    assert isinstance(info.value, ValueError)


def test_modules_without_qconfig_stay_float():
    convnet.manual_seed(0)
    model = nn.Sequential(QuantStub(), nn.Conv2d(1, 2, 3), DeQuantStub(), nn.Tanh())
    _observe(model)
    model[3].qconfig = None
    q = convert(model)
    assert isinstance(q[1], Q.Conv2d) and isinstance(q[3], nn.Tanh)
    y = q(convnet.randn(1, 1, 5, 5))
    assert isinstance(y, convnet.Tensor)


def test_fused_module_without_quantized_version_is_named_as_one_unit():
    from convnet.quantization.intrinsic import ConvBn2d

    convnet.manual_seed(0)
    model = nn.Sequential(QuantStub(), ConvBn2d(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)),
                          DeQuantStub())
    _observe(model)
    with pytest.raises(UnsupportedModuleError, match=r"'1' \(ConvBn2d\)"):
        convert(model)


def test_fused_conv_relu_and_linear_relu():
    from convnet.quantization.intrinsic import ConvReLU2d, LinearReLU

    convnet.manual_seed(1)
    model = nn.Sequential(QuantStub(), ConvReLU2d(nn.Conv2d(2, 3, 3), nn.ReLU()), nn.Flatten(),
                          LinearReLU(nn.Linear(27, 4), nn.ReLU()), DeQuantStub()).eval()
    for m in model.modules():
        m.qconfig = QCONFIG
    model[0].activation_post_process = FixedObserver(0.04, 128)  # signed input
    for i in (1, 3):  # ReLU outputs: zero point 0
        model[i].activation_post_process = FixedObserver(0.04, 0)
    x = convnet.randn(2, 2, 5, 5)
    want = model(x).numpy()
    q = convert(model)
    assert type(q[1]) is Q.ConvReLU2d and type(q[3]) is Q.LinearReLU
    got = q(x).numpy()
    assert got.min() >= 0 and np.abs(got - want).max() < 0.15


def test_custom_mapping_and_hooks_survive_but_observer_hooks_do_not():
    class MyQuantLinear(Q.Linear):
        pass

    convnet.manual_seed(2)
    model = nn.Sequential(QuantStub(), nn.Linear(3, 2), DeQuantStub())
    _observe(model)
    seen = []
    model[1].register_forward_hook(lambda m, i, o: seen.append(type(o).__name__))

    def _observer_forward_hook(m, i, o):  # the name prepare's hook has
        raise AssertionError("observer hooks must not survive convert")

    model[1].register_forward_hook(_observer_forward_hook)
    mapping = get_default_static_quant_module_mappings()
    mapping[nn.Linear] = MyQuantLinear
    q = convert(model, mapping=mapping)
    assert type(q[1]) is MyQuantLinear
    q(convnet.randn(4, 3))
    assert seen == ["QTensor"]


def test_missing_observer_is_a_clear_error():
    model = nn.Sequential(QuantStub(), nn.Linear(3, 2), DeQuantStub())
    for m in model.modules():
        m.qconfig = QCONFIG
    with pytest.raises(RuntimeError, match="run convnet.quantization.prepare"):
        convert(model)


def test_qat_style_module_uses_to_float_and_weight_fake_quant():
    """A QAT module: from_float takes the float weights from to_float() (where batch norm is
    folded) and the qparams from weight_fake_quant, as torch does."""

    class FakeQATConv(nn.Conv2d):
        def __init__(self):
            super().__init__(1, 2, 3)
            self.weight_fake_quant = WeightObserver()
            self.activation_post_process = FixedObserver(0.1, 10)
            self.qconfig = QCONFIG

        def to_float(self):
            conv = nn.Conv2d(1, 2, 3)
            conv.weight.data[...] = self.weight.detach() * 2  # "folded"
            conv.bias.data[...] = self.bias.detach()
            return conv

    m = FakeQATConv()
    q = Q.Conv2d.from_float(m)
    np.testing.assert_allclose(q.weight().dequantize().numpy(), m.weight.numpy() * 2,
                               atol=np.abs(m.weight.numpy() * 2).max() / 127)
    assert (q.scale, q.zero_point) == (pytest.approx(0.1), 10)


# ------------------------------------------------------------------ end to end against torch
def _twins():
    """conv-bn-relu-pool, conv-bn-relu, adaptive pool, linear-relu, linear: in torch and
    convnet with the same weights (batch-norm statistics randomized)."""
    torch = pytest.importorskip("torch")
    from .torch_twins import copy_weights, randomize_bn

    torch.manual_seed(0)
    t = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2), torch.nn.Conv2d(8, 16, 3, padding=1, bias=False),
        torch.nn.BatchNorm2d(16), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(3),
        torch.nn.Flatten(), torch.nn.Linear(144, 32), torch.nn.ReLU(), torch.nn.Dropout(0.2),
        torch.nn.Linear(32, 10))
    c = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(3), nn.Flatten(), nn.Linear(144, 32), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(32, 10))
    randomize_bn(t)
    copy_weights(t, c)
    return t.eval(), c.eval()


_GROUPS = [["0", "1", "2"], ["4", "5", "6"], ["9", "10"]]


def _int_outputs(tq_model, cq_model, x):
    """The int8 logits (before DeQuantStub) of both quantized models."""
    import torch

    t = tq_model.module(tq_model.quant(torch.from_numpy(x)))
    c = cq_model.module(cq_model.quant(convnet.tensor(x)))
    return c.int_repr().numpy(), t.int_repr().numpy()


@pytest.mark.parametrize("engine", ["x86", "fbgemm", "qnnpack"])
def test_post_training_quantization_matches_torch_end_to_end(engine):
    torch = pytest.importorskip("torch")
    tq = pytest.importorskip("torch.ao.quantization")
    old = torch.backends.quantized.engine
    torch.backends.quantized.engine = engine
    try:
        t, c = _twins()
        tw = tq.QuantWrapper(tq.fuse_modules(t, _GROUPS))
        cw = cq.QuantWrapper(cq.fuse_modules(c, _GROUPS))
        tw.qconfig, cw.qconfig = tq.get_default_qconfig(engine), cq.get_default_qconfig(engine)
        tp, cp = tq.prepare(tw), cq.prepare(cw)
        rng = np.random.default_rng(0)
        for _ in range(4):  # calibration: the same data through both
            x = rng.normal(0, 1, (16, 1, 14, 14)).astype(np.float32)
            tp(torch.from_numpy(x))
            cp(convnet.tensor(x))
        tqm, cqm = tq.convert(tp), cq.convert(cp)
        assert [type(m).__name__ for m in cqm.module] == [
            "ConvReLU2d", "Identity", "Identity", "MaxPool2d", "ConvReLU2d", "Identity",
            "Identity", "AdaptiveAvgPool2d", "Flatten", "LinearReLU", "Identity", "Dropout",
            "Linear"]
        assert cqm.quant.scale == tqm.quant.scale and cqm.quant.zero_point == \
            int(tqm.quant.zero_point)
        ours, theirs = _int_outputs(tqm, cqm, rng.normal(0, 1, (200, 1, 14, 14))
                                    .astype(np.float32))
        d = np.abs(ours.astype(int) - theirs.astype(int))
        assert d.size == 2000 and np.mean(d <= 1) >= 0.999, (np.mean(d <= 1), d.max())
    finally:
        torch.backends.quantized.engine = old


def test_quantization_aware_training_converts_like_torch():
    """prepare_qat -> a few training-mode passes (observers and BN statistics move) ->
    convert, on both sides; ConvBnReLU2d folds BN with its running statistics."""
    torch = pytest.importorskip("torch")
    tq = pytest.importorskip("torch.ao.quantization")
    old = torch.backends.quantized.engine
    torch.backends.quantized.engine = "x86"
    try:
        t, c = _twins()
        tw = tq.QuantWrapper(tq.fuse_modules_qat(t.train(), _GROUPS))
        cw = cq.QuantWrapper(cq.fuse_modules_qat(c.train(), _GROUPS))
        tw.qconfig, cw.qconfig = (tq.get_default_qat_qconfig("x86"),
                                  cq.get_default_qat_qconfig("x86"))
        tp, cp = tq.prepare_qat(tw.train()), cq.prepare_qat(cw.train())
        tp.module[11].eval()  # dropout masks are random: not comparable between frameworks
        cp.module[11].eval()
        rng = np.random.default_rng(1)
        with torch.no_grad():
            for _ in range(3):
                x = rng.normal(0, 1, (16, 1, 14, 14)).astype(np.float32)
                tp(torch.from_numpy(x))
                with convnet.no_grad():
                    cp(convnet.tensor(x))
        tqm, cqm = tq.convert(tp.eval()), cq.convert(cp.eval())
        assert type(cqm.module[0]) is Q.ConvReLU2d and type(cqm.module[9]) is Q.LinearReLU
        ours, theirs = _int_outputs(tqm, cqm, rng.normal(0, 1, (200, 1, 14, 14))
                                    .astype(np.float32))
        d = np.abs(ours.astype(int) - theirs.astype(int))
        assert np.mean(d <= 1) >= 0.999, (np.mean(d <= 1), d.max())
    finally:
        torch.backends.quantized.engine = old


def test_quantize_one_call_and_calibration_data_counts():
    """cq.quantize(model, run_fn, run_args) = eval + prepare + run_fn + convert."""
    _, c = _twins()
    fused = cq.QuantWrapper(cq.fuse_modules(c, _GROUPS))
    fused.qconfig = cq.get_default_qconfig("x86")
    seen = []

    def calibrate(model, batches):
        for x in batches:
            seen.append(model(convnet.tensor(x)).shape)

    rng = np.random.default_rng(2)
    batches = [rng.normal(0, 1, (8, 1, 14, 14)).astype(np.float32) for _ in range(2)]
    q = cq.quantize(fused, calibrate, [batches])
    assert seen == [(8, 10), (8, 10)] and isinstance(q.module[0], Q.ConvReLU2d)
    assert isinstance(fused.module[0], type(c[0])) or not isinstance(fused.module[0], Q.Conv2d)
    x = convnet.tensor(batches[0])
    assert np.abs(q(x).numpy() - c(x).numpy()).max() < 0.5


def test_quantize_qat_one_call():
    """cq.quantize_qat(model, run_fn, run_args) = train + prepare_qat + run_fn + convert."""
    _, c = _twins()
    c[11].p = 0.0  # keep the comparison below free of dropout noise
    model = cq.QuantWrapper(cq.fuse_modules_qat(c.train(), _GROUPS))
    model.qconfig = cq.get_default_qat_qconfig("x86")
    modes = []

    def train_fn(m, batches):
        modes.append(m.training)
        with convnet.no_grad():
            for x in batches:
                m(convnet.tensor(x))

    rng = np.random.default_rng(3)
    batches = [rng.normal(0, 1, (8, 1, 14, 14)).astype(np.float32) for _ in range(3)]
    q = cq.quantize_qat(model, train_fn, [batches])
    assert modes == [True]
    assert type(q.module[0]) is Q.ConvReLU2d and type(q.module[12]) is Q.Linear
    assert isinstance(model.module[0], cq.intrinsic.ConvBnReLU2d)  # not in place
    x = convnet.tensor(batches[0])
    assert np.abs(q(x).numpy() - c.eval()(x).numpy()).max() < 0.5


def test_mapped_layer_with_qconfig_none_stays_float_as_in_torch():
    # a Linear kept in float (qconfig None after prepare) must not be swapped: torch's
    # swap_module only converts modules that carry a qconfig
    convnet.manual_seed(0)
    model = nn.Sequential(QuantStub(), nn.Linear(4, 3), DeQuantStub(), nn.Linear(3, 2))
    model.eval()
    model.qconfig = cq.get_default_qconfig("x86")
    model[3].qconfig = None
    prepared = cq.prepare(model)
    assert not hasattr(prepared[3], "activation_post_process")
    prepared(convnet.randn(8, 4))
    q = convert(prepared)
    assert isinstance(q[1], Q.Linear) and type(q[3]) is nn.Linear
    assert q(convnet.randn(2, 4)).shape == (2, 2)

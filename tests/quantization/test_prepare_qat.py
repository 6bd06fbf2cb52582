"""prepare / prepare_qat against torch.ao.quantization: the same modules get observers, the
observers' qparams after calibration equal torch's, QAT modules compute what torch's do
(forward, gradients, BN freezing), and the zoo models go through end to end."""
import numpy as np
import pytest
import torch
import torch.ao.nn.intrinsic.qat as tnniqat
import torch.ao.nn.quantized as tnnq
import torch.ao.quantization as tq

import convnet as cn
import convnet.quantization as cq
from convnet import nn
from convnet.quantization import intrinsic as nni
from convnet.quantization import qat as nnqat

from .torch_twins import copy_weights, observed_paths, small_cnn_pair

pytestmark = pytest.mark.filterwarnings("ignore:.*must run observer before calling")

GROUPS = [["0", "1", "2"], ["4", "5"], ["7", "8"]]


def _wrap(model, qconfig):
    w = type(model).__module__.startswith("torch") and tq.QuantWrapper(model) or cq.QuantWrapper(model)
    w.qconfig = qconfig
    return w


def _prepared_pair(fuse: bool, dtype=torch.float32, backend="x86", tweak=None):
    t, c = small_cnn_pair(dtype)
    t.eval()
    c.eval()
    if fuse:
        t, c = tq.fuse_modules(t, GROUPS), cq.fuse_modules(c, GROUPS)
    tw, cw = _wrap(t, tq.get_default_qconfig(backend)), _wrap(c, cq.get_default_qconfig(backend))
    if tweak:
        tweak(tw, tq)
        tweak(cw, cq)
    return tq.prepare(tw), cq.prepare(cw)


def _exclude_last(w, lib):
    w.module[10].qconfig = None  # a layer kept in float


@pytest.mark.parametrize("fuse", [False, True])
@pytest.mark.parametrize("tweak", [None, _exclude_last])
def test_prepare_observes_the_same_modules_as_torch(fuse, tweak):
    tp, cp = _prepared_pair(fuse, tweak=tweak)
    assert observed_paths(cp) == observed_paths(tp)
    assert "quant" in observed_paths(cp) and "dequant" not in observed_paths(cp)
    expected = (["module.0", "module.4", "module.7", "module.10"] if fuse else
                ["module.0", "module.1", "module.4", "module.5", "module.7", "module.10"])
    if tweak:
        expected.remove("module.10")
    assert observed_paths(cp) == sorted(["quant"] + expected)
    assert isinstance(cp.quant.activation_post_process, cq.HistogramObserver)
    assert cp.module[10].qconfig is (None if tweak else cp.qconfig)


def test_allow_list_and_non_leaf_list_match_torch():
    t, c = small_cnn_pair()
    t.eval()
    c.eval()
    tw, cw = _wrap(t, tq.default_qconfig), _wrap(c, cq.default_qconfig)
    tp = tq.prepare(tw, allow_list={tq.QuantStub, torch.nn.Linear},
                    observer_non_leaf_module_list={torch.nn.Sequential})
    cp = cq.prepare(cw, allow_list={cq.QuantStub, nn.Linear},
                    observer_non_leaf_module_list={nn.Sequential})
    assert observed_paths(cp) == observed_paths(tp) == ["module", "quant"]


@pytest.mark.parametrize("fuse", [False, True])
@pytest.mark.parametrize("backend", ["x86", "qnnpack"])
def test_calibrated_qparams_equal_torch(fuse, backend):
    """float64 models (so both frameworks see the same activations) fed the same batches:
    every observer's scale and zero point equal torch's exactly."""
    tp, cp = _prepared_pair(fuse, torch.float64, backend)
    rng = np.random.default_rng(0)
    for _ in range(3):
        x = rng.standard_normal((6, 1, 14, 14)) * 2
        np.testing.assert_allclose(cp(cn.tensor(x)).numpy(), tp(torch.from_numpy(x)).detach().numpy(),
                                   rtol=1e-10, atol=1e-10)
    for path in observed_paths(tp):
        t_obs = tp.get_submodule(path).activation_post_process
        c_obs = cp.get_submodule(path).activation_post_process
        for ta, ca in zip(t_obs.calculate_qparams(), c_obs.calculate_qparams()):
            np.testing.assert_array_equal(ca.numpy(), ta.numpy(), err_msg=path)


def test_float32_calibration_close_to_torch():
    """In float32 the two frameworks' conv/linear outputs differ in the last bits, so the
    observed ranges (and scales) may differ by a few ulps; zero points agree."""
    tp, cp = _prepared_pair(True)
    x = np.random.default_rng(1).standard_normal((8, 1, 14, 14)).astype(np.float32)
    np.testing.assert_allclose(cp(cn.tensor(x)).numpy(), tp(torch.from_numpy(x)).detach().numpy(),
                               atol=1e-5)
    for path in observed_paths(tp):
        ts, tz = tp.get_submodule(path).activation_post_process.calculate_qparams()
        cs, cz = cp.get_submodule(path).activation_post_process.calculate_qparams()
        np.testing.assert_allclose(cs.numpy(), ts.numpy(), rtol=1e-6, err_msg=path)
        np.testing.assert_array_equal(cz.numpy(), tz.numpy())


def test_observer_hook_runs_first_and_output_is_unchanged():
    m = nn.Sequential(nn.Linear(3, 2))
    seen = []
    m[0].register_forward_hook(lambda mod, inp, out: seen.append(mod.activation_post_process.max_val.numpy().item()))
    m.qconfig = cq.default_qconfig
    cq.prepare(m, inplace=True)
    x = cn.tensor(np.ones((1, 3), np.float32))
    out = m(x)
    assert seen == [out.numpy().max()]  # the observer already saw this output


class _TorchResidual(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.quant, self.dequant = tq.QuantStub(), tq.DeQuantStub()
        self.conv = torch.nn.Conv2d(2, 2, 3, padding=1)
        self.skip = tnnq.FloatFunctional()
        self.scalar = tnnq.FloatFunctional()

    def forward(self, x):
        x = self.quant(x)
        y = self.skip.add_relu(self.conv(x), x)
        return self.dequant(self.scalar.add_scalar(y, 1.0))


class _Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant, self.dequant = cq.QuantStub(), cq.DeQuantStub()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)
        self.skip = cq.FloatFunctional()
        self.scalar = cq.FloatFunctional()

    def forward(self, x):
        x = self.quant(x)
        y = self.skip.add_relu(self.conv(x), x)
        return self.dequant(self.scalar.add_scalar(y, 1.0))


def test_float_functional_observed_like_torch():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        t = _TorchResidual().double()
    c = _Residual().double()
    copy_weights(t, c)
    t.qconfig, c.qconfig = tq.default_qconfig, cq.default_qconfig
    tp, cp = tq.prepare(t), cq.prepare(c)
    assert observed_paths(cp) == observed_paths(tp) == ["conv", "quant", "scalar", "skip"]
    x = np.random.default_rng(2).standard_normal((2, 2, 5, 5))
    np.testing.assert_allclose(cp(cn.tensor(x)).numpy(), tp(torch.from_numpy(x)).detach().numpy(),
                               atol=1e-12)
    for path in ("skip", "conv", "quant"):
        for ta, ca in zip(tp.get_submodule(path).activation_post_process.calculate_qparams(),
                          cp.get_submodule(path).activation_post_process.calculate_qparams()):
            np.testing.assert_array_equal(ca.numpy(), ta.numpy())
    assert cp.scalar.activation_post_process.min_val.numpy() == np.inf  # add_scalar: unobserved
    ff = cq.FloatFunctional()
    a, b = cn.tensor(np.float32([1.0, -2.0])), cn.tensor(np.float32([0.5, 0.5]))
    assert ff.mul(a, b).numpy().tolist() == [0.5, -1.0]
    assert ff.cat([a, b]).numpy().tolist() == [1.0, -2.0, 0.5, 0.5]
    assert ff.add(a, b).numpy().tolist() == [1.5, -1.5]
    with pytest.raises(RuntimeError, match="add, add_relu"):
        ff(a)


def test_propagate_qconfig_dict_by_type_and_path():
    m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Sequential(nn.Linear(2, 2), nn.ReLU()))
    m[1][1].qconfig = cq.default_per_channel_qconfig
    cq.propagate_qconfig_(m, {nn.Linear: cq.default_qat_qconfig, "1": cq.default_qconfig})
    assert m.qconfig is None and m[0].qconfig is None
    assert m[1].qconfig is cq.default_qconfig and m[1][0].qconfig is cq.default_qat_qconfig
    assert m[1][1].qconfig is cq.default_per_channel_qconfig  # its own wins


def test_prepare_warns_without_qconfig_and_qat_needs_training_mode():
    with pytest.warns(UserWarning, match="none of the submodules got a qconfig"):
        cq.prepare(nn.Sequential(nn.Linear(2, 2)))
    m = nn.Sequential(nn.Linear(2, 2)).eval()
    m.qconfig = cq.get_default_qat_qconfig()
    with pytest.raises(ValueError, match="training mode"):
        cq.prepare_qat(m)


# ------------------------------------------------------------------------------------ QAT
def _qat_pair(backend="x86", version=1, fuse=True):
    t, c = small_cnn_pair()
    t.train()
    c.train()
    t[9].p = c[9].p = 0.0  # no random dropout masks in training mode
    if fuse:
        t, c = tq.fuse_modules_qat(t, GROUPS), cq.fuse_modules_qat(c, GROUPS)
    tw = _wrap(t, tq.get_default_qat_qconfig(backend, version))
    cw = _wrap(c, cq.get_default_qat_qconfig(backend, version))
    return tq.prepare_qat(tw), cq.prepare_qat(cw)


@pytest.mark.parametrize("backend,version,fuse", [("x86", 1, True), ("qnnpack", 1, True),
                                                  ("x86", 0, False)])
def test_prepare_qat_matches_torch(backend, version, fuse):
    """Same QAT modules, outputs and weight gradients as torch. (version=0 takes weight
    qparams from observers, scale = max|w| / 127.5, which puts the extreme weights exactly
    on a rounding tie; torch's float32 sqrt is not always correctly rounded, so for
    BN-folded weights the tie could fall the other way: version 0 is checked unfused.)"""
    tp, cp = _qat_pair(backend, version, fuse)
    assert [type(m).__name__ for m in cp.module] == [type(m).__name__ for m in tp.module]
    if fuse:
        assert isinstance(cp.module[0], nnqat.ConvBnReLU2d) and isinstance(cp.module[4], nnqat.ConvBn2d)
        assert isinstance(cp.module[7], nnqat.LinearReLU)
    else:
        assert isinstance(cp.module[0], nnqat.Conv2d) and isinstance(cp.module[1], nn.BatchNorm2d)
    assert isinstance(cp.module[10], nnqat.Linear)
    assert observed_paths(cp) == observed_paths(tp)
    assert sorted(dict(cp.named_parameters())) == sorted(dict(tp.named_parameters()))
    rng = np.random.default_rng(3)
    for step in range(4):
        if step == 2:  # last epochs: BN frozen, observers off
            tp.apply(tnniqat.freeze_bn_stats)
            cp.apply(cq.freeze_bn_stats)
            tp.apply(tq.disable_observer)
            cp.apply(cq.disable_observer)
        x = rng.standard_normal((8, 1, 14, 14)).astype(np.float32)
        to, co = tp(torch.from_numpy(x)), cp(cn.tensor(x))
        # float32 results of the two frameworks differ in the last bits, and one value that
        # lands on the other side of a rounding boundary moves by a quantization step (then
        # ranges observed downstream move too): allow two steps of the output quantizer
        step_size = tp.module[10].activation_post_process.scale.numpy().max()
        np.testing.assert_allclose(co.numpy(), to.detach().numpy(), rtol=0, atol=2 * step_size)
        g = rng.standard_normal(to.shape).astype(np.float32)
        to.backward(torch.from_numpy(g))
        co.backward(cn.tensor(g))
        t_params = dict(tp.named_parameters())
        for name, p in cp.named_parameters():
            tg = t_params[name].grad.numpy()
            scale = np.abs(tg).max() + np.abs(t_params[name.replace("bias", "weight")].grad.numpy()).max()
            np.testing.assert_allclose(p.grad.numpy(), tg, atol=2e-2 * scale, err_msg=name)
        tp.zero_grad()
        cp.zero_grad()
    t_state = {k: v.numpy() for k, v in tp.state_dict().items()}
    for k, v in cp.state_dict().items():
        np.testing.assert_allclose(v.numpy().astype(float), t_state[k].astype(float), rtol=1e-2,
                                   atol=1e-5, err_msg=k)


def test_freeze_bn_stats_keeps_running_stats():
    _, cp = _qat_pair()
    convbn = cp.module[0]
    x = cn.tensor(np.random.default_rng(4).standard_normal((4, 1, 14, 14)).astype(np.float32))
    cp(x)
    before = convbn.bn.running_mean.numpy().copy()
    cp.apply(cq.freeze_bn_stats)
    cp.train()  # a parent's train() must not unfreeze BN
    cp(x)
    assert convbn.freeze_bn and not convbn.bn.training
    np.testing.assert_array_equal(convbn.bn.running_mean.numpy(), before)
    cp.apply(cq.update_bn_stats)
    cp(x)
    assert not np.array_equal(convbn.bn.running_mean.numpy(), before)


def test_frozen_conv_bn_equals_folded_float_conv():
    """With BN frozen and fake quantization off, ConvBn2d computes exactly its to_float()."""
    _, cp = _qat_pair()
    cp.apply(cq.freeze_bn_stats)
    cp.apply(cq.disable_fake_quant)
    x = cn.tensor(np.random.default_rng(5).standard_normal((2, 1, 14, 14)).astype(np.float32))
    for i, float_cls in ((0, nni.ConvReLU2d), (4, nn.Conv2d), (7, nni.LinearReLU), (10, nn.Linear)):
        qat_mod = cp.module[i]
        inp = cp.module[:i](x) if i else x
        float_mod = qat_mod.to_float()
        assert type(float_mod) is float_cls
        np.testing.assert_allclose(float_mod(inp).numpy(), qat_mod(inp).numpy(), atol=2e-5)


def test_prepared_state_dict_loads_into_a_fresh_prepared_model():
    """Per-channel observer ranges and fake-quant qparams take the saved shapes (a QAT run
    resumed from a checkpoint), as torch's do."""
    def make():
        m = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(27, 2)).train()
        m.qconfig = cq.get_default_qat_qconfig("x86")
        return cq.prepare_qat(m)

    trained, fresh = make(), make()
    x = cn.tensor(np.random.default_rng(8).standard_normal((2, 1, 5, 5)).astype(np.float32))
    trained(x)
    assert fresh[0].weight_fake_quant.scale.shape == (1,)
    fresh.load_state_dict(trained.state_dict())
    assert fresh[0].weight_fake_quant.scale.shape == (3,)
    assert fresh[0].weight_fake_quant.activation_post_process.min_val.shape == (3,)
    fresh.load_state_dict(trained.state_dict())  # same shapes now: a plain copy
    np.testing.assert_array_equal(fresh(x).numpy(), trained(x).numpy())
    with pytest.raises(RuntimeError, match="size mismatch for 0.weight"):
        fresh.load_state_dict({**trained.state_dict(), "0.weight": np.zeros((2, 1, 3, 3))})


def test_qat_from_float_errors_and_sigmoid_fixed_qparams():
    with pytest.raises(TypeError, match="only works for Conv2d, got Linear"):
        nnqat.Conv2d.from_float(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="qconfig"):
        nnqat.Linear.from_float(nn.Linear(2, 2))
    t = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Sigmoid())
    c = nn.Sequential(nn.Linear(3, 3), nn.Sigmoid())
    t.qconfig, c.qconfig = tq.get_default_qat_qconfig(), cq.get_default_qat_qconfig()
    tp, cp = tq.prepare_qat(t), cq.prepare_qat(c)
    assert observed_paths(cp) == observed_paths(tp) == ["0", "0.weight_fake_quant", "1"]
    assert isinstance(cp[1].activation_post_process, cq.FixedQParamsFakeQuantize)


# ------------------------------------------------------------------------------ zoo models
ZOO = [
    ("simple_cnn", [["features.0", "features.1", "features.2"], ["features.4", "features.5", "features.6"],
                    ["features.8", "features.9", "features.10"], ["classifier.2", "classifier.3"]],
     ["module.classifier.2", "module.classifier.5", "module.features.0", "module.features.4",
      "module.features.8", "quant"]),
    ("lenet5", [["features.0", "features.1"], ["features.3", "features.4"],
                ["classifier.1", "classifier.2"], ["classifier.3", "classifier.4"]],
     ["module.classifier.1", "module.classifier.3", "module.classifier.5", "module.features.0",
      "module.features.3", "quant"]),
]


@pytest.mark.parametrize("name,groups,paths", ZOO, ids=[z[0] for z in ZOO])
def test_zoo_models_prepare_and_calibrate(name, groups, paths):
    model = cn.models.create(name, num_classes=10, in_channels=1).eval()
    x = cn.tensor(np.random.default_rng(6).standard_normal((8, 1, 28, 28)).astype(np.float32))
    expected = model(x).numpy()
    wrapped = cq.QuantWrapper(cq.fuse_modules(model, groups))
    wrapped.qconfig = cq.get_default_qconfig("x86")
    prepared = cq.prepare(wrapped)
    assert observed_paths(prepared) == paths
    for _ in range(2):
        np.testing.assert_allclose(prepared(x).numpy(), expected, atol=1e-4)
    for path in paths:
        scale, zp = prepared.get_submodule(path).activation_post_process.calculate_qparams()
        assert scale.numpy()[0] > 1e-6 and 0 <= zp.numpy()[0] <= 127, path


def test_zoo_model_qat_training_step():
    model = cn.models.create("simple_cnn", num_classes=10, in_channels=1).train()
    fused = cq.fuse_modules_qat(model, ZOO[0][1])
    wrapped = cq.QuantWrapper(fused)
    wrapped.qconfig = cq.get_default_qat_qconfig("x86")
    qat_model = cq.prepare_qat(wrapped)
    assert isinstance(qat_model.module.features[0], nnqat.ConvBnReLU2d)
    opt = cn.optim.SGD(qat_model.parameters(), lr=0.05)
    rng = np.random.default_rng(7)
    x = cn.tensor(rng.standard_normal((8, 1, 28, 28)).astype(np.float32))
    y = cn.tensor(rng.integers(0, 10, 8))
    losses = []
    for _ in range(3):
        loss = cn.nn.functional.cross_entropy(qat_model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]

"""Fake quantization against torch 2.13: the per-tensor/per-channel functions (forward and
straight-through gradient, float32 and float64, random cotangents), FakeQuantize and
FusedMovingAvgObsFakeQuantize modules (buffers, switches), torch's fused qparams rule."""
import numpy as np
import pytest
import torch
import torch.ao.quantization as tq

import convnet as cn
import convnet.quantization as cq
from convnet.quantization.fake_quantize import choose_qparams

from .torch_twins import torch_kwargs

RANGES = [(0, 255), (-128, 127), (0, 127), (-127, 127), (0, 15)]


def _grad_pair(rng, x, torch_fn, cn_fn):
    """Forward and input gradient (random cotangent) of torch_fn and cn_fn on x."""
    g = rng.standard_normal(x.shape).astype(x.dtype)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch_fn(tx)
    ty.backward(torch.from_numpy(g))
    cx = cn.tensor(x, requires_grad=True)
    cy = cn_fn(cx)
    cy.backward(cn.tensor(g))
    return ty.detach().numpy(), cy.numpy(), tx.grad.numpy(), cx.grad.numpy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("qrange", RANGES)
def test_per_tensor_matches_torch(dtype, qrange):
    rng = np.random.default_rng(0)
    qmin, qmax = qrange
    for trial in range(8):
        x = (rng.standard_normal((3, 4, 5)) * 10 ** rng.uniform(-2, 1.5)).astype(dtype)
        x.flat[:3] = [0.0, 1e6, -1e6]  # zero and far-clamped values
        scale = float(np.float32(10 ** rng.uniform(-3, 0)))
        zp = int(rng.integers(qmin, qmax + 1))
        ty, cy, tg, cg = _grad_pair(
            rng, x, lambda t: torch.fake_quantize_per_tensor_affine(t, scale, zp, qmin, qmax),
            lambda c: cq.fake_quantize_per_tensor_affine(c, scale, zp, qmin, qmax))
        assert cy.dtype == dtype
        np.testing.assert_array_equal(cy, ty)
        np.testing.assert_array_equal(cg, tg)
        # Tensor qparams (what FakeQuantize passes): same result
        cy2 = cq.fake_quantize_per_tensor_affine(
            cn.tensor(x), cn.tensor(np.float32([scale])), cn.tensor(np.int32([zp])), qmin, qmax)
        np.testing.assert_array_equal(cy2.numpy(), ty)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("axis", [0, 1, 3])
def test_per_channel_matches_torch(dtype, axis):
    rng = np.random.default_rng(1)
    for qmin, qmax in RANGES[:3]:
        x = (rng.standard_normal((4, 3, 2, 5)) * 3).astype(dtype)
        n = x.shape[axis]
        scale = (10 ** rng.uniform(-3, 0, n)).astype(np.float32)
        zp = rng.integers(qmin, qmax + 1, n).astype(np.int32)
        ty, cy, tg, cg = _grad_pair(
            rng, x,
            lambda t: torch.fake_quantize_per_channel_affine(t, torch.from_numpy(scale),
                                                             torch.from_numpy(zp), axis, qmin, qmax),
            lambda c: cq.fake_quantize_per_channel_affine(c, cn.tensor(scale), cn.tensor(zp),
                                                          axis, qmin, qmax))
        np.testing.assert_array_equal(cy, ty)
        np.testing.assert_array_equal(cg, tg)


def test_formula_and_straight_through_mask():
    """y = (clamp(round(x/s) + z, qmin, qmax) - z) * s; gradient 1 inside, 0 where clamped;
    round half to even (-2.5 -> -2 stays in range, 0.5 -> 0, 1.5 -> 2)."""
    x = cn.tensor(np.float32([-3.0, -0.25, 0.05, 0.15, 0.26, 5.0]), requires_grad=True)
    y = cq.fake_quantize_per_tensor_affine(x, 0.1, 2, 0, 10)
    np.testing.assert_allclose(y.numpy(), np.float32([-0.2, -0.2, 0.0, 0.2, 0.3, 0.8]), atol=1e-7)
    y.sum().backward()
    assert x.grad.numpy().tolist() == [0, 1, 1, 1, 1, 0]


def test_function_errors():
    x = cn.tensor(np.ones((2, 3), np.float32))
    with pytest.raises(RuntimeError, match="quant_min"):
        cq.fake_quantize_per_tensor_affine(x, 0.1, 0, 10, 0)
    with pytest.raises(RuntimeError, match="zero_point .300. must be between"):
        cq.fake_quantize_per_tensor_affine(x, 0.1, 300, 0, 255)
    with pytest.raises(RuntimeError, match=r"length input.shape\[1\] = 3"):
        cq.fake_quantize_per_channel_affine(x, cn.tensor(np.ones(2, np.float32)),
                                            cn.tensor(np.zeros(2, np.int32)), 1, 0, 255)
    with pytest.raises(RuntimeError, match="axis must be between 0 and 1"):
        cq.fake_quantize_per_channel_affine(x, cn.tensor(np.ones(3, np.float32)),
                                            cn.tensor(np.zeros(3, np.int32)), 2, 0, 255)
    with pytest.raises(TypeError, match="float tensor"):
        cq.fake_quantize_per_tensor_affine(cn.tensor(np.ones(3, np.int64)), 0.1, 0, 0, 255)


FQ_CONFIGS = [
    ("default_fake_quant", {}),
    ("default_weight_fake_quant", {}),
    ("default_per_channel_weight_fake_quant", {}),
    ("default_histogram_fake_quant", {}),
    ("FakeQuantize", {"observer": "MinMaxObserver", "quant_min": 0, "quant_max": 127}),
]


def _make_fq(lib, name, kw):
    kw = {k: getattr(lib, v) if k == "observer" else v for k, v in kw.items()}
    return getattr(lib, name)(**torch_kwargs(kw)) if lib is tq else getattr(lib, name)(**kw)


@pytest.mark.parametrize("name,kw", FQ_CONFIGS)
def test_fake_quantize_module_matches_torch(name, kw):
    rng = np.random.default_rng(2)
    t_fq, c_fq = _make_fq(tq, name, kw), _make_fq(cq, name, kw)
    assert c_fq.fake_quant_enabled.numpy().tolist() == [1] and c_fq.fake_quant_enabled.dtype == np.uint8
    assert c_fq.zero_point.dtype == np.int32 and (c_fq.quant_min, c_fq.quant_max) == (t_fq.quant_min, t_fq.quant_max)
    assert c_fq.ch_axis == t_fq.ch_axis
    for step in range(5):
        if step == 2:
            t_fq.disable_observer()
            c_fq.disable_observer()
        if step == 3:
            t_fq.disable_fake_quant()
            c_fq.disable_fake_quant()
        if step == 4:
            t_fq.apply(tq.enable_observer)
            t_fq.apply(tq.enable_fake_quant)
            c_fq.apply(cq.enable_observer)
            c_fq.apply(cq.enable_fake_quant)
        x = (rng.standard_normal((4, 3, 2, 2)) * (1 + step)).astype(np.float32)
        ty, cy, tg, cg = _grad_pair(rng, x, t_fq, c_fq)
        np.testing.assert_array_equal(cy, ty)
        np.testing.assert_array_equal(cg, tg)
        np.testing.assert_array_equal(c_fq.scale.numpy(), t_fq.scale.numpy())
        np.testing.assert_array_equal(c_fq.zero_point.numpy(), t_fq.zero_point.numpy())
    assert set(c_fq.state_dict()) == set(t_fq.state_dict())


FUSED = ["default_fused_act_fake_quant", "default_fused_wt_fake_quant",
         "default_fused_per_channel_wt_fake_quant",
         "fused_wt_fake_quant_range_neg_127_to_127",
         "fused_per_channel_wt_fake_quant_range_neg_127_to_127"]


@pytest.mark.parametrize("name", FUSED)
def test_fused_fake_quantize_matches_torch(name):
    from torch.ao.quantization import fake_quantize as tfq

    from convnet.quantization import fake_quantize as cfq

    rng = np.random.default_rng(3)
    t_fq, c_fq = getattr(tfq, name)(), getattr(cfq, name)()
    assert c_fq.fake_quant_enabled.dtype == np.int64
    for step in range(5):
        if step == 3:
            t_fq.disable_fake_quant()  # torch then leaves scale/zero_point as they were
            c_fq.disable_fake_quant()
        if step == 4:
            t_fq.enable_fake_quant()
            t_fq.disable_observer()
            c_fq.enable_fake_quant()
            c_fq.disable_observer()
        x = (rng.standard_normal((5, 3, 2, 2)) * 10 ** rng.uniform(-4, 1)
             + rng.uniform(-1, 1) * 10 ** rng.uniform(-4, 0)).astype(np.float32)
        ty, cy, tg, cg = _grad_pair(rng, x, t_fq, c_fq)
        np.testing.assert_array_equal(cy, ty)
        np.testing.assert_array_equal(cg, tg)
        for buf in ("scale", "zero_point"):
            np.testing.assert_array_equal(getattr(c_fq, buf).numpy(), getattr(t_fq, buf).numpy())
        for buf in ("min_val", "max_val"):
            np.testing.assert_array_equal(getattr(c_fq.activation_post_process, buf).numpy(),
                                          getattr(t_fq.activation_post_process, buf).numpy())


def test_choose_qparams_matches_torch_fused_kernel():
    """Many ranges (tiny, one-sided, symmetric) through torch's fused op vs choose_qparams."""
    rng = np.random.default_rng(4)
    for trial in range(300):
        lo = -abs(rng.standard_normal()) * 10 ** rng.uniform(-7, 2) * (trial % 5 != 0)
        hi = abs(rng.standard_normal()) * 10 ** rng.uniform(-7, 2) * (trial % 7 != 0)
        qmin, qmax = RANGES[trial % 4]
        sym = trial % 3 == 0
        x = torch.tensor([lo, hi], dtype=torch.float32)
        run_min, run_max = torch.tensor(float("inf")), torch.tensor(float("-inf"))
        scale, zp = torch.ones(1), torch.zeros(1, dtype=torch.int32)
        torch.fused_moving_avg_obs_fake_quant(x, torch.tensor([1]), torch.tensor([1]), run_min,
                                              run_max, scale, zp, 0.01, qmin, qmax, 0, False, sym)
        s, z = choose_qparams(float(np.float32(lo)), float(np.float32(hi)), qmin, qmax, sym)
        assert (s, z) == (np.float32(scale.item()), zp.item()), (lo, hi, qmin, qmax, sym)


def test_fake_quantize_errors_and_float64():
    with pytest.raises(ValueError, match="out of convnet.qint8's range"):
        cq.FakeQuantize(dtype=cq.qint8, quant_min=-200, quant_max=100)
    with pytest.raises(ValueError, match="MovingAverageMinMaxObserver"):
        cq.FusedMovingAvgObsFakeQuantize(observer=cq.MinMaxObserver)
    fq = cq.default_fused_act_fake_quant()
    x = np.float64([[-1.0, 0.5], [2.0, 0.0]])
    y = fq(cn.tensor(x))  # torch's fused kernel rejects float64; convnet keeps float32 stats
    assert y.dtype == np.float64 and fq.scale.dtype == np.float32
    np.testing.assert_allclose(y.numpy(), x, atol=fq.scale.numpy()[0])
    with pytest.raises(ValueError, match="NaN"):
        fq(cn.tensor(np.float32([np.nan, 1.0])))

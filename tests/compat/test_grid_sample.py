"""F.affine_grid and F.grid_sample against torch 2.13: forward and float64 gradients
(input and grid) over every mode x padding x align_corners, grid points far outside."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import convnet as cn
import convnet.functional as F

TF = torch.nn.functional
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # torch's align_corners notes


def _run(x, g, cot, **kw):
    cx, cg = cn.tensor(x, requires_grad=True), cn.tensor(g, requires_grad=True)
    tx, tg = torch.tensor(x, requires_grad=True), torch.tensor(g, requires_grad=True)
    co, to = F.grid_sample(cx, cg, **kw), TF.grid_sample(tx, tg, **kw)
    co.backward(cn.tensor(cot))
    to.backward(torch.tensor(cot))
    return (co, cx.grad, cg.grad), (to.detach(), tx.grad, tg.grad)


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_grid_sample_matches_torch_float64(mode, padding_mode, align_corners):
    rng = np.random.default_rng(hash((mode, padding_mode, align_corners)) % 2**32)
    for shape, out_hw, spread in [((2, 3, 5, 7), (4, 6), 1.6), ((1, 2, 4, 3), (5, 5), 4.0),
                                  ((2, 1, 1, 6), (3, 2), 2.5)]:
        x = rng.standard_normal(shape)
        g = rng.uniform(-spread, spread, (shape[0], *out_hw, 2))  # many points outside
        cot = rng.standard_normal((shape[0], shape[1], *out_hw))
        c, t = _run(x, g, cot, mode=mode, padding_mode=padding_mode, align_corners=align_corners)
        for name, a, b in zip(("output", "grad input", "grad grid"), c, t):
            assert a.shape == tuple(b.shape), name
            np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-10, rtol=0, err_msg=name)


def test_grid_sample_float32_default_align_and_identity():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 6, 5)).astype(np.float32)
    g = rng.uniform(-1.2, 1.2, (2, 3, 4, 2)).astype(np.float32)
    out = F.grid_sample(cn.tensor(x), cn.tensor(g))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.numpy(), TF.grid_sample(torch.tensor(x), torch.tensor(g),
                                                           align_corners=False).numpy(),
                               atol=1e-6)
    # an identity affine grid reproduces the image, for both align_corners settings
    theta = cn.tensor(np.tile(np.eye(2, 3, dtype=np.float32), (2, 1, 1)))
    for ac in (False, True):
        y = F.grid_sample(cn.tensor(x), F.affine_grid(theta, x.shape, align_corners=ac),
                          align_corners=ac)
        np.testing.assert_allclose(y.numpy(), x, atol=1e-5)


@pytest.mark.parametrize("align_corners", [None, False, True])
def test_affine_grid_matches_torch_with_gradient(align_corners):
    rng = np.random.default_rng(1)
    for size in [(2, 3, 5, 4), (1, 1, 1, 6), (3, 2, 7, 1)]:
        theta = rng.standard_normal((size[0], 2, 3))
        cot = rng.standard_normal((size[0], size[2], size[3], 2))
        ct, tt = cn.tensor(theta, requires_grad=True), torch.tensor(theta, requires_grad=True)
        cg = F.affine_grid(ct, size, align_corners=align_corners)
        tg = TF.affine_grid(tt, list(size), align_corners=bool(align_corners))
        np.testing.assert_allclose(cg.numpy(), tg.detach().numpy(), atol=1e-12)
        cg.backward(cn.tensor(cot))
        tg.backward(torch.tensor(cot))
        np.testing.assert_allclose(ct.grad.numpy(), tt.grad.numpy(), atol=1e-10)


def test_spatial_transformer_chain_gradient_reaches_theta():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 6, 6))
    theta = np.tile(np.eye(2, 3), (2, 1, 1)) + 0.1 * rng.standard_normal((2, 2, 3))
    cot = rng.standard_normal((2, 3, 4, 5))
    ct, tt = cn.tensor(theta, requires_grad=True), torch.tensor(theta, requires_grad=True)
    cx, tx = cn.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    co = F.grid_sample(cx, F.affine_grid(ct, (2, 3, 4, 5)), padding_mode="border")
    to = TF.grid_sample(tx, TF.affine_grid(tt, [2, 3, 4, 5], align_corners=False),
                        padding_mode="border", align_corners=False)
    co.backward(cn.tensor(cot))
    to.backward(torch.tensor(cot))
    np.testing.assert_allclose(co.numpy(), to.detach().numpy(), atol=1e-10)
    np.testing.assert_allclose(ct.grad.numpy(), tt.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(cx.grad.numpy(), tx.grad.numpy(), atol=1e-10)


def test_grid_sample_and_affine_grid_errors():
    x, g = cn.zeros(1, 2, 4, 4), cn.zeros(1, 3, 3, 2)
    with pytest.raises(ValueError, match="mode"):
        F.grid_sample(x, g, mode="cubic")
    with pytest.raises(ValueError, match="padding_mode"):
        F.grid_sample(x, g, padding_mode="wrap")
    with pytest.raises(RuntimeError, match="batch size"):
        F.grid_sample(cn.zeros(2, 2, 4, 4), g)
    with pytest.raises(RuntimeError, match="grid of shape"):
        F.grid_sample(x, cn.zeros(1, 3, 3, 3))
    with pytest.raises(RuntimeError, match="same dtype"):
        F.grid_sample(x, g.double())
    with pytest.raises(ValueError, match="Nx2x3"):
        F.affine_grid(cn.zeros(1, 3, 3), (1, 2, 4, 4))
    with pytest.raises(ValueError, match="floating point"):
        F.affine_grid(cn.zeros(1, 2, 3, dtype=cn.int64), (1, 2, 4, 4))
    # torch raises the same error types for these
    with pytest.raises(ValueError):
        TF.grid_sample(torch.zeros(1, 2, 4, 4), torch.zeros(1, 3, 3, 2), mode="cubic")
    with pytest.raises(RuntimeError):
        TF.grid_sample(torch.zeros(2, 2, 4, 4), torch.zeros(1, 3, 3, 2))

"""Conv as a matrix, transposed conv as its transpose and adjoint, true convolution."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import convnet as cn
import convnet.functional as F

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
CONVT = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


@pytest.mark.parametrize("seed", range(20))
def test_conv_transpose_is_adjoint_of_conv(seed):
    """<conv(x), y> == <x, conv_transpose(y)> for random shapes, strides, groups, dilation."""
    rng = np.random.default_rng(seed)
    nd = int(rng.integers(1, 4))
    groups = int(rng.choice([1, 2]))
    c_in, c_out = groups * int(rng.integers(1, 4)), groups * int(rng.integers(1, 4))
    k = tuple(int(v) for v in rng.integers(1, 4, nd))
    s = tuple(int(v) for v in rng.integers(1, 4, nd))
    d = tuple(int(v) for v in rng.integers(1, 3, nd))
    p = tuple(int(v) for v in rng.integers(0, 2, nd))
    size = tuple(dd * (kk - 1) + 1 + int(rng.integers(0, 5)) for kk, dd in zip(k, d))
    x = cn.tensor(rng.standard_normal((2, c_in) + size))
    w = cn.tensor(rng.standard_normal((c_out, c_in // groups) + k))
    y_conv = CONV[nd](x, w, None, s, p, d, groups)
    y = cn.tensor(rng.standard_normal(y_conv.shape))
    # output_padding recovers the exact input size lost to the floor in the conv's formula
    op = tuple((si + 2 * pi - dd * (kk - 1) - 1) % ss
               for si, pi, dd, kk, ss in zip(size, p, d, k, s))
    x_back = CONVT[nd](y, w, None, s, p, op, groups, d)
    assert x_back.shape == x.shape
    lhs = float(np.sum(y_conv.numpy() * y.numpy()))
    rhs = float(np.sum(x.numpy() * x_back.numpy()))
    assert lhs == pytest.approx(rhs, rel=1e-10, abs=1e-10)


@pytest.mark.parametrize("nd,size,kw", [
    (2, (5, 6), dict(stride=2, padding=1)),
    (2, (4, 4), dict(padding="same", dilation=1)),
    (1, 9, dict(stride=3, dilation=2)),
    (3, (3, 4, 3), dict(padding=1, groups=2)),
])
def test_conv_matrix_reproduces_conv_and_transpose(nd, size, kw):
    rng = np.random.default_rng(nd)
    groups = kw.get("groups", 1)
    w = cn.tensor(rng.standard_normal((4, 4 // groups) + (3,) * nd))
    size_t = size if isinstance(size, tuple) else (size,)
    x = rng.standard_normal((1, 4) + size_t)
    m = F.conv_matrix(w, size, **kw).numpy()
    y = CONV[nd](cn.tensor(x), w, **kw).numpy()
    assert m.shape == (y.size, x.size)
    np.testing.assert_allclose(m @ x.reshape(-1), y.reshape(-1), rtol=1e-10, atol=1e-10)
    if kw.get("padding") == "same":
        return  # conv_transpose has no 'same'
    # M^T is the transposed conv (with the output_padding that restores the input size)
    s, p, d = (np.broadcast_to(kw.get(a, dflt), (nd,)) for a, dflt in
               (("stride", 1), ("padding", 0), ("dilation", 1)))
    op = tuple(int((si + 2 * pi - di * 2 - 1) % ss) for si, pi, di, ss in zip(size_t, p, d, s))
    g = rng.standard_normal(y.shape)
    xt = CONVT[nd](cn.tensor(g), w, None, tuple(s), tuple(p), op, groups, tuple(d)).numpy()
    np.testing.assert_allclose(m.T @ g.reshape(-1), xt.reshape(-1), rtol=1e-10, atol=1e-10)


def test_conv_matrix_is_differentiable_and_sparse():
    rng = np.random.default_rng(1)
    w = cn.tensor(rng.standard_normal((2, 1, 3, 3)), requires_grad=True)
    m = F.conv_matrix(w, (5, 5))
    # local connectivity: each row (output pixel) touches at most K*K*C_in inputs
    assert (np.count_nonzero(m.numpy(), axis=1) <= 9).all()
    m.sum().backward()
    # each weight appears once per output position: 3x3 outputs per filter
    np.testing.assert_allclose(w.grad.numpy(), np.full((2, 1, 3, 3), 9.0))


def test_true_convolution_flips_kernel():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 8, 7))
    w = rng.standard_normal((4, 3, 3, 2))
    xc, wc = cn.tensor(x), cn.tensor(w)
    true = F.convolve2d(xc, wc, padding=1).numpy()
    corr_flipped = F.conv2d(xc, cn.tensor(w[:, :, ::-1, ::-1].copy()), padding=1).numpy()
    np.testing.assert_allclose(true, corr_flipped, rtol=1e-12, atol=1e-12)
    assert not np.allclose(true, F.conv2d(xc, wc, padding=1).numpy())
    np.testing.assert_allclose(F.conv2d(xc, wc, padding=1, flip_kernel=True).numpy(), true)
    # the textbook definition on one channel, written out: y[i,j] = sum x[m,n] K[i-m, j-n]
    img, ker = rng.standard_normal((5, 6)), rng.standard_normal((3, 3))
    full = np.zeros((7, 8))
    for m_ in range(5):
        for n_ in range(6):
            full[m_:m_ + 3, n_:n_ + 3] += img[m_, n_] * ker
    ours = F.convolve2d(cn.tensor(img[None, None]), cn.tensor(ker[None, None]), padding=2)
    np.testing.assert_allclose(ours.numpy()[0, 0], full, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_true_convolution_equals_correlation_for_symmetric_kernels(nd):
    rng = np.random.default_rng(nd)
    k = rng.standard_normal((2, 3) + (3,) * nd)
    for axis in range(2, 2 + nd):
        k = k + np.flip(k, axis=axis)  # symmetric under the flip
    x = cn.tensor(rng.standard_normal((1, 3) + (6,) * nd))
    conv = {1: F.convolve1d, 2: F.convolve2d, 3: F.convolve3d}[nd]
    np.testing.assert_allclose(conv(x, cn.tensor(k), padding=1).numpy(),
                               CONV[nd](x, cn.tensor(k), padding=1).numpy(), rtol=1e-12)


def test_true_convolution_gradients():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 2, 6, 5))
    w = rng.standard_normal((3, 2, 3, 2))
    b = rng.standard_normal(3)
    xc = cn.tensor(x, requires_grad=True)
    wc = cn.tensor(w, requires_grad=True)
    bc = cn.tensor(b, requires_grad=True)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True)
    yc = F.convolve2d(xc, wc, bc, stride=2, padding=1)
    yt = TF.conv2d(xt, torch.flip(wt, (2, 3)), bt, stride=2, padding=1)
    g = rng.standard_normal(yt.shape)
    (yc * cn.tensor(g)).sum().backward()
    (yt * torch.tensor(g)).sum().backward()
    for a, t in ((xc, xt), (wc, wt), (bc, bt)):
        np.testing.assert_allclose(a.grad.numpy(), t.grad.numpy(), rtol=1e-10, atol=1e-12)

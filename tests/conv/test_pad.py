"""F.pad against torch: every mode, random shapes and amounts, gradients included."""
from __future__ import annotations

import numpy as np
import pytest
import torch.nn.functional as TF

import convnet as cn
import convnet.functional as F
from convnet.kernels.pad import pad_nd, pad_nd_backward
from tests.helpers.oracle import check


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("seed", range(12))
def test_pad_matches_torch(mode, seed):
    rng = np.random.default_rng(seed)
    ndim = int(rng.integers(3, 6))  # (N, C, L), (N, C, H, W), (N, C, D, H, W)
    shape = (int(rng.integers(1, 3)), int(rng.integers(1, 4))) + tuple(
        int(v) for v in rng.integers(2, 6, ndim - 2))
    # dims padded, counted from the last (torch's non-constant modes pad all spatial dims)
    n_pad = int(rng.integers(1, ndim - 1)) if mode == "constant" else ndim - 2
    pad = []
    for i in range(n_pad):
        size = shape[-1 - i]
        top = {"reflect": size - 1, "circular": size}.get(mode, 4)
        low = -1 if mode == "constant" else 0
        pad += [int(rng.integers(low, top + 1)), int(rng.integers(low, top + 1))]
    value = float(rng.standard_normal()) if mode == "constant" else None
    x = rng.standard_normal(shape)
    kw = {"mode": mode} if value is None else {"mode": mode, "value": value}
    check(lambda x: F.pad(x, tuple(pad), **kw), lambda x: TF.pad(x, tuple(pad), **kw), [x],
          seed=seed)


def test_pad_default_zero_and_crop():
    x = cn.tensor(np.arange(12.0).reshape(1, 3, 4))
    y = F.pad(x, (1, -1))
    np.testing.assert_array_equal(y.numpy()[0, 0], [0, 0, 1, 2])


def test_pad_kernel_adjoint():
    """<pad(x), y> == <x, pad_backward(y)> for every mode (the backward is the adjoint)."""
    rng = np.random.default_rng(2)
    for mode in ("constant", "reflect", "replicate", "circular"):
        x = rng.standard_normal((2, 3, 5, 4))
        pads = [(0, 0), (0, 0), (2, 3), (3, 1)]
        y = rng.standard_normal(pad_nd(x, pads, mode).shape)
        lhs = np.sum(pad_nd(x, pads, mode) * y)
        rhs = np.sum(x * pad_nd_backward(y, x.shape, pads, mode))
        assert np.isclose(lhs, rhs), mode


@pytest.mark.parametrize("mode,pad", [("reflect", (3, 0)), ("circular", (0, 4)),
                                      ("reflect", (-1, 0)), ("replicate", (1, 1, 1, 1, 1, 1))])
def test_pad_errors(mode, pad):
    x = cn.zeros(2, 3, 3)
    with pytest.raises(ValueError, match="pad"):
        F.pad(x, pad, mode=mode)


def test_pad_bad_arguments():
    x = cn.zeros(2, 3, 3)
    with pytest.raises(ValueError, match="even"):
        F.pad(x, (1, 2, 3))
    with pytest.raises(ValueError, match="mode"):
        F.pad(x, (1, 1), mode="mirror")
    with pytest.raises(ValueError, match="negative size"):
        F.pad(x, (-2, -2))

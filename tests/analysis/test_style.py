"""Gram matrices (against torch, forward and backward) and style transfer."""
import numpy as np
import pytest
import torch

import convnet as cn
import convnet.nn as nn
from convnet.analysis import gram_matrix, style_transfer

from ..helpers.oracle import check


def _torch_gram(x):
    n, c = x.shape[:2]
    f = x.reshape(n, c, -1)
    return f @ f.transpose(1, 2) / f[0].numel()


@pytest.mark.parametrize("shape", [(1, 3, 4, 5), (2, 1, 7, 7), (3, 6, 2, 9), (2, 4, 11),
                                   (1, 2, 3, 3, 3)])
def test_gram_matrix_matches_torch(shape):
    x = np.random.default_rng(len(shape)).standard_normal(shape)
    (g,) = check(lambda t: (gram_matrix(t),), lambda t: (_torch_gram(t),), [x])
    assert g.shape == (shape[0], shape[1], shape[1])
    np.testing.assert_allclose(g.numpy(), g.numpy().transpose(0, 2, 1))


def test_gram_matrix_errors():
    with pytest.raises(ValueError, match=r"gram_matrix: features must be \(N, C, \*spatial\)"):
        gram_matrix(cn.zeros(3, 4))


def _features():
    cn.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, dtype=np.float64), nn.ReLU(),
                         nn.Conv2d(4, 4, 3, padding=1, dtype=np.float64), nn.ReLU())


def test_style_transfer_lowers_the_loss_and_keeps_the_network():
    feats = _features()
    before = [p.numpy().copy() for p in feats.parameters()]
    rng = np.random.default_rng(0)
    content = rng.random((1, 1, 16, 16))
    stripes = np.tile((np.arange(16) % 4 < 2).astype(np.float64), (16, 1))[None, None]
    losses = []
    out = style_transfer(content, stripes, feats, content_layers=["1"], style_layers=["1", "3"],
                         steps=30, lr=0.05, style_weight=1e4,
                         callback=lambda step, loss: losses.append(loss))
    assert out.shape == content.shape and 0 <= out.min() and out.max() <= 1
    assert len(losses) == 30 and losses[-1] < 0.9 * losses[0]

    def gram_gap(img):  # distance of an image's style at layer '3' to the stripes' style
        with cn.no_grad():
            g = gram_matrix(feats(cn.tensor(img))).numpy()
            return np.abs(g - gram_matrix(feats(cn.tensor(stripes))).numpy()).sum()
    assert gram_gap(out) < 0.7 * gram_gap(content)
    for b, p in zip(before, feats.parameters()):
        np.testing.assert_array_equal(b, p.numpy())
        assert p.requires_grad
    assert feats.training


def test_style_transfer_errors():
    feats = _features()
    with pytest.raises(ValueError, match="at least one"):
        style_transfer(np.zeros((1, 1, 8, 8)), np.zeros((1, 1, 8, 8)), feats)
    with pytest.raises(ValueError, match="content has 1 channels but style has 3"):
        style_transfer(np.zeros((1, 1, 8, 8)), np.zeros((1, 3, 8, 8)), feats, style_layers=["1"])
    with pytest.raises(ValueError, match="no layer named"):
        style_transfer(np.zeros((1, 1, 8, 8)), np.zeros((1, 1, 8, 8)), feats, style_layers=["9"])
    _ = torch


def test_gram_matrix_gradcheck_and_float32():
    from convnet.autograd import gradcheck

    x = cn.tensor(np.random.default_rng(5).standard_normal((2, 3, 4, 3)), requires_grad=True)
    assert gradcheck(gram_matrix, [x])
    g32 = gram_matrix(cn.tensor(np.ones((1, 2, 3, 3), np.float32)))
    assert g32.dtype == np.float32
    np.testing.assert_allclose(g32.numpy(), np.full((1, 2, 2), 9 / 18))

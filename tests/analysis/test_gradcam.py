"""Grad-CAM and saliency against a torch re-implementation, and on a trained LeNet-5."""
import numpy as np
import pytest
import torch

import convnet as cn
import convnet.nn as nn
from convnet.analysis import feature_maps, grad_cam, saliency_map
from convnet.analysis.gradcam import field_aligned_upsample, normalize_maps, resize_bilinear

from .conftest import load_digits, normalize


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(2, 4, 3, dtype=np.float64)
        self.act = nn.ReLU()
        self.c2 = nn.Conv2d(4, 5, 3, stride=2, dtype=np.float64)
        self.flat = nn.Flatten()
        self.fc = nn.Linear(5 * 5 * 5, 3, dtype=np.float64)

    def forward(self, x):
        return self.fc(self.flat(self.act(self.c2(self.act(self.c1(x))))))


def _torch_cam(net, x, target):
    c1 = torch.tensor(net.c1.weight.numpy()), torch.tensor(net.c1.bias.numpy())
    c2 = torch.tensor(net.c2.weight.numpy()), torch.tensor(net.c2.bias.numpy())
    fc = torch.tensor(net.fc.weight.numpy()), torch.tensor(net.fc.bias.numpy())
    tf = torch.nn.functional
    xt = torch.tensor(x, requires_grad=True)
    a = tf.conv2d(torch.relu(tf.conv2d(xt, *c1)), *c2, stride=2)
    a.retain_grad()
    scores = tf.linear(torch.relu(a).flatten(1), *fc)
    scores[torch.arange(len(x)), torch.tensor(target)].sum().backward()
    alpha = a.grad.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((alpha * a).sum(1, keepdim=True))
    cam = tf.interpolate(cam, size=x.shape[2:], mode="bilinear", align_corners=False)[:, 0]
    cam = cam / cam.flatten(1).max(1).values.clamp_min(1e-300)[:, None, None]
    sal = xt.grad.abs().amax(1)
    sal = sal / sal.flatten(1).max(1).values[:, None, None]
    return cam.detach().numpy(), sal.numpy()


@pytest.mark.parametrize("seed", range(4))
def test_grad_cam_and_saliency_match_torch(seed):
    cn.manual_seed(seed)
    net = Net()
    x = np.random.default_rng(seed).standard_normal((3, 2, 13, 13))
    target = [0, 2, 1]
    ref_cam, ref_sal = _torch_cam(net, x, target)
    cam = grad_cam(net, x, "c2", target=target, upsample="resize")
    assert cam.shape == (3, 13, 13)
    np.testing.assert_allclose(cam, ref_cam, atol=1e-10)
    np.testing.assert_allclose(saliency_map(net, x, target=target), ref_sal, atol=1e-10)
    assert cam.min() >= 0 and cam.max() <= 1


def test_default_target_is_the_top_class_and_grads_are_left_alone():
    cn.manual_seed(0)
    net = Net()
    x = np.random.default_rng(1).standard_normal((2, 2, 13, 13))
    with cn.no_grad():
        top = net(cn.tensor(x)).numpy().argmax(1)
    np.testing.assert_allclose(grad_cam(net, x, net.c2), grad_cam(net, x, "c2", target=top))
    assert not np.allclose(grad_cam(net, x, "c2"), grad_cam(net, x, "c2", upsample="resize"))
    assert all(p.grad is None for p in net.parameters())
    assert net.training  # mode restored


@pytest.mark.parametrize("h, w, H, W", [(5, 5, 13, 13), (3, 7, 9, 8), (10, 10, 28, 28), (4, 4, 4, 4)])
def test_resize_bilinear_matches_torch(h, w, H, W):
    a = np.random.default_rng(h * w).random((2, h, w))
    ref = torch.nn.functional.interpolate(torch.tensor(a)[:, None], size=(H, W), mode="bilinear",
                                          align_corners=False)[:, 0].numpy()
    np.testing.assert_allclose(resize_bilinear(a, (H, W)), ref, atol=1e-12)


def test_field_aligned_upsample_puts_units_at_their_field_centres():
    a = np.random.default_rng(0).random((2, 5, 6))
    np.testing.assert_allclose(field_aligned_upsample(a, (5, 6), (0, 0), (1, 1)), a)
    up = field_aligned_upsample(a, (16, 20), (3, 4), (2, 3))
    np.testing.assert_allclose(up[:, 3:12:2, 4:20:3], a)  # unit (i, j) at pixel (3+2i, 4+3j)
    np.testing.assert_allclose(up[:, 4, 4], (a[:, 0, 0] + a[:, 1, 0]) / 2)  # halfway
    np.testing.assert_allclose(up[:, 0, 0], a[:, 0, 0])  # before the first centre: clamped


def test_grad_cam_field_alignment_on_a_valid_conv():
    # c1 (3x3 valid) then c2 (3x3 stride 2): c2 unit i is centred on pixel 2 + 2i
    cn.manual_seed(1)
    net = Net()
    x = np.random.default_rng(2).standard_normal((1, 2, 13, 13))
    cam = grad_cam(net, x, "c2", target=1)
    ref = grad_cam(net, x, "c2", target=1, upsample="resize")
    assert cam.shape == ref.shape == (1, 13, 13)
    raw_peak = np.unravel_index(cam[0, 2:11:2, 2:11:2].argmax(), (5, 5))
    assert cam[0, 2 + 2 * raw_peak[0], 2 + 2 * raw_peak[1]] == pytest.approx(1.0)


def test_normalize_maps_handles_all_zero():
    m = normalize_maps(np.array([[[0.0, 0.0]], [[1.0, 3.0]]]))
    np.testing.assert_allclose(m, [[[0, 0]], [[1 / 3, 1]]])


def test_grad_cam_errors():
    net = Net()
    x = np.zeros((1, 2, 13, 13))
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        grad_cam(net, x, "nope")
    with pytest.raises(ValueError, match="out of range for 3 classes"):
        grad_cam(net, x, "c2", target=7)
    with pytest.raises(ValueError, match="pick a conv layer"):
        grad_cam(net, x, "fc")
    with pytest.raises(ValueError, match="not a submodule"):
        grad_cam(net, x, nn.ReLU())
    with pytest.raises(ValueError, match="upsample must be"):
        grad_cam(net, x, "c2", upsample="nearest")
    with pytest.raises(ValueError, match=r"must be \(N, C, H, W\)"):
        grad_cam(net, np.zeros((2, 13)), "c2")


def test_feature_maps_of_every_layer():
    net = Net()
    x = np.random.default_rng(0).standard_normal((1, 2, 13, 13))
    maps = feature_maps(net, x)
    assert list(maps) == ["c1", "act", "c2", "act#2", "flat", "fc"]
    assert maps["c1"].shape == (1, 4, 11, 11) and maps["c2"].shape == (1, 5, 5, 5)
    assert (maps["act"] >= 0).all()
    np.testing.assert_allclose(np.maximum(maps["c2"], 0), maps["act#2"])
    only = feature_maps(net, x, layers=["c2"])
    assert list(only) == ["c2"]


def _inside_outside(imgs, cams):
    """Mean heatmap inside / outside each digit's bounding box (strokes above 30% ink)."""
    inside, outside = [], []
    for img, h in zip(imgs, cams):
        ys, xs = np.nonzero(img > 76)
        box = np.zeros(img.shape, dtype=bool)
        box[ys.min():ys.max() + 1, xs.min():xs.max() + 1] = True
        inside.append(h[box].mean())
        outside.append(h[~box].mean())
    return np.array(inside), np.array(outside)


def test_grad_cam_on_trained_lenet_highlights_the_digit(trained_lenet):
    model, acc = trained_lenet
    assert acc > 0.9, f"the test LeNet-5 trained too little (accuracy {acc:.2f})"
    imgs = load_digits()["test_images"][:200]
    # the rectified maps of the last conv (conv -> ReLU), as in the paper
    cam = grad_cam(model, normalize(imgs), "features.4")
    assert cam.shape == (200, 28, 28) and cam.min() >= 0 and cam.max() <= 1
    inside, outside = _inside_outside(imgs, cam)
    # measured: ratio ~1.3, ~70% of digits individually (the empty strokes of a class are
    # evidence too, so Grad-CAM also lights some background)
    assert inside.mean() > 1.2 * outside.mean()
    assert (inside > outside).mean() > 0.6, f"digit highlighted in {(inside > outside).mean():.0%}"
    # placing units at their field centres localises better than stretching the 10x10 map
    i_r, o_r = _inside_outside(imgs, grad_cam(model, normalize(imgs), "features.4", upsample="resize"))
    assert inside.mean() / outside.mean() > i_r.mean() / o_r.mean()
    # gradient saliency is sharper still: it lives on the strokes
    inside, outside = _inside_outside(imgs, saliency_map(model, normalize(imgs)))
    assert (inside > outside).mean() >= 0.95 and inside.mean() > 3 * outside.mean()

"""Output shapes for several input sizes, and a few training steps reducing the loss for every
model at a tiny size."""
import numpy as np
import pytest

import convnet as cn
import convnet.functional as F
import convnet.models as models
from convnet import optim

# (name, options) small enough to run in a fraction of a second.
TINY = {
    "lenet5": {},
    "simple_cnn": {"widths": (8, 16, 16), "hidden": 16},
    "alexnet": {"small_input": True, "dropout": 0.0, "hidden": 64},
    "vgg11_bn": {"small_input": True, "dropout": 0.0},
    "googlenet": {"dropout": 0.0},
    "resnet18": {"small_input": True},
    "resnet50": {},
    "resnet20": {},
    "resnet32": {"widths": (4, 8, 8)},
    "mobilenet_v1": {"width_mult": 0.25, "dropout": 0.0},
    "mobilenet_v2": {"width_mult": 0.25, "dropout": 0.0},
    "shufflenet_v1": {"groups": 2, "width_mult": 0.25},
    "shufflenet_v2_x0_5": {},
    "squeezenet1_1": {"dropout": 0.0},
    "vit_tiny": {"num_layers": 2, "hidden_dim": 24, "num_heads": 2, "mlp_dim": 32},
}


@pytest.mark.parametrize("name", sorted(TINY))
@pytest.mark.parametrize("size", [28, 32])
def test_classifier_output_shape(name, size):
    opts = dict(TINY[name])
    if name == "vit_tiny":
        opts["image_size"] = size
    if name == "lenet5":
        opts["input_size"] = size
    m = models.create(name, num_classes=7, in_channels=1, **opts)
    m.eval()
    with cn.no_grad():
        out = m(cn.randn(2, 1, size, size))
    assert out.shape == (2, 7)
    assert out.dtype == np.float32
    assert np.isfinite(out.numpy()).all()


@pytest.mark.parametrize("name, opts", [
    ("squeezenet1_1", {}), ("shufflenet_v2_x0_5", {}), ("mobilenet_v2", {"width_mult": 0.25}),
])
def test_imagenet_resolution(name, opts):
    m = models.create(name, num_classes=1000, in_channels=3, **opts).eval()
    with cn.no_grad():
        assert m(cn.randn(1, 3, 224, 224)).shape == (1, 1000)


def test_small_input_keeps_more_resolution():
    """small_input removes the stem's downsampling: the final feature map is larger."""
    seen = {}
    for small in (False, True):
        m = models.create("resnet18", small_input=small).eval()
        m.layer4.register_forward_hook(
            lambda mod, inp, out, s=small: seen.__setitem__(s, out.shape))
        with cn.no_grad():
            m(cn.randn(1, 1, 32, 32))
    assert seen[False][-1] == 1 and seen[True][-1] == 4


def test_alexnet_needs_small_input_below_63_pixels():
    m = models.create("alexnet", hidden=8)
    with pytest.raises(ValueError):
        with cn.no_grad():
            m(cn.randn(1, 1, 28, 28))


def test_googlenet_aux_heads_in_training_only():
    m = models.create("googlenet", num_classes=4, aux_logits=True)
    out = m(cn.randn(2, 1, 32, 32))
    assert isinstance(out, tuple) and [o.shape for o in out] == [(2, 4)] * 3
    m.eval()
    with cn.no_grad():
        assert m(cn.randn(2, 1, 32, 32)).shape == (2, 4)


@pytest.mark.parametrize("mode", ["transposed", "bilinear"])
@pytest.mark.parametrize("size", [(16, 16), (28, 28), (13, 21)])
def test_unet_output_is_per_pixel(mode, size):
    m = models.create("unet", num_classes=3, in_channels=2, base_channels=4, depth=3,
                      up_mode=mode).eval()
    with cn.no_grad():
        out = m(cn.randn(1, 2, *size))
    assert out.shape == (1, 3) + size


def test_unet_default_width_is_the_papers():
    m = models.create("unet", num_classes=2, in_channels=1)
    assert 30_000_000 < sum(p.numpy().size for p in m.parameters()) < 32_000_000


def test_vit_rejects_wrong_image_size():
    m = models.create("vit_tiny", **TINY["vit_tiny"])
    with pytest.raises(ValueError, match="expected 28x28"):
        m(cn.randn(1, 1, 32, 32))


# Training configurations: 16x16 images, narrow widths where the model has a width option.
TRAIN = dict(TINY)
TRAIN.update({
    "googlenet": {"dropout": 0.0},
    "resnet18": {"small_input": False},
    "resnet20": {"widths": (8, 16, 16)},
    "vgg11_bn": {"small_input": True, "dropout": 0.0},
    "vit_tiny": {"num_layers": 2, "hidden_dim": 24, "num_heads": 2, "mlp_dim": 32,
                 "image_size": 16},
    "unet": {"base_channels": 4, "depth": 2},
})
del TRAIN["resnet50"]  # the same Bottleneck code at a tiny size below


def _build(name, opts):
    if name == "resnet50_tiny":  # ResNet-50's Bottleneck blocks, one per stage
        return models.ResNet(models.Bottleneck, [1, 1, 1, 1], num_classes=4, in_channels=1)
    return models.create(name, num_classes=4, in_channels=1, **opts)


@pytest.mark.parametrize("name", sorted(TRAIN) + ["resnet50_tiny"])
def test_a_few_training_steps_reduce_the_loss(name):
    cn.manual_seed(0)
    rng = np.random.default_rng(0)
    # GoogLeNet and SqueezeNet shrink 32-fold with 3x3 pools: 16 px is too small (in torch too).
    # MobileNetV2 at 16 px ends in 1x1 planes (batch norm over 8 values): its loss jumps up at
    # steps 4-6 on either backend, and float rounding alone decides whether step 6 ends below
    # step 1; at 32 px it falls steadily.
    size, n = (32 if name in ("googlenet", "squeezenet1_1", "mobilenet_v2") else 16), 8
    m = _build(name, TRAIN.get(name, {}))
    if name == "lenet5":
        m = models.create("lenet5", num_classes=4, input_size=16)
    x = cn.tensor(rng.standard_normal((n, 1, size, size)).astype(np.float32))
    y = cn.tensor(rng.integers(0, 4, n * size * size) if name == "unet" else np.arange(n) % 4)
    opt = optim.Adam(m.parameters(), lr=1e-3)
    losses = []
    for _ in range(6):  # deep plain stacks (AlexNet, VGG) need a few steps to move off log(C)
        opt.zero_grad()
        out = m(x)
        if out.ndim == 4:  # segmentation: per-pixel cross-entropy
            out = out.permute(0, 2, 3, 1).reshape(-1, out.shape[1])
        loss = F.cross_entropy(out, y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all()
    assert losses[-1] < losses[0], losses


def test_shufflenet_v1_units_are_grouped_and_shuffled():
    """Both 1x1 convs of a unit are grouped (except the stage-2 entry's first), and the unit
    output depends on the shuffle: without it, the groups of conv3 see one group each."""
    m = models.create("shufflenet_v1", num_classes=5, in_channels=3, groups=3)
    entry, unit = m.stage2[0], m.stage3[1]
    assert entry.conv1[0].groups == 1 and entry.conv3[0].groups == 3
    assert unit.conv1[0].groups == 3 and unit.conv3[0].groups == 3
    assert unit.conv2[0].groups == unit.conv2[0].in_channels  # depthwise
    unit.eval()
    x = cn.randn(1, unit.conv1[0].in_channels, 4, 4)
    with cn.no_grad():
        shuffled = unit(x).numpy()
        unit.shuffle_groups = 1  # switch the shuffle off
        plain = unit(x).numpy()
    assert not np.allclose(shuffled, plain)


@pytest.mark.parametrize("name", ["lenet5", "simple_cnn", "resnet20", "mobilenet_v2",
                                  "shufflenet_v1", "shufflenet_v2_x0_5", "squeezenet1_1",
                                  "vit_tiny"])
def test_float64_models_stay_float64(name):
    m = models.create(name, num_classes=3, **TINY.get(name, {})).double().eval()
    with cn.no_grad():
        out = m(cn.tensor(np.random.default_rng(0).standard_normal((2, 1, 28, 28))))
    assert out.dtype == np.float64 and out.shape == (2, 3)


def test_zero_init_residual_makes_blocks_identity_like():
    m = models.create("resnet18", zero_init_residual=True)
    assert not m.layer1[0].bn2.weight.numpy().any()
    assert m.layer1[0].bn1.weight.numpy().all()

"""Bad model options raise ValueError naming the model, the option and the value."""
import pytest

import convnet as cn
import convnet.models as models
from convnet.models.shufflenet import ShuffleV2Block
from convnet.models.mobilenet import InvertedResidual


@pytest.mark.parametrize("name, opts, msg", [
    ("lenet5", {"activation": "swish"}, "LeNet5: activation must be one of"),
    ("lenet5", {"pooling": "min"}, "LeNet5: pooling must be one of"),
    ("lenet5", {"input_size": 8}, "LeNet5: input_size must be >= 12"),
    ("resnet20", {"shortcut": "C"}, "CifarResNet: shortcut must be 'A' or 'B'"),
    ("mobilenet_v1", {"width_mult": 0}, "MobileNetV1: width_mult must be > 0"),
    ("mobilenet_v2", {"width_mult": -1}, "MobileNetV2: width_mult must be > 0"),
    ("shufflenet_v1", {"groups": 5}, "ShuffleNetV1: groups must be one of"),
    ("unet", {"depth": 0}, "UNet: depth must be >= 1"),
    ("unet", {"up_mode": "nearest"}, "Up: mode must be 'transposed' or 'bilinear'"),
    ("vit_tiny", {"patch_size": 5}, "image_size 28 is not divisible by patch_size 5"),
])
def test_bad_options(name, opts, msg):
    with pytest.raises(ValueError, match=msg):
        models.create(name, **opts)


def test_cifar_resnet_depth_must_be_6n_plus_2():
    with pytest.raises(ValueError, match="depth must be 6n\\+2.*got 21"):
        models.CifarResNet(21)


def test_block_errors():
    with pytest.raises(ValueError, match="ShuffleV2Block: stride 1 needs inp == oup, got 8 and 16"):
        ShuffleV2Block(8, 16, 1)
    with pytest.raises(ValueError, match="InvertedResidual: stride must be 1 or 2, got 3"):
        InvertedResidual(8, 8, 3, 6)


def test_unet_rejects_too_small_inputs():
    m = models.create("unet", base_channels=2, depth=3)
    with pytest.raises(ValueError, match=r"UNet: input \(1, 1, 6, 6\) is smaller than 2\*\*depth"):
        m(cn.randn(1, 1, 6, 6))


def test_wrong_input_channels_are_reported_by_the_first_conv():
    m = models.create("resnet20", in_channels=1)
    with pytest.raises(ValueError, match="conv2d"):
        m(cn.randn(1, 3, 8, 8))

"""Parameter counts equal the published / torchvision ones in the standard configuration
(1000 classes, 3 channels; CIFAR ResNets and LeNet at 10 classes)."""
import pytest

import convnet.models as models
from tests.models import torch_refs


def count(m) -> int:
    return sum(p.numpy().size for p in m.parameters())


# torchvision's published counts (torchvision.models weights' ``num_params``) and papers'.
IMAGENET = [
    ("resnet18", {}, 11_689_512), ("resnet34", {}, 21_797_672), ("resnet50", {}, 25_557_032),
    ("resnet101", {}, 44_549_160), ("alexnet", {}, 61_100_840), ("vgg16", {}, 138_357_544),
("mobilenet_v2", {}, 3_504_872),
    ("shufflenet_v2_x1_0", {}, 2_278_604), ("shufflenet_v2_x0_5", {}, 1_366_792),
    ("squeezenet1_1", {}, 1_235_496), ("googlenet", {}, 6_624_904),
    ("googlenet", {"aux_logits": True}, 13_004_888), ("vit_b_16", {}, 86_567_656),
]

CIFAR = [("resnet20", 269_722), ("resnet32", 464_154), ("resnet44", 658_586),
         ("resnet56", 853_018), ("resnet110", 1_727_962)]


@pytest.mark.parametrize("name, opts, expected", IMAGENET)
def test_imagenet_counts_match_torchvision(name, opts, expected):
    assert count(models.create(name, num_classes=1000, in_channels=3, **opts)) == expected


@pytest.mark.parametrize("name, expected", CIFAR)
def test_cifar_resnet_counts_match_paper_layout(name, expected):
    assert count(models.create(name, num_classes=10, in_channels=3)) == expected


VGG_PUBLISHED = {("A", False): 132_863_336, ("B", False): 133_047_848, ("D", False): 138_357_544,
                 ("E", False): 143_667_240, ("A", True): 132_868_840, ("B", True): 133_053_736,
                 ("D", True): 138_365_992, ("E", True): 143_678_248}


@pytest.mark.parametrize("cfg, bn", sorted(VGG_PUBLISHED))
def test_vgg_configurations(cfg, bn):
    """Every VGG variant's conv stack plus the fixed 25088-4096-4096-1000 classifier (built
    once in full for vgg16 above; here only the cheap conv part is constructed)."""
    from convnet.models.vgg import CFGS, make_layers

    classifier = 25088 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 1000 + 1000
    assert count(make_layers(CFGS[cfg], 3, bn)) + classifier == VGG_PUBLISHED[(cfg, bn)]


def test_lenet5_count():
    assert count(models.create("lenet5")) == 61_706
    assert count(models.create("lenet5", input_size=32)) == 61_706  # the 1998 32x32 layout


def test_simple_cnn_is_in_the_intended_size_range():
    assert 100_000 <= count(models.create("simple_cnn")) <= 500_000


def test_mobilenet_v1_count_equals_a_torch_build():
    expected = sum(p.numel() for p in torch_refs.MobileNetV1().parameters())
    assert expected == 4_231_976  # Howard et al. report 4.2M
    assert count(models.create("mobilenet_v1", num_classes=1000, in_channels=3)) == expected


def test_state_dict_keys_equal_torch_builds():
    pairs = [
        (models.create("resnet18", 1000, 3), torch_refs.ResNet18()),
        (models.create("mobilenet_v2", 1000, 3), torch_refs.MobileNetV2()),
        (models.create("shufflenet_v2_x1_0", 1000, 3), torch_refs.ShuffleNetV2()),
        (models.create("resnet20", 10, 3), torch_refs.CifarResNet(20)),
    ]
    for ours, ref in pairs:
        theirs = {k: tuple(v.shape) for k, v in ref.state_dict().items()
                  if not k.endswith("num_batches_tracked")}
        mine = {k: tuple(v.shape) for k, v in ours.state_dict().items()
                if not k.endswith("num_batches_tracked")}
        assert mine == theirs


def test_width_options_shrink_the_models():
    full = count(models.create("mobilenet_v2", 1000, 3))
    assert count(models.create("mobilenet_v2", 1000, 3, width_mult=0.5)) < full / 1.5
    assert count(models.create("mobilenet_v1", 1000, 3, width_mult=0.25)) < 600_000
    g3 = count(models.create("shufflenet_v1", 1000, 3, groups=3))
    assert 1_800_000 < g3 < 2_000_000  # paper: ShuffleNet 1x (g = 3), about 1.9M

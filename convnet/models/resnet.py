"""Residual networks (He, Zhang, Ren & Sun, "Deep residual learning for image recognition",
CVPR 2016).

The idea that made very deep networks trainable: a block learns a residual ``F(x)`` and outputs
``H(x) = F(x) + x``. The identity path carries signal and gradient unchanged through
the depth, so networks of 50-110 layers train where plain stacks degrade.

Two layouts:

* ImageNet (``resnet18/34/50/101``): torchvision's layout and state-dict names
  (``conv1, bn1, layer1..layer4, fc``; ``downsample.0/1`` projections). Parameter counts equal
  torchvision's (resnet18: 11,689,512 at 1000 classes). ``small_input=True`` swaps the 7x7/2
  stem and its max-pool for a 3x3/1 stem (the usual CIFAR adaptation); without it 28x28 and
  32x32 inputs still work (the last stage is 1x1).
* CIFAR (``resnet20/32/44/56/110``, depth ``6n+2``): section 4.2 of the paper: a 3x3 conv to 16
  channels, three stages of n basic blocks with 16/32/64 channels (stride 2 at stages 2 and 3),
  global average pool, fc. Shortcuts are option A (identity, subsampled, zero-padded channels;
  no parameters; resnet20 has 269,722 parameters at 10 classes) or option B (1x1 projection).
"""
from __future__ import annotations

from typing import Type

from .. import functional as F
from .. import nn
from .registry import InputRule, local_weights, pretrained_file, register

__all__ = ["BasicBlock", "Bottleneck", "ResNet", "CifarBasicBlock", "CifarResNet",
           "resnet18", "resnet34", "resnet50", "resnet101",
           "resnet20", "resnet32", "resnet44", "resnet56", "resnet110"]


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """3x3 convolution, padding 1, no bias (a BatchNorm follows)."""
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, groups=groups,
                     bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1x1 (pointwise) convolution, no bias."""
    return nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers plus the shortcut: ``relu(bn2(conv2(relu(bn1(conv1 x)))) + s(x))``.

    ``(N, inplanes, H, W) -> (N, planes, H/stride, W/stride)``. ``downsample`` (a 1x1 conv + BN)
    projects the shortcut when the shape changes.
    """

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 (stride here, as torchvision's "ResNet v1.5") -> 1x1 expand by 4.

    ``(N, inplanes, H, W) -> (N, 4*planes, H/stride, W/stride)``. The 1x1 convs make the deep
    networks (50, 101 layers) affordable: the 3x3 runs on ``planes`` channels only.
    """

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU()
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def _init_conv_bn(model: nn.Module) -> None:
    """He-normal (fan_out) conv weights, BN gamma 1 / beta 0: torchvision's ResNet init."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class ResNet(nn.Module):
    """ImageNet-layout ResNet: ``(N, C, H, W) -> (N, num_classes)``.

    stem (conv 7x7/2 -> BN -> ReLU -> max-pool 3x3/2), four stages of ``layers[i]`` blocks with
    64/128/256/512 planes (stride 2 from stage 2), global average pool, fc.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        layers: blocks per stage, e.g. ``[2, 2, 2, 2]`` for ResNet-18.
        num_classes, in_channels: output classes and image channels (torchvision: 1000, 3).
        small_input: use a 3x3/1 stem without max-pool (for 28x28 / 32x32 images).
        zero_init_residual: start each residual branch at zero (last BN gamma = 0).
    """

    def __init__(self, block: Type[BasicBlock | Bottleneck], layers: list[int],
                 num_classes: int = 1000, in_channels: int = 3, small_input: bool = False,
                 zero_init_residual: bool = False):
        super().__init__()
        self.inplanes = 64
        # children in torchvision's order: conv1, bn1, relu, maxpool, layer1-4, avgpool, fc
        if small_input:
            self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.Identity() if small_input else nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        _init_conv_bn(self)
        if zero_init_residual:  # each block then starts as the identity
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.zeros_(m.bn3.weight)
                elif isinstance(m, BasicBlock):
                    nn.init.zeros_(m.bn2.weight)

    def _make_layer(self, block, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * block.expansion, stride),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


class CifarBasicBlock(nn.Module):
    """Basic block of the CIFAR ResNets, with an option-A or option-B shortcut.

    Option A (the paper's CIFAR choice): when the block halves the resolution and doubles the
    channels, the shortcut takes every second pixel and appends zero channels, so it adds no
    parameters. Option B: a 1x1 conv + BN projection (named ``downsample`` as torchvision).
    """

    def __init__(self, in_planes: int, planes: int, stride: int = 1, shortcut: str = "A"):
        super().__init__()
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.stride = stride
        self.pad_channels = 0
        self.downsample = None
        if stride != 1 or in_planes != planes:
            if shortcut == "A":
                self.pad_channels = planes - in_planes
            else:
                self.downsample = nn.Sequential(conv1x1(in_planes, planes, stride),
                                                nn.BatchNorm2d(planes))

    def _shortcut(self, x):
        if self.downsample is not None:
            return self.downsample(x)
        if self.stride != 1:
            x = x[:, :, ::self.stride, ::self.stride]
        if self.pad_channels:
            # Zero channels split evenly before and after (as the reference implementations).
            lo = self.pad_channels // 2
            x = F.pad(x, (0, 0, 0, 0, lo, self.pad_channels - lo))
        return x

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self._shortcut(x))


class CifarResNet(nn.Module):
    """CIFAR-layout ResNet of depth ``6n + 2``: ``(N, C, H, W) -> (N, num_classes)``.

    conv 3x3 -> 16 channels, stages of n blocks at 16, 32, 64 channels (resolution H, H/2, H/4),
    global average pool, fc. Works for any H, W >= 4 (28x28 Fashion-MNIST, 32x32 CIFAR).

    Args:
        depth: 20, 32, 44, 56, 110, ... (``(depth - 2) % 6 == 0``).
        num_classes, in_channels: outputs and image channels (default 10, 3).
        shortcut: ``"A"`` (zero-padding identity, default) or ``"B"`` (1x1 projections).
        widths: channels of the three stages (default (16, 32, 64)).
    """

    def __init__(self, depth: int = 20, num_classes: int = 10, in_channels: int = 3,
                 shortcut: str = "A", widths: tuple[int, int, int] = (16, 32, 64)):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"CifarResNet: depth must be 6n+2 (20, 32, 44, 56, 110), got {depth}")
        if shortcut not in ("A", "B"):
            raise ValueError(f"CifarResNet: shortcut must be 'A' or 'B', got {shortcut!r}")
        n = (depth - 2) // 6
        self.conv1 = conv3x3(in_channels, widths[0])
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU()
        in_planes = widths[0]
        for i, (w, s) in enumerate(zip(widths, (1, 2, 2))):
            blocks = []
            for j in range(n):
                blocks.append(CifarBasicBlock(in_planes, w, s if j == 0 else 1, shortcut))
                in_planes = w
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[2], num_classes)
        _init_conv_bn(self)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.avgpool(x).flatten(1))


def _imagenet(name: str, block, layers: list[int]):
    def factory(num_classes: int = 1000, in_channels: int = 3, *, weights=None,
                progress: bool = True, **options) -> ResNet:
        weights_file = pretrained_file(name, weights, options)
        return local_weights(weights_file, ResNet(block, layers, num_classes=num_classes, in_channels=in_channels, **options))
    factory.__name__ = name
    factory.__doc__ = (f"{name} (He et al. 2016, ImageNet layout, {block.__name__} x {layers}); "
                       "see :class:`ResNet` for the options. torchvision's defaults (1000 "
                       "classes, 3 channels); ``weights`` must be None.")
    return register(name, factory, family="ResNet", builds=ResNet, fixed=("block", "layers"),
                    input_rule=lambda o: InputRule())  # padded convs and pools: any side


def _cifar(depth: int):
    def factory(num_classes: int = 10, in_channels: int = 1, **options) -> CifarResNet:
        return CifarResNet(depth, num_classes=num_classes, in_channels=in_channels, **options)
    factory.__name__ = f"resnet{depth}"
    factory.__doc__ = (f"resnet{depth} (He et al. 2016, CIFAR layout, n = {(depth - 2) // 6}); "
                       "see :class:`CifarResNet` for the options.")
    return register(factory.__name__, factory, family="ResNet (CIFAR)", builds=CifarResNet,
                    fixed=("depth",), input_rule=lambda o: InputRule())


resnet18 = _imagenet("resnet18", BasicBlock, [2, 2, 2, 2])
resnet34 = _imagenet("resnet34", BasicBlock, [3, 4, 6, 3])
resnet50 = _imagenet("resnet50", Bottleneck, [3, 4, 6, 3])
resnet101 = _imagenet("resnet101", Bottleneck, [3, 4, 23, 3])
resnet20, resnet32, resnet44, resnet56, resnet110 = (_cifar(d) for d in (20, 32, 44, 56, 110))

"""SqueezeNet 1.1 (Iandola et al., "SqueezeNet: AlexNet-level accuracy with 50x fewer
parameters and <0.5MB model size", 2016; v1.1 from the authors' repository).

The idea: *fire modules* squeeze the channels with cheap 1x1 convolutions before expanding
with a mix of 1x1 and 3x3 filters (pointwise convolution, notes 4.2), and the classifier is a
1x1 conv plus global average pooling instead of large fully connected layers. torchvision's
layout and names: 1,235,496 parameters at 1000 classes.
"""
from __future__ import annotations

from .. import nn
from ..creation import cat
from .registry import InputRule, local_weights, pretrained_file, register

__all__ = ["Fire", "SqueezeNet", "squeezenet1_1"]


class Fire(nn.Module):
    """``squeeze`` 1x1 (C -> s) -> ReLU, then ``cat(expand1x1 (s -> e1), expand3x3 (s -> e3))``
    -> ReLU. ``(N, C, H, W) -> (N, e1 + e3, H, W)``."""

    def __init__(self, inplanes: int, squeeze_planes: int, expand1x1_planes: int,
                 expand3x3_planes: int):
        super().__init__()
        self.squeeze = nn.Conv2d(inplanes, squeeze_planes, 1)
        self.squeeze_activation = nn.ReLU()
        self.expand1x1 = nn.Conv2d(squeeze_planes, expand1x1_planes, 1)
        self.expand1x1_activation = nn.ReLU()
        self.expand3x3 = nn.Conv2d(squeeze_planes, expand3x3_planes, 3, padding=1)
        self.expand3x3_activation = nn.ReLU()

    def forward(self, x):
        x = self.squeeze_activation(self.squeeze(x))
        return cat([self.expand1x1_activation(self.expand1x1(x)),
                    self.expand3x3_activation(self.expand3x3(x))], dim=1)


class SqueezeNet(nn.Module):
    """SqueezeNet 1.1: ``(N, C, H, W) -> (N, num_classes)``.

    conv 3x3/2 (64) -> max-pool -> fire x2 -> max-pool -> fire x2 -> max-pool -> fire x4 ->
    dropout -> conv 1x1 to classes -> ReLU -> global average pool. Pools are 3x3/2 with
    ``ceil_mode``, so 28x28 and 32x32 inputs reach a 1x1 map (224 -> 13x13); below 17 px
    the last pool has nothing left (as in PyTorch): use ``small_input``.

    Args:
        num_classes, in_channels: outputs and image channels (default 1000, 3).
        dropout: before the final conv (default 0.5).
        small_input: first conv stride 1 with padding 1 (28/32 px images keep a 3x3 map).
    """

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5,
                 small_input: bool = False):
        super().__init__()
        self.num_classes = num_classes
        stem = (nn.Conv2d(in_channels, 64, 3, stride=1, padding=1) if small_input
                else nn.Conv2d(in_channels, 64, 3, stride=2))
        self.features = nn.Sequential(
            stem, nn.ReLU(),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(64, 16, 64, 64), Fire(128, 16, 64, 64),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(128, 32, 128, 128), Fire(256, 32, 128, 128),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(256, 48, 192, 192), Fire(384, 48, 192, 192),
            Fire(384, 64, 256, 256), Fire(512, 64, 256, 256),
        )
        final_conv = nn.Conv2d(512, num_classes, 1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), final_conv, nn.ReLU(),
                                        nn.AdaptiveAvgPool2d((1, 1)))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                if m is final_conv:
                    nn.init.normal_(m.weight, 0.0, 0.01)
                else:
                    nn.init.kaiming_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.classifier(self.features(x)).flatten(1)


def _input_rule(o: dict) -> InputRule:
    if o["small_input"]:
        return InputRule(8, why="three 3x3/2 max-pools")
    return InputRule(17, why="a 3x3/2 stem and three 3x3/2 max-pools")


@register(family="SqueezeNet", builds=SqueezeNet, input_rule=_input_rule)
def squeezenet1_1(num_classes: int = 1000, in_channels: int = 3, *, weights=None,
                  progress: bool = True, **options) -> SqueezeNet:
    """SqueezeNet 1.1 (Iandola et al. 2016); see :class:`SqueezeNet`. torchvision's defaults;
    ``weights`` must be None (see :func:`~convnet.models.registry.pretrained_file`)."""
    weights_file = pretrained_file("squeezenet1_1", weights, options)
    return local_weights(weights_file, SqueezeNet(num_classes=num_classes, in_channels=in_channels, **options))

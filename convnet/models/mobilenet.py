"""MobileNets: depthwise separable convolutions for small, fast networks.

* MobileNet v1 (Howard et al., "MobileNets: Efficient convolutional neural networks for mobile
  vision applications", 2017): every 3x3 conv is split into a depthwise 3x3 (one filter per
  channel, ``groups = channels``) and a pointwise 1x1 that mixes channels, about 8-9x fewer
  multiply-adds than a full 3x3 conv (notes 4.4-4.5). A width multiplier ``alpha`` thins
  every layer.
* MobileNet v2 (Sandler et al., "MobileNetV2: Inverted residuals and linear bottlenecks",
  CVPR 2018): blocks expand with a 1x1 (factor t), filter depthwise, project back with a
  *linear* 1x1, and add a residual between the thin ends. torchvision's layout and names
  (3,504,872 parameters at 1000 classes).

``small_input=True`` (for 28x28 / 32x32 images) makes the stem and the first stride-2 stage
stride 1: the network then shrinks 8-fold instead of 32-fold (32x32 -> 4x4 final map).
"""
from __future__ import annotations

from .. import nn
from .registry import InputRule, local_weights, pretrained_file, register

__all__ = ["MobileNetV1", "MobileNetV2", "InvertedResidual", "DepthwiseSeparable",
           "mobilenet_v1", "mobilenet_v2"]


def _make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to a multiple of ``divisor`` without losing more than 10%."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def conv_bn_act(in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1,
                groups: int = 1, act: type | None = None) -> nn.Sequential:
    """conv (no bias, 'same' padding) -> BatchNorm2d -> activation (default ReLU6).

    State-dict names ``0`` (conv) and ``1`` (BN), as torchvision's ``Conv2dNormActivation``.
    """
    act = act or nn.ReLU6
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride, padding=(kernel_size - 1) // 2,
                  groups=groups, bias=False),
        nn.BatchNorm2d(out_ch), act())


def _init_weights(model: nn.Module, linear_std: float = 0.01) -> None:
    """torchvision's MobileNet init: He-normal (fan_out) convs, unit BN, N(0, 0.01) fc."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, linear_std)
            nn.init.zeros_(m.bias)


class DepthwiseSeparable(nn.Module):
    """Depthwise 3x3 (groups = channels) -> BN -> ReLU, then pointwise 1x1 -> BN -> ReLU.

    ``(N, in_ch, H, W) -> (N, out_ch, H/stride, W/stride)``; parameters
    ``9*in_ch + in_ch*out_ch`` (+ BN) instead of ``9*in_ch*out_ch`` for a full 3x3 conv.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1):
        super().__init__()
        self.depthwise = conv_bn_act(in_ch, in_ch, 3, stride, groups=in_ch, act=nn.ReLU)
        self.pointwise = conv_bn_act(in_ch, out_ch, 1, act=nn.ReLU)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


# (output channels, stride) of the 13 separable layers of MobileNet v1 (Table 1 of the paper).
_V1_CFG = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
           (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1)]


class MobileNetV1(nn.Module):
    """MobileNet v1: ``(N, C, H, W) -> (N, num_classes)``.

    ``features``: conv 3x3/2 to 32*alpha channels, then 13 :class:`DepthwiseSeparable` layers;
    global average pool, dropout, fc. At alpha=1, 1000 classes: 4,231,976 parameters.

    Args:
        num_classes, in_channels: outputs and image channels (default 1000, 3).
        width_mult: the width multiplier alpha (0.25, 0.5, 0.75, 1.0).
        dropout: before the classifier (default 0.2).
        small_input: stride 1 in the stem and in the first stride-2 layer (28/32 px images).
    """

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, width_mult: float = 1.0,
                 dropout: float = 0.2, small_input: bool = False):
        super().__init__()
        if width_mult <= 0:
            raise ValueError(f"MobileNetV1: width_mult must be > 0, got {width_mult}")
        c = _make_divisible(32 * width_mult)
        layers: list[nn.Module] = [conv_bn_act(in_channels, c, 3, 1 if small_input else 2,
                                               act=nn.ReLU)]
        first_s2 = True
        for out, s in _V1_CFG:
            if s == 2 and small_input and first_s2:
                s, first_s2 = 1, False
            o = _make_divisible(out * width_mult)
            layers.append(DepthwiseSeparable(c, o, s))
            c = o
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(c, num_classes))
        _init_weights(self)

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


class InvertedResidual(nn.Module):
    """MobileNet v2 block: expand 1x1 (x t) -> depthwise 3x3 -> linear projection 1x1.

    ``(N, inp, H, W) -> (N, oup, H/stride, W/stride)``. The residual ``x + block(x)`` is used
    when stride is 1 and ``inp == oup``. The projection has no activation: ReLU in a thin
    layer would destroy information ("linear bottleneck").
    """

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"InvertedResidual: stride must be 1 or 2, got {stride}")
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(conv_bn_act(inp, hidden, 1))
        layers += [conv_bn_act(hidden, hidden, 3, stride, groups=hidden),
                   nn.Conv2d(hidden, oup, 1, bias=False), nn.BatchNorm2d(oup)]
        self.conv = nn.Sequential(*layers)
        self.out_channels = oup

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


# expansion t, channels c, repeats n, stride s (Table 2 of the paper).
_V2_CFG = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
           (6, 160, 3, 2), (6, 320, 1, 1)]


class MobileNetV2(nn.Module):
    """MobileNet v2: ``(N, C, H, W) -> (N, num_classes)``, torchvision names.

    ``features``: conv 3x3/2 to 32 channels, 17 :class:`InvertedResidual` blocks, conv 1x1 to
    1280; global average pool; ``classifier`` = dropout, fc.

    Args:
        num_classes, in_channels: outputs and image channels (default 1000, 3).
        width_mult: width multiplier (channels rounded to multiples of 8).
        dropout: before the classifier (default 0.2).
        small_input: stride 1 in the stem and in the first stride-2 stage (28/32 px images).
    """

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, width_mult: float = 1.0,
                 dropout: float = 0.2, small_input: bool = False):
        super().__init__()
        if width_mult <= 0:
            raise ValueError(f"MobileNetV2: width_mult must be > 0, got {width_mult}")
        c = _make_divisible(32 * width_mult)
        self.last_channel = _make_divisible(1280 * max(1.0, width_mult))
        features: list[nn.Module] = [conv_bn_act(in_channels, c, 3, 1 if small_input else 2)]
        first_s2 = True
        for t, ch, n, s in _V2_CFG:
            if s == 2 and small_input and first_s2:
                s, first_s2 = 1, False
            o = _make_divisible(ch * width_mult)
            for i in range(n):
                features.append(InvertedResidual(c, o, s if i == 0 else 1, t))
                c = o
        features.append(conv_bn_act(c, self.last_channel, 1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(dropout),
                                        nn.Linear(self.last_channel, num_classes))
        _init_weights(self)

    def forward(self, x):
        return self.classifier(self.features(x).mean((2, 3)))


@register(family="MobileNet", builds=MobileNetV1, input_rule=lambda o: InputRule())
def mobilenet_v1(num_classes: int = 10, in_channels: int = 1, **options) -> MobileNetV1:
    """MobileNet v1 (Howard et al. 2017); see :class:`MobileNetV1`."""
    return MobileNetV1(num_classes=num_classes, in_channels=in_channels, **options)


@register(family="MobileNet", builds=MobileNetV2, input_rule=lambda o: InputRule())
def mobilenet_v2(num_classes: int = 1000, in_channels: int = 3, *, weights=None,
                 progress: bool = True, **options) -> MobileNetV2:
    """MobileNet v2 (Sandler et al. 2018); see :class:`MobileNetV2`. torchvision's defaults;
    ``weights`` must be None (see :func:`~convnet.models.registry.pretrained_file`)."""
    weights_file = pretrained_file("mobilenet_v2", weights, options)
    return local_weights(weights_file, MobileNetV2(num_classes=num_classes, in_channels=in_channels, **options))

"""ShuffleNets: cheap pointwise convolutions through groups, made to talk through a shuffle.

* ShuffleNet v1 (Zhang, Zhou, Lin & Sun, "ShuffleNet: An extremely efficient convolutional
  neural network for mobile devices", CVPR 2018): 1x1 convolutions are *grouped* (g groups, g
  times fewer parameters), and a channel shuffle between the grouped 1x1 and the depthwise 3x3
  lets information cross groups (notes 4.3, 4.6).
* ShuffleNet v2 (Ma, Zhang, Zheng & Sun, "ShuffleNet V2: Practical guidelines for efficient
  CNN architecture design", ECCV 2018): channel split, an ungrouped branch on half the
  channels, concatenation and shuffle. torchvision's layout and names (x1_0: 2,278,604
  parameters at 1000 classes).

``small_input=True`` (28x28 / 32x32 images) makes the stem stride 1 and drops its max-pool.
"""
from __future__ import annotations

from .. import functional as F
from .. import nn
from ..creation import cat
from .registry import InputRule, local_weights, pretrained_file, register

__all__ = ["ShuffleV1Unit", "ShuffleNetV1", "ShuffleV2Block", "ShuffleNetV2",
           "shufflenet_v1", "shufflenet_v2", "shufflenet_v2_x0_5", "shufflenet_v2_x1_0",
           "shufflenet_v2_x1_5", "shufflenet_v2_x2_0"]


def _bn_conv(in_ch, out_ch, k=1, stride=1, groups=1, relu=True) -> list[nn.Module]:
    layers = [nn.Conv2d(in_ch, out_ch, k, stride=stride, padding=(k - 1) // 2, groups=groups,
                        bias=False), nn.BatchNorm2d(out_ch)]
    return layers + [nn.ReLU()] if relu else layers


class ShuffleV1Unit(nn.Module):
    """ShuffleNet v1 unit: grouped 1x1 -> shuffle -> depthwise 3x3 -> grouped 1x1, plus shortcut.

    stride 1: ``relu(x + branch(x))``; stride 2: ``relu(cat(avgpool3x3/2(x), branch(x)))``,
    the branch producing ``out_ch - in_ch`` channels so the concatenation has ``out_ch``.
    The bottleneck is ``out_ch / 4``. ``first_group=False`` keeps the first 1x1 ungrouped (the
    stage-2 entry, whose 24 input channels are too few to group).
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int, groups: int,
                 first_group: bool = True):
        super().__init__()
        self.stride, self.groups = stride, groups
        branch_out = out_ch - in_ch if stride == 2 else out_ch
        mid = out_ch // 4
        g1 = groups if first_group else 1
        self.conv1 = nn.Sequential(*_bn_conv(in_ch, mid, 1, groups=g1))
        self.shuffle_groups = g1
        self.conv2 = nn.Sequential(*_bn_conv(mid, mid, 3, stride, groups=mid, relu=False))
        self.conv3 = nn.Sequential(*_bn_conv(mid, branch_out, 1, groups=groups, relu=False))
        self.relu = nn.ReLU()
        self.shortcut = nn.AvgPool2d(3, stride=2, padding=1) if stride == 2 else None

    def forward(self, x):
        out = self.conv1(x)
        if self.shuffle_groups > 1:
            out = F.channel_shuffle(out, self.shuffle_groups)
        out = self.conv3(self.conv2(out))
        if self.stride == 2:
            return self.relu(cat([self.shortcut(x), out], dim=1))
        return self.relu(x + out)


# Stage output channels for each group count (Table 1 of the v1 paper, 1x).
_V1_CHANNELS = {1: (144, 288, 576), 2: (200, 400, 800), 3: (240, 480, 960),
                4: (272, 544, 1088), 8: (384, 768, 1536)}


class ShuffleNetV1(nn.Module):
    """ShuffleNet v1: ``(N, C, H, W) -> (N, num_classes)``.

    conv 3x3/2 (24) -> max-pool 3x3/2 -> stages of 4/8/4 :class:`ShuffleV1Unit` (the first of
    each with stride 2) -> global average pool -> fc. groups=3, scale 1.0, 1000 classes:
    1,865,728 parameters (the paper rounds to about 1.9M).

    Args:
        num_classes, in_channels: outputs and image channels (default 1000, 3).
        groups: 1, 2, 3, 4 or 8.
        width_mult: scale of the stage widths (0.5, 1.0, ...); rounded to multiples of 4*groups.
        small_input: stem stride 1, no max-pool (28/32 px images).
    """

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, groups: int = 3,
                 width_mult: float = 1.0, small_input: bool = False):
        super().__init__()
        if groups not in _V1_CHANNELS:
            raise ValueError(f"ShuffleNetV1: groups must be one of {sorted(_V1_CHANNELS)}, "
                             f"got {groups}")
        stem = 24
        self.conv1 = nn.Sequential(*_bn_conv(in_channels, stem, 3, 1 if small_input else 2))
        self.maxpool = nn.Identity() if small_input else nn.MaxPool2d(3, 2, 1)
        c = stem
        q = 4 * groups  # widths must split into groups and into the /4 bottleneck
        for i, (width, repeats) in enumerate(zip(_V1_CHANNELS[groups], (4, 8, 4))):
            out = max(q, int(round(width * width_mult / q)) * q)
            units = [ShuffleV1Unit(c, out, 2, groups, first_group=i > 0)]
            units += [ShuffleV1Unit(out, out, 1, groups) for _ in range(repeats - 1)]
            setattr(self, f"stage{i + 2}", nn.Sequential(*units))
            c = out
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x):
        x = self.maxpool(self.conv1(x))
        x = self.stage4(self.stage3(self.stage2(x)))
        return self.fc(x.mean((2, 3)))


class ShuffleV2Block(nn.Module):
    """ShuffleNet v2 unit (torchvision's ``InvertedResidual``).

    stride 1: split channels in halves, keep one, run ``branch2`` (1x1 -> dw 3x3 -> 1x1) on the
    other, concatenate, shuffle with 2 groups. stride 2: both branches see all input channels
    (``branch1``: dw 3x3/2 -> 1x1), doubling the output. ``(N, inp, H, W) -> (N, oup, H/s, W/s)``.
    """

    def __init__(self, inp: int, oup: int, stride: int):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"ShuffleV2Block: stride must be 1 or 2, got {stride}")
        if stride == 1 and inp != oup:
            raise ValueError(f"ShuffleV2Block: stride 1 needs inp == oup, got {inp} and {oup}")
        self.stride = stride
        bf = oup // 2
        if stride > 1:
            self.branch1 = nn.Sequential(*_bn_conv(inp, inp, 3, stride, groups=inp, relu=False),
                                         *_bn_conv(inp, bf, 1))
        else:
            self.branch1 = nn.Sequential()
        self.branch2 = nn.Sequential(
            *_bn_conv(inp if stride > 1 else bf, bf, 1),
            *_bn_conv(bf, bf, 3, stride, groups=bf, relu=False),
            *_bn_conv(bf, bf, 1))

    def forward(self, x):
        if self.stride == 1:
            half = x.shape[1] // 2
            out = cat([x[:, :half], self.branch2(x[:, half:])], dim=1)
        else:
            out = cat([self.branch1(x), self.branch2(x)], dim=1)
        return F.channel_shuffle(out, 2)


_V2_WIDTHS = {0.5: (24, 48, 96, 192, 1024), 1.0: (24, 116, 232, 464, 1024),
              1.5: (24, 176, 352, 704, 1024), 2.0: (24, 244, 488, 976, 2048)}


class ShuffleNetV2(nn.Module):
    """ShuffleNet v2: ``(N, C, H, W) -> (N, num_classes)``, torchvision names.

    ``conv1`` (3x3/2, 24) -> ``maxpool`` -> ``stage2..4`` (4/8/4 blocks) -> ``conv5`` (1x1) ->
    global average pool -> ``fc``.

    Args:
        stages_repeats: blocks per stage (default [4, 8, 4]).
        stages_out_channels: five widths (stem, 3 stages, conv5); see ``_V2_WIDTHS``.
        num_classes, in_channels: outputs and image channels (default 1000, 3).
        small_input: stem stride 1, no max-pool (28/32 px images).
    """

    def __init__(self, stages_repeats=(4, 8, 4), stages_out_channels=_V2_WIDTHS[1.0],
                 num_classes: int = 1000, in_channels: int = 3, small_input: bool = False):
        super().__init__()
        if len(stages_repeats) != 3 or len(stages_out_channels) != 5:
            raise ValueError("ShuffleNetV2: expected 3 stage repeats and 5 widths, got "
                             f"{len(stages_repeats)} and {len(stages_out_channels)}")
        c = stages_out_channels[0]
        self.conv1 = nn.Sequential(*_bn_conv(in_channels, c, 3, 1 if small_input else 2))
        self.maxpool = nn.Identity() if small_input else nn.MaxPool2d(3, 2, 1)
        for i, (reps, out) in enumerate(zip(stages_repeats, stages_out_channels[1:4])):
            blocks = [ShuffleV2Block(c, out, 2)] + [ShuffleV2Block(out, out, 1)
                                                    for _ in range(reps - 1)]
            setattr(self, f"stage{i + 2}", nn.Sequential(*blocks))
            c = out
        self.conv5 = nn.Sequential(*_bn_conv(c, stages_out_channels[-1], 1))
        self.fc = nn.Linear(stages_out_channels[-1], num_classes)

    def forward(self, x):
        x = self.maxpool(self.conv1(x))
        x = self.conv5(self.stage4(self.stage3(self.stage2(x))))
        return self.fc(x.mean((2, 3)))


@register(family="ShuffleNet", builds=ShuffleNetV1, input_rule=lambda o: InputRule())
def shufflenet_v1(num_classes: int = 10, in_channels: int = 1, **options) -> ShuffleNetV1:
    """ShuffleNet v1 (Zhang et al. 2018), groups=3 by default; see :class:`ShuffleNetV1`."""
    return ShuffleNetV1(num_classes=num_classes, in_channels=in_channels, **options)


def _v2(name: str, scale: float):
    def factory(num_classes: int = 1000, in_channels: int = 3, *, weights=None,
                progress: bool = True, **options) -> ShuffleNetV2:
        weights_file = pretrained_file(name, weights, options)
        return local_weights(weights_file, ShuffleNetV2((4, 8, 4), _V2_WIDTHS[scale], num_classes=num_classes,
                            in_channels=in_channels, **options))
    factory.__name__ = name
    factory.__doc__ = f"ShuffleNet v2 {scale}x (Ma et al. 2018); see :class:`ShuffleNetV2`."
    return register(name, factory, family="ShuffleNet", builds=ShuffleNetV2,
                    fixed=("stages_repeats", "stages_out_channels"),
                    input_rule=lambda o: InputRule())


shufflenet_v2_x0_5 = _v2("shufflenet_v2_x0_5", 0.5)
shufflenet_v2_x1_0 = _v2("shufflenet_v2_x1_0", 1.0)
shufflenet_v2_x1_5 = _v2("shufflenet_v2_x1_5", 1.5)
shufflenet_v2_x2_0 = _v2("shufflenet_v2_x2_0", 2.0)
shufflenet_v2 = _v2("shufflenet_v2", 1.0)  # the default width

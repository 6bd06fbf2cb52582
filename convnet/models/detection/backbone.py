"""A tiny convolutional backbone with a small Feature Pyramid Network, for the detectors.

FPN (Lin, Dollar, Girshick, He, Hariharan & Belongie, "Feature Pyramid Networks for Object
Detection", CVPR 2017): a backbone's deep maps are coarse but semantically strong, its early
maps fine but weak. The FPN joins them: a 1x1 *lateral* conv brings every level to the same
width, a *top-down* path upsamples the coarser level (nearest, x2) and adds it, and a 3x3 conv
smooths each sum. Every output level then carries deep features at its own resolution, so small
objects are detected on the fine levels and large ones on the coarse levels.

Sized for 2 CPU cores and ~64x64 single-channel canvases: a few conv-BN-ReLU stages of width
16-64, and FPN levels at strides 4, 8 and 16 (maps of 16x16, 8x8 and 4x4 on 64x64 images),
named ``'0'``, ``'1'``, ``'2'`` as torchvision's ``BackboneWithFPN`` names its levels.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

from ... import functional as F
from ... import nn

__all__ = ["TinyBackbone", "FeaturePyramidNetwork", "BackboneWithFPN", "tiny_fpn_backbone"]


def _conv_bn_relu(cin: int, cout: int, stride: int) -> list:
    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(cout), nn.ReLU()]


class TinyBackbone(nn.Module):
    """A stem (conv 3x3, stride 1) then stages that each halve the resolution (conv 3x3 stride 2,
    then ``depth - 1`` convs 3x3 stride 1), all conv-BN-ReLU.

    ``forward(x)`` returns the outputs of the stages listed in ``return_stages`` (an
    ``OrderedDict`` ``'0', '1', ...``, finest first); stage ``i`` (1-based) has stride ``2**i``.

    Args:
        in_channels: image channels (default 1).
        widths: channels of the stem and of each stage (default ``(16, 32, 48, 64, 64)``:
            stem 16, stages at strides 2, 4, 8, 16).
        depth: convs per stage (default 2).
        return_stages: which stages feed the FPN (default ``(2, 3, 4)``: strides 4, 8, 16).

    Shape: ``(N, C, H, W) -> {'0': (N, widths[s], ceil(H / 2**s), ceil(W / 2**s)), ...}``.
    """

    def __init__(self, in_channels: int = 1, widths: Sequence[int] = (16, 32, 48, 64, 64),
                 depth: int = 2, return_stages: Sequence[int] = (2, 3, 4)):
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if len(widths) < 2:
            raise ValueError(f"TinyBackbone: widths needs the stem and at least one stage, "
                             f"got {widths}")
        if not return_stages or any(not 1 <= s < len(widths) for s in return_stages):
            raise ValueError(f"TinyBackbone: return_stages must be stage numbers in "
                             f"1..{len(widths) - 1}, got {tuple(return_stages)}")
        self.stem = nn.Sequential(*_conv_bn_relu(in_channels, widths[0], 1))
        stages = []
        for cin, cout in zip(widths[:-1], widths[1:]):
            layers = _conv_bn_relu(cin, cout, 2)
            for _ in range(depth - 1):
                layers += _conv_bn_relu(cout, cout, 1)
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)
        self.return_stages = tuple(int(s) for s in return_stages)
        self.out_channels_list = [widths[s] for s in self.return_stages]
        self.strides = [2 ** s for s in self.return_stages]

    def forward(self, x):
        out = OrderedDict()
        x = self.stem(x)
        for i, stage in enumerate(self.stages, start=1):
            if i > max(self.return_stages):
                break
            x = stage(x)
            if i in self.return_stages:
                out[str(len(out))] = x
        return out


class FeaturePyramidNetwork(nn.Module):
    """FPN top-down path (Lin et al. 2017), torchvision's ``FeaturePyramidNetwork`` layout.

    ``inner_blocks[i]``: 1x1 lateral conv ``in_channels_list[i] -> out_channels``;
    ``layer_blocks[i]``: 3x3 conv on the merged map. From the coarsest level down:
    ``P_last = lateral(C_last)``, ``P_i = lateral(C_i) + upsample_nearest(P_{i+1}, size of C_i)``,
    and each output is ``layer_block(P_i)``.

    Shape: a dict of ``(N, in_channels_list[i], H_i, W_i)`` -> an ``OrderedDict`` with the same
    keys of ``(N, out_channels, H_i, W_i)``.
    """

    def __init__(self, in_channels_list: Sequence[int], out_channels: int):
        super().__init__()
        self.inner_blocks = nn.ModuleList([nn.Conv2d(c, out_channels, 1) for c in in_channels_list])
        self.layer_blocks = nn.ModuleList([nn.Conv2d(out_channels, out_channels, 3, padding=1)
                                           for _ in in_channels_list])
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        for m in self.modules():  # torchvision's FPN init: kaiming_uniform(a=1), zero bias
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=1)
                nn.init.constant_(m.bias, 0.0)

    def forward(self, x: dict) -> OrderedDict:
        names, feats = list(x.keys()), list(x.values())
        if len(feats) != len(self.inner_blocks):
            raise ValueError(f"FeaturePyramidNetwork: expected {len(self.inner_blocks)} feature "
                             f"maps, got {len(feats)}")
        last = self.inner_blocks[-1](feats[-1])
        results = [self.layer_blocks[-1](last)]
        for i in range(len(feats) - 2, -1, -1):
            lateral = self.inner_blocks[i](feats[i])
            size = tuple(lateral.shape[-2:])
            if size == (2 * last.shape[-2], 2 * last.shape[-1]):
                top_down = self.upsample(last)  # a module, so summary/receptive fields see it
            else:  # odd sizes (a backbone used without the detector's padding)
                top_down = F.interpolate(last, size=size, mode="nearest")
            last = lateral + top_down
            results.insert(0, self.layer_blocks[i](last))
        return OrderedDict(zip(names, results))


class BackboneWithFPN(nn.Module):
    """``body`` (a backbone returning an ``OrderedDict`` of maps) followed by an FPN;
    ``out_channels`` is the FPN width, which the detection heads read (as torchvision's)."""

    def __init__(self, body: nn.Module, in_channels_list: Sequence[int], out_channels: int):
        super().__init__()
        self.body = body
        self.fpn = FeaturePyramidNetwork(in_channels_list, out_channels)
        self.out_channels = out_channels

    def forward(self, x) -> OrderedDict:
        return self.fpn(self.body(x))


def tiny_fpn_backbone(in_channels: int = 1, widths: Sequence[int] = (16, 32, 48, 64, 64),
                      depth: int = 2, return_stages: Sequence[int] = (2, 3, 4),
                      fpn_channels: int = 64) -> BackboneWithFPN:
    """:class:`TinyBackbone` + :class:`FeaturePyramidNetwork` (levels ``'0','1','2'`` at strides
    4, 8, 16 by default, each ``fpn_channels`` wide)."""
    body = TinyBackbone(in_channels, widths, depth, return_stages)
    return BackboneWithFPN(body, body.out_channels_list, fpn_channels)

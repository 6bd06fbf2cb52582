"""GoogLeNet / Inception (Szegedy et al., "Going deeper with convolutions", CVPR 2015) and an
Inception-v3 block (Szegedy et al., "Rethinking the Inception architecture for computer
vision", CVPR 2016).

The ideas: an Inception block runs 1x1, 3x3, 5x5 convolutions and a pooling branch in
parallel and concatenates them, with 1x1 convolutions *reducing* the channels before the
costly filters (notes 4.2); v3 factorises an n x n filter into 1 x n then n x 1 (spatially
separable convolution, notes 4.7). :class:`GoogLeNet` follows torchvision's layout and names
(6,624,904 parameters at 1000 classes without the auxiliary heads; note torchvision, and so
this class, uses a 3x3 conv in the "5x5" branch).
"""
from __future__ import annotations

from .. import nn
from ..creation import cat
from .registry import InputRule, local_weights, pretrained_file, register

__all__ = ["BasicConv2d", "Inception", "InceptionAux", "InceptionC", "GoogLeNet", "googlenet"]


class BasicConv2d(nn.Module):
    """conv (no bias) -> BatchNorm2d (eps 1e-3) -> ReLU; names ``conv``, ``bn``."""

    def __init__(self, in_channels: int, out_channels: int, **conv_kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **conv_kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


class Inception(nn.Module):
    """Inception v1 block: ``(N, C, H, W) -> (N, ch1x1 + ch3x3 + ch5x5 + pool_proj, H, W)``.

    branch1: 1x1. branch2: 1x1 reduce -> 3x3. branch3: 1x1 reduce -> 3x3 (torchvision's stand-in
    for 5x5). branch4: max-pool 3x3/1 -> 1x1 projection. Outputs are concatenated on channels.
    """

    def __init__(self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int,
                 ch5x5: int, pool_proj: int):
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(BasicConv2d(in_channels, ch3x3red, kernel_size=1),
                                     BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1))
        self.branch3 = nn.Sequential(BasicConv2d(in_channels, ch5x5red, kernel_size=1),
                                     BasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
                                     BasicConv2d(in_channels, pool_proj, kernel_size=1))

    def forward(self, x):
        return cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], dim=1)


class InceptionAux(nn.Module):
    """Auxiliary classifier: adaptive avg-pool 4x4 -> 1x1 conv (128) -> fc 2048 -> 1024 -> ReLU
    -> dropout 0.7 -> fc -> classes. Used only in training, to inject gradient mid-network."""

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.7):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d((4, 4))
        self.conv = BasicConv2d(in_channels, 128, kernel_size=1)
        self.fc1 = nn.Linear(2048, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        x = self.conv(self.avgpool(x)).flatten(1)
        return self.fc2(self.dropout(self.relu(self.fc1(x))))


class InceptionC(nn.Module):
    """Inception-v3 block with spatially separable 7x7 filters (torchvision's ``InceptionC``).

    ``(N, C, H, W) -> (N, 768, H, W)``: branch1x1 (192); branch7x7: 1x1 (c7) -> 1x7 -> 7x1
    (192); branch7x7dbl: 1x1 -> 7x1 -> 1x7 -> 7x1 -> 1x7 (192); branch_pool: avg-pool 3x3/1
    -> 1x1 (192). A 1x7 followed by a 7x1 covers 7x7 with ``14 c^2`` instead of ``49 c^2``
    weights.
    """

    def __init__(self, in_channels: int, channels_7x7: int):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool_avg = nn.AvgPool2d(3, stride=1, padding=1)
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x):
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = x
        for i in range(1, 6):
            bd = getattr(self, f"branch7x7dbl_{i}")(bd)
        bp = self.branch_pool(self.branch_pool_avg(x))
        return cat([b1, b7, bd, bp], dim=1)


class GoogLeNet(nn.Module):
    """GoogLeNet (Inception v1): ``(N, C, H, W) -> (N, num_classes)``.

    conv 7x7/2 -> pool -> conv 1x1 -> conv 3x3 -> pool -> inception 3a, 3b -> pool -> 4a..4e ->
    pool -> 5a, 5b -> global average pool -> dropout -> fc. All pools use ``ceil_mode``, so
    28x28 inputs reach a 1x1 map.

    Args:
        num_classes, in_channels: outputs and image channels (default 1000, 3).
        aux_logits: build the two auxiliary heads; in training mode ``forward`` then returns
            ``(logits, aux2, aux1)`` as torchvision's GoogLeNetOutputs order
            ``(logits, aux_logits2, aux_logits1)``.
        dropout: before the fc (default 0.2).
        small_input: stem conv stride 1 and no first max-pool (28/32 px images).
    """

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, aux_logits: bool = False,
                 dropout: float = 0.2, small_input: bool = False):
        super().__init__()
        self.aux_logits = aux_logits
        self.conv1 = BasicConv2d(in_channels, 64, kernel_size=7, stride=1 if small_input else 2,
                                 padding=3)
        self.maxpool1 = nn.Identity() if small_input else nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.inception3a = Inception(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = Inception(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.inception4a = Inception(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = Inception(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = Inception(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = Inception(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = Inception(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.inception5a = Inception(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = Inception(832, 384, 192, 384, 48, 128, 128)
        if aux_logits:
            self.aux1 = InceptionAux(512, num_classes)
            self.aux2 = InceptionAux(528, num_classes)
        else:
            self.aux1 = self.aux2 = None
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1024, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        aux1 = self.aux1(x) if self.aux1 is not None and self.training else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if self.aux2 is not None and self.training else None
        x = self.maxpool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        x = self.fc(self.dropout(self.avgpool(x).flatten(1)))
        if aux1 is not None:
            return x, aux2, aux1
        return x


def _input_rule(o: dict) -> InputRule:
    if o["small_input"]:
        return InputRule(4, why="four max-pools")
    return InputRule(15, why="a 7x7/2 stem and four max-pools")


@register(family="GoogLeNet", builds=GoogLeNet, input_rule=_input_rule)
def googlenet(num_classes: int = 1000, in_channels: int = 3, *, weights=None,
              progress: bool = True, **options) -> GoogLeNet:
    """GoogLeNet (Szegedy et al. 2015); see :class:`GoogLeNet`. torchvision's defaults;
    ``weights`` must be None (see :func:`~convnet.models.registry.pretrained_file`)."""
    weights_file = pretrained_file("googlenet", weights, options)
    return local_weights(weights_file, GoogLeNet(num_classes=num_classes, in_channels=in_channels, **options))

"""VGG (Simonyan & Zisserman, "Very deep convolutional networks for large-scale image
recognition", ICLR 2015).

The idea: only 3x3 convolutions, stacked deep. Two 3x3 layers see a 5x5 field and three see
7x7 (receptive field ``1 + L(K-1)``) with fewer parameters and more nonlinearities than one
large filter. Configurations A/B/D/E = VGG-11/13/16/19, optionally with batch norm.
torchvision's layout and names: vgg16 has 138,357,544 parameters at 1000 classes.
"""
from __future__ import annotations

from .. import nn
from .registry import InputRule, local_weights, pretrained_file, register

__all__ = ["VGG", "make_layers", "vgg11", "vgg13", "vgg16", "vgg19",
           "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"]

CFGS: dict[str, list] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
          512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512, "M"],
}


def make_layers(cfg: list, in_channels: int = 3, batch_norm: bool = False,
                ceil_mode: bool = False) -> nn.Sequential:
    """Conv 3x3 (padding 1) [-> BN] -> ReLU for each int in ``cfg``; 2x2 max-pool for "M".

    Pools are torchvision's ``MaxPool2d(2, 2)`` (floor): five of them need sides >= 32.
    ``ceil_mode=True`` (what ``VGG(small_input=True)`` uses) is identical on even sizes such
    as 224 and lets 28x28 inputs pass five pools (28 -> 14 -> 7 -> 4 -> 2 -> 1).
    """
    layers: list[nn.Module] = []
    c = in_channels
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=ceil_mode))
            continue
        layers.append(nn.Conv2d(c, v, 3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(v))
        layers.append(nn.ReLU())
        c = v
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """VGG: ``(N, C, H, W) -> (N, num_classes)``.

    ``features`` (see :func:`make_layers`) -> ``avgpool`` (adaptive 7x7) -> ``classifier``: fc
    25088 -> 4096, ReLU, dropout, fc 4096 -> 4096, ReLU, dropout, fc 4096 -> num_classes.

    Args:
        cfg: ``"A"``, ``"B"``, ``"D"``, ``"E"`` or a custom list.
        batch_norm: BN after every conv.
        num_classes, in_channels: outputs and image channels (default 1000, 3).
        dropout: in the classifier (default 0.5).
        small_input: for 28/32 px images: ceil-mode pools (28 px passes all five), then
            average-pool to 1x1 and a 512 -> 512 -> 512 -> classes head (where the 7x7 map
            would only repeat one pixel 49 times).
    """

    def __init__(self, cfg: str | list = "D", batch_norm: bool = False, num_classes: int = 1000,
                 in_channels: int = 3, dropout: float = 0.5, small_input: bool = False):
        super().__init__()
        cfg = CFGS[cfg] if isinstance(cfg, str) else cfg
        self.features = make_layers(cfg, in_channels, batch_norm, ceil_mode=small_input)
        side, hidden = (1, 512) if small_input else (7, 4096)
        last = [v for v in cfg if v != "M"][-1]
        self.avgpool = nn.AdaptiveAvgPool2d((side, side))
        self.classifier = nn.Sequential(
            nn.Linear(last * side * side, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


def _vgg(cfg: str, bn: bool, name: str):
    def factory(num_classes: int = 1000, in_channels: int = 3, *, weights=None,
                progress: bool = True, **options) -> VGG:
        weights_file = pretrained_file(name, weights, options)
        return local_weights(weights_file, VGG(cfg, bn, num_classes=num_classes, in_channels=in_channels, **options))
    factory.__name__ = name
    factory.__doc__ = f"{name} (Simonyan & Zisserman 2015, config {cfg}); see :class:`VGG`."
    # floor pools as torchvision's need 2**5 = 32 px; small_input's ceil-mode pools take any side
    return register(name, factory, family="VGG", builds=VGG, fixed=("cfg", "batch_norm"),
                    input_rule=lambda o: InputRule() if o.get("small_input") else
                    InputRule(32, why="five 2x2 max-pools"))


vgg11, vgg13, vgg16, vgg19 = (_vgg(c, False, f"vgg{d}") for c, d in zip("ABDE", (11, 13, 16, 19)))
vgg11_bn, vgg13_bn, vgg16_bn, vgg19_bn = (_vgg(c, True, f"vgg{d}_bn")
                                          for c, d in zip("ABDE", (11, 13, 16, 19)))

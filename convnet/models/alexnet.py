"""AlexNet (Krizhevsky, Sutskever & Hinton, "ImageNet classification with deep convolutional
neural networks", NeurIPS 2012).

The network that started the deep-learning era in vision: five conv layers with ReLU and
overlapping max pooling, then three large fully connected layers with dropout. torchvision's
single-GPU variant (64-192-384-256-256 filters) and names: 61,100,840 parameters at 1000
classes.
"""
from __future__ import annotations

from .. import nn
from .registry import InputRule, local_weights, pretrained_file, register

__all__ = ["AlexNet", "alexnet"]


class AlexNet(nn.Module):
    """AlexNet: ``(N, C, H, W) -> (N, num_classes)``.

    ``features``: conv 11x11/4 (64) -> pool 3/2 -> conv 5x5 (192) -> pool -> conv 3x3 (384, 256,
    256) -> pool; ``avgpool``: adaptive to 6x6; ``classifier``: dropout, fc 9216 -> 4096, ReLU,
    dropout, fc 4096 -> 4096, ReLU, fc 4096 -> num_classes.

    Args:
        num_classes, in_channels: outputs and image channels (default 1000, 3).
        dropout: probability in the classifier (default 0.5).
        hidden: width of the two hidden fc layers (default 4096, the paper's).
        small_input: first conv 3x3/1 with padding 1 instead of 11x11/4 (28/32 px images; the
            three pools then give 28 -> 13 -> 6 -> 2). Needed below about 63 px, where the
            original stem leaves nothing for the third pool.
    """

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5,
                 small_input: bool = False, hidden: int = 4096):
        super().__init__()
        stem = (nn.Conv2d(in_channels, 64, 3, stride=1, padding=1) if small_input
                else nn.Conv2d(in_channels, 64, 11, stride=4, padding=2))
        self.features = nn.Sequential(
            stem, nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(256 * 6 * 6, hidden), nn.ReLU(),
            nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


def _input_rule(o: dict) -> InputRule:
    if o["small_input"]:
        return InputRule(15, why="a 3x3/1 stem and three 3x3/2 max-pools")
    return InputRule(63, why="an 11x11/4 stem and three 3x3/2 max-pools")


@register(family="AlexNet", builds=AlexNet, input_rule=_input_rule)
def alexnet(num_classes: int = 1000, in_channels: int = 3, *, weights=None, progress: bool = True,
            **options) -> AlexNet:
    """AlexNet (Krizhevsky et al. 2012); see :class:`AlexNet`. torchvision's defaults;
    ``weights`` must be None (see :func:`~convnet.models.registry.pretrained_file`)."""
    weights_file = pretrained_file("alexnet", weights, options)
    return local_weights(weights_file, AlexNet(num_classes=num_classes, in_channels=in_channels, **options))

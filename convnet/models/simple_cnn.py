"""A small modern CNN for MNIST-sized images: three conv-BN-ReLU-pool stages and an MLP head.

It demonstrates the standard small-CNN recipe (convolution for local features, batch norm
for stable training, pooling for subsampling, fully connected layers to classify) at a size
that trains in minutes on a CPU and reaches about 93% on Fashion-MNIST.
"""
from __future__ import annotations

from .. import nn
from .registry import InputRule, register

__all__ = ["SimpleCNN", "simple_cnn"]


class SimpleCNN(nn.Module):
    """``(N, C, H, W) -> (N, num_classes)`` for any H, W >= 8.

    ``features``: for each width w in ``widths``: conv 3x3 (padding 1, no bias) -> BatchNorm2d
    -> ReLU -> max-pool 2. ``classifier``: adaptive average pool to 3x3 (28x28 inputs are
    already 3x3 there), flatten, fc ``9*w_last -> hidden`` -> ReLU -> Dropout -> fc
    ``hidden -> num_classes``. Default (1 channel, 10 classes): 241,770 parameters.

    Args:
        num_classes: outputs (default 10).
        in_channels: image channels (default 1).
        widths: channels of the three (or any number of) conv stages, default (32, 64, 128).
        hidden: width of the hidden fc layer (default 128).
        dropout: dropout probability before the last layer (default 0.3).
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1,
                 widths: tuple[int, ...] = (32, 64, 128), hidden: int = 128,
                 dropout: float = 0.3):
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for w in widths:
            layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w),
                       nn.ReLU(), nn.MaxPool2d(2)]
            c = w
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d((3, 3)), nn.Flatten(),
            nn.Linear(9 * c, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


def _input_rule(o: dict) -> InputRule:
    n = len(o["widths"])
    return InputRule(minimum=2 ** n, why=f"{n} max-pools of 2")


def _input_fixes(side: int, o: dict) -> list[dict]:
    """Fewer stages, the widest first."""
    widths = list(o["widths"])
    return [{"widths": widths[:k]} for k in range(len(widths) - 1, 0, -1)]


@register(family="simple CNN", builds=SimpleCNN, input_rule=_input_rule,
          input_fixes=_input_fixes)
def simple_cnn(num_classes: int = 10, in_channels: int = 1, **options) -> SimpleCNN:
    """A 3-stage conv-BN-ReLU-pool network (~0.24M parameters); see :class:`SimpleCNN`."""
    return SimpleCNN(num_classes=num_classes, in_channels=in_channels, **options)

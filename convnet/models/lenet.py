"""LeNet-5 (LeCun, Bottou, Bengio & Haffner, "Gradient-based learning applied to document
recognition", Proc. IEEE 1998).

The first successful CNN: conv -> pool -> conv -> pool -> fc -> fc -> fc. Two small
convolutions learn local features with shared weights, subsampling (pooling) makes them
tolerant to small shifts, and fully connected layers classify.
"""
from __future__ import annotations

from .. import nn
from .registry import InputRule, register

__all__ = ["LeNet5", "lenet5"]

_ACTS = {"relu": "ReLU", "tanh": "Tanh", "sigmoid": "Sigmoid"}
_POOLS = {"avg": "AvgPool2d", "max": "MaxPool2d"}


class LeNet5(nn.Module):
    """LeNet-5: ``(N, C, S, S) -> (N, num_classes)``.

    Layers (for 28x28 inputs, where the first conv pads by 2 to recover LeNet's 32x32):
    conv 5x5 C->6 (28x28) -> pool 2 (14) -> conv 5x5 6->16 (10) -> pool 2 (5) ->
    fc 400->120 -> fc 120->84 -> fc 84->num_classes. With ``in_channels=1`` and 10 classes
    it has 61,706 parameters.

    Args:
        num_classes: outputs (default 10).
        in_channels: image channels (default 1).
        input_size: image side S. The first conv pads by ``(32 - S) // 2`` when S < 32
            (28 -> 2); the fc1 width is ``16 * s * s`` with s the side after the second pool,
            so any S >= 28 works (S = 32 is the original, padding 0).
        activation: ``"relu"`` (default, as modern re-implementations) or ``"tanh"`` /
            ``"sigmoid"`` (closer to 1998).
        pooling: ``"avg"`` (default; LeNet's subsampling) or ``"max"``.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, input_size: int = 28,
                 activation: str = "relu", pooling: str = "avg"):
        super().__init__()
        if activation not in _ACTS:
            raise ValueError(f"LeNet5: activation must be one of {sorted(_ACTS)}, "
                             f"got {activation!r}")
        if pooling not in _POOLS:
            raise ValueError(f"LeNet5: pooling must be one of {sorted(_POOLS)}, got {pooling!r}")
        if input_size < 12:
            raise ValueError(f"LeNet5: input_size must be >= 12, got {input_size}")
        pad = max(0, (32 - input_size) // 2)
        side = ((input_size + 2 * pad - 4) // 2 - 4) // 2
        act, pool = getattr(nn, _ACTS[activation]), getattr(nn, _POOLS[pooling])
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5, padding=pad), act(), pool(2, 2),
            nn.Conv2d(6, 16, kernel_size=5), act(), pool(2, 2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * side * side, 120), act(),
            nn.Linear(120, 84), act(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


def _input_rule(o: dict) -> InputRule:
    return InputRule(minimum=12, exact=o["input_size"], why="fc1 is sized for input_size")


@register(family="LeNet", builds=LeNet5, input_rule=_input_rule)
def lenet5(num_classes: int = 10, in_channels: int = 1, **options) -> LeNet5:
    """LeNet-5 (LeCun et al. 1998); see :class:`LeNet5` for options."""
    return LeNet5(num_classes=num_classes, in_channels=in_channels, **options)

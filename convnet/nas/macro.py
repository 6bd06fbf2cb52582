"""The "small-cnn" macro search space: plain CNNs of 2-4 conv blocks.

Block ``i`` (i = 0..3; blocks at or beyond ``depth`` are declared but unused)::

    y = act(BN(Conv2d(C_in, width_i, kernel_i, padding="same", bias=False)(x)))
    y = y + proj(x)          if skip_i == [0]   (i >= 1; proj = identity when C_in == width_i,
                                                  else 1x1 conv + BN)
    y = pool_i(y)            max / avg (2x2, stride 2) or none; block 0 always reduces, so
                             every model has at least one reduction; a pool is left out when
                             the map is already smaller than 2x2

then the head: ``gap`` (global average pool, flatten, ``Linear(width_last, num_classes)``)
or ``flatten`` (flatten the last map as it is, ``Linear(width_last * H * W, num_classes)``,
which keeps where features are at the cost of parameters).

Choices (labels in order): ``depth`` (2, 3, 4); per block ``width_i`` (8, 16, 32, 64),
``kernel_i`` (3, 5), ``act`` (relu, gelu, silu; one label shared by every block, a
``LayerChoice``), ``pool_i`` (``LayerChoice``: max, avg, and none for i >= 1), ``skip_i``
(``InputChoice(1, n_chosen=None)``: ``[]`` or ``[0]``, the previous block's output added), and
last ``head`` (gap, flatten).
Size: 3 * 3 * (4*2*2) * (4*2*3*2)**3 * 2 = 31,850,496 (architectures that differ only in unused
blocks build the same model, as do the two heads on a 1x1 map). Build options: ``input_shape=(C, H, W)`` (default (1, 28, 28)),
``num_classes`` (default 10).

Example::

    >>> from convnet import nas
    >>> space = nas.spaces.get("small-cnn")
    >>> model = nas.build(space, space.sample(0), input_shape=(3, 32, 32), num_classes=10)
"""
from __future__ import annotations

from .. import nn
from .space import InputChoice, LayerChoice, SearchSpace, ValueChoice

__all__ = ["SmallCNNSpace", "WIDTHS", "KERNELS", "DEPTHS", "ACTIVATIONS", "HEADS", "MAX_BLOCKS"]

DEPTHS = (2, 3, 4)
WIDTHS = (8, 16, 32, 64)
KERNELS = (3, 5)
ACTIVATIONS = ("relu", "gelu", "silu")
HEADS = ("gap", "flatten")
MAX_BLOCKS = 4


class _Block(nn.Module):
    """Conv-BN-act, an optional shortcut from the block input, then an optional 2x2 pool."""

    def __init__(self, c_in: int, width: int, kernel: int, act: nn.Module, skip: bool,
                 pool: nn.Module | None):
        super().__init__()
        self.conv = nn.Conv2d(c_in, width, kernel, padding="same", bias=False)
        self.bn = nn.BatchNorm2d(width)
        self.act = act
        self.has_skip = skip
        if skip and c_in != width:  # shapes differ: project with a 1x1 conv
            self.proj = nn.Sequential(nn.Conv2d(c_in, width, 1, bias=False), nn.BatchNorm2d(width))
        elif skip:
            self.proj = nn.Identity()
        self.has_pool = pool is not None
        if pool is not None:
            self.pool = pool

    def forward(self, x):
        y = self.act(self.bn(self.conv(x)))
        if self.has_skip:
            y = y + self.proj(x)
        return self.pool(y) if self.has_pool else y


def _acts() -> dict:
    return {"relu": nn.ReLU(), "gelu": nn.GELU(), "silu": nn.SiLU()}


def _pools(first: bool) -> dict:
    p = {"max": nn.MaxPool2d(2), "avg": nn.AvgPool2d(2)}
    if not first:
        p["none"] = nn.Identity()
    return p


def small_cnn(input_shape=(1, 28, 28), num_classes: int = 10) -> nn.Module:
    """The factory: every block's choices are declared on every call (see ``space``)."""
    shape = tuple(int(v) for v in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"small-cnn: input_shape must be (C, H, W) of positive ints, got {input_shape!r}")
    if int(num_classes) < 1:
        raise ValueError(f"small-cnn: num_classes must be >= 1, got {num_classes!r}")
    c, h, w = shape
    depth = ValueChoice(DEPTHS, label="depth")
    blocks = []
    for i in range(MAX_BLOCKS):
        width = ValueChoice(WIDTHS, label=f"width_{i}")
        kernel = ValueChoice(KERNELS, label=f"kernel_{i}")
        act = LayerChoice(_acts(), label="act")
        pool = LayerChoice(_pools(i == 0), label=f"pool_{i}")
        skip = InputChoice(1, n_chosen=None, label=f"skip_{i}").chosen if i else []
        if i >= depth:
            continue
        if isinstance(pool, nn.Identity) or min(h, w) < 2:
            pool = None
        else:
            h, w = h // 2, w // 2
        blocks.append(_Block(c, width, kernel, act, bool(skip), pool))
        c = width
    if ValueChoice(HEADS, label="head") == "flatten":
        return nn.Sequential(*blocks, nn.Flatten(), nn.Linear(c * h * w, int(num_classes)))
    return nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, int(num_classes)))


class SmallCNNSpace(SearchSpace):
    """The "small-cnn" macro space (see the module docstring)."""

    def __init__(self, input_shape=(1, 28, 28), num_classes: int = 10):
        super().__init__("small-cnn", small_cnn, input_shape=tuple(input_shape),
                         num_classes=num_classes)

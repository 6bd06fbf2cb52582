"""U-Net (Ronneberger, Fischer & Brox, "U-Net: Convolutional networks for biomedical image
segmentation", MICCAI 2015).

The idea: an encoder halves the resolution and doubles the channels step by step (context);
a decoder upsamples back (transposed convolution, or interpolation + conv) and, at each
scale, concatenates the encoder's features of the same size through a *skip connection*
(precise location). The output is a class score per pixel, ``(N, num_classes, H, W)``.
Convolutions are padded, so the output has the input's size (the paper's were unpadded).
"""
from __future__ import annotations

from .. import nn
from .. import functional as F
from ..creation import cat
from .registry import InputRule, register

__all__ = ["DoubleConv", "Up", "UNet", "unet"]


class DoubleConv(nn.Module):
    """(conv 3x3 -> BN -> ReLU) twice: ``(N, in, H, W) -> (N, out, H, W)``."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU())

    def forward(self, x):
        return self.block(x)


def _pad_to(x, h: int, w: int):
    """Zero-pad ``x`` at the bottom/right to ``(h, w)`` (after upsampling an odd size)."""
    dh, dw = h - x.shape[2], w - x.shape[3]
    return F.pad(x, (0, dw, 0, dh)) if dh or dw else x


class Up(nn.Module):
    """Upsample x2 to ``in/2`` channels, concatenate the skip, :class:`DoubleConv` to ``out``.

    ``mode="transposed"``: ``ConvTranspose2d(in, in/2, 2, stride 2)`` (learned upsampling).
    ``mode="bilinear"``: bilinear interpolation then a 1x1 conv to ``in/2`` (no checkerboard
    artifacts). Odd skip sizes are matched by zero-padding the upsampled map.
    """

    def __init__(self, in_channels: int, out_channels: int, mode: str = "transposed"):
        super().__init__()
        if mode not in ("transposed", "bilinear"):
            raise ValueError(f"Up: mode must be 'transposed' or 'bilinear', got {mode!r}")
        self.mode = mode
        half = in_channels // 2
        if mode == "transposed":
            self.up = nn.ConvTranspose2d(in_channels, half, 2, stride=2)
        else:
            self.up = nn.Conv2d(in_channels, half, 1)
        self.conv = DoubleConv(2 * half, out_channels)

    def forward(self, x, skip):
        if self.mode == "bilinear":
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = _pad_to(self.up(x), skip.shape[2], skip.shape[3])
        return self.conv(cat([skip, x], dim=1))


class UNet(nn.Module):
    """U-Net: ``(N, in_channels, H, W) -> (N, num_classes, H, W)``.

    Encoder: ``inc`` (DoubleConv to ``base``), then ``depth`` steps of max-pool 2 +
    DoubleConv doubling the channels. Decoder: ``depth`` :class:`Up` steps back, each joined
    to the encoder feature of the same size. ``outc``: 1x1 conv to classes. base=64, depth=4 is
    the paper's width (31.0M parameters with transposed convs).

    Args:
        num_classes, in_channels: per-pixel classes and image channels (default 2, 1).
        base_channels: width of the first level (default 64).
        depth: number of down/up steps (default 4; H, W >= 2**depth).
        up_mode: ``"transposed"`` or ``"bilinear"``.
    """

    def __init__(self, num_classes: int = 2, in_channels: int = 1, base_channels: int = 64,
                 depth: int = 4, up_mode: str = "transposed"):
        super().__init__()
        if depth < 1:
            raise ValueError(f"UNet: depth must be >= 1, got {depth}")
        self.depth = depth
        self.inc = DoubleConv(in_channels, base_channels)
        c = base_channels
        for i in range(depth):
            setattr(self, f"down{i + 1}", nn.Sequential(nn.MaxPool2d(2), DoubleConv(c, 2 * c)))
            c *= 2
        for i in range(depth):
            setattr(self, f"up{i + 1}", Up(c, c // 2, up_mode))
            c //= 2
        self.outc = nn.Conv2d(c, num_classes, 1)

    def forward(self, x):
        if x.shape[2] < 2 ** self.depth or x.shape[3] < 2 ** self.depth:
            raise ValueError(f"UNet: input {tuple(x.shape)} is smaller than 2**depth = "
                             f"{2 ** self.depth} in height or width")
        skips = [self.inc(x)]
        for i in range(self.depth):
            skips.append(getattr(self, f"down{i + 1}")(skips[-1]))
        x = skips.pop()
        for i in range(self.depth):
            x = getattr(self, f"up{i + 1}")(x, skips.pop())
        return self.outc(x)


def _input_rule(o: dict) -> InputRule:
    return InputRule(2 ** o["depth"], why=f"{o['depth']} max-pools of 2")


def _input_fixes(side: int, o: dict) -> list[dict]:
    return [{"depth": d} for d in range(o["depth"] - 1, 0, -1)]


@register(family="U-Net", builds=UNet, input_rule=_input_rule, input_fixes=_input_fixes)
def unet(num_classes: int = 2, in_channels: int = 1, **options) -> UNet:
    """U-Net (Ronneberger et al. 2015) for per-pixel classification; see :class:`UNet`."""
    return UNet(num_classes=num_classes, in_channels=in_channels, **options)

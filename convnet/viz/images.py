"""Arrays to pictures. Images are float arrays in ``[0, 1]`` shaped ``(C, H, W)`` (C = 1 or 3)
or ``(H, W)``; heatmaps are ``(H, W)`` in ``[0, 1]``."""
from __future__ import annotations

import os
from typing import Mapping

import numpy as np

__all__ = ["load_image", "save_image", "to_uint8", "filter_grid", "save_filter_grid",
           "save_feature_maps", "colorize", "overlay", "save_overlay"]


def load_image(path: str, mode: str = "L", size: tuple[int, int] | None = None) -> np.ndarray:
    """Read an image file as float32 ``(C, H, W)`` in ``[0, 1]``.

    ``mode`` ``'L'`` (grey, C = 1) or ``'RGB'`` (C = 3); ``size = (H, W)`` resizes (bilinear).
    """
    from PIL import Image

    if mode not in ("L", "RGB"):
        raise ValueError(f"load_image: mode must be 'L' or 'RGB', got {mode!r}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load_image: no such file {path!r}")
    with Image.open(path) as im:
        im = im.convert(mode)
        if size is not None:
            im = im.resize((int(size[1]), int(size[0])), Image.BILINEAR)
        arr = np.asarray(im, dtype=np.float32) / 255.0
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1).copy()


def to_uint8(img: np.ndarray, normalize: bool = False) -> np.ndarray:
    """``(C, H, W)`` / ``(H, W)`` floats to an ``(H, W)`` or ``(H, W, 3)`` uint8 array.

    ``normalize=True`` stretches min..max to 0..255 (for filter responses with negative
    values); otherwise values are clipped to ``[0, 1]``. Works on one float copy (float32
    stays float32), so a 12-megapixel photo needs no float64 temporaries.
    """
    src = np.asarray(img)
    dtype = np.float32 if src.dtype == np.float32 else np.float64
    if src.ndim == 3:
        if src.shape[0] == 1:
            src = src[0]
        elif src.shape[0] == 3:
            src = src.transpose(1, 2, 0)
        elif src.shape[-1] not in (3, 4):
            raise ValueError(f"to_uint8: expected 1 or 3 channels, got shape {src.shape}")
    a = np.array(src, dtype=dtype)  # the one copy, modified in place below
    if normalize:
        lo, hi = a.min(), a.max()
        if hi > lo:
            a -= lo
            a /= hi - lo
        else:
            a[...] = 0
    np.clip(a, 0, 1, out=a)
    a *= 255
    a += 0.5
    return a.astype(np.uint8)


def save_image(img: np.ndarray, path: str, normalize: bool = False, scale: int = 1) -> str:
    """Write an image array as PNG (``scale`` enlarges by pixel repetition); returns the path."""
    from PIL import Image

    a = to_uint8(img, normalize)
    if scale > 1:
        a = a.repeat(scale, axis=0).repeat(scale, axis=1)
    _mkdir(path)
    # zlib level 1 for big pictures: a 12-megapixel PNG takes 2 s instead of 9 s at the default
    # level 6, for a file about 20% larger
    Image.fromarray(a).save(path, **({"compress_level": 1} if a.size > 1 << 22 else {}))
    return path


def _mkdir(path: str) -> None:
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)


def filter_grid(weight: np.ndarray, pad: int = 1, ncols: int | None = None) -> np.ndarray:
    """Tile conv filters ``(C_out, C_in, K_h, K_w)`` into one ``(H, W)`` grey image in [0, 1].

    With ``2 <= C_in <= 8`` each row is one filter and each column one input channel; with one
    input channel the filters fill a square grid; with more than 8 each filter is shown as
    its mean over input channels. Every filter is scaled by the layer's largest absolute
    weight, so 0.5 grey means a zero weight.
    """
    w = np.asarray(weight, dtype=np.float64)
    if w.ndim != 4:
        raise ValueError(f"filter_grid: weight must be (C_out, C_in, K_h, K_w), got {w.shape}")
    co, ci, kh, kw = w.shape
    m = np.abs(w).max()
    w = 0.5 + 0.5 * w / (m if m > 0 else 1)
    tiles = w.reshape(co * ci, kh, kw) if ci <= 8 else w.mean(axis=1)
    # one row per filter (a column per input channel); single-channel filters: a square grid
    cols = ncols or (ci if 1 < ci <= 8 else int(np.ceil(np.sqrt(len(tiles)))))
    n = len(tiles)
    rows = -(-n // cols)
    grid = np.ones((rows * (kh + pad) + pad, cols * (kw + pad) + pad))
    r, c = np.divmod(np.arange(n), cols)
    for i in range(kh):  # loop over kernel offsets only; tiles are placed with fancy indexing
        for j in range(kw):
            grid[pad + r * (kh + pad) + i, pad + c * (kw + pad) + j] = tiles[:, i, j]
    return grid


def save_filter_grid(weight: np.ndarray, path: str, scale: int = 12) -> str:
    """``filter_grid`` written as a PNG, each weight an enlarged ``scale x scale`` block."""
    return save_image(filter_grid(weight), path, scale=scale)


def colorize(heatmap: np.ndarray, cmap: str = "jet") -> np.ndarray:
    """``(H, W)`` in [0, 1] to ``(H, W, 3)`` float RGB with a matplotlib colormap."""
    from matplotlib import colormaps

    h = np.clip(np.asarray(heatmap, dtype=np.float64), 0, 1)
    return colormaps[cmap](h)[..., :3]


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.5,
            cmap: str = "jet") -> np.ndarray:
    """Blend a colourised heatmap over an image: ``(1 - alpha) * image + alpha * color``.

    ``image`` ``(C, H, W)`` or ``(H, W)`` in [0, 1]; returns ``(3, H, W)``.
    """
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 3 and img.shape[0] == 1:
        img = img[0]
    if img.ndim == 2:
        img = np.repeat(img[None], 3, axis=0)
    if img.shape[1:] != np.shape(heatmap):
        raise ValueError(
            f"overlay: image {img.shape[1:]} and heatmap {np.shape(heatmap)} differ in size")
    color = colorize(heatmap, cmap).transpose(2, 0, 1)
    return np.clip((1 - alpha) * img + alpha * color, 0, 1)


def save_overlay(image, heatmap, path: str, alpha: float = 0.5, scale: int = 1) -> str:
    """``overlay`` written as a PNG."""
    return save_image(overlay(image, heatmap, alpha), path, scale=scale)


def save_feature_maps(
    maps: Mapping[str, np.ndarray],
    path: str,
    max_channels: int = 8,
    sample: int = 0,
    title: str | None = None,
) -> str:
    """One row per layer, the first ``max_channels`` activation maps of ``sample`` as grey
    images (each scaled to its own min..max). Non-spatial outputs are drawn as a bar strip."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    items = [(k, np.asarray(v)) for k, v in maps.items()]
    if not items:
        raise ValueError("save_feature_maps: no feature maps given")
    fig = Figure(figsize=(1.3 * (max_channels + 1), 1.3 * len(items) + 0.4))
    FigureCanvasAgg(fig)
    for r, (name, a) in enumerate(items):
        a = a[sample]
        ax_label = fig.add_subplot(len(items), max_channels + 1, r * (max_channels + 1) + 1)
        ax_label.axis("off")
        ax_label.text(0.0, 0.5, f"{name}\n{tuple(a.shape)}", fontsize=7, va="center")
        if a.ndim == 3:
            for c in range(min(max_channels, a.shape[0])):
                ax = fig.add_subplot(len(items), max_channels + 1, r * (max_channels + 1) + 2 + c)
                ax.imshow(a[c], cmap="gray", interpolation="nearest")
                ax.axis("off")
        else:
            ax = fig.add_subplot(len(items), max_channels + 1,
                                 (r * (max_channels + 1) + 2, (r + 1) * (max_channels + 1)))
            v = a.reshape(-1)
            ax.bar(np.arange(len(v)), v, width=1.0, color="tab:blue")
            ax.set_xticks([])
            ax.tick_params(labelsize=6)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    _mkdir(path)
    fig.savefig(path, dpi=90)
    return path

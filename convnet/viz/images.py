"""Arrays to pictures. Images are float arrays in ``[0, 1]`` shaped ``(C, H, W)`` (C = 1 or 3)
or ``(H, W)``; heatmaps are ``(H, W)`` in ``[0, 1]``."""
from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np

__all__ = ["load_image", "make_grid", "save_image", "to_uint8", "filter_grid", "save_filter_grid",
           "feature_map_figure", "save_feature_maps", "colorize", "overlay", "save_overlay",
           "explanation_figure", "save_explanation"]


def load_image(path: str, mode: str = "L", size: tuple[int, int] | None = None) -> np.ndarray:
    """Read an image file as float32 ``(C, H, W)`` in ``[0, 1]``.

    ``mode`` ``'L'`` (grey, C = 1) or ``'RGB'`` (C = 3); ``size = (H, W)`` resizes (bilinear).
    Transparency is composited onto white, as everywhere convnet reads images
    (:func:`convnet.data.datasets.folder.load_image`).
    """
    from ..data.datasets.folder import load_image as load_uint8

    if mode not in ("L", "RGB"):
        raise ValueError(f"image mode must be 'L' or 'RGB', got {mode!r}")
    a = load_uint8(path, mode, size).astype(np.float32)
    a /= 255.0  # in place: one float copy of a 12-megapixel photo, not two
    return a


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


def _image_batch(tensor) -> np.ndarray:
    """Tensor / array / list of images -> an ``(N, C, H, W)`` array (torchvision's rules:
    a list is stacked, ``(H, W)`` is one grey image, ``(C, H, W)`` one image)."""
    if isinstance(tensor, (list, tuple)):
        x = np.stack([np.asarray(getattr(t, "_data", t)) for t in tensor])
    else:
        x = np.asarray(getattr(tensor, "_data", tensor))
    if x.ndim == 2:
        x = x[None]
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4:
        raise ValueError(f"make_grid: expected images (H, W), (C, H, W) or (B, C, H, W), got "
                         f"shape {x.shape}")
    return x


def _normalized(x: np.ndarray, value_range, scale_each: bool) -> np.ndarray:
    """torchvision's ``normalize=True``: clamp to ``(low, high)`` (default the min and max of
    the whole batch, or of each image with ``scale_each``) and map it to ``[0, 1]``:
    ``(x - low) / max(high - low, 1e-5)``."""
    if value_range is not None and not isinstance(value_range, tuple):
        raise TypeError("make_grid: value_range has to be a tuple (min, max) if specified. "
                        "min and max are numbers")
    out = np.array(x, dtype=x.dtype if x.dtype.kind == "f" else np.float32)
    parts = out if scale_each else out[None]
    for t in parts:  # views: normalised in place
        low, high = value_range if value_range is not None else (float(t.min()), float(t.max()))
        np.clip(t, low, high, out=t)
        t -= low
        t /= max(high - low, 1e-5)
    return out


def _grid(x: np.ndarray, nrow: int, padding: int, pad_value: float) -> np.ndarray:
    """Tile ``(N, C, H, W)`` into ``(C, rows * (H + p) + p, cols * (W + p) + p)``, row by row,
    ``cols = min(nrow, N)``; one image comes back unpadded."""
    n, c, h, w = x.shape
    if n == 1:
        return x[0]
    cols = min(nrow, n)
    rows = -(-n // cols)
    # each tile is an image with `padding` pixels of pad_value above and to its left; the
    # missing tiles of the last row are all pad_value; the grid closes with one more border
    tiles = np.full((rows * cols, c, h + padding, w + padding), pad_value, dtype=x.dtype)
    tiles[:n, :, padding:, padding:] = x
    body = (tiles.reshape(rows, cols, c, h + padding, w + padding)
            .transpose(2, 0, 3, 1, 4).reshape(c, rows * (h + padding), cols * (w + padding)))
    grid = np.full((c, body.shape[1] + padding, body.shape[2] + padding), pad_value, x.dtype)
    grid[:, :body.shape[1], :body.shape[2]] = body
    return grid


def make_grid(tensor, nrow: int = 8, padding: int = 2, normalize: bool = False,
              value_range: tuple[float, float] | None = None, scale_each: bool = False,
              pad_value: float = 0.0):
    """Arrange a batch of images into one picture, as torchvision's ``make_grid``.

    ``tensor`` is ``(B, C, H, W)`` (or a list of ``(C, H, W)``, one ``(C, H, W)`` or
    ``(H, W)``); one-channel images are repeated to 3 channels. Images go row by row,
    ``min(nrow, B)`` per row, each preceded by ``padding`` pixels of ``pad_value``, and the
    grid closes with one more border: the result is a Tensor ``(3 or C, rows * (H + padding) +
    padding, cols * (W + padding) + padding)``. A single image comes back without padding.

    ``normalize=True`` maps ``value_range`` (default: the batch's min and max; per image with
    ``scale_each=True``) to ``[0, 1]``, clamping values outside it.
    """
    from ..tensor import Tensor

    x = _image_batch(tensor)
    if x.shape[1] == 1:
        x = np.repeat(x, 3, axis=1)
    if normalize:
        x = _normalized(x, value_range, scale_each)
    return Tensor._make(np.ascontiguousarray(_grid(x, nrow, padding, pad_value)))


def save_image(tensor, fp, nrow: int = 8, padding: int = 2, normalize: bool = False,
               value_range: tuple[float, float] | None = None, scale_each: bool = False,
               pad_value: float = 0.0, format: str | None = None, *, scale: int = 1):
    """Write an image or a batch of images (values in ``[0, 1]``) as one PNG (or ``format``).

    torchvision's ``save_image``: a batch ``(B, C, H, W)`` is laid out by :func:`make_grid`
    (``nrow``, ``padding``, ``normalize``, ``value_range``, ``scale_each``, ``pad_value``),
    then ``uint8(clamp(x * 255 + 0.5, 0, 255))``. Also takes ``(C, H, W)`` / ``(H, W)``
    arrays; one-channel pictures are written as grey PNGs (same pixel values as torchvision's
    RGB). ``scale`` enlarges by pixel repetition. ``fp`` is a path or a file object;
    returns ``fp``.
    """
    from PIL import Image

    x = _image_batch(tensor)
    if normalize:
        x = _normalized(x, value_range, scale_each)
    grey = x.shape[1] == 1
    a = to_uint8(_grid(x, nrow, padding, pad_value)[:1 if grey else None])
    if scale > 1:
        a = a.repeat(scale, axis=0).repeat(scale, axis=1)
    if isinstance(fp, (str, os.PathLike)):
        _mkdir(fp)
    # zlib level 1 for big pictures: a 12-megapixel PNG takes 2 s instead of 9 s at the default
    # level 6, for a file about 20% larger
    big = a.size > 1 << 22 and (format or str(fp)).lower().endswith("png")
    Image.fromarray(a).save(fp, format=format, **({"compress_level": 1} if big else {}))
    return fp


def _mkdir(path: str) -> None:
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)


def filter_grid(weight: np.ndarray, pad: int = 1, ncols: int | None = None,
                color: bool | None = None) -> np.ndarray:
    """Tile conv filters ``(C_out, C_in, K_h, K_w)`` into one picture in [0, 1].

    Every weight is scaled by the layer's largest absolute weight, ``0.5 + 0.5 w / max|w|``, so
    0.5 (mid-grey) means a zero weight. With ``color`` (default: when ``C_in == 3``, the first
    layer of an RGB model) each filter is one RGB tile on a square grid and the result is
    ``(3, H, W)``: a filter that looks for red is red. Otherwise the result is grey ``(H, W)``:
    with ``2 <= C_in <= 8`` each row is one filter and each column one input channel; with one
    input channel the filters fill a square grid; with more than 8 each filter is shown as its
    mean over input channels.
    """
    w = np.asarray(weight, dtype=np.float64)
    if w.ndim != 4:
        raise ValueError(f"filter_grid: weight must be (C_out, C_in, K_h, K_w), got {w.shape}")
    co, ci, kh, kw = w.shape
    color = ci == 3 if color is None else color
    if color and ci != 3:
        raise ValueError(f"filter_grid: color needs 3 input channels, got {ci}")
    m = np.abs(w).max()
    w = 0.5 + 0.5 * w / (m if m > 0 else 1)
    if color:
        tiles = w.transpose(1, 0, 2, 3)  # (3, C_out, K_h, K_w): one RGB tile per filter
    else:
        tiles = (w.reshape(co * ci, kh, kw) if ci <= 8 else w.mean(axis=1))[None]
    # grey: one row per filter (a column per input channel); else a square grid of filters
    n = tiles.shape[1]
    cols = ncols or (ci if 1 < ci <= 8 and not color else int(np.ceil(np.sqrt(n))))
    rows = -(-n // cols)
    grid = np.ones((len(tiles), rows * (kh + pad) + pad, cols * (kw + pad) + pad))
    r, c = np.divmod(np.arange(n), cols)
    for i in range(kh):  # loop over kernel offsets only; tiles are placed with fancy indexing
        for j in range(kw):
            grid[:, pad + r * (kh + pad) + i, pad + c * (kw + pad) + j] = tiles[:, :, i, j]
    return grid if color else grid[0]


def save_filter_grid(weight: np.ndarray, path: str, scale: int = 12) -> str:
    """``filter_grid`` written as a PNG (RGB for 3 input channels), each weight an enlarged
    ``scale x scale`` block."""
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
    """``overlay`` written as a bare PNG (no axes or labels; see ``save_explanation``)."""
    return save_image(overlay(image, heatmap, alpha), path, scale=scale)


def _show(ax, img: np.ndarray, **kw) -> None:
    """Draw a ``(C, H, W)`` / ``(H, W)`` image in [0, 1] without ticks; pixels stay square."""
    a = np.asarray(img, dtype=np.float64)
    if a.ndim == 3:
        a = a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)
    grey = {"cmap": "gray", "vmin": 0, "vmax": 1} if a.ndim == 2 else {}
    ax.imshow(np.clip(a, 0, 1), interpolation="nearest", **grey, **kw)
    ax.set_xticks([])
    ax.set_yticks([])


def explanation_figure(image, heatmap, title: str | None = None, heat_label: str = "Grad-CAM",
                       bar_label: str | None = None, scale: int = 8, alpha: float = 0.5,
                       cmap: str = "jet"):
    """A matplotlib ``Figure`` explaining a prediction: the input on the left, the ``overlay``
    of the heatmap on the right with a colour bar (0 = no evidence, 1 = the map's maximum; labelled
    ``bar_label``, default ``heat_label``), and ``title`` above (say the class, its probability
    and the layer; lines that do not fit are wrapped).

    ``image`` is ``(C, H, W)`` or ``(H, W)`` in [0, 1], ``heatmap`` ``(H, W)`` in [0, 1]. Each
    panel shows the image ``scale`` times enlarged, kept between 2.4 and 6 inches wide at
    100 dpi so digits are not tiny and photos not huge.
    """
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    blend = overlay(image, heatmap, alpha, cmap)  # also checks the sizes agree
    h, w = blend.shape[1:]
    side = float(np.clip(max(h, w) * scale / 100, 2.4, 6.0))  # inches for the longer side
    pw, ph = side * w / max(h, w), side * h / max(h, w)
    fig = Figure(figsize=(2 * pw + 1.4, ph + (1.0 if title else 0.5)), dpi=100,
                 layout="constrained")
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)
    _show(left, image)
    left.set_title("input, as the model sees it", fontsize=9)
    _show(right, blend)
    right.set_title(f"{heat_label} over the input", fontsize=9)
    bar = fig.colorbar(ScalarMappable(Normalize(0, 1), colormaps[cmap]), ax=right,
                       fraction=0.08, pad=0.03)
    bar.set_label(f"{bar_label or heat_label} (1 = strongest)", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    if title:
        import textwrap

        width = int(11 * (2 * pw + 1.4))  # characters of 10 pt text per line
        fig.suptitle("\n".join(textwrap.fill(line, width) for line in title.split("\n")),
                     fontsize=10)
    return fig


def save_explanation(image, heatmap, path: str, title: str | None = None, **kwargs) -> str:
    """``explanation_figure`` (input beside the heatmap overlay, colour bar, title) written as
    a PNG; ``kwargs`` go to ``explanation_figure``. Returns the path."""
    fig = explanation_figure(image, heatmap, title, **kwargs)
    _mkdir(path)
    fig.savefig(path)
    return path


def feature_map_figure(
    maps: Mapping[str, np.ndarray],
    max_channels: int = 8,
    sample: int = 0,
    title: str | None = None,
    layer_types: Mapping[str, str] | None = None,
    classes: Sequence[str] | None = None,
):
    """A matplotlib ``Figure`` with one row per layer: the first ``max_channels`` activation
    maps of ``sample`` as grey images (each scaled to its own min..max), labelled with the layer's name, its type from
    ``layer_types`` (e.g. ``'features.0 Conv2d'``), its shape and how many channels are shown
    (``'8 of 16 channels'``). Non-spatial outputs are drawn as bars; when the last one has
    ``len(classes)`` values it is the class scores and its bars are labelled with ``classes``
    (the top class in orange).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    items = [(k, np.asarray(v)[sample]) for k, v in maps.items()]
    if not items:
        raise ValueError("feature_map_figure: no feature maps given")
    types = layer_types or {}
    n = len(items)
    height = 1.3 * n + 0.9  # inches: a row per layer, room for the title and class names
    fig = Figure(figsize=(1.9 + 1.2 * max_channels, height), dpi=90)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(n, max_channels + 1, width_ratios=[1.6] + [1] * max_channels,
                            left=0.01, right=0.99, top=1 - 0.55 / height, bottom=0.35 / height,
                            hspace=0.35, wspace=0.08)
    for r, (name, a) in enumerate(items):
        kind = types.get(name, types.get(name.split("#")[0], ""))
        is_scores = (r == n - 1 and a.ndim == 1 and classes is not None
                     and len(classes) == a.size)
        if a.ndim == 3:
            shown = min(max_channels, a.shape[0])
            count = (f"all {a.shape[0]} channels" if shown == a.shape[0]
                     else f"{shown} of {a.shape[0]} channels")
        else:
            count = "class scores (logits)" if is_scores else f"{a.size} values"
        label = fig.add_subplot(grid[r, 0])
        label.axis("off")
        label.text(0.0, 0.5, f"{name} {kind}".strip() + f"\n{tuple(a.shape)}\n{count}",
                   fontsize=8, va="center", ha="left", transform=label.transAxes)
        if a.ndim == 3:
            for c in range(shown):
                ax = fig.add_subplot(grid[r, 1 + c])
                ax.imshow(a[c], cmap="gray", interpolation="nearest")
                ax.axis("off")
            continue
        ax = fig.add_subplot(grid[r, 1:])
        v = a.reshape(-1)
        colors = ["tab:blue"] * len(v)
        if is_scores:
            colors[int(v.argmax())] = "tab:orange"
        ax.bar(np.arange(len(v)), v, width=0.8 if is_scores else 1.0, color=colors)
        ax.set_xlim(-0.5, len(v) - 0.5)
        ax.axhline(0, color="0.5", linewidth=0.5)
        ax.tick_params(labelsize=7)
        if is_scores:
            names = [str(c) for c in classes]
            ax.set_xticks(np.arange(len(v)), names, fontsize=8,
                          rotation=0 if max(map(len, names)) <= 3 else 30,
                          ha="center" if max(map(len, names)) <= 3 else "right")
        else:
            ax.set_xticks([])
    if title:
        fig.suptitle(title, fontsize=10, y=1 - 0.15 / height, va="top")
    return fig


def save_feature_maps(maps: Mapping[str, np.ndarray], path: str, **kwargs) -> str:
    """``feature_map_figure`` (one labelled row per layer) written as a PNG; ``kwargs``
    (``max_channels``, ``sample``, ``title``, ``layer_types``, ``classes``) go to it."""
    fig = feature_map_figure(maps, **kwargs)
    _mkdir(path)
    fig.savefig(path)
    return path

"""Classic image filters as convolutions (docs/inside_the_network.md, section 7).

Before filters were learned they were designed: each task has its own kernel. Each named
kernel is applied as a depthwise convolution (one copy of the kernel per channel, the
result of ``F.conv2d(x, w, groups=C)``), i.e. the cross-correlation

    (I * K)(i, j) = sum_m sum_n I(i + m, j + n) K(m, n)

or, with ``flip=True``, the true convolution (kernel rotated by 180 degrees). The two agree
for symmetric kernels (blurs, Laplacian) and differ by a sign for Sobel / Prewitt. A fixed
small kernel is applied by shifted-slice accumulation (``correlate2d``) rather than im2col,
which would copy a photo ``K_h * K_w`` times.

Example::

    >>> from convnet import filters
    >>> edges = filters.apply(gray_image, "sobel_x")          # (H, W) -> (H, W)
"""
from __future__ import annotations

import numpy as np

from .tensor import Tensor

__all__ = ["KERNELS", "kernel", "gaussian_kernel", "apply", "correlate2d", "edge_magnitude",
           "names"]

KERNELS: dict[str, np.ndarray] = {
    # first derivatives: respond to vertical (x) / horizontal (y) edges
    "sobel_x": np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64),
    "sobel_y": np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], dtype=np.float64),
    "prewitt_x": np.array([[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]], dtype=np.float64),
    "prewitt_y": np.array([[-1, -1, -1], [0, 0, 0], [1, 1, 1]], dtype=np.float64),
    # second derivative: edges in every direction, zero on flat and linear ramps
    "laplacian": np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float64),
    "laplacian_diag": np.array([[1, 1, 1], [1, -8, 1], [1, 1, 1]], dtype=np.float64),
    # smoothing: weights sum to 1, so flat regions keep their value
    "box_blur": np.full((3, 3), 1 / 9, dtype=np.float64),
    "gaussian_blur": None,  # filled below from gaussian_kernel(5, 1.0)
    # identity + laplacian of opposite sign: boosts local contrast, sums to 1
    "sharpen": np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=np.float64),
    # directional derivative plus identity: a relief look, sums to 1
    "emboss": np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], dtype=np.float64),
    "identity": np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0]], dtype=np.float64),
}


def gaussian_kernel(size: int = 5, sigma: float = 1.0) -> np.ndarray:
    """Normalised 2-D Gaussian ``exp(-(x^2 + y^2) / (2 sigma^2))`` on a ``size x size`` grid."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"gaussian_kernel: size must be a positive odd int, got {size}")
    if sigma <= 0:
        raise ValueError(f"gaussian_kernel: sigma must be > 0, got {sigma}")
    ax = np.arange(size) - size // 2
    g = np.exp(-(ax ** 2) / (2 * sigma ** 2))
    k = np.outer(g, g)  # separable: the outer product of two 1-D Gaussians
    return k / k.sum()


KERNELS["gaussian_blur"] = gaussian_kernel(5, 1.0)


def names() -> list[str]:
    """The available kernel names."""
    return sorted(KERNELS)


def kernel(name: str) -> np.ndarray:
    """A copy of the named kernel (float64); ``ValueError`` lists the names when unknown."""
    if name not in KERNELS:
        raise ValueError(f"filters: unknown kernel {name!r}; choose one of {', '.join(names())}")
    return KERNELS[name].copy()


def apply(image, kern, flip: bool = False, padding_mode: str = "reflect") -> np.ndarray:
    """Filter ``image`` with a kernel (a name or a 2-D array), keeping its size.

    Shapes: ``(H, W) -> (H, W)``, ``(C, H, W) -> (C, H, W)``, ``(N, C, H, W) -> (N, C, H, W)``;
    every channel is filtered separately. The image is padded by ``K // 2`` on each side with
    ``padding_mode`` (``'reflect'``, ``'replicate'``/``'edge'`` or ``'zeros'``) so borders do
    not darken. The result equals the depthwise ``F.conv2d(x_padded, w, groups=C)`` with ``w``
    of shape ``(C, 1, K_h, K_w)``, computed as the sum of ``K_h * K_w`` shifted, scaled copies
    of each padded plane (see ``correlate2d``): a fixed small kernel needs no im2col, so a
    12-megapixel photo costs about its own size in extra memory. Integer images are converted
    to float64; float32 stays float32.
    """
    k = kernel(kern) if isinstance(kern, str) else np.asarray(kern, dtype=np.float64)
    if k.ndim != 2 or k.shape[0] % 2 == 0 or k.shape[1] % 2 == 0:
        raise ValueError(f"filters.apply: kernel must be 2-D with odd sides, got shape {k.shape}")
    if flip:
        k = k[::-1, ::-1]  # true convolution: the kernel rotated by 180 degrees
    arr = image._data if isinstance(image, Tensor) else np.asarray(image)
    if arr.ndim not in (2, 3, 4):
        raise ValueError(
            f"filters.apply: image must be (H, W), (C, H, W) or (N, C, H, W), got {arr.shape}")
    dtype = arr.dtype if arr.dtype in (np.float32, np.float64) else np.float64
    modes = {"reflect": "reflect", "replicate": "edge", "edge": "edge", "zeros": "constant"}
    if padding_mode not in modes:
        raise ValueError(
            f"filters.apply: padding_mode must be one of {list(modes)}, got {padding_mode!r}")
    ph, pw = k.shape[0] // 2, k.shape[1] // 2
    h, w = arr.shape[-2:]
    if padding_mode == "reflect" and (ph >= h or pw >= w):
        raise ValueError(f"filters.apply: image {(h, w)} too small to reflect-pad by {(ph, pw)}")
    planes = arr.reshape(-1, h, w)
    out = np.empty(planes.shape, dtype=dtype)
    k = k.astype(dtype)
    for p in range(len(planes)):  # one padded plane at a time bounds the extra memory
        xp = np.pad(planes[p].astype(dtype, copy=False), ((ph, ph), (pw, pw)),
                    mode=modes[padding_mode])
        correlate2d(xp, k, out=out[p])
    return out.reshape(arr.shape)


def correlate2d(padded: np.ndarray, k: np.ndarray, out: np.ndarray | None = None,
                tile: int = 1 << 16) -> np.ndarray:
    """Valid cross-correlation of one plane: ``(H + K_h - 1, W + K_w - 1) -> (H, W)``,

        out[i, j] = sum_{m < K_h, n < K_w} k[m, n] * padded[i + m, j + n],

    accumulated as ``K_h * K_w`` shifted slices scaled by one weight each (the same products
    as im2col + GEMM, without the ``K_h * K_w``-times larger column matrix). Rows are done in
    blocks of about ``tile`` outputs so the accumulator and its scratch stay in cache; the
    extra memory is two blocks.
    """
    kh, kw = k.shape
    h, w = padded.shape[0] - kh + 1, padded.shape[1] - kw + 1
    if out is None:
        out = np.empty((h, w), dtype=np.result_type(padded, k))
    rows = max(1, min(h, tile // max(w, 1)))
    scratch = np.empty((rows, w), dtype=out.dtype)
    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        acc, tmp = out[r0:r1], scratch[:r1 - r0]
        acc[...] = 0
        for m in range(kh):
            for n in range(kw):
                np.multiply(padded[r0 + m:r1 + m, n:n + w], k[m, n], out=tmp)
                acc += tmp
    return out


def edge_magnitude(image, operator: str = "sobel", padding_mode: str = "reflect") -> np.ndarray:
    """Gradient magnitude ``sqrt(G_x^2 + G_y^2)`` with the Sobel or Prewitt pair."""
    if operator not in ("sobel", "prewitt"):
        raise ValueError(
            f"filters.edge_magnitude: operator must be 'sobel' or 'prewitt', got {operator!r}")
    gx = apply(image, f"{operator}_x", padding_mode=padding_mode)
    gy = apply(image, f"{operator}_y", padding_mode=padding_mode)
    # in place: a colour photo's responses are hundreds of MB each
    np.multiply(gx, gx, out=gx)
    np.multiply(gy, gy, out=gy)
    gx += gy
    return np.sqrt(gx, out=gx)

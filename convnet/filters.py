"""Classic image filters as convolutions (notes 000, section 2.2).

Before filters were learned they were designed: each task has its own kernel. Each named
kernel here is applied with the framework's own ``F.conv2d`` as a depthwise convolution
(one copy of the kernel per channel, ``groups = C``), i.e. the cross-correlation

    (I * K)(i, j) = sum_m sum_n I(i + m, j + n) K(m, n)

or, with ``flip=True``, the true convolution (kernel rotated by 180 degrees). The two agree
for symmetric kernels (blurs, Laplacian) and differ by a sign for Sobel / Prewitt.

Example::

    >>> from convnet import filters
    >>> edges = filters.apply(gray_image, "sobel_x")          # (H, W) -> (H, W)
"""
from __future__ import annotations

import numpy as np

from .tensor import Tensor

__all__ = ["KERNELS", "kernel", "gaussian_kernel", "apply", "edge_magnitude", "names"]

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
    not darken, then ``F.conv2d(x, w, groups=C)`` with ``w`` of shape ``(C, 1, K_h, K_w)``.
    Integer images are converted to float64; float32 stays float32.
    """
    from . import functional as F

    k = kernel(kern) if isinstance(kern, str) else np.asarray(kern, dtype=np.float64)
    if k.ndim != 2 or k.shape[0] % 2 == 0 or k.shape[1] % 2 == 0:
        raise ValueError(f"filters.apply: kernel must be 2-D with odd sides, got shape {k.shape}")
    if flip:
        k = k[::-1, ::-1]  # true convolution: the kernel rotated by 180 degrees
    arr = image.data if isinstance(image, Tensor) else np.asarray(image)
    if arr.ndim not in (2, 3, 4):
        raise ValueError(
            f"filters.apply: image must be (H, W), (C, H, W) or (N, C, H, W), got {arr.shape}")
    dtype = arr.dtype if arr.dtype in (np.float32, np.float64) else np.float64
    x = arr.astype(dtype, copy=False).reshape((1,) * (4 - arr.ndim) + arr.shape)
    modes = {"reflect": "reflect", "replicate": "edge", "edge": "edge", "zeros": "constant"}
    if padding_mode not in modes:
        raise ValueError(
            f"filters.apply: padding_mode must be one of {list(modes)}, got {padding_mode!r}")
    ph, pw = k.shape[0] // 2, k.shape[1] // 2
    if padding_mode == "reflect" and (ph >= x.shape[2] or pw >= x.shape[3]):
        raise ValueError(f"filters.apply: image {x.shape[2:]} too small to reflect-pad by {(ph, pw)}")
    x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), mode=modes[padding_mode])
    c = x.shape[1]
    w = np.ascontiguousarray(np.broadcast_to(k.astype(dtype), (c, 1, *k.shape)))
    out = F.conv2d(Tensor._make(x), Tensor._make(w), groups=c)
    res = out.data if isinstance(out, Tensor) else np.asarray(out)
    return res.reshape(arr.shape)


def edge_magnitude(image, operator: str = "sobel", padding_mode: str = "reflect") -> np.ndarray:
    """Gradient magnitude ``sqrt(G_x^2 + G_y^2)`` with the Sobel or Prewitt pair."""
    if operator not in ("sobel", "prewitt"):
        raise ValueError(
            f"filters.edge_magnitude: operator must be 'sobel' or 'prewitt', got {operator!r}")
    gx = apply(image, f"{operator}_x", padding_mode=padding_mode)
    gy = apply(image, f"{operator}_y", padding_mode=padding_mode)
    return np.sqrt(gx * gx + gy * gy)

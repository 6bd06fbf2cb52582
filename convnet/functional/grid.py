"""Spatial transformer sampling: ``affine_grid`` and ``grid_sample`` (4-D inputs).

``affine_grid(theta, size)`` maps every output pixel's normalised coordinate
``(x, y, 1)`` through a batch of 2x3 affine matrices; ``grid_sample(input, grid)`` reads
``input`` at those (normalised, ``[-1, 1]``) locations. Together they are the
differentiable warp of a spatial transformer network (Jaderberg et al. 2015): gradients
flow to the image, to the grid and through it to ``theta``.

Coordinates: ``grid[n, h, w] = (x, y)``, ``x`` along the width. A normalised ``x`` becomes
the pixel coordinate ``((x + 1) W - 1) / 2`` (``align_corners=False``: -1 and 1 are the
outer edges of the corner pixels) or ``(x + 1) (W - 1) / 2`` (``align_corners=True``: their
centres). Everything is vectorised over pixels: one gather per bilinear corner forward,
one ``bincount`` scatter backward.
"""
from __future__ import annotations

import numpy as np

from ..autograd.function import Function
from ..tensor import Tensor

__all__ = ["affine_grid", "grid_sample"]

_MODES = ("bilinear", "nearest")
_PADDINGS = ("zeros", "border", "reflection")


# ----------------------------------------------------------------- coordinates
def _clip(x: np.ndarray, size: int):
    """Clamp to ``[0, size - 1]``; derivative 1 strictly inside, 0 where clamped."""
    hi = size - 1
    return np.clip(x, 0, hi), ((x > 0) & (x < hi)).astype(x.dtype)


def _reflect(x: np.ndarray, twice_low: int, twice_high: int):
    """Fold ``x`` into ``[twice_low/2, twice_high/2]`` by mirroring at the ends, with the
    derivative (+1 or -1 by the number of mirrorings)."""
    if twice_low == twice_high:
        return np.zeros_like(x), np.zeros_like(x)
    lo = twice_low / 2
    span = (twice_high - twice_low) / 2
    x = x - lo
    sign = np.where(x < 0, -1.0, 1.0).astype(x.dtype)
    x = np.abs(x)
    extra = np.fmod(x, span)
    even = np.floor(x / span) % 2 == 0
    return np.where(even, extra + lo, span - extra + lo), np.where(even, sign, -sign)


def _source(coord: np.ndarray, size: int, padding_mode: str, align_corners: bool):
    """Normalised coordinate -> pixel coordinate in ``input``, and d(pixel)/d(coord)."""
    if align_corners:
        x = (coord + 1) / 2 * (size - 1)
        d = np.full_like(x, (size - 1) / 2)
    else:
        x = ((coord + 1) * size - 1) / 2
        d = np.full_like(x, size / 2)
    if padding_mode == "border":
        x, g = _clip(x, size)
        d *= g
    elif padding_mode == "reflection":
        x, g = _reflect(x, 0, 2 * (size - 1)) if align_corners else _reflect(x, -1, 2 * size - 1)
        d *= g
        x, g = _clip(x, size)
        d *= g
    return x, d


def _corner(iy: np.ndarray, ix: np.ndarray, H: int, W: int):
    """Flat index ``iy * W + ix`` (0 where outside) and the in-bounds mask, for float
    integer-valued ``iy``/``ix`` (compared as floats first: no overflow for huge values)."""
    valid = (ix >= 0) & (ix <= W - 1) & (iy >= 0) & (iy <= H - 1)
    idx = np.where(valid, iy * W + ix, 0).astype(np.intp)
    return idx, valid


def _gather(inp_flat: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``inp_flat[n, c, idx[n, p]]`` -> ``(N, C, P)``."""
    return np.take_along_axis(inp_flat, idx[:, None, :], axis=2)


def _scatter(vals: np.ndarray, idx: np.ndarray, shape) -> np.ndarray:
    """Sum ``vals (N, C, P)`` into a zero ``(N, C, H*W)`` at ``idx (N, P)`` (the adjoint of
    :func:`_gather`), as one ``bincount``."""
    N, C, HW = shape
    base = (np.arange(N * C).reshape(N, C, 1) * HW)
    flat = (base + idx[:, None, :]).ravel()
    out = np.bincount(flat, weights=vals.ravel(), minlength=N * C * HW)
    return out.reshape(N, C, HW)


# ----------------------------------------------------------------- grid_sample
class _GridSample2d(Function):
    def forward(self, inp, grid, mode, padding_mode, align_corners):
        N, C, H, W = inp.shape
        _, Ho, Wo, _ = grid.shape
        gx = grid[..., 0].reshape(N, -1)
        gy = grid[..., 1].reshape(N, -1)
        ix, dx = _source(gx, W, padding_mode, align_corners)
        iy, dy = _source(gy, H, padding_mode, align_corners)
        flat = inp.reshape(N, C, H * W)
        self.mode, self.in_shape, self.out_hw = mode, inp.shape, (Ho, Wo)
        if mode == "nearest":
            # nearbyint: ties to even, as torch
            idx, valid = _corner(np.rint(iy), np.rint(ix), H, W)
            self.corners = [(idx, valid.astype(inp.dtype))]
            out = _gather(flat, idx) * self.corners[0][1][:, None, :]
            return out.reshape(N, C, Ho, Wo).astype(inp.dtype, copy=False)
        x0, y0 = np.floor(ix), np.floor(iy)
        fx, fy = ix - x0, iy - y0
        corners = []
        out = np.zeros((N, C, ix.shape[1]), dtype=np.result_type(inp, grid))
        for oy in (0, 1):
            wy, dwy = (fy, 1.0) if oy else (1 - fy, -1.0)
            for ox in (0, 1):
                wx, dwx = (fx, 1.0) if ox else (1 - fx, -1.0)
                idx, valid = _corner(y0 + oy, x0 + ox, H, W)
                corners.append((idx, valid * (wy * wx), valid * (dwx * wy), valid * (wx * dwy)))
                out += _gather(flat, idx) * corners[-1][1][:, None, :]
        self.corners, self.dx, self.dy = corners, dx, dy
        if self.needs_grad_grid():
            self.inp = inp
        return out.reshape(N, C, Ho, Wo).astype(inp.dtype, copy=False)

    def needs_grad_grid(self) -> bool:
        need = getattr(self, "needs_input_grad", None)
        return bool(need and need[1])

    def backward(self, g):
        N, C, H, W = self.in_shape
        g = g.reshape(N, C, -1)
        need = self.needs_input_grad
        g_inp = g_grid = None
        if need[0]:
            total = np.zeros((N, C, H * W))
            for c in self.corners:  # c = (index, weight, ...)
                total += _scatter(g * c[1][:, None, :], c[0], (N, C, H * W))
            g_inp = total.reshape(self.in_shape)
        if need[1]:
            Ho, Wo = self.out_hw
            if self.mode == "nearest":
                g_grid = np.zeros((N, Ho, Wo, 2), dtype=g.dtype)
            else:
                flat = self.inp.reshape(N, C, H * W)
                gx = np.zeros(g.shape[::2], dtype=g.dtype)  # (N, P)
                gy = np.zeros_like(gx)
                for idx, _, wdx, wdy in self.corners:
                    s = np.einsum("ncp,ncp->np", g, _gather(flat, idx))  # sum over channels
                    gx += s * wdx
                    gy += s * wdy
                g_grid = np.stack([gx * self.dx, gy * self.dy], axis=-1).reshape(N, Ho, Wo, 2)
        return g_inp, g_grid, None, None, None


def grid_sample(input: Tensor, grid: Tensor, mode: str = "bilinear",
                padding_mode: str = "zeros", align_corners: bool | None = None) -> Tensor:
    """Sample ``input (N, C, H, W)`` at ``grid (N, H_out, W_out, 2)`` -> ``(N, C, H_out, W_out)``.

    ``grid[n, h, w] = (x, y)`` in ``[-1, 1]`` (x along the width). ``mode``: ``'bilinear'``
    (weights ``(1 - fx)(1 - fy), fx (1 - fy), (1 - fx) fy, fx fy`` on the four neighbours)
    or ``'nearest'`` (ties to even). ``padding_mode`` for locations outside the image:
    ``'zeros'`` (outside pixels read as 0), ``'border'`` (clamped to the edge) or
    ``'reflection'`` (mirrored at the edges). ``align_corners`` (default False) as in
    :func:`affine_grid`. Differentiable w.r.t. ``input`` and ``grid`` (the grid's gradient
    is zero for ``'nearest'``).

    Example::

        >>> theta = cn.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])   # identity
        >>> x = cn.randn(1, 3, 8, 8)
        >>> y = F.grid_sample(x, F.affine_grid(theta, x.shape))       # y equals x
    """
    op = "grid_sample"
    for name, t in (("input", input), ("grid", grid)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: {name} must be a Tensor, got {type(t).__name__}")
    if mode not in _MODES:
        if mode == "bicubic":
            raise NotImplementedError(f"{op}: mode 'bicubic' is not supported yet "
                                      "(use 'bilinear' or 'nearest')")
        raise ValueError(f"nn.functional.grid_sample(): expected mode to be 'bilinear', "
                         f"'nearest' or 'bicubic', but got: '{mode}'")
    if padding_mode not in _PADDINGS:
        raise ValueError(f"nn.functional.grid_sample(): expected padding_mode to be 'zeros', "
                         f"'border', or 'reflection', but got: '{padding_mode}'")
    if input.ndim == 5:
        raise NotImplementedError(f"{op}: 5-D (volumetric) input is not supported yet, "
                                  f"got shape {input.shape}")
    if input.ndim != 4:
        raise RuntimeError(f"{op}: expected a 4-D input (N, C, H, W), got shape {input.shape}")
    if grid.ndim != 4 or grid.shape[-1] != 2:
        raise RuntimeError(f"{op}: expected grid of shape (N, H_out, W_out, 2) for a 4-D "
                           f"input, got shape {grid.shape}")
    if grid.shape[0] != input.shape[0]:
        raise RuntimeError(f"{op}: expected grid and input to have same batch size, but got "
                           f"input with sizes {input.shape} and grid with sizes {grid.shape}")
    if input.dtype != grid.dtype:
        raise RuntimeError(f"{op}: expected input and grid to have same dtype, but input has "
                           f"{input.dtype} and grid has {grid.dtype}")
    if input.dtype.kind != "f":
        raise TypeError(f"{op}: input must be floating point, got {input.dtype}")
    if 0 in input.shape[2:]:
        raise RuntimeError(f"{op}: expected input to have non-empty spatial dimensions, "
                           f"got shape {input.shape}")
    return _GridSample2d.apply(input, grid, mode, padding_mode, bool(align_corners))


# ----------------------------------------------------------------- affine_grid
def _linspace(n: int, align_corners: bool) -> np.ndarray:
    """Normalised pixel coordinates along one axis: centres of ``n`` pixels in [-1, 1]."""
    if n <= 1:
        return np.zeros(n)
    r = np.linspace(-1.0, 1.0, n)
    return r if align_corners else r * (n - 1) / n


class _AffineGrid2d(Function):
    def forward(self, theta, H, W, align_corners):
        xs, ys = _linspace(W, align_corners), _linspace(H, align_corners)
        base = np.empty((H, W, 3), dtype=theta.dtype)
        base[..., 0] = xs[None, :]
        base[..., 1] = ys[:, None]
        base[..., 2] = 1
        self.base = base
        # grid[n, h, w, i] = sum_j base[h, w, j] theta[n, i, j]
        return np.einsum("hwj,nij->nhwi", base, theta)

    def backward(self, g):
        # d grid / d theta[n, i, j] = base[h, w, j]
        return np.einsum("nhwi,hwj->nij", g, self.base), None, None, None


def affine_grid(theta: Tensor, size, align_corners: bool | None = None) -> Tensor:
    """Sampling grid ``(N, H, W, 2)`` for ``grid_sample`` from affine matrices
    ``theta (N, 2, 3)`` and the output ``size = (N, C, H, W)``.

    ``grid[n, h, w] = theta[n] @ (x_w, y_h, 1)`` where ``x_w``/``y_h`` are the normalised
    centres of output pixel column ``w`` / row ``h``: ``linspace(-1, 1, W)``, scaled by
    ``(W - 1) / W`` when ``align_corners=False`` (the default). Differentiable w.r.t.
    ``theta``.
    """
    op = "affine_grid"
    if not isinstance(theta, Tensor):
        raise TypeError(f"{op}: theta must be a Tensor, got {type(theta).__name__}")
    if theta.dtype.kind != "f":
        raise ValueError(f"{op}: expected theta to have floating point type, but got {theta.dtype}")
    size = tuple(int(s) for s in size)
    if len(size) == 5:
        raise NotImplementedError(f"{op}: 5-D sizes (volumetric grids) are not supported yet")
    if len(size) != 4:
        raise ValueError(f"{op}: only 4-D sizes (N, C, H, W) are supported, got size {size}")
    if theta.ndim != 3 or theta.shape[1:] != (2, 3):
        raise ValueError(f"{op}: expected a batch of 2D affine matrices of shape Nx2x3 for "
                         f"size {size}, got theta of shape {theta.shape}")
    if theta.shape[0] != size[0]:
        raise ValueError(f"{op}: theta has batch size {theta.shape[0]} but size has {size[0]}")
    if min(size) <= 0:
        raise ValueError(f"{op}: expected non-zero, positive output size, got {size}")
    return _AffineGrid2d.apply(theta, size[2], size[3], bool(align_corners))

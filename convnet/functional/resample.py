"""Upsampling: interpolation, max unpooling, and bed-of-nails / nearest unpooling.

* :func:`interpolate` resizes ``(N, C, *L)`` by nearest, (bi/tri)linear, bicubic or area
  sampling, separably per axis (each axis is a small dense interpolation matrix).
* :func:`max_unpool2d` puts every value back at the position max pooling took it from
  (``return_indices=True``), zeros elsewhere.
* :func:`unpool2d` fills each ``k``-block with the value (``'nearest'``) or puts it in the
  block's first cell only (``'bed_of_nails'``).
"""
from __future__ import annotations

import math

import numpy as np

from ..autograd.function import Function
from ..kernels import resample as R
from ..kernels.shapes import ntuple
from ..tensor import Tensor
from .pooling import _AxisMaps, _adaptive_avg, _batched, _unbatch

__all__ = [
    "interpolate", "upsample", "upsample_nearest", "upsample_bilinear",
    "max_unpool1d", "max_unpool2d", "max_unpool3d",
    "unpool1d", "unpool2d", "unpool3d",
]

_MODES = ("nearest", "nearest-exact", "linear", "bilinear", "bicubic", "trilinear", "area")
_LINEAR_DIMS = {"linear": 1, "bilinear": 2, "bicubic": 2, "trilinear": 3}


def interpolate(input: Tensor, size=None, scale_factor=None, mode: str = "nearest",
                align_corners: bool | None = None,
                recompute_scale_factor: bool | None = None, antialias: bool = False) -> Tensor:
    """Resize ``(N, C, *L) -> (N, C, *L')`` with ``L' = size`` or ``floor(L * scale_factor)``.

    Modes: ``'nearest'`` (``src = floor(dst * L / L')``), ``'nearest-exact'``, ``'linear'``
    (3-D input), ``'bilinear'`` / ``'bicubic'`` (4-D), ``'trilinear'`` (5-D) and ``'area'``
    (adaptive average pooling). For the linear modes the source coordinate is
    ``(dst + 0.5) * scale - 0.5`` or, with ``align_corners=True``,
    ``dst * (L - 1) / (L' - 1)`` (corner pixels aligned). Bicubic uses Keys' cubic
    convolution with ``A = -0.75``. Results match ``torch.nn.functional.interpolate``.
    """
    op = "interpolate"
    if antialias:
        raise NotImplementedError(f"{op}: antialias=True is not supported")
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(input).__name__}")
    if mode not in _MODES:
        raise ValueError(f"{op}: mode must be one of {_MODES}, got {mode!r}")
    if input.ndim < 3 or input.ndim > 5:
        raise ValueError(f"{op}: expected a 3-D, 4-D or 5-D input (N, C, *spatial), "
                         f"got shape {input.shape}")
    if input.dtype.kind != "f":
        raise TypeError(f"{op}: input must be floating point, got {input.dtype}")
    nd = input.ndim - 2
    if mode in _LINEAR_DIMS and _LINEAR_DIMS[mode] != nd:
        raise ValueError(f"{op}: mode {mode!r} needs a {_LINEAR_DIMS[mode] + 2}-D input, "
                         f"got shape {input.shape}")
    linear = mode in _LINEAR_DIMS
    if align_corners is not None and not linear:
        raise ValueError(f"{op}: align_corners can only be set with the linear/bicubic modes, "
                         f"not {mode!r}")
    align = bool(align_corners)
    if (size is None) == (scale_factor is None):
        raise ValueError(f"{op}: give exactly one of size or scale_factor")
    spatial = input.shape[2:]
    if size is not None:
        outs = ntuple(size, nd, "size", op)
        scales = (None,) * nd
    else:
        if isinstance(scale_factor, (list, tuple)):
            if len(scale_factor) != nd:
                raise ValueError(f"{op}: scale_factor must have {nd} entries, got {scale_factor}")
            scales = tuple(float(s) for s in scale_factor)
        else:
            scales = (float(scale_factor),) * nd
        if any(s <= 0 for s in scales):
            raise ValueError(f"{op}: scale_factor must be positive, got {scale_factor}")
        outs = tuple(int(math.floor(n * s)) for n, s in zip(spatial, scales))
        if recompute_scale_factor:
            scales = (None,) * nd
    if any(o < 1 for o in outs):
        raise ValueError(f"{op}: output size {outs} must be positive (input {spatial})")
    if mode == "area":
        return _adaptive_avg(op, nd, input, outs)
    if mode in ("nearest", "nearest-exact"):
        # an integer factor that picks src = dst // k is a block copy (no matrix product)
        ks = tuple(o // n for n, o in zip(spatial, outs))
        if all(o == n * k and np.array_equal(R.nearest_source(n, o, s, mode != "nearest"),
                                             np.arange(o) // k)
               for n, o, k, s in zip(spatial, outs, ks, scales)):
            return _BlockUnpool.apply(input, ks, "nearest")
    mats = []
    for n, o, s in zip(spatial, outs, scales):
        if mode in ("nearest", "nearest-exact"):
            m = R.nearest_matrix(n, o, s, mode == "nearest-exact", input.dtype)
        elif mode == "bicubic":
            m = R.cubic_matrix(n, o, align, s, input.dtype)
        else:
            m = R.linear_matrix(n, o, align, s, input.dtype)
        # an identity map along an axis is skipped (n == o with unit scale)
        mats.append(None if n == o and s in (None, 1.0) and np.array_equal(m, np.eye(n)) else m)
    return _AxisMaps.apply(input, mats)


def upsample(input: Tensor, size=None, scale_factor=None, mode: str = "nearest",
             align_corners: bool | None = None) -> Tensor:
    """Alias of :func:`interpolate` (PyTorch's deprecated name)."""
    return interpolate(input, size, scale_factor, mode, align_corners)


def upsample_nearest(input: Tensor, size=None, scale_factor=None) -> Tensor:
    """Nearest-neighbour :func:`interpolate` (PyTorch's deprecated name)."""
    return interpolate(input, size, scale_factor, "nearest")


def upsample_bilinear(input: Tensor, size=None, scale_factor=None) -> Tensor:
    """Bilinear :func:`interpolate` with ``align_corners=True`` (as PyTorch's alias)."""
    return interpolate(input, size, scale_factor, "bilinear", align_corners=True)


# --------------------------------------------------------------------------- max unpool
class _MaxUnpool(Function):
    def forward(self, x, idx, out_spatial):
        self.idx = idx
        return R.max_unpool_forward(x, idx, out_spatial)

    def backward(self, g):
        return R.max_unpool_backward(g, self.idx), None


def _max_unpool(op, nd, input, indices, kernel_size, stride, padding, output_size):
    x, squeeze = _batched(input, nd, op)
    if not isinstance(indices, Tensor) or indices.dtype.kind not in "iu":
        raise TypeError(f"{op}: indices must be an integer Tensor (from max_pool with "
                        f"return_indices=True)")
    idx = indices._data if indices.ndim == x.ndim else indices._data[None]
    if idx.shape != x.shape:
        raise ValueError(f"{op}: indices shape {tuple(indices.shape)} does not match input "
                         f"shape {tuple(input.shape)}")
    ks = ntuple(kernel_size, nd, "kernel_size", op)
    ss = ks if stride is None else ntuple(stride, nd, "stride", op)
    ps = ntuple(padding, nd, "padding", op)
    default = tuple((n - 1) * s - 2 * p + k for n, s, p, k in zip(x.shape[2:], ss, ps, ks))
    if output_size is None:
        outs = default
    else:
        outs = tuple(int(o) for o in output_size)
        if len(outs) == nd + 2 or len(outs) == nd + 1:
            outs = outs[len(outs) - nd:]
        if len(outs) != nd:
            raise ValueError(f"{op}: output_size must have {nd} spatial entries, got "
                             f"{tuple(output_size)}")
        for o, d, s in zip(outs, default, ss):
            if not d - s < o < d + s:
                raise ValueError(f"{op}: output_size {outs} must be within one stride of the "
                                 f"default size {default}")
    if any(o < 1 for o in outs):
        raise ValueError(f"{op}: output size {outs} is not positive")
    plane = math.prod(outs)
    if idx.size and (idx.min() < 0 or idx.max() >= plane):
        raise ValueError(f"{op}: indices must lie in [0, {plane}) for output size {outs}, "
                         f"found [{idx.min()}, {idx.max()}]")
    return _unbatch(_MaxUnpool.apply(x, np.ascontiguousarray(idx, dtype=np.int64), outs),
                    squeeze)


def max_unpool1d(input: Tensor, indices: Tensor, kernel_size, stride=None, padding=0,
                 output_size=None) -> Tensor:
    """Inverse of max_pool1d: ``(N, C, L) -> (N, C, (L - 1) s - 2 p + k)``."""
    return _max_unpool("max_unpool1d", 1, input, indices, kernel_size, stride, padding,
                       output_size)


def max_unpool2d(input: Tensor, indices: Tensor, kernel_size, stride=None, padding=0,
                 output_size=None) -> Tensor:
    """Max unpooling: ``out.view(N, C, -1)[n, c, indices[n, c, j]] = input[n, c, j]``, zeros
    elsewhere; ``(N, C, H, W) -> (N, C, H_out, W_out)`` with
    ``H_out = (H - 1) s - 2 p + k`` unless ``output_size`` says otherwise."""
    return _max_unpool("max_unpool2d", 2, input, indices, kernel_size, stride, padding,
                       output_size)


def max_unpool3d(input: Tensor, indices: Tensor, kernel_size, stride=None, padding=0,
                 output_size=None) -> Tensor:
    """Inverse of max_pool3d over ``(N, C, D, H, W)``."""
    return _max_unpool("max_unpool3d", 3, input, indices, kernel_size, stride, padding,
                       output_size)


# -------------------------------------------------------------- bed of nails / nearest
class _BlockUnpool(Function):
    def forward(self, x, ks, mode):
        self.ks, self.mode = ks, mode
        return R.block_unpool_forward(x, ks, mode)

    def backward(self, g):
        return R.block_unpool_backward(g, self.ks, self.mode)


def _unpool(op, nd, input, kernel_size, mode):
    if mode not in ("bed_of_nails", "nearest"):
        raise ValueError(f"{op}: mode must be 'bed_of_nails' or 'nearest', got {mode!r}")
    x, squeeze = _batched(input, nd, op)
    ks = ntuple(kernel_size, nd, "kernel_size", op)
    if any(k < 1 for k in ks):
        raise ValueError(f"{op}: kernel_size must be >= 1, got {ks}")
    return _unbatch(_BlockUnpool.apply(x, ks, mode), squeeze)


def unpool1d(input: Tensor, kernel_size, mode: str = "bed_of_nails") -> Tensor:
    """Block unpooling ``(N, C, L) -> (N, C, L k)``; see :func:`unpool2d`."""
    return _unpool("unpool1d", 1, input, kernel_size, mode)


def unpool2d(input: Tensor, kernel_size, mode: str = "bed_of_nails") -> Tensor:
    """Fixed-rule unpooling ``(N, C, H, W) -> (N, C, H k_h, W k_w)``.

    ``'bed_of_nails'``: each value goes to the top-left cell of its ``k_h x k_w`` block, the
    rest are zero. ``'nearest'``: the value fills the whole block (nearest-neighbour
    upsampling by an integer factor).
    """
    return _unpool("unpool2d", 2, input, kernel_size, mode)


def unpool3d(input: Tensor, kernel_size, mode: str = "bed_of_nails") -> Tensor:
    """Block unpooling ``(N, C, D, H, W) -> (N, C, D k_d, H k_h, W k_w)``."""
    return _unpool("unpool3d", 3, input, kernel_size, mode)

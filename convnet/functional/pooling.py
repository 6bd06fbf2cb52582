"""Pooling: a sliding-window summary statistic per channel (no mixing of channels).

Max, min, average, Lp-norm and weighted-sum pooling over 1, 2 or 3 spatial dims, their
adaptive (fixed output size) and global forms. Inputs are ``(N, C, *L)`` or unbatched
``(C, *L)``; the output keeps ``C``. Per spatial dim the output length is

    L' = floor((L + 2 p - d (k - 1) - 1) / s) + 1        (ceil instead of floor with
                                                          ``ceil_mode``; a last window that
                                                          would start in the right padding
                                                          is dropped)

Max pooling is locally invariant to small translations: shifting the input inside a window
leaves that window's maximum unchanged.
"""
from __future__ import annotations

import math

import numpy as np

from ..autograd.function import Function
from .. import backends
from ..kernels import pool as K
from ..kernels import resample as R
from ..kernels.shapes import ntuple
from ..tensor import Tensor

__all__ = [
    "max_pool1d", "max_pool2d", "max_pool3d", "min_pool1d", "min_pool2d", "min_pool3d",
    "avg_pool1d", "avg_pool2d", "avg_pool3d", "lp_pool1d", "lp_pool2d", "lp_pool3d",
    "weighted_pool1d", "weighted_pool2d", "weighted_pool3d",
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
    "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
    "global_avg_pool", "global_max_pool",
]


# ------------------------------------------------------------------------------ checks
def _batched(input: Tensor, nd: int, op: str) -> tuple[Tensor, bool]:
    """Accept ``(N, C, *L)`` or unbatched ``(C, *L)``; return a batched view and a flag."""
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(input).__name__}")
    if input.ndim not in (nd + 1, nd + 2):
        names = "(N, C, " + ", ".join("DHW"[3 - nd:]) + ")" if nd > 1 else "(N, C, L)"
        raise ValueError(
            f"{op}: expected a {nd + 2}-D input {names} or an unbatched {nd + 1}-D one, "
            f"got shape {input.shape}"
        )
    if input.dtype.kind != "f":
        raise TypeError(f"{op}: input must be floating point, got {input.dtype}")
    if input.ndim == nd + 1:
        return input.unsqueeze(0), True
    return input, False


def _window_args(op: str, nd: int, kernel_size, stride, padding, dilation):
    ks = ntuple(kernel_size, nd, "kernel_size", op)
    ss = ks if stride is None or (isinstance(stride, (list, tuple)) and len(stride) == 0) \
        else ntuple(stride, nd, "stride", op)
    ps = ntuple(padding, nd, "padding", op)
    ds = ntuple(dilation, nd, "dilation", op)
    for name, vals, low in (("kernel_size", ks, 1), ("stride", ss, 1), ("dilation", ds, 1),
                            ("padding", ps, 0)):
        if any(v < low for v in vals):
            raise ValueError(f"{op}: {name} must be >= {low}, got {vals}")
    for k, p in zip(ks, ps):
        if p > k // 2:  # PyTorch's rule (on the kernel size, whatever the dilation)
            raise ValueError(
                f"{op}: padding should be at most half of the kernel size, got "
                f"padding={ps}, kernel_size={ks}"
            )
    return ks, ss, ps, ds


def _check_output(op: str, x: Tensor, outs) -> None:
    if any(o < 1 for o in outs):
        raise ValueError(
            f"{op}: kernel is larger than the padded input: input size {tuple(x.shape[2:])} "
            f"gives output size {tuple(outs)}"
        )


def _unbatch(out, squeeze: bool):
    if not squeeze:
        return out
    if isinstance(out, tuple):
        return tuple(o.squeeze(0) for o in out)
    return out.squeeze(0)


def _recording(fn: Function) -> bool:
    return getattr(fn, "needs_input_grad", None) is not None


# --------------------------------------------------------------------------- max / min
class _MaxPool(Function):
    """Max (or min) pooling; backward scatters through the winning kernel offsets."""

    non_differentiable_outputs = (1,)

    def forward(self, x, ks, ss, ps, ds, ceil_mode, return_indices, use_min):
        want = return_indices or _recording(self)
        out, arg = backends.get().max_pool_forward(x, ks, ss, ps, ds, ceil_mode, want, use_min)
        if _recording(self):
            self.arg, self.in_shape, self.cfg = arg, x.shape, (ks, ss, ps, ds)
        if return_indices:
            return out, K.offsets_to_flat_indices(arg, x.shape[2:], ks, ss, ps, ds)
        return out

    def backward(self, g, *_):
        ks, ss, ps, ds = self.cfg
        return backends.get().max_pool_backward(g, self.arg, self.in_shape, ks, ss, ps, ds)


def _max_pool(op, nd, input, kernel_size, stride, padding, dilation, ceil_mode,
              return_indices, use_min=False):
    x, squeeze = _batched(input, nd, op)
    ks, ss, ps, ds = _window_args(op, nd, kernel_size, stride, padding, dilation)
    _check_output(op, x, K.pool_output_shape(x.shape[2:], ks, ss, ps, ds, ceil_mode))
    out = _MaxPool.apply(x, ks, ss, ps, ds, bool(ceil_mode), bool(return_indices), use_min)
    return _unbatch(out, squeeze)


def max_pool1d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1,
               ceil_mode: bool = False, return_indices: bool = False):
    """Max over sliding windows ``(N, C, L) -> (N, C, L')``; with ``return_indices`` also
    the flat per-plane argmax (int64), as :func:`max_unpool1d` expects."""
    return _max_pool("max_pool1d", 1, input, kernel_size, stride, padding, dilation,
                     ceil_mode, return_indices)


def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1,
               ceil_mode: bool = False, return_indices: bool = False):
    """Max over sliding windows ``(N, C, H, W) -> (N, C, H', W')``.

    ``out[n, c, i, j] = max_{a, b} x[n, c, i s_h + a d_h - p_h, j s_w + b d_w - p_w]``
    (padding never wins). ``stride`` defaults to ``kernel_size``. Indices (with
    ``return_indices``) are flat per plane: ``h * W + w``.

    Example: ``F.max_pool2d(x, 2)`` halves H and W.
    """
    return _max_pool("max_pool2d", 2, input, kernel_size, stride, padding, dilation,
                     ceil_mode, return_indices)


def max_pool3d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1,
               ceil_mode: bool = False, return_indices: bool = False):
    """Max over sliding windows ``(N, C, D, H, W) -> (N, C, D', H', W')``."""
    return _max_pool("max_pool3d", 3, input, kernel_size, stride, padding, dilation,
                     ceil_mode, return_indices)


def min_pool1d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1,
               ceil_mode: bool = False, return_indices: bool = False):
    """Minimum over sliding windows ``(N, C, L) -> (N, C, L')`` (the minimum as the
    window's summary statistic); arguments as :func:`max_pool1d`, padding never wins."""
    return _max_pool("min_pool1d", 1, input, kernel_size, stride, padding, dilation,
                     ceil_mode, return_indices, use_min=True)


def min_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1,
               ceil_mode: bool = False, return_indices: bool = False):
    """Minimum over sliding windows ``(N, C, H, W) -> (N, C, H', W')``; equals
    ``-max_pool2d(-x)`` but in one pass."""
    return _max_pool("min_pool2d", 2, input, kernel_size, stride, padding, dilation,
                     ceil_mode, return_indices, use_min=True)


def min_pool3d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1,
               ceil_mode: bool = False, return_indices: bool = False):
    """Minimum over sliding windows ``(N, C, D, H, W) -> (N, C, D', H', W')``."""
    return _max_pool("min_pool3d", 3, input, kernel_size, stride, padding, dilation,
                     ceil_mode, return_indices, use_min=True)


# ------------------------------------------------------------------------------ average
class _AvgPool(Function):
    def forward(self, x, ks, ss, ps, ceil_mode, count_include_pad, divisor_override):
        out, div = backends.get().avg_pool_forward(x, ks, ss, ps, ceil_mode, count_include_pad,
                                      divisor_override)
        self.div, self.in_shape, self.cfg = div, x.shape, (ks, ss, ps)
        return out

    def backward(self, g):
        ks, ss, ps = self.cfg
        return backends.get().avg_pool_backward(g, self.div, self.in_shape, ks, ss, ps)


def _avg_pool(op, nd, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
              divisor_override):
    x, squeeze = _batched(input, nd, op)
    ks, ss, ps, _ = _window_args(op, nd, kernel_size, stride, padding, 1)
    if divisor_override is not None and divisor_override == 0:
        raise ValueError(f"{op}: divisor_override must be non-zero")
    _check_output(op, x, K.pool_output_shape(x.shape[2:], ks, ss, ps, (1,) * nd, ceil_mode))
    out = _AvgPool.apply(x, ks, ss, ps, bool(ceil_mode), bool(count_include_pad),
                         divisor_override)
    return _unbatch(out, squeeze)


def avg_pool1d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True):
    """Mean over sliding windows ``(N, C, L) -> (N, C, L')``."""
    return _avg_pool("avg_pool1d", 1, input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, None)


def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None):
    """Mean over sliding windows ``(N, C, H, W) -> (N, C, H', W')``.

    The window sum is divided by ``divisor_override`` if given, else by the number of taps
    inside the ``p``-padded input (``count_include_pad=True``) or inside the input only.
    """
    return _avg_pool("avg_pool2d", 2, input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, divisor_override)


def avg_pool3d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None):
    """Mean over sliding windows ``(N, C, D, H, W) -> (N, C, D', H', W')``."""
    return _avg_pool("avg_pool3d", 3, input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, divisor_override)


# ---------------------------------------------------------------------------- Lp pooling
def _lp_pool(op, nd, input, norm_type, kernel_size, stride, ceil_mode):
    if not norm_type or norm_type <= 0:
        raise ValueError(f"{op}: norm_type must be positive, got {norm_type}")
    ks = ntuple(kernel_size, nd, "kernel_size", op)
    x, squeeze = _batched(input, nd, op)
    out = _avg_pool(op, nd, x.pow(norm_type), ks, stride, 0, ceil_mode, True, None)
    # PyTorch scales the mean by the full window size, also for clipped ceil_mode windows
    return _unbatch((out * float(math.prod(ks))).pow(1.0 / norm_type), squeeze)


def lp_pool1d(input: Tensor, norm_type: float, kernel_size, stride=None,
              ceil_mode: bool = False) -> Tensor:
    """Power-average pooling ``(sum_window x^p)^(1/p)``, ``(N, C, L) -> (N, C, L')``."""
    return _lp_pool("lp_pool1d", 1, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool2d(input: Tensor, norm_type: float, kernel_size, stride=None,
              ceil_mode: bool = False) -> Tensor:
    """Lp-norm pooling ``(sum_window x^p)^(1/p)``, ``(N, C, H, W) -> (N, C, H', W')``;
    ``norm_type=2`` is L2 pooling, large ``p`` approaches max pooling."""
    return _lp_pool("lp_pool2d", 2, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool3d(input: Tensor, norm_type: float, kernel_size, stride=None,
              ceil_mode: bool = False) -> Tensor:
    """Lp-norm pooling over ``(N, C, D, H, W)``."""
    return _lp_pool("lp_pool3d", 3, input, norm_type, kernel_size, stride, ceil_mode)


# ----------------------------------------------------------------- weighted-sum pooling
class _WeightedPool(Function):
    def forward(self, x, w, ss, ps, ds):
        self.x, self.w, self.cfg = x, w, (ss, ps, ds)
        return K.weighted_pool_forward(x, w, ss, ps, ds)

    def backward(self, g):
        ss, ps, ds = self.cfg
        nx, nw = self.needs_input_grad[:2]
        ks = self.w.shape[1:]
        gx = K.window_sum_backward(g, self.x.shape, ks, ss, ps, ds,
                                   self.w.reshape(self.w.shape[0], -1)) if nx else None
        gw = K.weighted_pool_weight_grad(g, self.x, self.w.shape, ss, ps, ds) if nw else None
        return gx, gw


def _weighted_pool(op, nd, input, weight, stride, padding, dilation):
    x, squeeze = _batched(input, nd, op)
    if not isinstance(weight, Tensor) or weight.ndim != nd + 1:
        raise ValueError(
            f"{op}: weight must be a Tensor of shape (C, {', '.join(['k'] * nd)}), got "
            f"{getattr(weight, 'shape', type(weight).__name__)}"
        )
    if weight.shape[0] != x.shape[1]:
        raise ValueError(
            f"{op}: input has {x.shape[1]} channels but weight {weight.shape} has "
            f"{weight.shape[0]}"
        )
    if weight.dtype != x.dtype:
        raise TypeError(f"{op}: input dtype {x.dtype} differs from weight dtype {weight.dtype}")
    ks, ss, ps, ds = _window_args(op, nd, weight.shape[1:], stride, padding, dilation)
    _check_output(op, x, K.pool_output_shape(x.shape[2:], ks, ss, ps, ds, False))
    return _unbatch(_WeightedPool.apply(x, weight, ss, ps, ds), squeeze)


def weighted_pool1d(input: Tensor, weight: Tensor, stride=None, padding=0,
                    dilation=1) -> Tensor:
    """Weighted-sum pooling ``(N, C, L) -> (N, C, L')`` with per-channel window weights
    ``weight`` of shape ``(C, k)``; see :func:`weighted_pool2d`."""
    return _weighted_pool("weighted_pool1d", 1, input, weight, stride, padding, dilation)


def weighted_pool2d(input: Tensor, weight: Tensor, stride=None, padding=0,
                    dilation=1) -> Tensor:
    """Weighted-sum pooling with per-channel window weights, ``(N, C, H, W) -> (N, C, H', W')``.

    ``out[n,c,i,j] = sum_{a,b} weight[c,a,b] x[n,c, i s + a d - p, j s + b d - p]`` with
    zero padding; ``weight`` is ``(C, k_h, k_w)`` and the stride defaults to the window size.
    Uniform weights ``1/(k_h k_w)`` give average pooling; a learned weight is a depthwise
    filter without bias. Channels never mix.
    """
    return _weighted_pool("weighted_pool2d", 2, input, weight, stride, padding, dilation)


def weighted_pool3d(input: Tensor, weight: Tensor, stride=None, padding=0,
                    dilation=1) -> Tensor:
    """Weighted-sum pooling over ``(N, C, D, H, W)`` with ``weight`` ``(C, k_d, k_h, k_w)``."""
    return _weighted_pool("weighted_pool3d", 3, input, weight, stride, padding, dilation)


# ------------------------------------------------------------------------------ adaptive
class _AxisMaps(Function):
    """``y = x`` times a dense ``(L_in, L_out)`` matrix along each spatial axis."""

    def forward(self, x, mats):
        self.mats = mats
        y = R.apply_axis_maps(x, mats)
        return y.copy() if y is x else y

    def backward(self, g):
        return R.apply_axis_maps(g, self.mats, transpose=True)


class _GlobalAvg(Function):
    """Mean over all spatial dims, ``(N, C, *L) -> (N, C, 1, ..., 1)`` (the backend's
    ``global_avg_pool_forward/_backward``)."""

    def forward(self, x):
        self.shape = x.shape
        return backends.get().global_avg_pool_forward(x)

    def backward(self, g):
        return backends.get().global_avg_pool_backward(g, self.shape)


class _GatherMax(Function):
    """Max at precomputed flat per-plane indices (adaptive max pooling)."""

    non_differentiable_outputs = (1,)

    def forward(self, x, outs, return_indices):
        n, c = x.shape[:2]
        if all(o == 1 for o in outs):
            flat = x.reshape(n, c, -1)
            idx = flat.argmax(axis=2)[..., None]
            out = np.take_along_axis(flat, idx, axis=2)
            out, idx = (a.reshape((n, c) + (1,) * len(outs)) for a in (out, idx))
        else:
            out, idx = R.adaptive_max_forward(x, outs)
        self.idx, self.in_shape = idx, x.shape
        return (out, idx) if return_indices else out

    def backward(self, g, *_):
        return R.scatter_flat(g, self.idx, self.in_shape)


def _adaptive_sizes(op, nd, x: Tensor, output_size):
    if output_size is None:
        raise ValueError(f"{op}: output_size is required")
    if isinstance(output_size, (list, tuple)):
        if len(output_size) == 1:
            output_size = tuple(output_size) * nd
        if len(output_size) != nd:
            raise ValueError(f"{op}: output_size must have {nd} entries, got {output_size}")
        outs = tuple(x.shape[2 + i] if o is None else int(o) for i, o in enumerate(output_size))
    else:
        outs = (int(output_size),) * nd
    if any(o < 0 for o in outs):
        raise ValueError(f"{op}: output_size must be non-negative, got {outs}")
    if any(n == 0 for n in x.shape[2:]):
        raise ValueError(f"{op}: input has an empty spatial dim, shape {x.shape}")
    return outs


def _adaptive_avg(op, nd, input, output_size):
    x, squeeze = _batched(input, nd, op)
    outs = _adaptive_sizes(op, nd, x, output_size)
    spatial = x.shape[2:]
    if all(o == 1 for o in outs):
        out = _GlobalAvg.apply(x)
    elif all(o > 0 and n % o == 0 for n, o in zip(spatial, outs)):
        ks = tuple(n // o for n, o in zip(spatial, outs))  # equal windows: plain avg pooling
        out = _AvgPool.apply(x, ks, ks, (0,) * nd, False, True, None)
    else:
        mats = [None if n == o else R.adaptive_avg_matrix(n, o, x.dtype)
                for n, o in zip(spatial, outs)]
        out = _AxisMaps.apply(x, mats)
    return _unbatch(out, squeeze)


def _adaptive_max(op, nd, input, output_size, return_indices):
    x, squeeze = _batched(input, nd, op)
    outs = _adaptive_sizes(op, nd, x, output_size)
    spatial = x.shape[2:]
    if not all(o == 1 for o in outs) and all(o > 0 and n % o == 0
                                             for n, o in zip(spatial, outs)):
        ks = tuple(n // o for n, o in zip(spatial, outs))
        out = _MaxPool.apply(x, ks, ks, (0,) * nd, (1,) * nd, False, bool(return_indices),
                             False)
    elif any(o == 0 for o in outs):
        shape = x.shape[:2] + outs
        out = Tensor._make(np.zeros(shape, dtype=x.dtype))
        if return_indices:
            out = (out, Tensor._make(np.zeros(shape, dtype=np.int64)))
    else:
        out = _GatherMax.apply(x, outs, bool(return_indices))
    return _unbatch(out, squeeze)


def adaptive_avg_pool1d(input: Tensor, output_size) -> Tensor:
    """Average over ``L'`` windows that tile ``(N, C, L)``: window ``i`` spans
    ``[floor(i L / L'), ceil((i + 1) L / L'))`` -> ``(N, C, L')``."""
    return _adaptive_avg("adaptive_avg_pool1d", 1, input, output_size)


def adaptive_avg_pool2d(input: Tensor, output_size) -> Tensor:
    """Adaptive average pooling ``(N, C, H, W) -> (N, C, *output_size)`` for any output size
    (``None`` keeps that input size); ``output_size=1`` is global average pooling."""
    return _adaptive_avg("adaptive_avg_pool2d", 2, input, output_size)


def adaptive_avg_pool3d(input: Tensor, output_size) -> Tensor:
    """Adaptive average pooling ``(N, C, D, H, W) -> (N, C, *output_size)``."""
    return _adaptive_avg("adaptive_avg_pool3d", 3, input, output_size)


def adaptive_max_pool1d(input: Tensor, output_size, return_indices: bool = False):
    """Adaptive max pooling ``(N, C, L) -> (N, C, L')`` (windows as adaptive_avg_pool1d)."""
    return _adaptive_max("adaptive_max_pool1d", 1, input, output_size, return_indices)


def adaptive_max_pool2d(input: Tensor, output_size, return_indices: bool = False):
    """Adaptive max pooling ``(N, C, H, W) -> (N, C, *output_size)``; indices flat per plane."""
    return _adaptive_max("adaptive_max_pool2d", 2, input, output_size, return_indices)


def adaptive_max_pool3d(input: Tensor, output_size, return_indices: bool = False):
    """Adaptive max pooling ``(N, C, D, H, W) -> (N, C, *output_size)``."""
    return _adaptive_max("adaptive_max_pool3d", 3, input, output_size, return_indices)


def global_avg_pool(input: Tensor, keepdim: bool = True) -> Tensor:
    """Mean over all spatial dims: ``(N, C, *L) -> (N, C, 1, ..., 1)`` (or ``(N, C)``)."""
    if not isinstance(input, Tensor) or input.ndim < 3:
        raise ValueError(f"global_avg_pool: expected (N, C, *spatial), got "
                         f"{getattr(input, 'shape', type(input).__name__)}")
    out = _GlobalAvg.apply(input)
    return out if keepdim else out.reshape(input.shape[:2])


def global_max_pool(input: Tensor, keepdim: bool = True) -> Tensor:
    """Maximum over all spatial dims: ``(N, C, *L) -> (N, C, 1, ..., 1)`` (or ``(N, C)``)."""
    if not isinstance(input, Tensor) or input.ndim < 3:
        raise ValueError(f"global_max_pool: expected (N, C, *spatial), got "
                         f"{getattr(input, 'shape', type(input).__name__)}")
    out = _GatherMax.apply(input, (1,) * (input.ndim - 2), False)
    return out if keepdim else out.reshape(input.shape[:2])

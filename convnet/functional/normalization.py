"""Normalization: standardise groups of activations, then an optional learned affine map.

``y = (x - mean) / sqrt(var + eps) * weight + bias`` with the biased variance; the ops
differ in the groups the statistics are taken over (see :mod:`convnet.kernels.norm`):

* batch norm: per channel over ``(N, *spatial)``; running averages for eval mode,
* instance norm: per sample and channel over ``spatial``,
* group norm: per sample and channel group over ``(C / G, *spatial)``,
* layer norm: per sample over the trailing ``normalized_shape`` dims.
"""
from __future__ import annotations

import math

import numpy as np

from ..autograd.function import Function
from .. import backends
from ..kernels import norm as K
from ..tensor import Tensor

__all__ = ["batch_norm", "instance_norm", "layer_norm", "group_norm", "local_response_norm"]


class _Normalize(Function):
    """Batch-statistics normalization + affine. Outputs ``(y, mean, var)``; the statistics
    are returned (not differentiated) so the caller can update running averages."""

    non_differentiable_outputs = (1, 2)

    def forward(self, x, w, b, stat_shape, aff_shape, eps):
        w2 = None if w is None else w.reshape(-1)
        b2 = None if b is None else b.reshape(-1)
        y, xhat, mean, var, invstd = backends.get().normalize_forward(
            x, stat_shape, aff_shape, w2, b2, eps)
        if getattr(self, "needs_input_grad", None) is not None:
            self.xhat, self.invstd, self.w2, self.aff = xhat, invstd, w2, aff_shape
            self.wshape = None if w is None else w.shape
            self.bshape = None if b is None else b.shape
        return y, mean, var

    def backward(self, g, *_):
        nx, nw, nb = self.needs_input_grad[:3]
        gx, gw, gb = backends.get().normalize_backward(
            g, self.xhat, self.invstd, self.aff, self.w2, nx)
        return (gx, gw.reshape(self.wshape) if nw and self.wshape is not None else None,
                gb.reshape(self.bshape) if nb and self.bshape is not None else None)


class _ScaleShift(Function):
    """Normalization with fixed statistics (batch norm in eval mode):
    ``y = x * (w invstd) + (b - mean w invstd)`` per channel."""

    def forward(self, x, w, b, mean, var, eps):
        invstd = (1.0 / np.sqrt(var + eps)).astype(x.dtype)
        scale = invstd if w is None else w * invstd
        shift = -mean * scale if b is None else b - mean * scale
        self.x, self.mean, self.invstd, self.scale = x, mean.astype(x.dtype), invstd, scale
        return backends.get().scale_shift_forward(x, scale.astype(x.dtype), shift.astype(x.dtype))

    def backward(self, g):
        nx, nw, nb = self.needs_input_grad[:3]
        n, c = g.shape[:2]
        g3 = g.reshape(n, c, -1)
        gb = K.sum02(g3) if (nb or nw) else None
        gw = None
        if nw:  # sum(g * xhat) = invstd * (sum(g x) - mean sum(g))
            gw = self.invstd * (K.dot02(g3, self.x.reshape(n, c, -1)) - self.mean * gb)
        gx = (g3 * K.per_channel(self.scale, g3)).reshape(g.shape) if nx else None
        return gx, gw, gb if nb else None, None, None


def _check_affine(op: str, name: str, t, shape, x: Tensor) -> None:
    if t is None:
        return
    if not isinstance(t, Tensor):
        raise TypeError(f"{op}: {name} must be a Tensor or None, got {type(t).__name__}")
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"{op}: {name} has shape {tuple(t.shape)} but input {tuple(x.shape)} "
                         f"needs {tuple(shape)}")
    if t.dtype != x.dtype:
        raise TypeError(f"{op}: {name} dtype {t.dtype} differs from input dtype {x.dtype}")


def _check_batch_norm_args(op: str, input, running_mean, running_var, weight, bias) -> None:
    """Batch norm's arguments: ``(N, C, *)`` input; running statistics, weight and bias of
    shape ``(C,)`` when given."""
    _check_input(op, input)
    c = input.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var)):
        if t is not None and tuple(t.shape) != (c,):
            raise ValueError(f"{op}: {name} has shape {tuple(t.shape)} but input "
                             f"{tuple(input.shape)} has {c} channels")
    _check_affine(op, "weight", weight, (c,), input)
    _check_affine(op, "bias", bias, (c,), input)


def _check_input(op: str, x, min_dim: int = 2) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(x).__name__}")
    if x.ndim < min_dim:
        raise ValueError(f"{op}: expected an input with at least {min_dim} dims (N, C, ...), "
                         f"got shape {x.shape}")
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: input must be floating point, got {x.dtype}")


def _update_running(running: Tensor | None, stat: np.ndarray, momentum: float) -> None:
    """In place: ``running = (1 - momentum) running + momentum stat``."""
    if running is None:
        return
    r = running._data
    r *= r.dtype.type(1.0 - momentum)
    r += (momentum * stat).astype(r.dtype, copy=False)


def batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
               weight: Tensor | None = None, bias: Tensor | None = None,
               training: bool = False, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Batch normalization of ``(N, C, *)`` per channel over ``(N, *)``.

    Training: ``y = (x - mu_B) / sqrt(var_B + eps) * weight + bias`` with the batch mean and
    biased variance, and (when given) ``running = (1 - momentum) running + momentum stat``
    with the *unbiased* batch variance. Eval (``training=False``): the running statistics
    replace the batch ones. Shape ``(N, C, *) -> (N, C, *)``.
    """
    op = "batch_norm"
    _check_batch_norm_args(op, input, running_mean, running_var, weight, bias)
    c = input.shape[1]
    if momentum is None:
        raise TypeError(f"{op}: momentum must be a float (the BatchNorm layers implement "
                        f"momentum=None as a cumulative average)")
    n = input.shape[0]
    s = math.prod(input.shape[2:])
    if training or running_mean is None or running_var is None:
        if training and n * s <= 1:
            raise ValueError(f"{op}: expected more than 1 value per channel when training, "
                             f"got input size {tuple(input.shape)}")
        y, mean, var = _Normalize.apply(input, weight, bias, (n, c, s), (n, c, s), eps)
        if training and running_mean is not None:
            _update_running(running_mean, mean._data, momentum)
        if training and running_var is not None:
            m = n * s
            _update_running(running_var, var._data * (m / max(m - 1, 1)), momentum)
        return y
    return _ScaleShift.apply(input, weight, bias, running_mean._data, running_var._data, eps)


def instance_norm(input: Tensor, running_mean: Tensor | None = None,
                  running_var: Tensor | None = None, weight: Tensor | None = None,
                  bias: Tensor | None = None, use_input_stats: bool = True,
                  momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Instance normalization: each ``(n, c)`` plane standardised over its spatial dims.

    ``(N, C, *) -> (N, C, *)``. Running statistics, when given, are updated with the batch
    mean of the per-instance means and unbiased variances; ``use_input_stats=False``
    normalizes with the running statistics instead.
    """
    op = "instance_norm"
    _check_input(op, input, 3)
    n, c = input.shape[:2]
    s = math.prod(input.shape[2:])
    _check_affine(op, "weight", weight, (c,), input)
    _check_affine(op, "bias", bias, (c,), input)
    if not use_input_stats:
        if running_mean is None or running_var is None:
            raise ValueError(f"{op}: use_input_stats=False needs running_mean and running_var")
        return _ScaleShift.apply(input, weight, bias, running_mean._data, running_var._data, eps)
    if s <= 1:
        raise ValueError(f"{op}: expected more than 1 spatial element when training, got "
                         f"input size {tuple(input.shape)}")
    y, mean, var = _Normalize.apply(input, weight, bias, (1, n * c, s), (n, c, s), eps)
    if running_mean is not None:
        _update_running(running_mean, mean._data.reshape(n, c).mean(axis=0), momentum)
    if running_var is not None:
        unbiased = var._data.reshape(n, c) * (s / (s - 1))
        _update_running(running_var, unbiased.mean(axis=0), momentum)
    return y


def layer_norm(input: Tensor, normalized_shape, weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Layer normalization over the trailing ``normalized_shape`` dims; ``weight``/``bias``
    (shape ``normalized_shape``) are element-wise. ``(*, *normalized_shape)`` -> same."""
    op = "layer_norm"
    if isinstance(normalized_shape, int):
        normalized_shape = (normalized_shape,)
    shape = tuple(int(v) for v in normalized_shape)
    _check_input(op, input, 1)
    if len(shape) == 0 or input.ndim < len(shape) or tuple(input.shape[-len(shape):]) != shape:
        raise ValueError(f"{op}: input shape {tuple(input.shape)} does not end with "
                         f"normalized_shape {shape}")
    _check_affine(op, "weight", weight, shape, input)
    _check_affine(op, "bias", bias, shape, input)
    k = math.prod(shape)
    m = input._data.size // k if k else 0
    y, _, _ = _Normalize.apply(input, weight, bias, (1, m, k), (m, k, 1), eps)
    return y


def group_norm(input: Tensor, num_groups: int, weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Group normalization: channels split into ``num_groups`` groups; each sample's group
    is standardised over its ``C / G`` channels and spatial dims; per-channel affine.
    ``(N, C, *) -> (N, C, *)``."""
    op = "group_norm"
    _check_input(op, input, 2)
    n, c = input.shape[:2]
    if num_groups <= 0 or c % num_groups:
        raise ValueError(f"{op}: num_groups={num_groups} must divide the {c} input channels "
                         f"(input shape {tuple(input.shape)})")
    _check_affine(op, "weight", weight, (c,), input)
    _check_affine(op, "bias", bias, (c,), input)
    s = math.prod(input.shape[2:])
    y, _, _ = _Normalize.apply(input, weight, bias, (1, n * num_groups, c // num_groups * s),
                               (n, c, s), eps)
    return y


class _ChannelWindowMean(Function):
    """Mean over a window of ``size`` neighbouring channels (zero padded ``size // 2``
    before, ``(size - 1) // 2`` after): ``(N, C, *) -> (N, C, *)``."""

    def forward(self, x, size):
        c = x.shape[1]
        lo, hi = size // 2, (size - 1) // 2
        xp = np.zeros((x.shape[0], c + lo + hi) + x.shape[2:], dtype=x.dtype)
        xp[:, lo:lo + c] = x
        out = xp[:, 0:c].copy()
        for o in range(1, size):  # loop over window offsets only
            out += xp[:, o:o + c]
        out /= x.dtype.type(size)
        self.size, self.c = size, c
        return out

    def backward(self, g):
        size, c = self.size, self.c
        lo, hi = size // 2, (size - 1) // 2
        gp = np.zeros((g.shape[0], c + lo + hi) + g.shape[2:], dtype=g.dtype)
        for o in range(size):
            gp[:, o:o + c] += g
        gp /= g.dtype.type(size)
        return np.ascontiguousarray(gp[:, lo:lo + c])


def local_response_norm(input: Tensor, size: int, alpha: float = 1e-4, beta: float = 0.75,
                        k: float = 1.0) -> Tensor:
    """Local response normalization across channels (AlexNet):
    ``y_c = x_c / (k + alpha / size * sum_{c' near c} x_{c'}^2) ^ beta``, the sum over
    ``size`` neighbouring channels. ``(N, C, *) -> (N, C, *)``."""
    op = "local_response_norm"
    _check_input(op, input, 3)
    if size < 1:
        raise ValueError(f"{op}: size must be >= 1, got {size}")
    div = _ChannelWindowMean.apply(input * input, int(size))
    return input / (div * alpha + k).pow(beta)

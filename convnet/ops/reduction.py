"""Reductions: sum, mean, var/std, max/min (with indices)."""
from __future__ import annotations

import numpy as np

from ..autograd.function import Function


def _expand_back(g: np.ndarray, shape, axes, keepdim: bool) -> np.ndarray:
    """Broadcast a reduced gradient back to the input ``shape``."""
    if not keepdim and axes is not None:
        g = np.expand_dims(g, axes)
    return np.broadcast_to(g, shape)


class Sum(Function):
    def forward(self, a, axes, keepdim):
        self.shape, self.axes, self.keepdim = a.shape, axes, keepdim
        return np.asarray(a.sum(axis=axes, keepdims=keepdim))

    def backward(self, g):
        return _expand_back(g, self.shape, self.axes, self.keepdim), None, None


class Mean(Function):
    def forward(self, a, axes, keepdim):
        self.shape, self.axes, self.keepdim = a.shape, axes, keepdim
        out = np.asarray(a.mean(axis=axes, keepdims=keepdim))
        self.count = a.size // max(out.size, 1) if a.size else 0
        return out

    def backward(self, g):
        scale = np.asarray(1.0 / max(self.count, 1), dtype=g.dtype)
        return _expand_back(g * scale, self.shape, self.axes, self.keepdim), None, None


class Var(Function):
    """Variance with ``correction`` (1 = unbiased, Bessel's correction)."""

    def forward(self, a, axes, correction, keepdim, take_sqrt):
        self.axes, self.keepdim, self.take_sqrt = axes, keepdim, take_sqrt
        mean = a.mean(axis=axes, keepdims=True)
        self.diff = a - mean
        n = a.size // max(mean.size, 1)
        self.denom = max(n - correction, 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            var = np.asarray(
                (self.diff * self.diff).sum(axis=axes, keepdims=keepdim) / a.dtype.type(self.denom)
            )
        self.out = np.sqrt(var) if take_sqrt else var
        return self.out

    def backward(self, g):
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.take_sqrt:
                # d std = d var / (2 std); defined as 0 where std == 0 (as torch)
                g = np.where(self.out == 0, 0, g / (self.out * self.denom))
            else:
                g = g * (2.0 / self.denom)
        g = g.astype(self.diff.dtype, copy=False)
        if not self.keepdim and self.axes is not None:
            g = np.expand_dims(g, self.axes)
        return g * self.diff, None, None, None, None


class MaxAll(Function):
    """max/min over every element; the gradient is shared evenly among ties (as torch)."""

    def forward(self, a, use_min):
        out = a.min() if use_min else a.max()
        self.mask = a == out
        return np.asarray(out)

    def backward(self, g):
        m = self.mask
        return g * m / m.sum(dtype=g.dtype), None


class MaxDim(Function):
    """``max(dim)`` / ``min(dim)`` returning (values, indices); gradient goes to the index."""

    non_differentiable_outputs = (1,)

    def forward(self, a, dim, keepdim, use_min):
        self.shape, self.dim, self.keepdim = a.shape, dim, keepdim
        idx = np.expand_dims(a.argmin(axis=dim) if use_min else a.argmax(axis=dim), dim)
        self.idx = idx
        vals = np.take_along_axis(a, idx, axis=dim)
        if not keepdim:
            vals, idx = vals.squeeze(dim), idx.squeeze(dim)
        return vals, idx.astype(np.int64)

    def backward(self, g, _g_idx=None):
        if g is None:
            return None, None, None, None
        if not self.keepdim:
            g = np.expand_dims(g, self.dim)
        out = np.zeros(self.shape, dtype=g.dtype)
        np.put_along_axis(out, self.idx, g, axis=self.dim)
        return out, None, None, None

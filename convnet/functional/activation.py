"""Activation functions: ``(*) -> (*)`` element-wise, except softmax/log_softmax
which normalise along ``dim``."""
from __future__ import annotations

import math

import numpy as np

from ..autograd.function import Function
from ..kernels.special import erf
from ..tensor import Tensor

__all__ = [
    "relu", "relu6", "leaky_relu", "elu", "gelu", "silu", "hardtanh", "hardswish", "hardsigmoid",
    "sigmoid", "tanh", "softmax", "log_softmax", "softplus",
]


def _apply(input: Tensor, inplace: bool, op: str, compute) -> Tensor:
    """``compute(input)``, or with ``inplace=True`` written into ``input`` itself as torch does
    (same autograd rules as any in-place op: a leaf that requires grad refuses)."""
    if inplace:
        return input._inplace(op, compute)
    return compute(input)


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    """``max(x, 0)``."""
    return _apply(input, inplace, "relu", Tensor.relu)


def sigmoid(input: Tensor) -> Tensor:
    """``1 / (1 + exp(-x))``, computed without overflow."""
    return input.sigmoid()


def tanh(input: Tensor) -> Tensor:
    return input.tanh()


class _Hardtanh(Function):
    def forward(self, x, lo, hi):
        self.mask = (x > lo) & (x < hi)
        return np.clip(x, lo, hi)

    def backward(self, g):
        return g * self.mask, None, None


def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> Tensor:
    """``clip(x, min_val, max_val)``; gradient 0 at and beyond the limits (as torch)."""
    return _apply(input, inplace, "hardtanh", lambda x: _Hardtanh.apply(x, min_val, max_val))


def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    """``min(max(x, 0), 6)`` (MobileNet v2)."""
    return _apply(input, inplace, "relu6", lambda x: _Hardtanh.apply(x, 0.0, 6.0))


class _LeakyReLU(Function):
    def forward(self, x, slope):
        self.pos = x > 0
        self.slope = slope
        return np.where(self.pos, x, x * x.dtype.type(slope))

    def backward(self, g):
        return np.where(self.pos, g, g * g.dtype.type(self.slope)), None


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """``x`` if ``x > 0`` else ``negative_slope * x``."""
    return _apply(input, inplace, "leaky_relu", lambda x: _LeakyReLU.apply(x, negative_slope))


class _ELUFn(Function):
    def forward(self, x, alpha):
        self.pos = x > 0
        self.alpha = x.dtype.type(alpha)
        self.neg = self.alpha * np.expm1(np.minimum(x, 0))
        return np.where(self.pos, x, self.neg)

    def backward(self, g):
        # d/dx alpha (e^x - 1) = alpha e^x = neg + alpha
        return np.where(self.pos, g, g * (self.neg + self.alpha)), None


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """``x`` if ``x > 0`` else ``alpha * (exp(x) - 1)``."""
    return _apply(input, inplace, "elu", lambda x: _ELUFn.apply(x, alpha))


_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


class _GELU(Function):
    def forward(self, x, approximate):
        self.x, self.approximate = x, approximate
        t = x.dtype.type
        if approximate == "tanh":
            self.th = np.tanh(t(_SQRT_2_OVER_PI) * (x + t(0.044715) * x**3))
            return t(0.5) * x * (1 + self.th)
        self.cdf = t(0.5) * (1 + erf(x * t(_INV_SQRT_2)))
        return x * self.cdf

    def backward(self, g):
        x, t = self.x, self.x.dtype.type
        if self.approximate == "tanh":
            th = self.th
            inner = t(_SQRT_2_OVER_PI) * (1 + t(3 * 0.044715) * x * x)
            d = t(0.5) * (1 + th) + t(0.5) * x * (1 - th * th) * inner
        else:
            d = self.cdf + x * t(_INV_SQRT_2PI) * np.exp(t(-0.5) * x * x)
        return g * d, None


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """``x * Phi(x)`` with the exact normal CDF, or its tanh approximation."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return _GELU.apply(input, approximate)


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    """``x * sigmoid(x)`` (swish)."""
    return _apply(input, inplace, "silu", lambda x: x * x.sigmoid())


def hardsigmoid(input: Tensor, inplace: bool = False) -> Tensor:
    """``relu6(x + 3) / 6``."""
    return _apply(input, inplace, "hardsigmoid", lambda x: relu6(x + 3.0) / 6.0)


def hardswish(input: Tensor, inplace: bool = False) -> Tensor:
    """``x * relu6(x + 3) / 6`` (MobileNet v3)."""
    return _apply(input, inplace, "hardswish", lambda x: x * hardsigmoid(x))


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """``log(1 + exp(beta x)) / beta``, linear above ``threshold``."""
    from ..creation import where

    bx = input * beta
    soft = (bx.clamp(max=threshold).exp() + 1.0).log() / beta
    return where(bx._data > threshold, input, soft)


def _check_dim(input: Tensor, dim, op: str) -> int:
    if dim is None:  # torch's legacy implicit choice
        dim = 0 if input.ndim in (0, 1, 3) else 1
    if not -max(input.ndim, 1) <= dim < max(input.ndim, 1):
        raise IndexError(f"{op}: dim {dim} is out of range for input of shape {input.shape}")
    return dim % max(input.ndim, 1)


class _Softmax(Function):
    def forward(self, x, dim):
        self.dim = dim
        e = np.exp(x - x.max(axis=dim, keepdims=True))
        e /= e.sum(axis=dim, keepdims=True)
        self.out = e
        return e

    def backward(self, g):
        y = self.out
        return y * (g - (g * y).sum(axis=self.dim, keepdims=True)), None


class _LogSoftmax(Function):
    def forward(self, x, dim):
        self.dim = dim
        shifted = x - x.max(axis=dim, keepdims=True)
        shifted -= np.log(np.exp(shifted).sum(axis=dim, keepdims=True))
        self.out = shifted
        return shifted

    def backward(self, g):
        return g - np.exp(self.out) * g.sum(axis=self.dim, keepdims=True), None


def softmax(input: Tensor, dim: int | None = None, dtype=None) -> Tensor:
    """``exp(x_i) / sum_j exp(x_j)`` along ``dim`` (max-shifted, so no overflow)."""
    if dtype is not None:
        input = input.astype(dtype)
    return _Softmax.apply(input, _check_dim(input, dim, "softmax"))


def log_softmax(input: Tensor, dim: int | None = None, dtype=None) -> Tensor:
    """``x_i - log sum_j exp(x_j)`` along ``dim`` (log-sum-exp, stable)."""
    if dtype is not None:
        input = input.astype(dtype)
    return _LogSoftmax.apply(input, _check_dim(input, dim, "log_softmax"))

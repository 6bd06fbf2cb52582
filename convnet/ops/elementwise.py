"""Element-wise Functions with NumPy broadcasting; gradients are summed back to each
operand's shape (``unbroadcast``)."""
from __future__ import annotations

import numpy as np

from .. import backends
from ..autograd.function import Function, unbroadcast


class Add(Function):
    def forward(self, a, b):
        self.sa, self.sb = a.shape, b.shape
        return a + b

    def backward(self, g):
        na, nb = self.needs_input_grad
        return (unbroadcast(g, self.sa) if na else None, unbroadcast(g, self.sb) if nb else None)


class Sub(Function):
    def forward(self, a, b):
        self.sa, self.sb = a.shape, b.shape
        return a - b

    def backward(self, g):
        na, nb = self.needs_input_grad
        return (unbroadcast(g, self.sa) if na else None, unbroadcast(-g, self.sb) if nb else None)


class Mul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, g):
        na, nb = self.needs_input_grad
        ga = unbroadcast(g * self.b, self.a.shape) if na else None
        gb = unbroadcast(g * self.a, self.b.shape) if nb else None
        return ga, gb


class Div(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, g):
        na, nb = self.needs_input_grad
        gq = g / self.b
        ga = unbroadcast(gq, self.a.shape) if na else None
        gb = unbroadcast(-gq * self.a / self.b, self.b.shape) if nb else None
        return ga, gb


class Neg(Function):
    def forward(self, a):
        return -a

    def backward(self, g):
        return -g


class PowScalar(Function):
    """``a ** p`` for a Python number ``p``."""

    def forward(self, a, p):
        self.a, self.p = a, p
        return a**p

    def backward(self, g):
        p = self.p
        if p == 0:
            return np.zeros_like(self.a), None
        return g * (p * self.a ** (p - 1)), None


class RPowScalar(Function):
    """``c ** a`` for a Python number ``c``."""

    def forward(self, a, c):
        self.c = c
        self.out = np.power(np.asarray(c, dtype=a.dtype), a)
        return self.out

    def backward(self, g):
        return g * self.out * np.log(np.asarray(self.c, dtype=self.out.dtype)), None


class Pow(Function):
    """``a ** b`` for two tensors."""

    def forward(self, a, b):
        self.a, self.b = a, b
        self.out = a**b
        return self.out

    def backward(self, g):
        na, nb = self.needs_input_grad
        a, b = self.a, self.b
        ga = unbroadcast(g * b * a ** (b - 1), a.shape) if na else None
        gb = None
        if nb:
            # d/db a^b = a^b log a; defined as 0 where a == 0 and b >= 0 (as torch does)
            with np.errstate(divide="ignore", invalid="ignore"):
                d = self.out * np.log(a)
            d = np.where((a == 0) & (b >= 0), 0, d)
            gb = unbroadcast(g * d, b.shape)
        return ga, gb


class Exp(Function):
    def forward(self, a):
        self.out = np.exp(a)
        return self.out

    def backward(self, g):
        return g * self.out


class Log(Function):
    def forward(self, a):
        self.a = a
        return np.log(a)

    def backward(self, g):
        return g / self.a


class Sqrt(Function):
    def forward(self, a):
        self.out = np.sqrt(a)
        return self.out

    def backward(self, g):
        return g / (2 * self.out)


class Abs(Function):
    def forward(self, a):
        self.a = a
        return np.abs(a)

    def backward(self, g):
        return g * np.sign(self.a)


class Clamp(Function):
    """Gradient flows where ``min <= a <= max`` (inclusive, like torch)."""

    def forward(self, a, lo, hi):
        self.mask = np.ones(a.shape, dtype=bool)
        if lo is not None:
            self.mask &= a >= lo
        if hi is not None:
            self.mask &= a <= hi
        return np.clip(a, lo, hi)

    def backward(self, g):
        return g * self.mask, None, None


class Sigmoid(Function):
    def forward(self, a):
        # exp of a non-positive number only: no overflow for large |a|
        e = np.exp(-np.abs(a))
        self.out = np.where(a >= 0, 1 / (1 + e), e / (1 + e))
        return self.out

    def backward(self, g):
        return g * self.out * (1 - self.out)


class Tanh(Function):
    def forward(self, a):
        self.out = np.tanh(a)
        return self.out

    def backward(self, g):
        return g * (1 - self.out * self.out)


class Relu(Function):
    """``max(x, 0)``; the gradient passes where the output is positive or NaN, as in PyTorch."""

    def forward(self, a):
        self.out = backends.get().relu_forward(a)
        return self.out

    def backward(self, g):
        return backends.get().relu_backward(g, self.out)


class Where(Function):
    """``where(cond, a, b)``; ``cond`` is a bool array and gets no gradient."""

    def forward(self, cond, a, b):
        self.cond, self.sa, self.sb = cond, np.shape(a), np.shape(b)
        return np.where(cond, a, b)

    def backward(self, g):
        _, na, nb = self.needs_input_grad
        zero = np.zeros((), dtype=g.dtype)
        ga = unbroadcast(np.where(self.cond, g, zero), self.sa) if na else None
        gb = unbroadcast(np.where(self.cond, zero, g), self.sb) if nb else None
        return None, ga, gb


class Cast(Function):
    def forward(self, a, dtype):
        self.dtype = a.dtype
        return a.astype(dtype)

    def backward(self, g):
        return g.astype(self.dtype), None


class Clone(Function):
    def forward(self, a):
        return a.copy()

    def backward(self, g):
        return g


class Assign(Function):
    """``out = broadcast(new)`` in ``old``'s shape and dtype: what ``copy_``/``fill_``/``zero_``
    leave in a tensor. ``old``'s values are discarded, so its gradient is zero."""

    def forward(self, old, new):
        self.old_shape, self.new_shape, self.new_dtype = old.shape, np.shape(new), new.dtype
        out = np.empty_like(old)
        np.copyto(out, np.broadcast_to(new, old.shape), casting="unsafe")
        return out

    def backward(self, g):
        g_old = np.zeros_like(g) if self.needs_input_grad[0] else None
        g_new = None
        if self.needs_input_grad[1]:
            g_new = unbroadcast(g, self.new_shape).astype(self.new_dtype, copy=False)
        return g_old, g_new


class Log1p(Function):
    """``log(1 + a)``, accurate for small ``a``."""

    def forward(self, a):
        self.a = a
        return np.log1p(a)

    def backward(self, g):
        return g / (1 + self.a)  # d log(1+a)/da = 1/(1+a)


class Expm1(Function):
    """``exp(a) - 1``, accurate for small ``a``."""

    def forward(self, a):
        self.out = np.expm1(a)
        return self.out

    def backward(self, g):
        return g * (self.out + 1)  # d(e^a - 1)/da = e^a


class RoundedDiv(Function):
    """``div(a, b, rounding_mode='trunc'|'floor')``: piecewise constant, so (as torch) the
    gradient of both operands is zero."""

    def forward(self, a, b, mode):
        self.sa, self.sb = np.shape(a), np.shape(b)
        if a.dtype.kind in "iub" and b.dtype.kind in "iub":
            if mode == "floor":
                return np.floor_divide(a, b)
            q = np.abs(a) // np.abs(b)  # truncate towards zero
            return np.where((a < 0) != (b < 0), -q, q).astype(np.result_type(a, b))
        q = a / b
        return np.floor(q) if mode == "floor" else np.trunc(q)

    def backward(self, g):
        na, nb = self.needs_input_grad[:2]
        return (np.zeros(self.sa, g.dtype) if na else None,
                np.zeros(self.sb, g.dtype) if nb else None, None)

"""Compiled optimizer updates: one fused, in-place pass over each parameter's elements.

Same signatures and results as :mod:`convnet.kernels.optim_update` (the NumPy reference):
where NumPy makes 4-10 passes over memory with a temporary array per operation, these read
and write each element of the parameter, its gradient and its state once. The per-element
operations are the reference's, in the same order and in the parameter's dtype (the scalars
are cast to it first, as NumPy does with Python floats), with no fast-math: results match the reference to the
last bit, NaN and infinities included. ``error_model="numpy"`` gives IEEE division (0/0 is
NaN, not ZeroDivisionError) and keeps the loops free of checks.

The fast path needs float32/float64 arrays of one dtype, with the parameter and its state
C-contiguous (they are updated in place through flat views); anything else goes to the
NumPy kernels.
"""
from __future__ import annotations

import math

import numba
import numpy as np

from ...kernels import optim_update as _ref

__all__ = ["sgd_update", "adam_update"]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


@numba.njit(parallel=True, cache=True, error_model="numpy")
def _sgd_flat(p, g, buf, lr, mu, damp1, wd, nesterov, maximize, first):  # pragma: no cover
    """Per element ``i`` of the flat arrays: ``d = -g[i]`` if ``maximize`` else ``g[i]``;
    ``d = d + wd p[i]`` if ``wd != 0``; if ``buf`` is not empty (momentum):
    ``b = d`` when ``first`` else ``buf[i] mu + damp1 d``, ``buf[i] = b``, ``d = d + mu b``
    (Nesterov) or ``d = b``; then ``p[i] = p[i] - lr d``. ``damp1 = 1 - dampening``; the
    scalars arrive as Python floats and are cast to ``p``'s dtype here, as NumPy does."""
    t = p.dtype.type
    lr, mu, damp1, wd = t(lr), t(mu), t(damp1), t(wd)
    has_momentum = buf.size > 0
    for i in numba.prange(p.size):
        d = -g[i] if maximize else g[i]
        if wd != 0:
            d = d + wd * p[i]
        if has_momentum:
            b = d if first else buf[i] * mu + damp1 * d
            buf[i] = b
            d = d + mu * b if nesterov else b
        p[i] = p[i] - lr * d


@numba.njit(parallel=True, cache=True, error_model="numpy")
def _adam_flat(p, g, m, v, vmax, c1, b2, c2, wd, decay, decoupled, step_size, sqrt_bc2, eps,
               maximize):  # pragma: no cover - compiled
    """Per element ``i``: ``d = -g[i]`` if ``maximize`` else ``g[i]``; if ``wd != 0``,
    ``p[i] *= decay`` (``decoupled``) or ``d = d + wd p[i]``; ``m[i] = m[i] + c1 (d - m[i])``;
    ``v[i] = v[i] b2 + c2 d d``; with AMSGrad (``vmax`` not empty) ``vmax[i] = max(vmax[i],
    v[i])`` (NaN wins, as ``np.maximum``) replaces ``v[i]`` below; ``p[i] = p[i] - step_size
    m[i] / (sqrt(v[i]) / sqrt_bc2 + eps)``. ``c1 = 1 - b1``, ``c2 = 1 - b2``,
    ``decay = 1 - lr wd``, ``step_size = lr / (1 - b1^t)``, ``sqrt_bc2 = sqrt(1 - b2^t)``;
    the scalars arrive as Python floats and are cast to ``p``'s dtype here, as NumPy does."""
    t = p.dtype.type
    c1, b2, c2, wd, decay = t(c1), t(b2), t(c2), t(wd), t(decay)
    step_size, sqrt_bc2, eps = t(step_size), t(sqrt_bc2), t(eps)
    amsgrad = vmax.size > 0
    for i in numba.prange(p.size):
        d = -g[i] if maximize else g[i]
        pi = p[i]
        if wd != 0:
            if decoupled:
                pi = pi * decay
            else:
                d = d + wd * pi
        mi = m[i]
        mi = mi + c1 * (d - mi)
        m[i] = mi
        vi = v[i] * b2 + c2 * d * d
        v[i] = vi
        if amsgrad:
            vm = vmax[i]
            if vi > vm or vi != vi:
                vm = vi
            vmax[i] = vm
            vi = vm
        p[i] = pi - step_size * mi / (np.sqrt(vi) / sqrt_bc2 + eps)


def _flat(a: np.ndarray) -> np.ndarray:
    """A flat view of a C-contiguous array (writes go to ``a``)."""
    return a.reshape(-1)


def _fast(param: np.ndarray, grad: np.ndarray, *state) -> bool:
    """float32/float64, one dtype and shape throughout, parameter and state C-contiguous."""
    dt = param.dtype
    return (dt in _FLOATS and param.flags.c_contiguous and isinstance(grad, np.ndarray)
            and grad.dtype == dt and grad.shape == param.shape
            and all(s is None or (s.dtype == dt and s.shape == param.shape
                                  and s.flags.c_contiguous) for s in state))


def sgd_update(param: np.ndarray, grad: np.ndarray, momentum_buffer: np.ndarray | None,
               lr: float, momentum: float = 0.0, dampening: float = 0.0,
               weight_decay: float = 0.0, nesterov: bool = False,
               maximize: bool = False) -> np.ndarray | None:
    """One SGD step on ``param`` in place, as :func:`convnet.kernels.optim_update.sgd_update`
    (``b = mu b + (1 - dampening) g``, ``b = g`` on the first step; ``param -= lr (g + mu b)``
    with Nesterov, else ``lr b``; ``g`` includes ``wd param``); returns the momentum buffer
    (a new array on the first step, None without momentum)."""
    if not _fast(param, grad, momentum_buffer):
        return _ref.sgd_update(param, grad, momentum_buffer, lr, momentum, dampening,
                               weight_decay, nesterov, maximize)
    first = False
    if momentum:
        if momentum_buffer is None:
            momentum_buffer = np.empty_like(param)
            first = True
        buf = momentum_buffer
    else:
        buf = np.empty(0, dtype=param.dtype)
    # Python floats: numba's dispatcher types them several times faster than NumPy scalars
    _sgd_flat(_flat(param), _flat(np.ascontiguousarray(grad)), _flat(buf), float(lr),
              float(momentum), float(1 - dampening), float(weight_decay), bool(nesterov),
              bool(maximize), first)
    return momentum_buffer


def adam_update(param: np.ndarray, grad: np.ndarray, exp_avg: np.ndarray,
                exp_avg_sq: np.ndarray, max_exp_avg_sq: np.ndarray | None, step: int,
                lr: float, beta1: float, beta2: float, eps: float,
                weight_decay: float = 0.0, decoupled: bool = False,
                maximize: bool = False) -> None:
    """One Adam/AdamW step in place, as :func:`convnet.kernels.optim_update.adam_update`:
    ``m += (1 - b1)(g - m)``, ``v = b2 v + (1 - b2) g^2`` (``v_max = max(v_max, v)`` with
    AMSGrad), ``param -= lr / (1 - b1^t) m / (sqrt(v) / sqrt(1 - b2^t) + eps)``; weight decay
    ``param *= 1 - lr wd`` (decoupled) or ``g += wd param``."""
    if not _fast(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq):
        return _ref.adam_update(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step, lr,
                                beta1, beta2, eps, weight_decay, decoupled, maximize)
    bc1, bc2 = 1 - beta1**step, 1 - beta2**step
    vmax = max_exp_avg_sq if max_exp_avg_sq is not None else np.empty(0, dtype=param.dtype)
    _adam_flat(_flat(param), _flat(np.ascontiguousarray(grad)), _flat(exp_avg),
               _flat(exp_avg_sq), _flat(vmax), float(1 - beta1), float(beta2),
               float(1 - beta2), float(weight_decay), float(1 - lr * weight_decay),
               bool(decoupled), float(lr / bc1), float(math.sqrt(bc2)), float(eps),
               bool(maximize))
    return None

"""Optimizer update kernels (pure NumPy): one parameter's SGD or Adam/AdamW step, in place.

The formulas are PyTorch's (``torch.optim.SGD``, ``Adam``, ``AdamW``, single-tensor path);
:mod:`convnet.optim` keeps the options and the per-parameter state and calls these through
:func:`convnet.backends.get`. Every array is changed in place and has the parameter's dtype;
scalars (``lr``, betas, ...) are Python floats, which NumPy applies in the array's dtype, so a
float32 parameter is updated in float32 arithmetic (as torch does).
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["sgd_update", "adam_update"]


def sgd_update(param: np.ndarray, grad: np.ndarray, momentum_buffer: np.ndarray | None,
               lr: float, momentum: float = 0.0, dampening: float = 0.0,
               weight_decay: float = 0.0, nesterov: bool = False,
               maximize: bool = False) -> np.ndarray | None:
    """One SGD step on ``param`` (in place); returns the momentum buffer.

    ``g = -grad`` if ``maximize`` else ``grad``; ``g += wd * param``; with momentum
    ``b = mu b + (1 - dampening) g`` (``b = g`` when ``momentum_buffer`` is None: the first
    step, which returns a new buffer) and ``g = g + mu b`` (Nesterov) or ``g = b``; then
    ``param -= lr g``. Without momentum the buffer stays None. ``grad`` and the buffer have
    ``param``'s shape."""
    g = -grad if maximize else grad
    if weight_decay:
        g = g + weight_decay * param
    if momentum:
        if momentum_buffer is None:
            momentum_buffer = np.array(g, dtype=param.dtype)
        else:
            momentum_buffer *= momentum
            momentum_buffer += (1 - dampening) * g
        g = g + momentum * momentum_buffer if nesterov else momentum_buffer
    param -= lr * g
    return momentum_buffer


def adam_update(param: np.ndarray, grad: np.ndarray, exp_avg: np.ndarray,
                exp_avg_sq: np.ndarray, max_exp_avg_sq: np.ndarray | None, step: int,
                lr: float, beta1: float, beta2: float, eps: float,
                weight_decay: float = 0.0, decoupled: bool = False,
                maximize: bool = False) -> None:
    """One Adam (AdamW with ``decoupled``) step, ``step`` = t counted from 1; all arrays in place.

    ``g = -grad`` if ``maximize`` else ``grad``; weight decay: ``param *= 1 - lr wd``
    (decoupled, AdamW) or ``g += wd param`` (L2, Adam); ``m += (1 - b1)(g - m)``;
    ``v = b2 v + (1 - b2) g^2``; with AMSGrad (``max_exp_avg_sq`` given) ``v_max = max(v_max,
    v)`` is used for ``v`` below; ``param -= lr / (1 - b1^t) m / (sqrt(v) / sqrt(1 - b2^t) + eps)``.
    """
    g = -grad if maximize else grad
    if weight_decay:
        if decoupled:
            param *= 1 - lr * weight_decay
        else:
            g = g + weight_decay * param
    exp_avg += (1 - beta1) * (g - exp_avg)  # == b1 m + (1 - b1) g, in place
    exp_avg_sq *= beta2
    exp_avg_sq += (1 - beta2) * g * g
    bc1, bc2 = 1 - beta1**step, 1 - beta2**step
    v = exp_avg_sq
    if max_exp_avg_sq is not None:
        np.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        v = max_exp_avg_sq
    denom = np.sqrt(v) / math.sqrt(bc2) + eps
    param -= (lr / bc1) * exp_avg / denom

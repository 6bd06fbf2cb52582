"""Gradient clipping (``torch.nn.utils.clip_grad_norm_`` / ``clip_grad_value_``).

The gradients are scaled or clamped in place, so call these after ``backward()`` and
before ``optimizer.step()``.
"""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np

from ...tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_norm", "clip_grad_value_", "get_total_norm",
           "clip_grads_with_norm_"]


def _params(parameters) -> list[Tensor]:
    if isinstance(parameters, Tensor):
        return [parameters]
    return list(parameters)


def _norm_type(norm_type, op: str) -> float:
    if isinstance(norm_type, str):
        if norm_type.lower() != "inf":
            raise ValueError(f"{op}: norm_type must be a number or 'inf', got {norm_type!r}")
        return math.inf
    return float(norm_type)


def _vector_norm(a: np.ndarray, p: float) -> np.ndarray:
    """``||a||_p`` over all elements, as ``torch.linalg.vector_norm`` (0-d array)."""
    a = np.abs(a)
    if a.size == 0:
        return np.zeros((), a.dtype)
    if p == math.inf:
        return a.max()
    if p == -math.inf:
        return a.min()
    if p == 0:
        return np.asarray(np.count_nonzero(a), a.dtype)
    if p == 1:
        return a.sum()
    if p == 2:
        return np.sqrt(np.vdot(a.ravel(), a.ravel()))
    return (a**p).sum() ** (1.0 / p)


def get_total_norm(tensors, norm_type: float | str = 2.0, error_if_nonfinite: bool = False,
                   foreach: bool | None = None) -> Tensor:
    """The p-norm of all ``tensors`` together: the p-norm of the vector of their p-norms."""
    p = _norm_type(norm_type, "get_total_norm")
    arrays = [t._data for t in _params(tensors)]
    if not arrays:
        return Tensor._make(np.zeros((), np.float32))
    dtype = np.result_type(*arrays)
    norms = np.array([_vector_norm(a, p) for a in arrays], dtype=dtype)
    total = np.asarray(_vector_norm(norms, p), dtype=dtype)
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, "
            "so it cannot be clipped. To disable this error and scale the gradients by the "
            "non-finite norm anyway, set `error_if_nonfinite=False`")
    return Tensor._make(total)


def clip_grads_with_norm_(parameters, max_norm: float, total_norm, foreach=None) -> None:
    """Scale every gradient by ``min(1, max_norm / (total_norm + 1e-6))``, in place."""
    grads = [p.grad for p in _params(parameters) if p.grad is not None]
    if not grads:
        return
    total = float(total_norm._data if isinstance(total_norm, Tensor) else total_norm)
    coef = min(float(max_norm) / (total + 1e-6), 1.0)
    for g in grads:
        # torch multiplies even when coef == 1 (and by nan for a nan norm). A new array is
        # bound to the same grad Tensor: a leaf's gradient array may be shared with another
        # array of the backward pass, which must not be scaled with it.
        g._data = g._data * np.asarray(coef, dtype=g.dtype)


def clip_grad_norm_(parameters: Iterable[Tensor] | Tensor, max_norm: float,
                    norm_type: float | str = 2.0, error_if_nonfinite: bool = False,
                    foreach: bool | None = None) -> Tensor:
    """Rescale the gradients so that their joint norm is at most ``max_norm``.

    ``total = || (||g_1||_p, ..., ||g_k||_p) ||_p`` over the parameters that have a
    gradient (``norm_type`` p may be ``inf``); every gradient is multiplied by
    ``min(1, max_norm / (total + 1e-6))``. Returns ``total`` (before clipping) as a 0-d
    Tensor. ``error_if_nonfinite=True`` raises RuntimeError for a nan/inf total.
    ``foreach`` is accepted for torch compatibility (there is one code path).

    Example::

        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
        optimizer.step()
    """
    params = _params(parameters)
    grads = [p.grad for p in params if p.grad is not None]
    total = get_total_norm(grads, norm_type, error_if_nonfinite, foreach)
    clip_grads_with_norm_(params, max_norm, total, foreach)
    return total


def clip_grad_norm(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """Deprecated in torch in favour of ``clip_grad_norm_``; the same function."""
    return clip_grad_norm_(parameters, max_norm, norm_type, error_if_nonfinite, foreach)


def clip_grad_value_(parameters: Iterable[Tensor] | Tensor, clip_value: float,
                     foreach: bool | None = None) -> None:
    """Clamp every gradient to ``[-clip_value, clip_value]``, in place."""
    clip_value = float(clip_value)
    for p in _params(parameters):
        if p.grad is not None:
            # a new array for the same grad Tensor (see clip_grads_with_norm_)
            p.grad._data = np.clip(p.grad._data, -clip_value, clip_value)

"""Padding kernels (pure NumPy): constant, reflect, replicate, circular, and their adjoints.

``pads`` is one ``(lo, hi)`` pair per axis of the array. Each padded axis of length ``I`` becomes
``I + lo + hi``. Non-constant modes are a gather ``out[i] = x[src(i)]`` along each axis with

* reflect:   ``src(i) = |i - lo|`` mirrored at both ends without repeating the edge (needs pad < I)
* replicate: ``src(i) = clip(i - lo, 0, I - 1)``
* circular:  ``src(i) = (i - lo) mod I`` (needs pad <= I)

so the backward is a scatter-add of the gradient through the same map; it loops only over the
padded positions (a few per axis), never over the bulk of the array.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["PAD_MODES", "pad_nd", "pad_nd_backward", "pad_zeros", "source_index"]

PAD_MODES = ("constant", "reflect", "replicate", "circular")
_NP_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def source_index(size: int, lo: int, hi: int, mode: str) -> np.ndarray:
    """For each output position along one axis, the input index it copies (non-constant modes)."""
    t = np.arange(-lo, size + hi)
    if mode == "replicate":
        return np.clip(t, 0, size - 1)
    if mode == "circular":
        return np.mod(t, size)
    if mode == "reflect":
        if size == 1:
            return np.zeros_like(t)
        period = 2 * (size - 1)
        t = np.mod(t, period)
        return np.where(t < size, t, period - t)
    raise ValueError(f"pad: unknown mode {mode!r}")


def pad_zeros(x: np.ndarray, pads: Sequence[tuple[int, int]], value: float = 0.0) -> np.ndarray:
    """Constant padding of the trailing ``len(pads)`` axes (non-negative pads), one copy."""
    lead = x.ndim - len(pads)
    shape = x.shape[:lead] + tuple(s + lo + hi for s, (lo, hi) in zip(x.shape[lead:], pads))
    out = np.empty(shape, dtype=x.dtype)
    inner = tuple(slice(lo, lo + s) for s, (lo, _) in zip(x.shape[lead:], pads))
    if value != 0 or any(lo or hi for lo, hi in pads):
        out.fill(value)
    out[(Ellipsis,) + inner] = x
    return out


def pad_nd(x: np.ndarray, pads: Sequence[tuple[int, int]], mode: str = "constant",
           value: float = 0.0) -> np.ndarray:
    """Pad ``x``; ``pads`` has one ``(lo, hi)`` per axis. Constant mode allows negative pads
    (cropping), as PyTorch does."""
    if mode == "constant":
        src, dst, shape = [], [], []
        for s, (lo, hi) in zip(x.shape, pads):
            n = s + lo + hi
            shape.append(max(n, 0))
            a, b = max(-lo, 0), s - max(-hi, 0)
            src.append(slice(a, max(b, a)))
            dst.append(slice(max(lo, 0), max(lo, 0) + max(b - a, 0)))
        out = np.full(shape, value, dtype=x.dtype)
        out[tuple(dst)] = x[tuple(src)]
        return out
    return np.pad(x, [tuple(p) for p in pads], mode=_NP_MODE[mode])


def pad_nd_backward(g: np.ndarray, in_shape: Sequence[int], pads: Sequence[tuple[int, int]],
                    mode: str = "constant") -> np.ndarray:
    """Adjoint of :func:`pad_nd`: the gradient w.r.t. the unpadded input."""
    if mode == "constant":
        gx = np.zeros(in_shape, dtype=g.dtype)
        src, dst = [], []
        for s, (lo, hi) in zip(in_shape, pads):
            a, b = max(-lo, 0), s - max(-hi, 0)
            dst.append(slice(a, max(b, a)))
            src.append(slice(max(lo, 0), max(lo, 0) + max(b - a, 0)))
        gx[tuple(dst)] = g[tuple(src)]
        return gx
    # Undo axis by axis; each step folds the padded positions back onto their sources.
    for axis, (s, (lo, hi)) in enumerate(zip(in_shape, pads)):
        if lo == 0 and hi == 0:
            continue
        idx = source_index(s, lo, hi, mode)
        gm = np.moveaxis(g, axis, 0)
        acc = gm[lo:lo + s].copy()
        for j in list(range(lo)) + list(range(lo + s, lo + s + hi)):
            acc[idx[j]] += gm[j]
        g = np.moveaxis(acc, 0, axis)
    return np.ascontiguousarray(g)

"""Properties of convolution and pooling (docs/inside_the_network.md, section 6), as
measurable errors.

* Translation equivariance of convolution: ``f(g(x)) = g(f(x))`` for a shift ``g``.
* Local translation invariance of pooling: ``f(g(x)) ~ f(x)`` for small shifts.
* Neither holds for rotation or scaling (in general): ``rotation_equivariance_error`` and
  ``scale_equivariance_error`` measure how far they are from it.

Shifts are circular (``np.roll``) and compared only away from the borders, where zero
padding and the wrapped-around pixels cannot reach: an output unit is compared when its
whole receptive field lies inside the image both before and after the shift.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ..autograd.grad_mode import no_grad
from ..random import generator
from ..tensor import Tensor
from .receptive_field import trace_geometry

__all__ = [
    "equivariance_error",
    "invariance_error",
    "rotation_equivariance_error",
    "scale_equivariance_error",
]


def _run(f, arr: np.ndarray) -> np.ndarray:
    with no_grad():
        out = f(Tensor._make(np.ascontiguousarray(arr)))
    return out._data if isinstance(out, Tensor) else np.asarray(out)


def _input(x, input_shape, dtype=np.float64) -> np.ndarray:
    if x is not None:
        arr = x._data if isinstance(x, Tensor) else np.asarray(x, dtype=dtype)
        return arr if arr.ndim == 4 else arr[None]
    if input_shape is None:
        input_shape = (1, 3, 32, 32)
    shape = tuple(input_shape)
    shape = shape if len(shape) == 4 else (1, *shape)
    return generator().standard_normal(shape).astype(dtype)


def _geometry(f, arr: np.ndarray):
    """(field size, jump, start) per axis of ``f``'s output (identity for plain callables)."""
    if hasattr(f, "named_modules"):
        _, info = trace_geometry(f, Tensor._make(arr[:1].copy()))
        if info is not None and not info.global_:
            return info.size, info.jump, info.start
    return (1, 1), (1, 1), (0, 0)


def _shifts(shift, op: str) -> tuple[int, int]:
    s = (shift, shift) if isinstance(shift, (int, np.integer)) else tuple(shift)
    if len(s) != 2:
        raise ValueError(f"{op}: shift must be an int or (dy, dx), got {shift!r}")
    return int(s[0]), int(s[1])


def _interior(out_shape, size, jump, start, in_shape, shift) -> tuple:
    """Slices of the output units ``u`` whose field ``F(u)`` and shifted-back field
    ``F(u) - shift`` both lie inside the image: there neither padding nor the wrap-around of
    the circular shift can reach ``f(g x)[u]`` or ``f(x)[u - shift / jump]``."""
    sl = []
    for ax in range(2):
        r, j, st, s = size[ax], jump[ax], start[ax], shift[ax]
        pos = st + np.arange(out_shape[ax]) * j  # centre of each unit's field
        half = (r - 1) / 2
        ok = (pos - half >= max(0, s)) & (pos + half <= in_shape[ax] - 1 + min(0, s))
        idx = np.nonzero(ok)[0]
        sl.append(slice(idx[0], idx[-1] + 1) if len(idx) else slice(0, 0))
    return tuple(sl)


def _rel(a: np.ndarray, b: np.ndarray, op: str) -> float:
    if a.size == 0:
        raise ValueError(f"{op}: the input is too small: no output unit is free of border effects")
    den = np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / (den if den > 0 else 1.0))


def equivariance_error(
    layer_or_model,
    shift: int | Sequence[int] = 1,
    x=None,
    input_shape: Sequence[int] | None = None,
) -> float:
    """Relative error ``||f(g x) - g' f(x)|| / ||f(x)||`` of translation equivariance.

    ``g`` shifts the input by ``shift`` pixels (int or ``(dy, dx)``); ``g'`` shifts the output
    by ``shift / jump`` units (``jump`` = total stride), so ``shift`` must be a multiple of the
    total stride. Only units whose receptive field stays inside the image are compared.
    Convolutions (any stack of them, with ReLUs) give round-off; the result is a float.

    ``x`` is ``(N, C, H, W)`` (default: standard normal of ``input_shape``, (1, 3, 32, 32)).
    """
    op = "equivariance_error"
    arr = _input(x, input_shape)
    dy, dx = _shifts(shift, op)
    size, jump, start = _geometry(layer_or_model, arr)
    out_shift = []
    for s, j in zip((dy, dx), jump):
        if s % j:
            raise ValueError(f"{op}: shift {s} is not a multiple of the total stride {j}")
        out_shift.append(int(s // j))
    y = _run(layer_or_model, arr)
    if y.ndim != 4:
        raise ValueError(f"{op}: the output has shape {y.shape}; equivariance needs spatial maps")
    y_shifted = _run(layer_or_model, np.roll(arr, (dy, dx), axis=(2, 3)))
    expect = np.roll(y, out_shift, axis=(2, 3))
    sl = _interior(y.shape[2:], size, jump, start, arr.shape[2:], (dy, dx))
    return _rel(y_shifted[(..., *sl)], expect[(..., *sl)], op)


def invariance_error(
    pool,
    shift: int | Sequence[int] = 1,
    x=None,
    input_shape: Sequence[int] | None = None,
) -> float:
    """Relative change ``||f(g x) - f(x)|| / ||f(x)||`` under a small shift ``g`` of the input.

    Small for max pooling on inputs with isolated peaks (the maximum stays in its window),
    larger without pooling. Compared away from the borders as in ``equivariance_error``.
    """
    op = "invariance_error"
    arr = _input(x, input_shape)
    dy, dx = _shifts(shift, op)
    size, jump, start = _geometry(pool, arr)
    y = _run(pool, arr)
    y_shifted = _run(pool, np.roll(arr, (dy, dx), axis=(2, 3)))
    if y.ndim != 4:
        return _rel(y_shifted, y, op)
    sl = _interior(y.shape[2:], size, jump, start, arr.shape[2:], (dy, dx))
    return _rel(y_shifted[(..., *sl)], y[(..., *sl)], op)


def _transform_error(f, arr, g_in: Callable, g_out: Callable, crop: int, op: str) -> float:
    y = _run(f, arr)
    if y.ndim != 4:
        raise ValueError(f"{op}: the output has shape {y.shape}; equivariance needs spatial maps")
    a, b = _run(f, g_in(arr)), g_out(y)
    if a.shape[:2] != b.shape[:2]:
        raise ValueError(f"{op}: f(g x) has shape {a.shape} but g f(x) has shape {b.shape}")
    # unpadded layers: both maps start at the same input offset, so align them top-left
    h, w = min(a.shape[2], b.shape[2]), min(a.shape[3], b.shape[3])
    a, b = a[:, :, :h, :w], b[:, :, :h, :w]
    c = crop
    sl = (..., slice(c, a.shape[2] - c), slice(c, a.shape[3] - c))
    return _rel(a[sl], b[sl], op)


def rotation_equivariance_error(layer_or_model, x=None, input_shape=None, k: int = 1) -> float:
    """Relative error ``||f(rot x) - rot f(x)|| / ||f(x)||`` for a rotation by ``k * 90``
    degrees (exact, no interpolation). Near zero only for filters with that symmetry
    (e.g. a Gaussian blur); a learned or edge filter gives an error of order 1."""
    arr = _input(x, input_shape)
    size, _, _ = _geometry(layer_or_model, arr)
    rot = lambda a: np.rot90(a, k, axes=(2, 3))  # noqa: E731
    return _transform_error(layer_or_model, arr, rot, rot, int(max(size)),
                            "rotation_equivariance_error")


def scale_equivariance_error(layer_or_model, x=None, input_shape=None, factor: int = 2) -> float:
    """Relative error ``||f(up x) - up f(x)|| / ||f(x)||`` for nearest-neighbour upscaling by
    an integer ``factor``: a filter tuned to one scale does not commute with zooming."""
    if factor < 1:
        raise ValueError(f"scale_equivariance_error: factor must be >= 1, got {factor}")
    arr = _input(x, input_shape)
    size, _, _ = _geometry(layer_or_model, arr)
    up = lambda a: a.repeat(factor, axis=2).repeat(factor, axis=3)  # noqa: E731
    return _transform_error(layer_or_model, arr, up, up, int(max(size)) * factor,
                            "scale_equivariance_error")

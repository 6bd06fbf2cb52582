"""Index Functions along one axis: gather, scatter, scatter_add (and sort/topk values, which
are a gather of the sorted positions).

For an ``index`` array of the input's rank and an axis ``dim``, element ``p`` of ``index``
addresses ``p`` with coordinate ``dim`` replaced by ``index[p]`` (for ``dim = 0``:
``out[i][j] = a[index[i][j]][j]``). ``index`` may be smaller than the input on the other axes;
only its own extent is used. Arguments are validated by the Tensor methods.
"""
from __future__ import annotations

import numpy as np

from ..autograd.function import Function, unbroadcast
from .shape import GetItem


def _targets(index: np.ndarray, dim: int) -> tuple:
    """Coordinates into the input addressed by every element of ``index`` (broadcastable)."""
    coords = list(np.indices(index.shape, sparse=True))
    coords[dim] = index
    return tuple(coords)


def _leading(shape) -> tuple:
    """Slices selecting the first ``shape[d]`` entries of every axis."""
    return tuple(slice(0, n) for n in shape)


class Gather(Function):
    """``out = a[targets(index)]``; the gradient adds ``g`` back at the gathered positions
    (an element gathered twice receives both contributions)."""

    def forward(self, a, index, dim):
        self.shape, self.index, self.dim = a.shape, index, dim
        return a[_targets(index, dim)]

    def backward(self, g):
        ga = np.zeros(self.shape, dtype=g.dtype)
        np.add.at(ga, _targets(self.index, self.dim), g)
        return ga, None, None


class Sort(Gather):
    grad_fn_name = "SortBackward0"


class Topk(Gather):
    grad_fn_name = "TopkBackward0"


class Scatter(Function):
    """``out = a`` with ``out[targets(index)] = src`` (``src`` an array of at least
    ``index``'s extent, or a scalar). Gradients: ``a`` gets ``g`` with the overwritten
    positions zeroed; ``src`` gets ``g`` gathered at them."""

    def forward(self, a, index, src, dim):
        self.index, self.dim = index, dim
        self.src_shape = np.shape(src) if isinstance(src, np.ndarray) else None
        out = a.copy()
        vals = src[_leading(index.shape)] if self.src_shape is not None else src
        out[_targets(index, dim)] = vals
        return out

    def backward(self, g):
        na, _, ns = self.needs_input_grad[:3]
        where = _targets(self.index, self.dim)
        ga = gs = None
        if na:
            ga = g.copy()
            ga[where] = 0
        if ns and self.src_shape is not None:
            gs = np.zeros(self.src_shape, dtype=g.dtype)
            gs[_leading(self.index.shape)] = g[where]
        return ga, None, gs, None


class ScatterAdd(Function):
    """``out = a`` with ``src`` added at ``targets(index)`` (repeats accumulate). Gradients:
    ``a`` gets ``g``; ``src`` gets ``g`` gathered at the targets."""

    def forward(self, a, index, src, dim):
        self.index, self.dim, self.src_shape = index, dim, src.shape
        out = a.copy()
        np.add.at(out, _targets(index, dim), src[_leading(index.shape)])
        return out

    def backward(self, g):
        na, _, ns = self.needs_input_grad[:3]
        gs = None
        if ns:
            gs = np.zeros(self.src_shape, dtype=g.dtype)
            gs[_leading(self.index.shape)] = g[_targets(self.index, self.dim)]
        return (g if na else None), None, gs, None


class MaskedFill(Function):
    """``out = where(mask, value, a)`` (``value`` a scalar array). Gradients: ``a`` gets ``g``
    off the mask; ``value`` gets the sum of ``g`` on it."""

    def forward(self, a, mask, value):
        self.mask, self.a_shape, self.v_shape = mask, a.shape, np.shape(value)
        return np.where(mask, value, a)

    def backward(self, g):
        na, _, nv = self.needs_input_grad
        zero = np.zeros((), dtype=g.dtype)
        ga = unbroadcast(np.where(self.mask, zero, g), self.a_shape) if na else None
        gv = np.where(self.mask, g, zero).sum().reshape(self.v_shape) if nv else None
        return ga, None, gv


class IndexSelect(GetItem):
    grad_fn_name = "IndexSelectBackward0"


class Split(GetItem):
    grad_fn_name = "SplitBackward0"

"""Shape Functions: reshape, permute, expand, repeat, indexing, cat, stack."""
from __future__ import annotations

import numpy as np

from ..autograd.function import Function, unbroadcast


class Reshape(Function):
    def forward(self, a, shape):
        self.shape = a.shape
        return a.reshape(shape)

    def backward(self, g):
        return g.reshape(self.shape), None


class Permute(Function):
    def forward(self, a, dims):
        self.inverse = tuple(np.argsort(dims))
        return a.transpose(dims)

    def backward(self, g):
        return g.transpose(self.inverse), None


class Transpose(Permute):
    grad_fn_name = "TransposeBackward0"


class T(Permute):
    grad_fn_name = "TBackward0"


class Expand(Function):
    def forward(self, a, shape):
        self.shape = a.shape
        return np.broadcast_to(a, shape)

    def backward(self, g):
        return unbroadcast(g, self.shape), None


class Repeat(Function):
    """``repeat(*sizes)``: tile the tensor ``sizes[i]`` times along axis ``i``."""

    def forward(self, a, sizes):
        lead = len(sizes) - a.ndim
        self.in_shape = a.shape
        self.full_shape = (1,) * lead + a.shape
        self.sizes = sizes
        return np.tile(a.reshape(self.full_shape), sizes)

    def backward(self, g):
        # View each axis as (repeats, size) and sum the repeats away.
        split = []
        for r, n in zip(self.sizes, self.full_shape):
            split += [r, n]
        g = g.reshape(split).sum(axis=tuple(range(0, len(split), 2)))
        return g.reshape(self.in_shape), None


def _is_basic_index(idx) -> bool:
    items = idx if isinstance(idx, tuple) else (idx,)
    return all(
        i is None or i is Ellipsis or isinstance(i, (int, np.integer, slice)) for i in items
    )


class GetItem(Function):
    def forward(self, a, idx):
        self.shape, self.dtype, self.idx = a.shape, a.dtype, idx
        out = a[idx]
        return out if isinstance(out, np.ndarray) else np.asarray(out)

    def backward(self, g):
        out = np.zeros(self.shape, dtype=g.dtype)
        if _is_basic_index(self.idx) or _is_bool_index(self.idx):
            out[self.idx] = g  # each element selected at most once
        else:
            np.add.at(out, self.idx, g)  # integer arrays may repeat an element
        return out, None


def _is_bool_index(idx) -> bool:
    return isinstance(idx, np.ndarray) and idx.dtype == bool


class Cat(Function):
    def forward(self, *arrays, dim):
        self.dim = dim
        self.splits = np.cumsum([a.shape[dim] for a in arrays])[:-1]
        return np.concatenate(arrays, axis=dim)

    def backward(self, g):
        return tuple(np.split(g, self.splits, axis=self.dim))


class Stack(Function):
    def forward(self, *arrays, dim):
        self.dim = dim
        return np.stack(arrays, axis=dim)

    def backward(self, g):
        n = g.shape[self.dim]
        return tuple(np.take(g, i, axis=self.dim) for i in range(n))


class IndexPut(Function):
    """``out = a`` with ``out[idx] = value`` (``tensor[idx] = value``): the gradient of ``a`` is
    ``g`` with the assigned elements zeroed, that of ``value`` is ``g[idx]`` summed back to
    ``value``'s shape."""

    def forward(self, a, value, idx):
        self.idx, self.value_shape = idx, np.shape(value)
        out = a.copy()
        out[idx] = value
        return out

    def backward(self, g):
        ga = gv = None
        if self.needs_input_grad[0]:
            ga = g.copy()
            ga[self.idx] = 0
        if self.needs_input_grad[1]:
            gv = unbroadcast(np.asarray(g[self.idx]), self.value_shape)
        return ga, gv, None

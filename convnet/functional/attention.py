"""Attention: ``softmax(Q K^T / sqrt(d) + mask) V`` as one differentiable op.

Used by ``nn.MultiheadAttention`` (and so by the Vision Transformer). The fused op keeps
only the attention matrix for backward instead of the four intermediate graph nodes of a
composition of matmul, scale, softmax and matmul.
"""
from __future__ import annotations

import math

import numpy as np

from ..autograd.function import Function
from ..tensor import Tensor
from .dropout import dropout

__all__ = ["scaled_dot_product_attention"]


class _SDPA(Function):
    """Forward: ``A = softmax(s Q K^T + M)``, ``O = A V``. Backward (per batch):
    ``dV = A^T dO``, ``dA = dO V^T``, ``dS = A * (dA - rowsum(dA * A))``,
    ``dQ = s dS K``, ``dK = s dS^T Q``."""

    def forward(self, q, k, v, mask, scale):
        scores = np.matmul(q, np.swapaxes(k, -1, -2))
        scores *= scores.dtype.type(scale)
        if mask is not None:
            scores += mask
        scores -= scores.max(axis=-1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=-1, keepdims=True)
        self.q, self.k, self.v, self.attn, self.scale = q, k, v, scores, scale
        return np.matmul(scores, v)

    def backward(self, g):
        a, s = self.attn, self.attn.dtype.type(self.scale)
        need = self.needs_input_grad
        dv = np.matmul(np.swapaxes(a, -1, -2), g) if need[2] else None
        da = np.matmul(g, np.swapaxes(self.v, -1, -2))
        da -= (da * a).sum(axis=-1, keepdims=True)
        da *= a
        da *= s
        dq = np.matmul(da, self.k) if need[0] else None
        dk = np.matmul(np.swapaxes(da, -1, -2), self.q) if need[1] else None
        return (_unbroadcast_batch(dq, self.q.shape), _unbroadcast_batch(dk, self.k.shape),
                _unbroadcast_batch(dv, self.v.shape), None, None)


def _unbroadcast_batch(g, shape):
    if g is None or g.shape == tuple(shape):
        return g
    from ..autograd.function import unbroadcast

    return unbroadcast(g, shape)


def _additive_mask(attn_mask, is_causal: bool, l_q: int, l_k: int, dtype) -> np.ndarray | None:
    """Boolean masks (True = attend) and float masks (added to the scores) as one float mask."""
    mask = None
    if is_causal:
        mask = np.where(np.tril(np.ones((l_q, l_k), dtype=bool)), 0.0, -np.inf).astype(dtype)
    if attn_mask is not None:
        m = attn_mask._data if isinstance(attn_mask, Tensor) else np.asarray(attn_mask)
        m = np.where(m, 0.0, -np.inf).astype(dtype) if m.dtype == bool else m.astype(dtype)
        mask = m if mask is None else mask + m
    return mask


def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask=None,
                                 dropout_p: float = 0.0, is_causal: bool = False,
                                 scale: float | None = None) -> Tensor:
    """Attention ``softmax(Q K^T * scale + mask) V``.

    Shapes: query ``(*, L, E)``, key ``(*, S, E)``, value ``(*, S, Ev)`` -> ``(*, L, Ev)``, with
    broadcastable batch dims ``*`` (e.g. ``(N, heads)``). ``scale`` defaults to ``1/sqrt(E)``.
    ``attn_mask``: boolean (True = may attend, as PyTorch) or float (added to the scores),
    broadcastable to ``(*, L, S)``. ``is_causal`` masks future positions. ``dropout_p`` drops
    attention weights (pass 0 in evaluation, as PyTorch's functional does not know the mode).

    Example:
        >>> out = F.scaled_dot_product_attention(q, k, v)   # (N, h, L, d) each
    """
    for name, t in (("query", query), ("key", key), ("value", value)):
        if not isinstance(t, Tensor):
            raise TypeError(f"scaled_dot_product_attention: {name} must be a Tensor, "
                            f"got {type(t).__name__}")
        if t.ndim < 2:
            raise ValueError(f"scaled_dot_product_attention: {name} needs at least 2 dims "
                             f"(*, L, E), got shape {t.shape}")
    if query.shape[-1] != key.shape[-1]:
        raise ValueError(f"scaled_dot_product_attention: query embedding {query.shape[-1]} != "
                         f"key embedding {key.shape[-1]} (query {query.shape}, key {key.shape})")
    if key.shape[-2] != value.shape[-2]:
        raise ValueError(f"scaled_dot_product_attention: key length {key.shape[-2]} != value "
                         f"length {value.shape[-2]} (key {key.shape}, value {value.shape})")
    if not 0.0 <= dropout_p <= 1.0:
        raise ValueError(f"scaled_dot_product_attention: dropout_p must be in [0, 1], "
                         f"got {dropout_p}")
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else float(scale)
    mask = _additive_mask(attn_mask, is_causal, query.shape[-2], key.shape[-2], query.dtype)
    if dropout_p == 0.0:
        return _SDPA.apply(query, key, value, mask, scale)
    # With dropout on the weights, compose from differentiable ops.
    scores = (query @ key.transpose(-2, -1)) * scale
    if mask is not None:
        scores = scores + Tensor._make(mask)
    return dropout(scores.softmax(-1), dropout_p, True) @ value

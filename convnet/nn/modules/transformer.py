"""Multi-head self-attention and the Transformer encoder layer (Vaswani et al., "Attention is
all you need", NeurIPS 2017), with PyTorch's names, arguments and state-dict keys.

The Vision Transformer (``convnet.models.vit``) is built from these.
"""
from __future__ import annotations

import numpy as np

from ... import functional as F
from ...device import parameter_dtype
from ...tensor import Tensor
from .. import init
from ..parameter import Parameter
from .activation import GELU, ReLU
from .dropout import Dropout
from .linear import Linear
from .module import Module

__all__ = ["MultiheadAttention", "TransformerEncoderLayer"]


def _mask_array(mask, dtype) -> np.ndarray | None:
    """PyTorch's MHA masks: bool True = *not allowed* (-inf); float masks are added."""
    if mask is None:
        return None
    m = mask._data if isinstance(mask, Tensor) else np.asarray(mask)
    return np.where(m, -np.inf, 0.0).astype(dtype) if m.dtype == bool else m.astype(dtype)


class MultiheadAttention(Module):
    """``MultiHead(Q, K, V) = concat(head_1..head_h) W_O`` with
    ``head_i = softmax(Q W_Q^i (K W_K^i)^T / sqrt(d)) V W_V^i``, ``d = embed_dim / num_heads``.

    Args:
        embed_dim: model width E. num_heads: h (must divide E).
        dropout: on the attention weights in training (default 0).
        bias: biases in the projections (default True).
        batch_first: inputs ``(N, L, E)`` if True, else ``(L, N, E)`` (PyTorch's default).

    Parameters (PyTorch's names): ``in_proj_weight (3E, E)``, ``in_proj_bias (3E,)``,
    ``out_proj.weight (E, E)``, ``out_proj.bias (E,)``: ``4E^2 + 4E`` in all.

    Shape: query ``(L, N, E)``, key/value ``(S, N, E)`` (or batch first, or unbatched
    ``(L, E)``) -> output like query, and weights ``(N, L, S)`` (averaged over heads) when
    ``need_weights``. ``key_padding_mask (N, S)`` and bool ``attn_mask (L, S)`` or
    ``(N*h, L, S)``: True marks positions that may *not* be attended.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim=None, vdim=None,
                 batch_first: bool = False, device=None, dtype=None):
        super().__init__()
        dtype = parameter_dtype("MultiheadAttention", device, dtype)
        if embed_dim <= 0 or num_heads <= 0 or embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim ({embed_dim}) must be a positive "
                             f"multiple of num_heads ({num_heads})")
        if add_bias_kv or add_zero_attn or kdim not in (None, embed_dim) or \
                vdim not in (None, embed_dim):
            raise NotImplementedError("MultiheadAttention: add_bias_kv, add_zero_attn and "
                                      "kdim/vdim != embed_dim are not supported")
        self.embed_dim, self.num_heads, self.dropout = embed_dim, num_heads, dropout
        self.head_dim = embed_dim // num_heads
        self.batch_first = batch_first
        self.in_proj_weight = Parameter(np.empty((3 * embed_dim, embed_dim), dtype=dtype))
        if bias:
            self.in_proj_bias = Parameter(np.zeros(3 * embed_dim, dtype=dtype))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, dtype=dtype)
        init.xavier_uniform_(self.in_proj_weight)
        if bias:
            init.zeros_(self.out_proj.bias)

    def _project(self, x, i: int):
        e = self.embed_dim
        w = self.in_proj_weight[i * e:(i + 1) * e]
        b = None if self.in_proj_bias is None else self.in_proj_bias[i * e:(i + 1) * e]
        return F.linear(x, w, b)

    def forward(self, query, key, value, key_padding_mask=None, need_weights: bool = True,
                attn_mask=None, average_attn_weights: bool = True, is_causal: bool = False):
        unbatched = query.ndim == 2
        if query.ndim not in (2, 3):
            raise ValueError(f"MultiheadAttention: query must be 2-D or 3-D, got {query.shape}")
        if query.shape[-1] != self.embed_dim:
            raise ValueError(f"MultiheadAttention: query has embedding {query.shape[-1]} but "
                             f"embed_dim is {self.embed_dim} (query {query.shape})")
        if key.shape != value.shape or key.ndim != query.ndim or key.shape[-1] != self.embed_dim:
            raise ValueError(f"MultiheadAttention: key {key.shape} and value {value.shape} must "
                             f"match each other and the query's layout {query.shape}")
        if unbatched:
            query, key, value = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
        elif not self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        n, lq, e = query.shape
        s, h, d = key.shape[1], self.num_heads, self.head_dim
        if key.shape[0] != n:
            raise ValueError(f"MultiheadAttention: query batch {n} != key batch {key.shape[0]}")
        if query is key and key is value:  # self-attention: one GEMM for Q, K, V
            qkv = F.linear(query, self.in_proj_weight, self.in_proj_bias)
            qkv = qkv.reshape(n, lq, 3, h, d).permute(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]
        else:
            q = self._project(query, 0).reshape(n, lq, h, d).transpose(1, 2)
            k = self._project(key, 1).reshape(n, s, h, d).transpose(1, 2)
            v = self._project(value, 2).reshape(n, s, h, d).transpose(1, 2)
        mask = _mask_array(attn_mask, q.dtype)
        if mask is not None and mask.ndim == 3:  # (N*h, L, S)
            mask = mask.reshape(n, h, lq, s)
        pad = _mask_array(key_padding_mask, q.dtype)
        if pad is not None:
            if pad.shape != (n, s):
                raise ValueError(f"MultiheadAttention: key_padding_mask must be ({n}, {s}), "
                                 f"got {pad.shape}")
            pad = pad[:, None, None, :]
            mask = pad if mask is None else mask + pad
        p = self.dropout if self.training else 0.0
        weights = None
        if need_weights:
            scores = (q @ k.transpose(-2, -1)) * (1.0 / np.sqrt(d))
            if mask is not None:
                scores = scores + Tensor._make(mask)
            if is_causal:
                causal = np.where(np.tril(np.ones((lq, s), bool)), 0.0, -np.inf)
                scores = scores + Tensor._make(causal.astype(q.dtype))
            attn = scores.softmax(-1)
            weights = attn.mean(1) if average_attn_weights else attn
            out = F.dropout(attn, p, True) @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p,
                                                 is_causal=is_causal)
        out = self.out_proj(out.transpose(1, 2).reshape(n, lq, e))
        if unbatched:
            out = out.reshape(lq, e)
            weights = None if weights is None else weights.reshape(weights.shape[1:])
        elif not self.batch_first:
            out = out.transpose(0, 1)
        return out, weights

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}"


class TransformerEncoderLayer(Module):
    """Self-attention and a feed-forward block, each with a residual and LayerNorm.

    ``norm_first=False`` (post-norm, the original): ``x = norm1(x + SA(x))``,
    ``x = norm2(x + FF(x))``. ``norm_first=True`` (pre-norm, as in ViT):
    ``x = x + SA(norm1(x))``, ``x = x + FF(norm2(x))``. ``FF = linear2(dropout(act(linear1)))``.
    PyTorch's names (``self_attn, linear1, linear2, norm1, norm2``) and arguments.

    Shape: ``(S, N, E)`` (or ``(N, S, E)`` with ``batch_first``) -> the same.
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048,
                 dropout: float = 0.1, activation: str = "relu", layer_norm_eps: float = 1e-5,
                 batch_first: bool = False, norm_first: bool = False, bias: bool = True,
                 device=None, dtype=None):
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        from .normalization import LayerNorm

        if activation not in ("relu", "gelu"):
            raise ValueError(f"TransformerEncoderLayer: activation must be 'relu' or 'gelu', "
                             f"got {activation!r}")
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                            batch_first=batch_first, **kw)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, **kw)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, **kw)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, **kw)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, **kw)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.activation = ReLU() if activation == "relu" else GELU()

    def _sa(self, x, attn_mask, key_padding_mask, is_causal):
        out = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                             need_weights=False, is_causal=is_causal)[0]
        return self.dropout1(out)

    def _ff(self, x):
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal: bool = False):
        x = src
        if self.norm_first:
            x = x + self._sa(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            return x + self._ff(self.norm2(x))
        x = self.norm1(x + self._sa(x, src_mask, src_key_padding_mask, is_causal))
        return self.norm2(x + self._ff(x))

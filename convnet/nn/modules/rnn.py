"""Recurrent layers (``RNN``, ``LSTM``, ``GRU``) with torch's parameters, shapes and gate order.

Written as a loop over time steps of ordinary differentiable Tensor ops, so backward is
back-propagation through time by construction. Shapes (``batch_first=False``)::

    input (L, N, H_in)  or unbatched (L, H_in)      h_0, c_0 (D * num_layers, N, H)
    output (L, N, D * H)                            h_n, c_n (D * num_layers, N, H)

``D = 2`` when bidirectional. Per layer and direction the weights are torch's:
``weight_ih_l{k}{_reverse}`` (G * H, H_in), ``weight_hh_l{k}`` (G * H, H), biases (G * H,),
``G`` = 4 gates for LSTM (i, f, g, o), 3 for GRU (r, z, n), 1 for RNN; all initialised
``U(-1/sqrt(H), 1/sqrt(H))``.
"""
from __future__ import annotations

import math

from ... import creation
from ...tensor import Tensor
from .. import init
from ..parameter import Parameter
from .module import Module

__all__ = ["RNN", "LSTM", "GRU"]


class _RNNBase(Module):
    _gates = 1

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None):
        super().__init__()
        op = type(self).__name__
        if not (isinstance(hidden_size, int) and hidden_size > 0):
            raise ValueError(f"{op}: hidden_size must be a positive integer, got {hidden_size!r}")
        if not (isinstance(num_layers, int) and num_layers > 0):
            raise ValueError(f"{op}: num_layers must be a positive integer, got {num_layers!r}")
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"{op}: dropout must be in [0, 1], got {dropout}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional = bidirectional
        dirs = 2 if bidirectional else 1
        gh = self._gates * hidden_size
        for layer in range(num_layers):
            in_size = input_size if layer == 0 else hidden_size * dirs
            for suffix in ("", "_reverse")[:dirs]:
                shapes = {"weight_ih": (gh, in_size), "weight_hh": (gh, hidden_size)}
                if bias:
                    shapes.update(bias_ih=(gh,), bias_hh=(gh,))
                for name, shape in shapes.items():
                    setattr(self, f"{name}_l{layer}{suffix}", Parameter(creation.empty(*shape, dtype=dtype, device=device)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s

    # one time step: (x_t (N, H_in), state) -> new state; state[0] is h
    def _cell(self, x, state, w_ih, w_hh, b_ih, b_hh):  # pragma: no cover - abstract
        raise NotImplementedError

    def _initial(self, x: Tensor, hx, n: int, unbatched: bool):
        dirs = 2 if self.bidirectional else 1
        shape = (self.num_layers * dirs, n, self.hidden_size)
        n_states = 2 if isinstance(self, LSTM) else 1
        if hx is None:
            zero = creation.zeros(*shape, dtype=x.dtype)
            return (zero,) * n_states
        states = tuple(hx) if isinstance(hx, (tuple, list)) else (hx,)
        if len(states) != n_states:
            raise ValueError(f"{type(self).__name__}: expected {n_states} initial state tensor(s), "
                             f"got {len(states)}")
        if unbatched:
            states = tuple(s.unsqueeze(1) for s in states)
        for s in states:
            if tuple(s.shape) != shape:
                raise RuntimeError(f"{type(self).__name__}: expected hidden size {shape}, "
                                   f"got {tuple(s.shape)}")
        return states

    def forward(self, input: Tensor, hx=None):
        op = type(self).__name__
        if input.ndim not in (2, 3):
            raise ValueError(f"{op}: expected input of 2 (L, H_in) or 3 dims, got shape {tuple(input.shape)}")
        unbatched = input.ndim == 2
        x = input.unsqueeze(1) if unbatched else (input.transpose(0, 1) if self.batch_first else input)
        if x.shape[-1] != self.input_size:
            raise RuntimeError(f"{op}: input.size(-1) must be equal to input_size. "
                               f"Expected {self.input_size}, got {x.shape[-1]}")
        steps, n = x.shape[0], x.shape[1]
        states = self._initial(x, hx, n, unbatched)
        dirs = 2 if self.bidirectional else 1
        finals = [[] for _ in states]
        layer_in = [x[t] for t in range(steps)]
        for layer in range(self.num_layers):
            outs_by_dir = []
            for d, suffix in enumerate(("", "_reverse")[:dirs]):
                k = layer * dirs + d
                params = [getattr(self, f"{name}_l{layer}{suffix}", None)
                          for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
                state = tuple(s[k] for s in states)
                order = range(steps - 1, -1, -1) if d == 1 else range(steps)
                outs = [None] * steps
                for t in order:
                    state = self._cell(layer_in[t], state, *params)
                    outs[t] = state[0]
                outs_by_dir.append(outs)
                for i, s in enumerate(state):
                    finals[i].append(s)
            layer_in = [creation.cat([o[t] for o in outs_by_dir], dim=1) if dirs == 2
                        else outs_by_dir[0][t] for t in range(steps)]
            if self.dropout and self.training and layer < self.num_layers - 1:
                from ...functional import dropout

                layer_in = [dropout(h, self.dropout) for h in layer_in]
        out = creation.stack(layer_in, dim=0)
        final = tuple(creation.stack(f, dim=0) for f in finals)
        if unbatched:
            out, final = out.squeeze(1), tuple(f.squeeze(1) for f in final)
        elif self.batch_first:
            out = out.transpose(0, 1)
        return out, (final if isinstance(self, LSTM) else final[0])


def _affine(x, w, b):
    y = x @ w.T
    return y if b is None else y + b


class RNN(_RNNBase):
    """Elman RNN: ``h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh)``, ``act`` tanh or relu."""

    def __init__(self, *args, nonlinearity: str = "tanh", **kwargs):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: unknown nonlinearity {nonlinearity!r} (tanh or relu)")
        super().__init__(*args, **kwargs)
        self.nonlinearity = nonlinearity

    def _cell(self, x, state, w_ih, w_hh, b_ih, b_hh):
        pre = _affine(x, w_ih, b_ih) + _affine(state[0], w_hh, b_hh)
        return (pre.tanh() if self.nonlinearity == "tanh" else pre.relu(),)


class LSTM(_RNNBase):
    """LSTM (gates i, f, g, o as torch): ``c' = f c + i g``, ``h' = o tanh(c')``; returns
    ``output, (h_n, c_n)``."""

    _gates = 4

    def _cell(self, x, state, w_ih, w_hh, b_ih, b_hh):
        h, c = state
        gates = _affine(x, w_ih, b_ih) + _affine(h, w_hh, b_hh)
        hs = self.hidden_size
        i = gates[:, 0 * hs:1 * hs].sigmoid()
        f = gates[:, 1 * hs:2 * hs].sigmoid()
        g = gates[:, 2 * hs:3 * hs].tanh()
        o = gates[:, 3 * hs:4 * hs].sigmoid()
        c = f * c + i * g
        return o * c.tanh(), c


class GRU(_RNNBase):
    """GRU (gates r, z, n as torch): ``n = tanh(W_in x + b_in + r (W_hn h + b_hn))``,
    ``h' = (1 - z) n + z h``."""

    _gates = 3

    def _cell(self, x, state, w_ih, w_hh, b_ih, b_hh):
        h = state[0]
        gi, gh = _affine(x, w_ih, b_ih), _affine(h, w_hh, b_hh)
        hs = self.hidden_size
        r = (gi[:, :hs] + gh[:, :hs]).sigmoid()
        z = (gi[:, hs:2 * hs] + gh[:, hs:2 * hs]).sigmoid()
        n = (gi[:, 2 * hs:] + r * gh[:, 2 * hs:]).tanh()
        return ((1.0 - z) * n + z * h,)

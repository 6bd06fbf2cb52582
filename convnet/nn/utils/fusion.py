"""Folding batch norm into the preceding convolution for inference.

In eval mode a batch norm is a fixed per-channel affine map, ``y = (z - mu) s + beta`` with
``s = gamma / sqrt(var + eps)``. When ``z = conv(x) + b`` feeds it directly, the two collapse
into one convolution with

    w'[o] = w[o] * s[o]        b'[o] = (b[o] - mu[o]) * s[o] + beta[o]

which removes the batch norm's two passes over the activations (see BENCHMARKS.md: NumPy
cannot fuse ``x * scale + shift`` into one pass, a conv's bias add it already pays for).
"""
from __future__ import annotations

import copy

import numpy as np

from ...autograd.grad_mode import enable_grad, no_grad
from ...tensor import Tensor
from ..modules.container import Identity
from ..modules.conv import _ConvNd
from ..modules.module import Module
from ..modules.normalization import _BatchNorm
from ..parameter import Parameter

__all__ = ["fuse_conv_bn_weights", "fuse_conv_bn_eval", "fuse_conv_bn"]


def fuse_conv_bn_weights(conv_w: np.ndarray, conv_b: np.ndarray | None,
                         bn_rm: np.ndarray, bn_rv: np.ndarray, bn_eps: float,
                         bn_w: np.ndarray | None, bn_b: np.ndarray | None):
    """The weight ``(C_out, C_in/G, *K)`` and bias ``(C_out,)`` of ``bn(conv(x))`` in eval mode,
    as one conv (formula in the module docstring). Computed in float64, returned in the conv
    weight's dtype."""
    dtype = conv_w.dtype
    c_out = conv_w.shape[0]
    for name, v in (("running_mean", bn_rm), ("running_var", bn_rv), ("weight", bn_w),
                    ("bias", bn_b)):
        if v is not None and np.shape(v) != (c_out,):
            raise ValueError(f"fuse_conv_bn_weights: batch norm {name} has shape "
                             f"{np.shape(v)} but the conv has {c_out} output channels")
    scale = 1.0 / np.sqrt(np.asarray(bn_rv, np.float64) + bn_eps)
    if bn_w is not None:
        scale = scale * np.asarray(bn_w, np.float64)
    bias = np.zeros(c_out) if conv_b is None else np.asarray(conv_b, np.float64)
    bias = (bias - np.asarray(bn_rm, np.float64)) * scale
    if bn_b is not None:
        bias = bias + np.asarray(bn_b, np.float64)
    w = np.asarray(conv_w, np.float64) * scale.reshape((c_out,) + (1,) * (conv_w.ndim - 1))
    return w.astype(dtype), bias.astype(dtype)


def _fuse_into(conv: _ConvNd, bn: _BatchNorm) -> None:
    """Overwrite ``conv``'s parameters with the fused ones (``conv`` gains a bias)."""
    if conv._transposed:
        raise TypeError("fuse_conv_bn_eval: transposed convolutions are not supported")
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError(f"fuse_conv_bn_eval: {type(bn).__name__} has no running statistics "
                         "(track_running_stats=False), so it is not a fixed map in eval mode")
    w, b = fuse_conv_bn_weights(
        conv.weight._data, None if conv.bias is None else conv.bias._data,
        bn.running_mean._data, bn.running_var._data, bn.eps,
        None if bn.weight is None else bn.weight._data, None if bn.bias is None else bn.bias._data)
    conv.weight = Parameter(w)
    conv.bias = Parameter(b)


def fuse_conv_bn_eval(conv: _ConvNd, bn: _BatchNorm) -> _ConvNd:
    """A new conv computing ``bn(conv(x))`` of the eval-mode pair; the inputs are unchanged.

    Both must be in eval mode (a training batch norm uses batch statistics, which no fixed
    conv can reproduce).
    """
    if conv.training or bn.training:
        raise ValueError("fuse_conv_bn_eval: call .eval() first; only eval-mode batch norm is a "
                         "fixed affine map")
    if bn.num_features != conv.out_channels:
        raise ValueError(f"fuse_conv_bn_eval: {type(bn).__name__}({bn.num_features}) cannot "
                         f"follow a conv with {conv.out_channels} output channels")
    fused = copy.deepcopy(conv)
    _fuse_into(fused, bn)
    return fused


def _outputs(out) -> list[Tensor]:
    if isinstance(out, Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _outputs(o)]
    if isinstance(out, dict):
        return [t for o in out.values() for t in _outputs(o)]
    return []


def _consumers(outputs: list[Tensor]) -> dict[int, int]:
    """How many recorded ops read each tensor (by ``id``) in the graph behind ``outputs``."""
    count: dict[int, int] = {}
    seen, stack = set(), [t._ctx for t in outputs if t._ctx is not None]
    while stack:
        fn = stack.pop()
        if id(fn) in seen:
            continue
        seen.add(id(fn))
        for p in fn.parents:
            if p is None:
                continue
            count[id(p)] = count.get(id(p), 0) + 1
            if p._ctx is not None:
                stack.append(p._ctx)
    return count


def fuse_conv_bn(model: Module, example_input) -> Module:
    """An eval-mode copy of ``model`` with every ``Conv -> BatchNorm`` pair folded into the conv
    and the batch norm replaced by ``nn.Identity``; ``model`` itself is left as it is.

    The pairs are found by running ``model(example_input)`` once (any small batch of the right
    shape): a batch norm is folded when its input is the output of a conv that nothing else
    reads, and neither module is called more than once (shared modules are left alone).
    ``example_input`` may be a Tensor, a NumPy array, or a tuple of positional inputs.

    Shapes are unchanged: ``(N, C_in, H, W) -> model's output``; outputs agree with the unfused
    model's to float rounding (``tests/pool_norm/test_fusion.py``).
    """
    fused = copy.deepcopy(model).eval()
    calls = {}  # id(module) -> [(input tensor, output tensor), ...]

    def hook(mod, inputs, output):
        calls.setdefault(id(mod), []).append((inputs[0] if inputs else None, output))

    candidates = [m for _, m in fused.named_modules()
                  if (isinstance(m, _ConvNd) and not m._transposed) or isinstance(m, _BatchNorm)]
    handles = [m.register_forward_hook(hook) for m in candidates]
    args = example_input if isinstance(example_input, tuple) else (example_input,)
    args = tuple(a if isinstance(a, Tensor) or not isinstance(a, np.ndarray) else Tensor(a)
                 for a in args)
    try:
        with enable_grad():  # the graph tells who reads each conv output
            out = fused(*args)
    finally:
        for h in handles:
            h.remove()
    readers = _consumers(_outputs(out))
    conv_of_output = {}
    for m in candidates:
        if isinstance(m, _ConvNd) and len(calls.get(id(m), [])) == 1:
            conv_of_output[id(calls[id(m)][0][1])] = m
    pairs = []
    for m in candidates:
        if not isinstance(m, _BatchNorm) or len(calls.get(id(m), [])) != 1:
            continue
        if m.running_mean is None or m.running_var is None:
            continue
        x = calls[id(m)][0][0]
        conv = conv_of_output.get(id(x))
        if conv is not None and readers.get(id(x), 0) == 1 and conv.out_channels == m.num_features:
            pairs.append((conv, m))
    del out, conv_of_output
    calls.clear()  # free the recorded activations (the hook's closure still holds the dict)
    bns = {id(bn) for _, bn in pairs}
    with no_grad():
        for conv, bn in pairs:
            _fuse_into(conv, bn)
        for _, parent in list(fused.named_modules()):
            for name, child in list(parent._modules.items()):
                if child is not None and id(child) in bns:
                    setattr(parent, name, Identity())
    return fused

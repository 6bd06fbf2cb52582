"""Activation (feature) maps of every layer for one input, and a layer's learned filters."""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import numpy as np

from ..autograd.grad_mode import no_grad
from ..tensor import Tensor

__all__ = ["feature_maps", "layer_filters", "layer_types", "resolve_layer", "as_input"]


def as_input(x, dtype=None) -> Tensor:
    """A batched input Tensor from a Tensor / array of shape ``(C, H, W)`` or ``(N, C, H, W)``."""
    if isinstance(x, Tensor):
        return x
    arr = np.asarray(x)
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32)
    if dtype is not None:
        arr = arr.astype(dtype, copy=False)
    return Tensor._make(np.ascontiguousarray(arr))


def resolve_layer(model, layer):
    """``layer`` as a module: a module of ``model`` is returned as is, a name is looked up
    with ``get_submodule``; an unknown name raises ``ValueError`` listing valid names."""
    if not isinstance(layer, str):
        if not any(m is layer for m in model.modules()):
            raise ValueError(f"layer {type(layer).__name__} is not a submodule of the model")
        return layer
    try:
        return model.get_submodule(layer)
    except (AttributeError, KeyError, IndexError, ValueError):
        names = [n for n, _ in model.named_modules() if n]
        raise ValueError(f"no layer named {layer!r}; layers are: {', '.join(names)}") from None


def feature_maps(model, x, layers: Sequence[str] | None = None) -> "OrderedDict[str, np.ndarray]":
    """Outputs of the leaf layers (or of ``layers``, names from ``named_modules``) for input
    ``x``: ``{name: ndarray}`` in execution order, e.g. ``'0' -> (N, 6, 28, 28)``.

    Runs under ``no_grad`` in the model's current mode (call ``model.eval()`` first for
    inference behaviour of dropout / batch norm).
    """
    x = as_input(x)
    if layers is None:
        targets = [(n, m) for n, m in model.named_modules()
                   if n and not any(True for _ in m.children())]
    else:
        targets = [(n, resolve_layer(model, n)) for n in layers]
    maps: OrderedDict[str, np.ndarray] = OrderedDict()
    handles = []

    def make_hook(name):
        def hook(module, inputs, output):
            out = output[0] if isinstance(output, (tuple, list)) else output
            if isinstance(out, Tensor):
                key, i = name, 1
                while key in maps:  # a module called twice gets name#2, name#3, ...
                    i += 1
                    key = f"{name}#{i}"
                maps[key] = out._data.copy()
        return hook

    for n, m in targets:
        handles.append(m.register_forward_hook(make_hook(n)))
    try:
        with no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return maps


def layer_types(model) -> dict[str, str]:
    """``{name: class name}`` of every named module, e.g. ``'features.0' -> 'Conv2d'``: the
    labels of ``viz.save_feature_maps`` rows."""
    return {n: type(m).__name__ for n, m in model.named_modules() if n}


def layer_filters(model, layer) -> np.ndarray:
    """The weight array of a conv layer, ``(C_out, C_in/groups, *K)`` (a copy)."""
    m = resolve_layer(model, layer)
    w = getattr(m, "weight", None)
    if w is None or w.ndim < 3:
        raise ValueError(
            f"layer_filters: layer {layer!r} ({type(m).__name__}) has no convolution weight"
        )
    return w._data.copy()

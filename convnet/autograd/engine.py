"""Reverse-mode differentiation: an iterative topological sort, then one pass back.

Each output Tensor points at the Function that made it (``_ctx``); a Function
points at its input Tensors (``parents``) and at the Functions that made them when it was
recorded (``edges``: an in-place op may give a Tensor a new history afterwards). Backward visits Functions from the
output towards the leaves, so every Function runs once, after all of its output
gradients are known. The sort is iterative, so deep networks cannot overflow the
Python stack.
"""
from __future__ import annotations

import numpy as np


def _topological_order(root_fn) -> list:
    """Functions reachable from ``root_fn``, each after every Function that consumes it."""
    order, visited = [], set()
    stack = [(root_fn, False)]
    while stack:
        fn, done = stack.pop()
        if done:
            order.append(fn)
            continue
        if id(fn) in visited:
            continue
        visited.add(id(fn))
        if fn.parents is None:
            raise RuntimeError(
                "backward: trying to backward through the graph a second time (its saved "
                "arrays were freed); call .backward(retain_graph=True) the first time"
            )
        stack.append((fn, True))
        for edge in fn.edges:
            if edge is not None and id(edge[0]) not in visited:
                stack.append((edge[0], False))
    order.reverse()
    return order


def _accumulate(slot, grad):
    return grad if slot is None else slot + grad


def run_backward(root, grad: np.ndarray, retain_graph: bool = False) -> None:
    """Back-propagate ``grad`` (d loss / d root) into the ``.grad`` of every leaf."""
    from ..tensor import Tensor

    if root._ctx is None:
        _store_leaf_grad(root, grad, Tensor)
        return
    grads: dict[int, list] = {id(root._ctx): [None] * root._ctx._n_outputs}
    grads[id(root._ctx)][root._out_index] = grad
    for fn in _topological_order(root._ctx):
        outs = grads.pop(id(fn), None)
        if outs is None:
            continue
        retained = fn.__dict__.get("_retained")
        if retained:
            for i, ref in retained.items():
                t = ref()
                if t is not None and outs[i] is not None:
                    _store_leaf_grad(t, outs[i], Tensor)
        watch = fn.__dict__.get("_watch")
        if watch:
            _check_versions(fn, watch)
        in_grads = fn.backward(*outs)
        if not isinstance(in_grads, tuple):
            in_grads = (in_grads,)
        for p, g, need, edge in zip(fn.parents, in_grads, fn.needs_input_grad, fn.edges):
            if g is None or not need:
                continue
            if g.shape != p.shape:
                raise RuntimeError(
                    f"{type(fn).__name__}.backward returned a gradient of shape {g.shape} "
                    f"for an input of shape {p.shape}"
                )
            if g.dtype != p._data.dtype:
                g = g.astype(p._data.dtype)
            if edge is None:
                _store_leaf_grad(p, g, Tensor)
            else:
                ctx, index = edge
                slots = grads.get(id(ctx))
                if slots is None:
                    slots = grads[id(ctx)] = [None] * ctx._n_outputs
                slots[index] = _accumulate(slots[index], g)
        if not retain_graph:
            # Free the saved arrays and the links: activations can be reclaimed now.
            n_out = fn._n_outputs
            fn.__dict__.clear()
            fn._n_outputs = n_out
            fn.parents = None
            fn.edges = None


def _check_versions(fn, watch) -> None:
    """Refuse to differentiate through arrays that an in-place op overwrote after ``fn``
    saved them (torch's version-counter check)."""
    for box, version, shape, dtype in watch:
        if box[0] != version:
            raise RuntimeError(
                "backward: one of the variables needed for gradient computation has been "
                f"modified by an inplace operation: a {dtype} tensor of shape {tuple(shape)} "
                f"saved by {type(fn).__name__} is at version {box[0]}; expected version "
                f"{version} instead. Use an out-of-place op (y = y + x) or .clone() it first."
            )


def _store_leaf_grad(t, g: np.ndarray, Tensor) -> None:
    if not g.flags.writeable:  # broadcast views must not become a user-visible .grad
        g = np.array(g)
    if t.grad is None:
        t.grad = Tensor._make(g)
    else:
        t.grad = Tensor._make(t.grad._data + g)

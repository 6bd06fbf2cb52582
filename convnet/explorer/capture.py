"""Forward hooks on every module: each call's first input and output, and each layer's facts.

A *layer* of the explorer is one call of one module (leaf or container, the root excluded), in
the order the calls start: a container comes before its children, and a module called twice
(ResNet's shared ReLU) gives two layers, the second named ``"<name> (call 2)"``. Nothing here
knows any particular model: the hooks see ``nn.Module`` calls, and ``input_from`` is found by
tensor identity (the layer whose output object is this call's first input; ``-1`` for the
model's input, ``None`` when a functional op made it, e.g. ``torch.cat`` in a U-Net).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..autograd.grad_mode import enable_grad, no_grad
from ..tensor import Tensor

__all__ = ["Call", "capture", "layer_table", "explain_config"]


@dataclass
class Call:
    """One module call: ``index`` is the layer id; ``input``/``output`` the first input and
    output tensors' arrays (batch dim kept) or ``None`` when not a Tensor."""

    index: int
    name: str
    module: object
    parent: int | None
    leaf: bool
    input_from: int | None
    input: np.ndarray | None = None
    output: np.ndarray | None = None
    in_tensor: object = None  # the Tensors themselves (only when keep_tensors)
    out_tensor: object = None
    children: list = field(default_factory=list)


def _first_tensor(obj):
    if isinstance(obj, Tensor):
        return obj
    if isinstance(obj, (tuple, list)):
        for o in obj:
            if isinstance(o, Tensor):
                return o
    if isinstance(obj, dict):
        for o in obj.values():
            if isinstance(o, Tensor):
                return o
    return None


def capture(model, x: Tensor, keep_tensors: bool = False, grad: bool = False):
    """Run ``model(x)`` with hooks on every module; returns ``(calls, output)`` where
    ``output`` is the model's (first) output Tensor.

    A module flagged ``inplace=True`` would overwrite an earlier capture's array: that array is
    copied before such a module runs.
    """
    names = {id(m): n for n, m in model.named_modules()}
    calls: list[Call] = []
    stack: list[int | None] = []
    counts: dict[int, int] = {}
    producers: dict[int, int] = {}
    alive: list = []  # keeps every seen tensor alive, so no id() is reused during the pass
    handles = []

    def pre(module, args):
        first = _first_tensor(args)
        if module is model:
            stack.append(None)
            if first is not None:
                producers[id(first)] = -1
                alive.append(first)
            return None
        if first is not None and getattr(module, "inplace", False) is True:
            arr = first._data
            snap = arr.copy()  # the module is about to write into this array
            for c in calls:
                if c.output is arr:
                    c.output = snap
                if c.input is arr:
                    c.input = snap
        k = counts.get(id(module), 0) + 1
        counts[id(module)] = k
        base = names.get(id(module)) or type(module).__name__
        parent = stack[-1] if stack else None
        c = Call(len(calls), base if k == 1 else f"{base} (call {k})", module, parent,
                 not any(True for _ in module.children()),
                 producers.get(id(first)) if first is not None else None)
        if first is not None:
            c.input = first._data
            alive.append(first)
            if keep_tensors:
                c.in_tensor = first
        if parent is not None:
            calls[parent].children.append(c.index)
        calls.append(c)
        stack.append(c.index)
        return None

    def post(module, args, output):
        idx = stack.pop() if stack else None
        if idx is None:
            return None
        c = calls[idx]
        out = _first_tensor(output)
        if out is not None:
            c.output = out._data
            alive.append(out)
            producers.setdefault(id(out), idx)  # the innermost (first) producer wins
            if keep_tensors:
                c.out_tensor = out
        return None

    for m in model.modules():
        handles.append(m.register_forward_pre_hook(pre))
        handles.append(m.register_forward_hook(post))
    try:
        with (enable_grad() if grad else no_grad()):
            out = model(x)
    finally:
        for h in handles:
            h.remove()
    return calls, _first_tensor(out)


# ------------------------------------------------------------------------ per-layer facts
def _pair(v) -> list:
    if isinstance(v, (tuple, list)):
        v = list(v)
        return [int(v[0]), int(v[-1])] if len(v) else [1, 1]
    return [int(v), int(v)]


def _opt_int(v):
    return None if v is None else int(v)


ACTIVATIONS = {"ReLU": "relu", "LeakyReLU": "leaky_relu", "ReLU6": "relu6", "Sigmoid": "sigmoid",
               "Tanh": "tanh", "SiLU": "silu", "ELU": "elu", "Hardswish": "hardswish",
               "Hardsigmoid": "hardsigmoid", "Softplus": "softplus", "Mish": "mish"}
IDENTITY = {"Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "Identity",
            "Flatten"}


def explain_config(module, out_shape: tuple | None) -> tuple[str | None, dict | None]:
    """``(explain kind, config)`` of a leaf module, recognised by class name and PyTorch's
    attribute names (see the HTTP API in docs/explorer.md); ``(None, None)`` otherwise."""
    kind = type(module).__name__
    w = getattr(module, "weight", None)
    if all(hasattr(module, a) for a in ("in_channels", "out_channels", "kernel_size")) and \
            isinstance(w, Tensor) and w.ndim == 4:
        transposed = bool(getattr(module, "transposed", False)) or "Transpose" in kind
        k = _pair(module.kernel_size)
        d = _pair(getattr(module, "dilation", 1))
        pad = getattr(module, "padding", 0)
        if isinstance(pad, str):  # 'same': total d*(k-1), left = total // 2 (PyTorch)
            pad = [di * (ki - 1) // 2 for ki, di in zip(k, d)] if pad == "same" else [0, 0]
        cfg = {"in_channels": int(module.in_channels), "out_channels": int(module.out_channels),
               "kernel_size": k, "stride": _pair(getattr(module, "stride", 1)),
               "padding": _pair(pad), "dilation": d, "groups": int(getattr(module, "groups", 1)),
               "padding_mode": str(getattr(module, "padding_mode", "zeros")),
               "bias": getattr(module, "bias", None) is not None, "transposed": transposed}
        return (None if transposed else "conv"), cfg
    if kind == "Linear" or (hasattr(module, "in_features") and hasattr(module, "out_features")
                            and isinstance(w, Tensor) and w.ndim == 2):
        return "linear", {"in_features": int(module.in_features),
                          "out_features": int(module.out_features),
                          "bias": getattr(module, "bias", None) is not None}
    if kind in ("MaxPool2d", "AvgPool2d"):
        is_max = kind == "MaxPool2d"
        return "pool", {
            "kind": "max" if is_max else "avg",
            "kernel_size": _pair(module.kernel_size),
            "stride": _pair(module.stride if module.stride is not None else module.kernel_size),
            "padding": _pair(module.padding),
            "dilation": _pair(getattr(module, "dilation", 1)) if is_max else [1, 1],
            "ceil_mode": bool(module.ceil_mode),
            "count_include_pad": None if is_max else bool(module.count_include_pad),
            "divisor_override": None if is_max else _opt_int(module.divisor_override)}
    if kind in ("AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "GlobalAvgPool2d", "GlobalMaxPool2d"):
        flat = out_shape is not None and len(out_shape) != 3
        size = [1, 1] if flat or out_shape is None else [int(out_shape[1]), int(out_shape[2])]
        return "adaptive_pool", {"kind": "max" if "Max" in kind else "avg", "output_size": size,
                                 "flat": flat}
    if kind in ACTIVATIONS or kind == "GELU":
        name = ACTIVATIONS.get(kind)
        if kind == "GELU":
            name = "gelu_tanh" if getattr(module, "approximate", "none") == "tanh" else "gelu"
        cfg = {"name": name}
        for a in ("negative_slope", "alpha", "beta", "threshold"):
            if hasattr(module, a):
                cfg[a] = float(getattr(module, a))
        return "activation", cfg
    if kind in ("BatchNorm1d", "BatchNorm2d"):
        return "batchnorm", {"eps": float(module.eps), "affine": bool(module.affine),
                             "track_running_stats": bool(module.track_running_stats)}
    if kind == "LayerNorm":
        return "layernorm", {"normalized_shape": [int(s) for s in module.normalized_shape],
                             "eps": float(module.eps),
                             "elementwise_affine": bool(module.elementwise_affine)}
    if kind == "GroupNorm":
        return "groupnorm", {"num_groups": int(module.num_groups),
                             "num_channels": int(module.num_channels), "eps": float(module.eps),
                             "affine": bool(module.affine)}
    if kind in IDENTITY:
        return "identity", {}
    return None, None


def param_names(module) -> list[str]:
    """Float parameters and buffers of the module itself (weight, bias, running_mean, ...)."""
    out = []
    for store in ("_parameters", "_buffers"):
        for n, t in getattr(module, store, {}).items():
            if isinstance(t, Tensor) and np.issubdtype(t.dtype, np.floating):
                out.append(n)
    return out


def _rf(f) -> dict | None:
    if f is None or f.global_ or len(f.size) != 2:
        return None
    return {"size": [float(v) if not float(v).is_integer() else int(v) for v in f.size],
            "jump": [float(v) if not float(v).is_integer() else int(v) for v in f.jump],
            "start": [float(v) if not float(v).is_integer() else int(v) for v in f.start]}


def _union_field(t: Tensor, known: dict):
    """Field of a tensor no leaf module made (a container ending in ``a + b``): the union of
    the nearest known fields among its graph ancestors."""
    stack, seen, found = [t], set(), []
    while stack:
        u = stack.pop()
        if id(u) in seen:
            continue
        seen.add(id(u))
        if id(u) in known:
            if known[id(u)] is not None:
                found.append(known[id(u)])
            continue
        ctx = getattr(u, "_ctx", None)
        if ctx is not None and getattr(ctx, "parents", None) is not None:
            stack.extend(p for p in ctx.parents if p is not None)
    found = [f for f in found if not f.global_]
    if not found:
        return None
    f = found[0]
    for g in found[1:]:
        f = f.union(g)
    return f


def layer_table(model, input_shape: tuple, dtype=np.float32):
    """One traced pass on zeros of ``(1, *input_shape)``: ``(layers, totals)`` where
    ``layers`` is the ``meta.layers`` list of the HTTP API (without per-input data) and
    ``totals`` has ``total_params``, ``total_macs``, ``receptive_field``, ``output_shape``,
    ``top_layers`` and ``calls`` (the :class:`Call` list, for module look-ups)."""
    from ..analysis.receptive_field import FieldInfo, trace_geometry
    from ..analysis.summary import count_macs

    x = Tensor._make(np.zeros((1, *input_shape), dtype=dtype))
    # trace_geometry runs the model once; our hooks, registered around that same call, see
    # every module (containers too), theirs the leaves with their receptive fields
    calls_box: list = []

    def traced(m, inp):
        c, o = capture(m, inp, keep_tensors=True, grad=True)
        calls_box.append(c)
        return o

    # trace_geometry calls model(x): wrap it so our capture runs the pass itself
    wrapper = _CallThrough(model, traced)
    with enable_grad():
        traces, out_field = trace_geometry(wrapper, x)
    calls = calls_box[0]

    known: dict[int, object] = {}
    for t in traces:
        o = _first_tensor(t.output)
        if o is not None:
            known[id(o)] = t.field
    first_in = next((c.in_tensor for c in calls if c.input_from == -1), None)
    if first_in is not None:
        n = first_in.ndim - 2
        known.setdefault(id(first_in), FieldInfo((1,) * n, (1,) * n, (0,) * n))

    macs = {}
    layers = []
    first_of: dict[int, int] = {}  # id(output tensor) -> the first layer that returned it
    for c in calls:
        out = c.out_tensor
        shape = tuple(int(s) for s in out.shape[1:]) if out is not None else None
        if c.leaf:
            macs[c.index] = count_macs(c.module, (c.in_tensor,) if c.in_tensor is not None
                                       else (), out)
        f = None
        if out is not None and out.ndim == 4:
            f = known.get(id(out)) if id(out) in known else _union_field(out, known)
        explain, cfg = explain_config(c.module, shape) if c.leaf else (None, None)
        layers.append({"id": c.index, "name": c.name, "kind": type(c.module).__name__,
                       "top": None, "depth": c.name.split(" (call")[0].count("."),
                       "leaf": c.leaf, "parent_id": c.parent, "input_from": c.input_from,
                       "output_shape": list(shape) if shape is not None else None,
                       "params": 0, "macs": 0, "rf": _rf(f), "config": cfg,
                       "explain": explain, "param_names": param_names(c.module),
                       "same_output_as": None})
    # a container hands back its last child's tensor, an Identity its input: say so (the
    # later layer's maps equal the earlier one's)
    for c in calls:
        if c.out_tensor is not None:
            k = first_of.setdefault(id(c.out_tensor), c.index)
            if k != c.index:
                layers[c.index]["same_output_as"] = k
    # containers sum their descendants' leaf calls (parameters counted once per module)
    for c in reversed(calls):
        desc, todo = [], [c.index]
        while todo:
            i = todo.pop()
            desc.append(i)
            todo.extend(calls[i].children)
        mods = {id(calls[i].module): calls[i].module for i in desc}
        seen = set()
        n = 0
        for m in mods.values():
            for p in m.parameters(recurse=False):
                if id(p) not in seen:
                    seen.add(id(p))
                    n += int(np.prod(p.shape))
        layers[c.index]["params"] = n
        layers[c.index]["macs"] = int(sum(macs.get(i, 0) for i in desc))
    for c in calls:
        top = c
        while top.parent is not None:
            top = calls[top.parent]
        layers[c.index]["top"] = top.name
    top_layers = []
    for c in calls:
        if c.parent is None and c.name not in top_layers:
            top_layers.append(c.name)
    total_params = sum(int(np.prod(p.shape)) for p in model.parameters())
    if out_field is not None and not out_field.global_:
        rf = [int(v) if float(v).is_integer() else float(v) for v in out_field.size]
    else:
        rf = next((lay["rf"]["size"] for lay in reversed(layers) if lay["rf"] and lay["leaf"]),
                  None)
    return layers, {"total_params": total_params, "total_macs": int(sum(macs.values())),
                    "receptive_field": rf, "top_layers": top_layers, "calls": calls}


class _CallThrough:
    """Looks like ``model`` to ``trace_geometry`` (modules, named_modules, __call__), but its
    call runs ``fn(model, x)``: our capture of every module around the same forward pass."""

    def __init__(self, model, fn):
        self._model, self._fn = model, fn

    def __call__(self, x):
        return self._fn(self._model, x)

    def __getattr__(self, name):
        return getattr(self._model, name)

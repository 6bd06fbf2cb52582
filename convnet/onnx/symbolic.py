"""ONNX symbolics: how each convnet op becomes ONNX nodes.

``FUNCTIONS`` maps a :class:`~convnet.autograd.Function` subclass (looked up along its MRO,
so subclasses inherit) to ``symbolic(g, op) -> list of output names`` (one per output of the
Function; ``None`` for one with no ONNX counterpart). ``MODULES`` maps a module class to
``symbolic(g, op)`` for layers emitted as a whole (their inner ops are not traced), used
only when the module's class does not override ``forward``. ``g`` is the
:class:`~convnet.onnx._graph.Graph`: ``g.arg(name)`` is the ONNX name of the op's argument
``name`` (``op.a`` holds the arguments by the Function's ``forward`` parameter names),
``g.node(type, inputs, **attrs)`` adds a node.

Opset: 13 at least (Softmax on one axis, Squeeze/Unsqueeze axes as inputs); newer opsets
use LayerNormalization (17), GELU (20) and Pad's ``wrap`` mode (19) when available.
"""
from __future__ import annotations

import math
from importlib import import_module

import numpy as np

from ..kernels import pool as KP
from ..kernels import resample as KR
from ..nn.modules import activation as MA
from ..nn.modules import upsampling as MU
from ..tensor import Tensor
from ._graph import INT64_MAX, INT64_MIN


def _m(name):  # by module path: convnet.functional re-exports functions of the same names
    return import_module(f"convnet.{name}")


A, At, C, D = (_m(f"functional.{n}") for n in ("activation", "attention", "conv", "dropout"))
Gr, Li, N, P = (_m(f"functional.{n}") for n in ("grid", "linear", "normalization", "padding"))
PS, Po, R = (_m(f"functional.{n}") for n in ("pixel_shuffle", "pooling", "resample"))
Ein, E, Ix = (_m(f"ops.{n}") for n in ("einsum", "elementwise", "indexing"))
MM, Red, S = (_m(f"ops.{n}") for n in ("matmul", "reduction", "shape"))

FUNCTIONS: dict = {}
MODULES: dict = {}


def register(*classes):
    def deco(f):
        for c in classes:
            FUNCTIONS[c] = f
        return f
    return deco


def register_module(*classes):
    def deco(f):
        for c in classes:
            MODULES[c] = f
        return f
    return deco


def function_symbolic(cls):
    for c in cls.__mro__:
        f = FUNCTIONS.get(c)
        if f is not None:
            return f
    return None


def module_symbolic(module):
    for c in type(module).__mro__:
        f = MODULES.get(c)
        if f is not None:
            # a subclass with its own forward computes something else
            return f if type(module).forward is c.forward else None
    return None


def _dtype(t):
    return t.dtype if isinstance(t, (Tensor, np.ndarray)) else np.asarray(t).dtype


def _out_shapes(g, j: int = 0):
    s1 = tuple(g.op.outputs[j].shape)
    s2 = tuple(g.alt.outputs[j].shape) if g.alt is not None else None
    return s1, s2


def _arg_shapes(g, name: str):
    s1 = tuple(g.op.a[name].shape)
    s2 = tuple(g.alt.a[name].shape) if g.alt is not None else None
    return s1, s2


# ================================================================== element-wise
def _binary(onnx_op):
    def sym(g, op):
        out_dt = op.outputs[0].dtype
        ins = []
        for name in ("a", "b"):
            x = g.arg(name)
            if _dtype(op.a[name]) != out_dt:
                x = g.cast(x, out_dt)
            ins.append(x)
        return [g.node(onnx_op, ins)]
    return sym


register(E.Add)(_binary("Add"))
register(E.Sub)(_binary("Sub"))
register(E.Mul)(_binary("Mul"))
register(E.Div)(_binary("Div"))
register(E.Pow)(_binary("Pow"))


def _unary(onnx_op, **attrs):
    def sym(g, op):
        return [g.node(onnx_op, [g.arg(next(iter(op.a)))], **attrs)]
    return sym


for _cls, _name in ((E.Neg, "Neg"), (E.Exp, "Exp"), (E.Log, "Log"), (E.Sqrt, "Sqrt"),
                    (E.Abs, "Abs"), (E.Sigmoid, "Sigmoid"), (E.Tanh, "Tanh"),
                    (E.Relu, "Relu"), (E.Clone, "Identity")):
    register(_cls)(_unary(_name))


@register(E.PowScalar)
def _pow_scalar(g, op):
    x, p = g.arg("a"), op.a["p"]
    if p == 1:
        return [g.node("Identity", [x])]
    if p == 2:  # exact, and what ORT would do anyway
        return [g.node("Mul", [x, x])]
    if p == 0.5:
        return [g.node("Sqrt", [x])]
    return [g.node("Pow", [x, g.scalar(p, op.a["a"].dtype)])]


@register(E.RPowScalar)
def _rpow_scalar(g, op):
    return [g.node("Pow", [g.scalar(op.a["c"], op.a["a"].dtype), g.arg("a")])]


@register(E.Clamp)
def _clamp(g, op):
    dt = op.a["a"].dtype
    lo, hi = op.a["lo"], op.a["hi"]
    return [g.node("Clip", [g.arg("a"), None if lo is None else g.scalar(lo, dt),
                            None if hi is None else g.scalar(hi, dt)])]


@register(E.Where)
def _where(g, op):
    cond = op.a["cond"]
    c = g.arg("cond")
    if np.asarray(cond).dtype != bool:
        c = g.cast(c, bool)
    out_dt = op.outputs[0].dtype
    ins = []
    for name in ("a", "b"):
        x = g.arg(name) if isinstance(op.a[name], Tensor) else g.const(
            np.asarray(op.a[name], out_dt))
        if _dtype(op.a[name]) != out_dt:
            x = g.cast(x, out_dt)
        ins.append(x)
    return [g.node("Where", [c] + ins)]


@register(E.Cast)
def _cast(g, op):
    return [g.cast(g.arg("a"), op.a["dtype"])]


@register(E.Assign)
def _assign(g, op):
    new = g.arg("new")
    if op.a["new"].dtype != op.a["old"].dtype:
        new = g.cast(new, op.a["old"].dtype)
    return [g.node("Expand", [new, g.node("Shape", [g.arg("old")])])]


@register(E.Log1p)
def _log1p(g, op):
    return [g.node("Log", [g.node("Add", [g.arg("a"), g.scalar(1, op.a["a"].dtype)])])]


@register(E.Expm1)
def _expm1(g, op):
    return [g.node("Sub", [g.node("Exp", [g.arg("a")]), g.scalar(1, op.a["a"].dtype)])]


@register(E.RoundedDiv)
def _rounded_div(g, op):
    if op.outputs[0].dtype.kind != "f":
        raise g.fail("integer division with rounding_mode has no exact ONNX equivalent")
    q = g.node("Div", [g.arg("a"), g.arg("b")])
    if op.a["mode"] == "floor":
        return [g.node("Floor", [q])]
    return [g.node("Mul", [g.node("Sign", [q]), g.node("Floor", [g.node("Abs", [q])])])]


@register(A._Hardtanh)
def _hardtanh(g, op):
    dt = op.a["x"].dtype
    return [g.node("Clip", [g.arg("x"), g.scalar(op.a["lo"], dt), g.scalar(op.a["hi"], dt)])]


@register(A._LeakyReLU)
def _leaky_relu(g, op):
    return [g.node("LeakyRelu", [g.arg("x")], alpha=float(op.a["slope"]))]


@register(A._ELUFn)
def _elu(g, op):
    return [g.node("Elu", [g.arg("x")], alpha=float(op.a["alpha"]))]


@register(A._GELU)
def _gelu(g, op):
    x, dt, approx = g.arg("x"), op.a["x"].dtype, op.a["approximate"]
    if g.opset >= 20:
        return [g.node("Gelu", [x], approximate=approx)]
    half = g.node("Mul", [x, g.scalar(0.5, dt)])
    if approx == "tanh":  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        cube = g.node("Mul", [g.node("Mul", [x, x]), x])
        inner = g.node("Add", [x, g.node("Mul", [cube, g.scalar(0.044715, dt)])])
        t = g.node("Tanh", [g.node("Mul", [inner, g.scalar(math.sqrt(2 / math.pi), dt)])])
    else:  # 0.5 x (1 + erf(x / sqrt 2))
        t = g.node("Erf", [g.node("Mul", [x, g.scalar(1 / math.sqrt(2), dt)])])
    return [g.node("Mul", [half, g.node("Add", [t, g.scalar(1, dt)])])]


@register(A._Softmax)
def _softmax(g, op):
    return [g.node("Softmax", [g.arg("x")], axis=int(op.a["dim"]))]


@register(A._LogSoftmax)
def _log_softmax(g, op):
    return [g.node("LogSoftmax", [g.arg("x")], axis=int(op.a["dim"]))]


@register(D._Mask)
def _mask(g, op):
    return [g.node("Mul", [g.arg("x"), g.array(np.asarray(op.a["mask"]), "dropout_mask")])]


# ================================================================== shapes
@register(S.Reshape)
def _reshape(g, op):
    return [g.reshape(g.arg("a"), *_out_shapes(g))]


@register(S.Permute)
def _permute(g, op):
    return [g.node("Transpose", [g.arg("a")], perm=[int(d) for d in op.a["dims"]])]


@register(S.Expand)
def _expand(g, op):
    s1, s2 = _out_shapes(g)
    return [g.node("Expand", [g.arg("a"), g.shape_tensor(s1, s2)])]


@register(S.Repeat)
def _repeat(g, op):
    x = g.arg("a")
    a = op.a["a"]
    sizes = [int(s) for s in op.a["sizes"]]
    lead = len(sizes) - a.ndim
    if lead:
        x = g.unsqueeze(x, range(lead))
    s2 = [int(s) for s in g.alt.a["sizes"]] if g.alt is not None else None
    return [g.node("Tile", [x, g.shape_tensor(sizes, s2)])]


@register(S.Cat)
def _cat(g, op):
    arrays = op.a["arrays"]
    alts = g.alt.a["arrays"] if g.alt is not None else [None] * len(arrays)
    dt = op.outputs[0].dtype
    ins = []
    for t, t2 in zip(arrays, alts):
        x = g.v(t, t2)
        ins.append(g.cast(x, dt) if t.dtype != dt else x)
    return [g.node("Concat", ins, axis=int(op.a["dim"]))]


@register(S.Stack)
def _stack(g, op):
    arrays = op.a["arrays"]
    alts = g.alt.a["arrays"] if g.alt is not None else [None] * len(arrays)
    d = int(op.a["dim"])
    ins = [g.unsqueeze(g.v(t, t2), [d]) for t, t2 in zip(arrays, alts)]
    return [g.node("Concat", ins, axis=d)]


def _index_items(idx, ndim):
    items = list(idx) if isinstance(idx, tuple) else [idx]
    n_ell = sum(1 for i in items if i is Ellipsis)
    if n_ell > 1:
        return None
    used = sum(1 for i in items if i is not None and i is not Ellipsis and not (
        isinstance(i, np.ndarray) and i.dtype == bool))
    used += sum(i.ndim for i in items if isinstance(i, np.ndarray) and i.dtype == bool)
    if n_ell:
        k = items.index(Ellipsis)
        items[k:k + 1] = [slice(None)] * (ndim - used)
    else:
        items += [slice(None)] * (ndim - used)
    return items


@register(S.GetItem)
def _getitem(g, op):
    a = op.a["a"]
    items = _index_items(op.a["idx"], a.ndim)
    if items is None:
        raise g.fail("an index with more than one Ellipsis")
    x = g.arg("a")
    starts, ends, axes, steps = [], [], [], []
    squeeze, new_axes = [], []
    gather = None  # (input axis, index array)
    ax = out = 0
    for it in items:
        if it is None:
            new_axes.append(out)
            out += 1
        elif isinstance(it, (int, np.integer)) or (isinstance(it, np.ndarray) and it.ndim == 0
                                                    and it.dtype.kind in "iu"):
            i = int(it)
            starts.append(i)
            ends.append(i + 1 if i != -1 else INT64_MAX)
            axes.append(ax)
            steps.append(1)
            squeeze.append(ax)
            ax += 1
        elif isinstance(it, slice):
            if it != slice(None) and it != slice(None, None, 1):
                step = 1 if it.step is None else int(it.step)
                if step > 0:
                    st = 0 if it.start is None else int(it.start)
                    en = INT64_MAX if it.stop is None else int(it.stop)
                else:
                    st = -1 if it.start is None else int(it.start)
                    en = INT64_MIN if it.stop is None else int(it.stop)
                starts.append(st)
                ends.append(en)
                axes.append(ax)
                steps.append(step)
            ax += 1
            out += 1
        elif isinstance(it, np.ndarray):
            arr = it
            if arr.dtype == bool:
                if arr.ndim != 1:
                    raise g.fail("a boolean index over more than one dim")
                arr = np.nonzero(arr)[0]
            if arr.dtype.kind not in "iu" or gather is not None:
                raise g.fail("more than one array index (advanced indexing)")
            gather = (ax, arr.astype(np.int64), out)
            ax += 1
            out += arr.ndim
        else:
            raise g.fail(f"an index of type {type(it).__name__}")
    if gather is not None and squeeze:
        raise g.fail("an array index combined with integer indices")
    if axes:
        x = g.node("Slice", [x, g.i64(starts), g.i64(ends), g.i64(axes), g.i64(steps)])
    if squeeze:
        x = g.squeeze(x, squeeze)
    if gather is not None:
        axis, arr, _ = gather
        x = g.node("Gather", [x, g.const(arr, hint="indices")], axis=axis)
    if new_axes:
        x = g.unsqueeze(x, new_axes)
    return [x]


@register(S.IndexPut)
def _index_put(g, op):
    raise g.fail("assignment into a slice (tensor[idx] = value) is not supported; build the "
                 "tensor with cat/where instead")


# ================================================================== reductions
@register(Red.Sum)
def _sum(g, op):
    return [g.reduce("ReduceSum", g.arg("a"), _axes(op), op.a["keepdim"])]


@register(Red.Mean)
def _mean(g, op):
    return [g.reduce("ReduceMean", g.arg("a"), _axes(op), op.a["keepdim"])]


def _axes(op):
    axes = op.a["axes"]
    if axes is None:
        return None
    return [int(axes)] if isinstance(axes, (int, np.integer)) else [int(a) for a in axes]


@register(Red.Var)
def _var(g, op):
    x, a = g.arg("a"), op.a["a"]
    axes = _axes(op)
    full = list(range(a.ndim)) if axes is None else axes
    mean = g.reduce("ReduceMean", x, full, True)
    d = g.node("Sub", [x, mean])
    ss = g.reduce("ReduceSum", g.node("Mul", [d, d]), full, op.a["keepdim"])
    n = a._data.size // max(op.outputs[0]._data.size, 1)
    if g.alt is not None and \
            g.alt.a["a"]._data.size // max(g.alt.outputs[0]._data.size, 1) != n:
        raise g.fail("a variance over the batch dim")
    var = g.node("Div", [ss, g.scalar(max(n - op.a["correction"], 0), a.dtype)])
    return [g.node("Sqrt", [var]) if op.a["take_sqrt"] else var]


@register(Red.MaxAll)
def _max_all(g, op):
    return [g.reduce("ReduceMin" if op.a["use_min"] else "ReduceMax", g.arg("a"), None, False)]


@register(Red.MaxDim)
def _max_dim(g, op):
    x, d, keep, use_min = g.arg("a"), int(op.a["dim"]), op.a["keepdim"], op.a["use_min"]
    vals = g.reduce("ReduceMin" if use_min else "ReduceMax", x, [d], keep)
    idx = g.node("ArgMin" if use_min else "ArgMax", [x], axis=d, keepdims=int(keep))
    return [vals, idx]


@register(MM.MatMul)
def _matmul(g, op):
    return [g.node("MatMul", [g.arg("a"), g.arg("b")])]


@register(Ein.Einsum)
def _einsum(g, op):
    arrays = op.a["arrays"]
    alts = g.alt.a["arrays"] if g.alt is not None else [None] * len(arrays)
    eq = ",".join(op.a["terms"]) + "->" + op.a["out"]
    return [g.node("Einsum", [g.v(t, t2) for t, t2 in zip(arrays, alts)], equation=eq)]


# ================================================================== indexing
def _int64(g, name):
    x = g.arg(name)
    return x if np.asarray(g.op.a[name]).dtype == np.int64 else g.cast(x, np.int64)


@register(Ix.Gather)
def _gather(g, op):
    return [g.node("GatherElements", [g.arg("a"), _int64(g, "index")],
                   axis=int(op.a["dim"]))]


@register(Ix.Sort, Ix.Topk)
def _sort(g, op):
    raise g.fail("sort/topk order elements by their values, which the traced op does not "
                 "record")


@register(Ix.MaskedFill)
def _masked_fill(g, op):
    dt = op.outputs[0].dtype
    return [g.node("Where", [g.arg("mask"),
                             g.const(np.asarray(op.a["value"], dt)), g.arg("a")])]


# ================================================================== layers
def _pads(pairs):
    return [int(lo) for lo, _ in pairs] + [int(hi) for _, hi in pairs]


def _weight(g, name: str, transform, suffix: str):
    """The op's argument ``name`` through ``transform`` (an ndarray function) as a new
    initializer (``<parameter name>.<suffix>``) when it is a constant; None when it is
    computed in the graph (the caller then emits the transform as nodes)."""
    w = g.op.a[name]
    if isinstance(w, Tensor) and g.t1.find(w) is None:
        data = g.t1.snapshots.get(id(w), w._data)
        return g.const(transform(data), hint=f"{g.param_names.get(id(w), 'weight')}.{suffix}")
    return None


@register(C._Conv)
def _conv(g, op):
    w = op.a["w"]
    nd = w.ndim - 2
    wname = g.arg("w")
    if op.a["flip"]:
        flipped = _weight(g, "w", lambda a: np.ascontiguousarray(a[(slice(None),) * 2 + (
            slice(None, None, -1),) * nd]), "flipped")
        wname = flipped or g.node("Slice", [wname, g.i64([-1] * nd), g.i64([INT64_MIN] * nd),
                                            g.i64(range(2, 2 + nd)), g.i64([-1] * nd)])
    ins = [g.arg("x"), wname] + ([g.arg("b")] if op.a["b"] is not None else [])
    return [g.node("Conv", ins, kernel_shape=list(w.shape[2:]),
                   strides=list(op.a["stride"]), pads=_pads(op.a["pads"]),
                   dilations=list(op.a["dilation"]), group=int(op.a["groups"]))]


@register(C._ConvTranspose)
def _conv_transpose(g, op):
    x, w = op.a["x"], op.a["w"]
    ks, st, di, pads = w.shape[2:], op.a["stride"], op.a["dilation"], op.a["pads"]
    out_sp = op.outputs[0].shape[2:]
    opad = [int(o - ((n - 1) * s - lo - hi + d * (k - 1) + 1))
            for o, n, s, (lo, hi), d, k in zip(out_sp, x.shape[2:], st, pads, di, ks)]
    ins = [g.arg("x"), g.arg("w")] + ([g.arg("b")] if op.a["b"] is not None else [])
    return [g.node("ConvTranspose", ins, kernel_shape=list(ks), strides=list(st),
                   pads=_pads(pads), dilations=list(di), group=int(op.a["groups"]),
                   output_padding=opad if any(opad) else None)]


@register(At._SDPA)
def _sdpa(g, op):
    q, k = op.a["q"], op.a["k"]
    dt = q.dtype
    kt = g.node("Transpose", [g.arg("k")],
                perm=list(range(k.ndim - 2)) + [k.ndim - 1, k.ndim - 2])
    scores = g.node("Mul", [g.node("MatMul", [g.arg("q"), kt]), g.scalar(op.a["scale"], dt)])
    if op.a["mask"] is not None:
        scores = g.node("Add", [scores, g.array(np.asarray(op.a["mask"], dt), "attn_mask")])
    attn = g.node("Softmax", [scores], axis=-1)
    return [g.node("MatMul", [attn, g.arg("v")])]


@register(N._ScaleShift)
def _scale_shift(g, op):
    x = op.a["x"]
    dt, c = x.dtype, x.shape[1]
    w = g.arg("w") if op.a["w"] is not None else g.const(np.ones(c, dt), hint="ones")
    b = g.arg("b") if op.a["b"] is not None else g.const(np.zeros(c, dt), hint="zeros")
    mean, var = op.a["mean"], op.a["var"]
    m = g.array(mean) if mean.dtype == dt else g.const(mean.astype(dt))
    v = g.array(var) if var.dtype == dt else g.const(var.astype(dt))
    return [g.node("BatchNormalization", [g.arg("x"), w, b, m, v],
                   epsilon=float(op.a["eps"]))]


@register(N._Normalize)
def _normalize(g, op):
    x, w, b = op.a["x"], op.a["w"], op.a["b"]
    stat, aff, eps = tuple(op.a["stat_shape"]), tuple(op.a["aff_shape"]), float(op.a["eps"])
    dt = x.dtype
    xn = g.arg("x")
    alt = g.alt.a if g.alt is not None else None
    # layer norm: statistics per row of (m, k), affine along k
    if stat[0] == 1 and aff == (stat[1], stat[2], 1) and g.opset >= 17:
        naxes = w.ndim if w is not None else (b.ndim if b is not None else None)
        if naxes is None:  # the fewest trailing dims holding the k normalised values
            naxes = 1
            while naxes < x.ndim and math.prod(x.shape[x.ndim - naxes:]) != stat[2]:
                naxes += 1
        nshape = x.shape[x.ndim - naxes:]
        scale = g.arg("w") if w is not None else g.const(np.ones(nshape, dt), hint="ones")
        ins = [xn, scale] + ([g.arg("b")] if b is not None else [])
        return [g.node("LayerNormalization", ins, axis=x.ndim - naxes, epsilon=eps), None, None]
    # instance norm: per (sample, channel) plane, affine per channel
    if x.ndim >= 3 and stat[0] == 1 and aff[:2] == tuple(x.shape[:2]) \
            and stat[1] == aff[0] * aff[1] and stat[2] == aff[2]:
        c = x.shape[1]
        scale = g.arg("w") if w is not None else g.const(np.ones(c, dt), hint="ones")
        bias = g.arg("b") if b is not None else g.const(np.zeros(c, dt), hint="zeros")
        return [g.node("InstanceNormalization", [xn, scale, bias], epsilon=eps), None, None]
    # general: standardise over axes (0, 2) of x viewed as stat_shape
    xr = g.reshape(xn, stat, alt["stat_shape"] if alt else None)
    mean = g.reduce("ReduceMean", xr, [0, 2], True)
    d = g.node("Sub", [xr, mean])
    var = g.reduce("ReduceMean", g.node("Mul", [d, d]), [0, 2], True)
    y = g.node("Div", [d, g.node("Sqrt", [g.node("Add", [var, g.scalar(eps, dt)])])])
    if w is not None or b is not None:
        y = g.reshape(y, aff, alt["aff_shape"] if alt else None)
        for name, onnx_op in (("w", "Mul"), ("b", "Add")):
            t = op.a[name]
            if t is None:
                continue
            folded = _weight(g, name, lambda a: a.reshape(1, -1, 1), "reshaped")
            p = folded or g.reshape(g.arg(name), (1, t._data.size, 1))
            y = g.node(onnx_op, [y, p])
    return [g.reshape(y, tuple(x.shape), tuple(alt["x"].shape) if alt else None), None, None]


@register(N._ChannelWindowMean)
def _channel_window_mean(g, op):
    x, size = op.a["x"], int(op.a["size"])
    lo, hi = size // 2, (size - 1) // 2
    x4 = g.node("Reshape", [g.arg("x"), g.i64([0, 1, x.shape[1], -1])])
    x4 = g.node("Pad", [x4, g.i64([0, 0, lo, 0, 0, 0, hi, 0])])
    y = g.node("AveragePool", [x4], kernel_shape=[size, 1], strides=[1, 1])
    return [g.node("Reshape", [y, g.node("Shape", [g.arg("x")])])]


@register(P._Pad)
def _pad(g, op):
    x = op.a["x"]
    pairs, mode = op.a["pairs"], op.a["mode"]
    xn = g.arg("x")
    if mode == "circular" and g.opset < 19:
        for d, (lo, hi) in enumerate(pairs):
            parts = []
            if lo:
                parts.append(g.node("Slice", [xn, g.i64([-lo]), g.i64([INT64_MAX]), g.i64([d])]))
            parts.append(xn)
            if hi:
                parts.append(g.node("Slice", [xn, g.i64([0]), g.i64([hi]), g.i64([d])]))
            if len(parts) > 1:
                xn = g.node("Concat", parts, axis=d)
        return [xn]
    onnx_mode = {"constant": "constant", "reflect": "reflect", "replicate": "edge",
                 "circular": "wrap"}[mode]
    ins = [xn, g.i64(_pads(pairs))]
    if mode == "constant":
        ins.append(g.scalar(op.a["value"] or 0, x.dtype))
    return [g.node("Pad", ins, mode=onnx_mode)]


@register(PS._PixelShuffle, PS._PixelUnshuffle)
def _pixel_shuffle(g, op):
    x, r = op.a["x"], int(op.a["r"])
    shuffle = isinstance(op.obj, PS._PixelShuffle)
    if shuffle and x.ndim == 4:
        return [g.node("DepthToSpace", [g.arg("x")], blocksize=r, mode="CRD")]
    nb = x.ndim - 3
    c, h, w = x.shape[-3:]
    keep = [0] * nb  # leading dims copied from the input
    if shuffle:
        y = g.node("Reshape", [g.arg("x"), g.i64(keep + [c // (r * r), r, r, h, w])])
        perm = list(range(nb)) + [nb, nb + 3, nb + 1, nb + 4, nb + 2]
        y = g.node("Transpose", [y], perm=perm)
        return [g.node("Reshape", [y, g.i64(keep + [c // (r * r), h * r, w * r])])]
    y = g.node("Reshape", [g.arg("x"), g.i64(keep + [c, h // r, r, w // r, r])])
    perm = list(range(nb)) + [nb, nb + 2, nb + 4, nb + 1, nb + 3]
    y = g.node("Transpose", [y], perm=perm)
    return [g.node("Reshape", [y, g.i64(keep + [c * r * r, h // r, w // r])])]


@register(Gr._GridSample2d)
def _grid_sample(g, op):
    if g.opset < 16:
        raise g.fail("GridSample needs opset 16 or newer")
    mode = op.a["mode"]
    if g.opset >= 20:
        mode = {"bilinear": "linear", "bicubic": "cubic"}.get(mode, mode)
    return [g.node("GridSample", [g.arg("input"), g.arg("grid")], mode=mode,
                   padding_mode=op.a["padding_mode"], align_corners=int(op.a["align_corners"]))]


# ---------------------------------------------------------------------- linear
@register(Po._WeightedPool)
def _weighted_pool(g, op):
    w = op.a["w"]
    c, ks = w.shape[0], w.shape[1:]
    wk = _weight(g, "w", lambda a: a.reshape((c, 1) + tuple(ks)), "reshaped")
    wk = wk or g.node("Reshape", [g.arg("w"), g.i64((c, 1) + tuple(ks))])
    ps = op.a["ps"]
    return [g.node("Conv", [g.arg("x"), wk], kernel_shape=list(ks), strides=list(op.a["ss"]),
                   pads=list(ps) + list(ps), dilations=list(op.a["ds"]), group=c)]


def _linear_impl(g, x: Tensor, xname: str, wname_arg: str, has_b: bool):
    if x.ndim == 2:
        ins = [xname, g.arg(wname_arg)] + ([g.arg("b")] if has_b else [])
        return g.node("Gemm", ins, transB=1)
    wt = _weight(g, wname_arg, lambda a: np.ascontiguousarray(a.T), "T")
    wt = wt or g.node("Transpose", [g.arg(wname_arg)], perm=[1, 0])
    y = g.node("MatMul", [xname, wt])
    return g.node("Add", [y, g.arg("b")]) if has_b else y


@register(Li._Linear)
def _linear(g, op):
    return [_linear_impl(g, op.a["x"], g.arg("x"), "w", op.a["b"] is not None)]


# ---------------------------------------------------------------------- pooling
def _pool_extra(n, k, s, lo, hi, d, out):
    """Right padding that makes floor-mode pooling produce ``out`` windows."""
    need = (out - 1) * s + d * (k - 1) + 1 - (n + lo + hi)
    return max(need, 0)


@register(Po._MaxPool)
def _max_pool(g, op):
    x = op.a["x"]
    ks, ss, ps, ds = (list(op.a[k]) for k in ("ks", "ss", "ps", "ds"))
    out_sp = op.outputs[0].shape[2:]
    floor_outs = KP.pool_output_shape(x.shape[2:], ks, ss, ps, ds, False)
    ceil = bool(op.a["ceil_mode"]) and tuple(floor_outs) != tuple(out_sp)
    xn = g.arg("x")
    if op.a["use_min"]:
        xn = g.node("Neg", [xn])
    n_out = 2 if op.a["return_indices"] else 1
    res = g.node("MaxPool", [xn], n_out=n_out, kernel_shape=ks, strides=ss, pads=ps + ps,
                 dilations=ds, ceil_mode=int(ceil))
    y = res if n_out == 1 else res[0]
    if op.a["use_min"]:
        y = g.node("Neg", [y])
    if n_out == 1:
        return [y]
    plane = math.prod(x.shape[2:])  # ONNX flattens over (N, C, *L); convnet per plane
    return [y, g.node("Mod", [res[1], g.i64([plane])])]


@register(Po._AvgPool)
def _avg_pool(g, op):
    x = op.a["x"]
    ks, ss, ps = (list(op.a[k]) for k in ("ks", "ss", "ps"))
    nd = len(ks)
    out_sp = tuple(op.outputs[0].shape[2:])
    cip, dov = bool(op.a["count_include_pad"]), op.a["divisor_override"]
    floor_outs = tuple(KP.pool_output_shape(x.shape[2:], ks, ss, ps, (1,) * nd, False))
    if floor_outs == out_sp and dov is None:  # ONNX's own divisors are convnet's
        return [g.node("AveragePool", [g.arg("x")], kernel_shape=ks, strides=ss, pads=ps + ps,
                       count_include_pad=int(cip))]
    # general: zero-pad explicitly (right side too, for ceil mode), average whole windows,
    # then rescale from the window size to convnet's divisor
    extra = [_pool_extra(n, k, s, p, p, 1, o) for n, k, s, p, o in
             zip(x.shape[2:], ks, ss, ps, out_sp)]
    lead = x.ndim - nd
    pads = [0] * lead + ps + [0] * lead + [p + e for p, e in zip(ps, extra)]
    xp = g.node("Pad", [g.arg("x"), g.i64(pads)])
    y = g.node("AveragePool", [xp], kernel_shape=ks, strides=ss)
    div = np.asarray(op.obj.div, dtype=np.float64)
    factor = (math.prod(ks) / div).astype(x.dtype)
    if factor.ndim:
        factor = factor.reshape(out_sp)
    return [g.node("Mul", [y, g.const(factor, hint="avg_divisor")])]


@register(Po._GlobalAvg)
def _global_avg(g, op):
    return [g.node("GlobalAveragePool", [g.arg("x")])]


@register(Po._GatherMax)
def _gather_max(g, op):
    x, outs = op.a["x"], tuple(op.a["outs"])
    if op.a["return_indices"]:
        raise g.fail("adaptive max pooling with return_indices and windows of unequal size")
    if all(o == 1 for o in outs):
        return [g.node("GlobalMaxPool", [g.arg("x")])]
    # general: one ReduceMax per window, concatenated axis by axis (small outputs only)
    nd = len(outs)
    lead = x.ndim - nd
    xn = g.arg("x")
    ranges = [KR.adaptive_ranges(n, o) for n, o in zip(x.shape[lead:], outs)]

    def build(prefix_axes, sliced):
        d = len(prefix_axes)
        if d == nd:
            return g.reduce("ReduceMax", sliced, list(range(lead, lead + nd)), True)
        parts = []
        for s, e in zip(*ranges[d]):
            part = g.node("Slice", [sliced, g.i64([int(s)]), g.i64([int(e)]),
                                    g.i64([lead + d])])
            parts.append(build(prefix_axes + [d], part))
        return parts[0] if len(parts) == 1 else g.node("Concat", parts, axis=lead + d)

    return [build([], xn)]


_RESIZE_MODES = {  # Resize attributes of each interpolation convnet can express as matrices
    ("nearest", False): dict(mode="nearest", coordinate_transformation_mode="asymmetric",
                             nearest_mode="floor"),
    ("nearest-exact", False): dict(mode="nearest", coordinate_transformation_mode="half_pixel",
                                   nearest_mode="round_prefer_ceil"),
    ("linear", False): dict(mode="linear",
                            coordinate_transformation_mode="pytorch_half_pixel"),
    ("linear", True): dict(mode="linear", coordinate_transformation_mode="align_corners"),
    ("cubic", False): dict(mode="cubic", coordinate_transformation_mode="pytorch_half_pixel",
                           cubic_coeff_a=-0.75),
    ("cubic", True): dict(mode="cubic", coordinate_transformation_mode="align_corners",
                          cubic_coeff_a=-0.75),
}


def _interpolation_matrix(mode, align, n, o, dtype):
    if mode in ("nearest", "nearest-exact"):
        return KR.nearest_matrix(n, o, None, mode == "nearest-exact", dtype)
    fn = KR.cubic_matrix if mode == "cubic" else KR.linear_matrix
    return fn(n, o, align, None, dtype)


def _as_resize(x, mats):
    """The Resize attributes whose per-axis matrices at the traced sizes are exactly ``mats``
    (``F.interpolate`` to a size, or by a factor giving whole sizes), else None."""
    lead = x.ndim - len(mats)
    for (mode, align), attrs in _RESIZE_MODES.items():
        if all(m is None or np.allclose(m, _interpolation_matrix(mode, align, n, m.shape[1],
                                                                 np.float64), rtol=0, atol=1e-7)
               for n, m in zip(x.shape[lead:], mats)):
            return attrs
    return None


@register(Po._AxisMaps)
def _axis_maps(g, op):
    x, mats = op.a["x"], op.a["mats"]
    nd = len(mats)
    lead = x.ndim - nd
    attrs = _as_resize(x, mats)
    if attrs is not None:
        sizes = g.node("Concat", [g.node("Slice", [g.node("Shape", [g.arg("x")]), g.i64([0]),
                                                   g.i64([lead])]),
                                  g.i64(op.outputs[0].shape[lead:])], axis=0)
        return [g.node("Resize", [g.arg("x"), "", "", sizes], **attrs)]
    # any other map along each axis (adaptive average pooling): a MatMul per axis
    y = g.arg("x")
    rank = x.ndim
    for i, m in enumerate(mats):
        if m is None:
            continue
        ax = lead + i
        if ax == rank - 1:
            y = g.node("MatMul", [y, g.const(np.asarray(m, x.dtype), hint="resample_matrix")])
        elif ax == rank - 2:
            y = g.node("MatMul", [g.const(np.ascontiguousarray(np.asarray(m, x.dtype).T),
                                          hint="resample_matrix"), y])
        else:
            perm = [d for d in range(rank) if d != ax] + [ax]
            inv = list(np.argsort(perm))
            t = g.node("Transpose", [y], perm=perm)
            t = g.node("MatMul", [t, g.const(np.asarray(m, x.dtype), hint="resample_matrix")])
            y = g.node("Transpose", [t], perm=[int(v) for v in inv])
    return [y]


@register(R._MaxUnpool)
def _max_unpool(g, op):
    x, out_sp = op.a["x"], [int(o) for o in op.a["out_spatial"]]
    plane = math.prod(out_sp)
    lead = x.ndim - len(out_sp)
    # convnet's indices are per (n, c) plane; ONNX's run over the whole output tensor
    nc = g.node("Slice", [g.node("Shape", [g.arg("x")]), g.i64([0]), g.i64([lead])])
    count = g.node("ReduceProd", [nc], keepdims=1) if g.opset < 18 else \
        g.node("ReduceProd", [nc, g.i64([0])], keepdims=1)
    offsets = g.node("Range", [g.const(np.asarray(0, np.int64)), g.squeeze(count, [0]),
                               g.const(np.asarray(1, np.int64))])
    offsets = g.node("Mul", [offsets, g.i64([plane])])
    offsets = g.node("Reshape", [offsets, g.node("Concat", [nc, g.i64([1] * len(out_sp))],
                                                 axis=0)])
    idx = g.node("Add", [_int64(g, "idx"), offsets])
    shape = g.node("Concat", [nc, g.i64(out_sp)], axis=0)
    return [g.node("MaxUnpool", [g.arg("x"), idx, shape],
                   kernel_shape=[1] * len(out_sp))]


@register(R._BlockUnpool)
def _block_unpool(g, op):
    x, ks, mode = op.a["x"], [int(k) for k in op.a["ks"]], op.a["mode"]
    nd = len(ks)
    lead = x.ndim - nd
    if mode == "nearest":
        scales = g.const(np.asarray([1.0] * lead + [float(k) for k in ks], np.float32),
                         hint="scales")
        return [g.node("Resize", [g.arg("x"), "", scales], mode="nearest",
                       coordinate_transformation_mode="asymmetric", nearest_mode="floor")]
    # bed of nails: (.., L, 1) per axis, zero-padded to (.., L, k), then merged
    y = g.unsqueeze(g.arg("x"), [lead + 2 * i + 1 for i in range(nd)])
    rank = x.ndim + nd
    hi = [0] * rank
    for i, k in enumerate(ks):
        hi[lead + 2 * i + 1] = k - 1
    y = g.node("Pad", [y, g.i64([0] * rank + hi)])
    spatial = [n * k for n, k in zip(x.shape[lead:], ks)]
    return [g.node("Reshape", [y, g.i64([0] * lead + spatial)])]


# ================================================================== modules
def _resize_inputs(g, op, x: Tensor, size_out):
    """Resize's scales or sizes: the module's scale factor when PyTorch would use it (so the
    source coordinate is ``dst / scale``), else the traced output size."""
    m = op.obj
    nd = x.ndim - 2
    if m.scale_factor is not None and not m.recompute_scale_factor:
        sf = m.scale_factor if isinstance(m.scale_factor, tuple) else (m.scale_factor,) * nd
        return ["", g.const(np.asarray([1.0, 1.0] + [float(s) for s in sf], np.float32),
                            hint="scales")]
    sizes = g.node("Concat", [g.node("Slice", [g.node("Shape", [g.arg("input")]), g.i64([0]),
                                               g.i64([2])]),
                              g.i64(size_out[2:])], axis=0)
    return ["", "", sizes]


def _upsample_symbolic(module):
    return _upsample if module.mode in ("nearest", "nearest-exact", "linear", "bilinear",
                                        "trilinear", "bicubic") else None


@register_module(MU.Upsample)
def _upsample(g, op):
    m, x = op.obj, op.a["input"]
    size_out = tuple(op.outputs[0].shape)
    attrs = {}
    if m.mode in ("nearest", "nearest-exact"):
        attrs = dict(mode="nearest", coordinate_transformation_mode="asymmetric",
                     nearest_mode="floor") if m.mode == "nearest" else dict(
            mode="nearest", coordinate_transformation_mode="half_pixel",
            nearest_mode="round_prefer_ceil")
    else:
        attrs = dict(mode="cubic" if m.mode == "bicubic" else "linear",
                     coordinate_transformation_mode="align_corners" if m.align_corners
                     else "pytorch_half_pixel")
        if m.mode == "bicubic":
            attrs["cubic_coeff_a"] = -0.75
    return [g.node("Resize", [g.arg("input")] + _resize_inputs(g, op, x, size_out), **attrs)]


@register_module(MA.Softplus)
def _softplus(g, op):
    m, x = op.obj, op.a["x"]
    xn = g.arg("x")
    if m.beta == 1:
        return [g.node("Softplus", [xn])]
    bx = g.node("Mul", [xn, g.scalar(m.beta, x.dtype)])
    return [g.node("Div", [g.node("Softplus", [bx]), g.scalar(m.beta, x.dtype)])]


def load_extensions() -> None:
    """Register the QDQ symbolics when convnet.quantization's modules are in use (so that a
    float export never imports quantization)."""
    import sys

    if "convnet.quantization.quantized" in sys.modules:
        from . import qdq  # noqa: F401 - registers on import


def method_lookup(module):
    import sys

    qdq = sys.modules.get("convnet.onnx.qdq")
    return qdq.method_lookup(module) if qdq is not None else ()


def module_lookup(module):
    f = module_symbolic(module)
    if f is _upsample:
        return _upsample_symbolic(module)
    return f

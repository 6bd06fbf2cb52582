"""Output sizes and receptive fields: the layer arithmetic, and a measurement.

Receptive-field arithmetic (per spatial axis). A layer with kernel ``k``, dilation ``d``,
stride ``s`` and left padding ``p`` has the effective kernel ``k_eff = d (k - 1) + 1``. With
``r`` the field of one input unit, ``j`` the distance in input pixels between neighbouring
units ("jump") and ``start`` the centre of the first unit's field::

    r_out     = r + (k_eff - 1) j
    j_out     = j s
    start_out = start + ((k_eff - 1) / 2 - p) j

so ``L`` stride-1 ``K x K`` layers see ``1 + L (K - 1)`` pixels, and stride or pooling multiply
the growth of every later layer.

``trace_geometry`` applies this to any model (branches and residual additions included): it
runs one forward pass, records the geometry of every convolution and pooling module through
forward hooks, then walks the autograd graph from the output back to the input. Tensors made
by other operations (ReLU, batch norm, ``+`` of a residual block) take the union of their
inputs' fields. ``empirical_receptive_field`` measures the same thing from gradients.
"""
from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..autograd.grad_mode import enable_grad
from ..tensor import Tensor

__all__ = [
    "output_size",
    "receptive_field",
    "empirical_receptive_field",
    "trace_geometry",
    "FieldInfo",
    "layer_geometry",
]

IntOrTuple = int | Sequence[int]


def _tup(v, n: int, name: str, op: str = "output_size") -> tuple:
    if isinstance(v, (int, np.integer, float)):
        return (v,) * n
    v = tuple(v)
    if len(v) == 1:
        return v * n
    if len(v) != n:
        raise ValueError(f"{op}: {name} has {len(v)} values but the input has {n} spatial dims")
    return v


def output_size(
    input_size: IntOrTuple,
    kernel_size: IntOrTuple,
    stride: IntOrTuple = 1,
    padding: IntOrTuple | str = 0,
    dilation: IntOrTuple = 1,
    ceil_mode: bool = False,
    transposed: bool = False,
    output_padding: IntOrTuple = 0,
) -> int | tuple[int, ...]:
    """Spatial output size of a convolution, pooling or transposed convolution.

    Convolution / pooling (the textbook ``O = floor((N + 2P - F) / S) + 1`` with the dilated
    kernel ``F = D (K - 1) + 1``)::

        O = floor((N + 2P - D (K - 1) - 1) / S) + 1        (ceil with ceil_mode=True;
                                                           a last window starting in the
                                                           right padding is dropped)

    Transposed convolution (the inverse map)::

        O = (N - 1) S - 2P + D (K - 1) + output_padding + 1

    ``padding`` may be ``'valid'`` (0) or ``'same'`` (stride 1 only). Returns an int for an
    int ``input_size``, else a tuple (one entry per axis).

    Example: ``output_size(32, 5, stride=1, padding=2) == 32``;
    ``output_size((7, 7), 3, stride=2) == (3, 3)``.
    """
    scalar = isinstance(input_size, (int, np.integer))
    n = 1 if scalar else len(tuple(input_size))
    sizes = _tup(input_size, n, "input_size")
    k, s, d = (_tup(v, n, nm) for v, nm in ((kernel_size, "kernel_size"), (stride, "stride"),
                                             (dilation, "dilation")))
    op_pad = _tup(output_padding, n, "output_padding")
    if isinstance(padding, str):
        if padding == "valid":
            p = (0,) * n
        elif padding == "same":
            if transposed or any(si != 1 for si in s):
                raise ValueError("output_size: padding='same' needs stride 1 (and no transposition)")
            return input_size if scalar else tuple(sizes)
        else:
            raise ValueError(
                f"output_size: padding must be an int, tuple, 'same' or 'valid', got {padding!r}")
    else:
        p = _tup(padding, n, "padding")
    for name, vals, low in (("kernel_size", k, 1), ("stride", s, 1), ("dilation", d, 1),
                            ("padding", p, 0), ("input_size", sizes, 1)):
        if any(int(v) < low for v in vals):
            raise ValueError(f"output_size: {name} must be >= {low}, got {tuple(vals)}")
    out = []
    for N, K, S, P, D, OP in zip(sizes, k, s, p, d, op_pad):
        keff = D * (K - 1) + 1
        if transposed:
            o = (N - 1) * S - 2 * P + keff + OP
        else:
            span = N + 2 * P - keff
            if span < 0:
                raise ValueError(
                    f"output_size: effective kernel {keff} (kernel {K}, dilation {D}) is larger "
                    f"than the padded input {N + 2 * P}"
                )
            if ceil_mode:
                o = -(-span // S) + 1
                # PyTorch: the last window must start inside the input or the left padding
                if (o - 1) * S >= N + P:
                    o -= 1
            else:
                o = span // S + 1
        if o < 1:
            raise ValueError(f"output_size: output size would be {o} (< 1) for input {N}")
        out.append(int(o))
    return out[0] if scalar else tuple(out)


# --------------------------------------------------------------------- field information
@dataclass(frozen=True)
class FieldInfo:
    """Receptive field of the units of one tensor, per spatial axis (input pixels).

    ``size``: field side ``r``; ``jump``: distance between neighbouring units' fields;
    ``start``: centre of the first unit's field (may be negative: padding).
    ``global_`` marks non-spatial tensors (after flatten / linear): they see everything.
    """

    size: tuple
    jump: tuple
    start: tuple
    global_: bool = False

    def union(self, other: "FieldInfo") -> "FieldInfo":
        """Field of a unit that reads both fields (a residual ``+``, a concatenation)."""
        if self.global_ or other.global_:
            return self if self.global_ else other
        size, jump, start = [], [], []
        for r1, j1, s1, r2, j2, s2 in zip(self.size, self.jump, self.start,
                                          other.size, other.jump, other.start):
            lo = min(s1 - (r1 - 1) / 2, s2 - (r2 - 1) / 2)
            hi = max(s1 + (r1 - 1) / 2, s2 + (r2 - 1) / 2)
            size.append(_num(hi - lo + 1))
            start.append(_num((lo + hi) / 2))
            jump.append(max(j1, j2))
        return FieldInfo(tuple(size), tuple(jump), tuple(start))


def _num(v):
    """Keep integral values as ints so tables print ``5``, not ``5.0``."""
    return int(v) if float(v).is_integer() else float(v)


@dataclass(frozen=True)
class Geometry:
    """Sliding-window geometry of one layer (per axis), see ``layer_geometry``."""

    kernel: tuple
    stride: tuple
    padding: tuple
    dilation: tuple
    transposed: bool = False

    def apply(self, f: FieldInfo) -> FieldInfo:
        if f.global_:
            return f
        size, jump, start = [], [], []
        for r, j, st, k, s, p, d in zip(f.size, f.jump, f.start, self.kernel, self.stride,
                                        self.padding, self.dilation):
            keff = d * (k - 1) + 1
            if self.transposed:
                # An output unit reads about ceil(k_eff / s) input units; units move by j / s.
                taps = -(-keff // s)
                size.append(_num(r + (taps - 1) * j))
                jump.append(_num(j / s))
                start.append(_num(st - ((keff - 1) / 2 - p) * j / s))
            else:
                size.append(_num(r + (keff - 1) * j))
                jump.append(_num(j * s))
                start.append(_num(st + ((keff - 1) / 2 - p) * j))
        return FieldInfo(tuple(size), tuple(jump), tuple(start))


def _kind(module) -> str:
    return type(module).__name__


def layer_geometry(module, in_spatial: tuple | None = None) -> Geometry | None:
    """The sliding-window geometry of a conv / pooling module, or ``None`` for layers that
    act pointwise in space (activations, batch norm, dropout, ...).

    Recognises modules by PyTorch's attribute names (``kernel_size``, ``stride``,
    ``padding``, ``dilation``); adaptive pooling needs ``in_spatial`` (the input's spatial
    size) and uses PyTorch's window ``ceil(in / out)`` with stride ``floor(in / out)``.
    """
    name = _kind(module)
    if "Adaptive" in name and hasattr(module, "output_size") and in_spatial is not None:
        n = len(in_spatial)
        outs = _tup(module.output_size, n, "output_size", name)
        outs = tuple(i if o is None else o for i, o in zip(in_spatial, outs))
        k = tuple(-(-i // o) for i, o in zip(in_spatial, outs))
        s = tuple(max(i // o, 1) for i, o in zip(in_spatial, outs))
        return Geometry(k, s, (0,) * n, (1,) * n)
    if not hasattr(module, "kernel_size"):
        return None
    ks = module.kernel_size
    n = len(in_spatial) if in_spatial is not None else (len(ks) if isinstance(ks, tuple) else 2)
    k = _tup(ks, n, "kernel_size", name)
    stride = getattr(module, "stride", None)
    s = _tup(k if stride is None else stride, n, "stride", name)  # pooling: stride defaults to k
    d = _tup(getattr(module, "dilation", 1) or 1, n, "dilation", name)
    pad = getattr(module, "padding", 0)
    if isinstance(pad, str):
        # 'same' puts total//2 on the left (PyTorch); 'valid' is no padding
        p = tuple((di * (ki - 1)) // 2 for ki, di in zip(k, d)) if pad == "same" else (0,) * n
    else:
        p = _tup(pad, n, "padding", name)
    transposed = bool(getattr(module, "transposed", False)) or "Transpose" in name
    return Geometry(tuple(k), tuple(s), tuple(p), tuple(d), transposed)


# ----------------------------------------------------------------- tracing a whole model
@dataclass
class LayerTrace:
    """One call of a leaf module during ``trace_geometry``."""

    name: str
    module: object
    inputs: tuple
    output: object
    field: FieldInfo | None = None


def _leaf_modules(model):
    return [(n, m) for n, m in model.named_modules() if not any(True for _ in m.children())]


def trace_geometry(model, x: Tensor) -> tuple[list[LayerTrace], FieldInfo | None]:
    """Run ``model(x)`` once and give every leaf-module call its receptive field.

    Returns ``(calls, output_field)``: the leaf-module calls in execution order, each with
    the ``FieldInfo`` of its (first) output, and the field of the model's output.
    """
    calls: list[LayerTrace] = []
    handles = []

    def make_hook(name):
        def hook(module, inputs, output):
            calls.append(LayerTrace(name, module, tuple(inputs), output))
        return hook

    for name, m in _leaf_modules(model):
        handles.append(m.register_forward_hook(make_hook(name or type(m).__name__)))
    x = x.detach()
    x.requires_grad = True
    try:
        with enable_grad():
            out = model(x)
    finally:
        for h in handles:
            h.remove()

    spatial_ndim = x.ndim - 2
    base = FieldInfo((1,) * spatial_ndim, (1,) * spatial_ndim, (0,) * spatial_ndim)
    global_info = FieldInfo((), (), (), global_=True)
    by_output: dict[int, LayerTrace] = {}
    for c in calls:
        outs = c.output if isinstance(c.output, (tuple, list)) else (c.output,)
        ins = {id(i) for i in c.inputs}
        for o in outs:
            # a module that hands back its input (Identity, Dropout in eval) is transparent
            if isinstance(o, Tensor) and id(o) not in ins:
                by_output[id(o)] = c
    memo: dict[int, FieldInfo | None] = {id(x): base}
    warned = []

    def children_of(t: Tensor):
        """Tensors that ``t``'s field is computed from (module input, or graph parents)."""
        c = by_output.get(id(t))
        if c is not None:
            return [i for i in c.inputs if isinstance(i, Tensor)]
        ctx = getattr(t, "_ctx", None)
        if ctx is None or getattr(ctx, "parents", None) is None:
            return []
        return [p for p in ctx.parents if p is not None]

    def combine(t: Tensor, kids: list) -> FieldInfo | None:
        infos = [memo.get(id(k)) for k in kids]
        infos = [i for i in infos if i is not None]
        if not infos:
            return None  # a constant / parameter: no dependence on the input
        if t.ndim != x.ndim:
            return global_info
        c = by_output.get(id(t))
        if c is not None:
            first = next((i for i in c.inputs if isinstance(i, Tensor)), None)
            geom = layer_geometry(c.module, tuple(first.shape[2:]) if first is not None else None)
            f = infos[0]
            for i in infos[1:]:
                f = f.union(i)
            return geom.apply(f) if geom is not None else f
        f = infos[0]
        for i in infos[1:]:
            f = f.union(i)
        ins = [k for k in kids if memo.get(id(k)) is not None and k.ndim == t.ndim]
        sub = _subsampling(ins, t) if len(ins) == 1 and not f.global_ else None
        if sub is not None:
            # x[..., ::s, ::s] (ResNet's option-A shortcut): same fields, s times the jump
            return FieldInfo(f.size, tuple(_num(j * s) for j, s in zip(f.jump, sub)), f.start)
        if ins and not f.global_ and not warned and any(
            tuple(k.shape[2:]) != tuple(t.shape[2:]) for k in ins
        ):
            warned.append(True)
            warnings.warn(
                "receptive_field: an operation outside a conv/pooling module changes the spatial "
                f"size {tuple(ins[0].shape[2:])} -> {tuple(t.shape[2:])}; its geometry is not "
                "counted (use nn modules, not functional calls, for exact fields)",
                stacklevel=3,
            )
        return f

    def field_of(root: Tensor) -> FieldInfo | None:
        # iterative post-order walk (deep graphs must not overflow the Python stack)
        stack = [(root, False)]
        pending: set[int] = set()
        while stack:
            t, ready = stack.pop()
            if id(t) in memo:
                continue
            kids = children_of(t)
            if ready:
                memo[id(t)] = combine(t, kids)
                continue
            if id(t) in pending:  # already waiting lower on the stack: no cycles
                continue
            pending.add(id(t))
            stack.append((t, True))
            stack.extend((k, False) for k in kids if id(k) not in memo and id(k) not in pending)
        return memo[id(root)]

    for c in calls:
        outs = c.output if isinstance(c.output, (tuple, list)) else (c.output,)
        first = next((o for o in outs if isinstance(o, Tensor)), None)
        if first is not None:
            c.field = field_of(first)
    out_t = out[0] if isinstance(out, (tuple, list)) else out
    out_field = field_of(out_t) if isinstance(out_t, Tensor) else None
    return calls, out_field


def _subsampling(ins: list, t: Tensor) -> tuple | None:
    """Per-axis step ``s`` when ``t`` is ``ins[0][..., ::s, ::s]`` (a strided slice of the same
    tensor, first element kept), judged by the values; ``None`` otherwise."""
    src = ins[0]
    a_in, a_out = src.shape[2:], t.shape[2:]
    if a_in == a_out or len(a_in) != len(a_out) or src.shape[0] != t.shape[0]:
        return None
    steps = []
    for n_in, n_out in zip(a_in, a_out):
        s = -(-n_in // n_out)
        if n_out < 1 or -(-n_in // s) != n_out:
            return None
        steps.append(s)
    if src.shape[1] != t.shape[1]:
        return None
    view = src._data[(slice(None), slice(None), *(slice(None, None, s) for s in steps))]
    return tuple(steps) if view.shape == t._data.shape and np.array_equal(view, t._data) else None


def _as_result(size: tuple):
    size = tuple(size)
    return size[0] if len(set(size)) == 1 else size


def _input_tensor(input_shape, dtype) -> Tensor:
    shape = tuple(int(v) for v in input_shape)
    if len(shape) < 2:
        raise ValueError(f"receptive_field: input_shape {shape} must be (C, *spatial)")
    return Tensor._make(np.zeros((1, *shape), dtype=dtype))


def model_dtype(model, default=np.float32) -> np.dtype:
    """dtype of the model's first floating parameter (``default`` when it has none)."""
    for p in model.parameters() if hasattr(model, "parameters") else ():
        if np.issubdtype(p.dtype, np.floating):
            return p.dtype
    return np.dtype(default)


def receptive_field(model, input_shape: Sequence[int], dtype=None) -> int | tuple:
    """Analytic receptive field (input pixels per axis) of the model's last spatial layer.

    ``input_shape`` is ``(C, *spatial)`` of one sample, e.g. ``(3, 32, 32)``. The field of the
    model's output is returned when the output is spatial; for a classifier (flatten /
    linear head) it is the field of the last leaf module with a spatial output. Returns an
    int when every axis agrees, else a tuple. The input dtype defaults to the model's.

    Example: three 3x3 stride-1 convs give ``1 + 3 * (3 - 1) = 7``.
    """
    x = _input_tensor(input_shape, dtype or model_dtype(model))
    calls, out_field = trace_geometry(model, x)
    if out_field is not None and not out_field.global_:
        return _as_result(out_field.size)
    for c in reversed(calls):
        if c.field is not None and not c.field.global_:
            return _as_result(c.field.size)
    raise ValueError("receptive_field: the model has no layer with a spatial output")


def _positive_copy(model):
    """A float64 copy whose weights are positive (``1 / fan_in``), biases zero, batch-norm
    statistics neutral, in eval mode: no gradient can cancel or be cut by a ReLU."""
    m = copy.deepcopy(model)
    m.double()
    m.eval()
    for name, p in m.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        if p.ndim >= 2:
            p._data[...] = 1.0 / max(int(np.prod(p.shape[1:])), 1)
        elif leaf == "weight":
            p._data[...] = 1.0
        else:
            p._data[...] = 0.0
    for name, b in m.named_buffers():
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "running_var":
            b._data[...] = 1.0
        elif leaf == "running_mean":
            b._data[...] = 0.0
    return m


def empirical_receptive_field(
    model,
    input_shape: Sequence[int],
    layer: str | None = None,
    unit: Sequence[int] | None = None,
    method: str = "gradient",
    chunk: int = 256,
) -> int | tuple:
    """Measured receptive field: the extent (per axis) of the input pixels that one output
    unit depends on.

    The unit is the centre of channel 0 of ``layer``'s output (a name from ``named_modules``;
    default the model's output) unless ``unit`` gives its spatial index. The measurement runs
    on a float64 copy of the model with positive weights (``1 / fan_in``), zero biases and
    neutral batch-norm statistics, in eval mode, on an all-ones input, so nothing cancels and
    no ReLU cuts the path; the user's model is untouched.

    ``method='gradient'``: set the unit's gradient to 1 and read the non-zero region of the
    input gradient (one backward pass). Max pooling sends the gradient to one tap of each
    window only, so use ``method='perturbation'`` for max-pooled stacks: every input pixel
    is raised in turn (``chunk`` images per forward pass) and the pixels that change the unit
    are the field.
    """
    if method not in ("gradient", "perturbation"):
        raise ValueError(
            "empirical_receptive_field: method must be 'gradient' or 'perturbation', "
            f"got {method!r}")
    m = _positive_copy(model)
    shape = tuple(int(v) for v in input_shape)
    x = Tensor._make(np.ones((1, *shape), dtype=np.float64))

    def run(inp: Tensor):
        captured = []
        handle = None
        if layer is not None:
            handle = m.get_submodule(layer).register_forward_hook(lambda mod, i, o: captured.append(o))
        try:
            out = m(inp)
        finally:
            if handle is not None:
                handle.remove()
        y = captured[0] if captured else out
        if y.ndim != inp.ndim:
            raise ValueError(
                f"empirical_receptive_field: output of {layer or 'the model'} has shape "
                f"{tuple(y.shape)}, not spatial; pick a convolutional layer"
            )
        return y

    if method == "gradient":
        x.requires_grad = True
        with enable_grad():
            y = run(x)
        unit = tuple(s // 2 for s in y.shape[2:]) if unit is None else tuple(unit)
        g = np.zeros(y.shape, dtype=y.dtype)
        g[(0, 0, *unit)] = 1.0
        y.backward(g)
        nz = np.abs(x.grad._data[0]).sum(axis=0) != 0
    else:
        from ..autograd.grad_mode import no_grad

        spatial = shape[1:]
        npix = int(np.prod(spatial))
        with no_grad():
            y0 = run(x)
            unit = tuple(s // 2 for s in y0.shape[2:]) if unit is None else tuple(unit)
            ref = y0._data[(0, 0, *unit)]
            changed = np.zeros(npix, dtype=bool)
            for lo in range(0, npix, chunk):  # chunks of one-pixel perturbations
                idx = np.arange(lo, min(lo + chunk, npix))
                batch = np.ones((len(idx), shape[0], npix), dtype=np.float64)
                batch[np.arange(len(idx)), :, idx] = 2.0
                yb = run(Tensor._make(batch.reshape(len(idx), *shape)))
                changed[idx] = yb._data[(slice(None), 0, *unit)] != ref
        nz = changed.reshape(spatial)
    if not nz.any():
        raise ValueError("empirical_receptive_field: the chosen unit does not depend on the input")
    sizes = []
    for ax in range(nz.ndim):
        other = tuple(a for a in range(nz.ndim) if a != ax)
        idx = np.nonzero(nz.any(axis=other) if other else nz)[0]
        sizes.append(int(idx[-1] - idx[0] + 1))
    return _as_result(tuple(sizes))

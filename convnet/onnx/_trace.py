"""Recording one forward pass: every :class:`~convnet.autograd.Function` that runs, and every
module that has an ONNX symbolic of its own, in execution order (a topological order).

The tracer runs the model with autograd recording on (the inputs are non-leaf tensors that
require grad), so every tensor computed from the inputs carries its producer in ``_ctx``. A
value is named by ``(producer, output index)``: an in-place op gives the tensor a new
producer, so later readers see the new value with no bookkeeping of their own. Tensors with
no producer are parameters, buffers or constants (snapshotted when first read, so a later
in-place change cannot alter what the graph stores). This module needs neither onnx nor a
symbolic table: the caller passes ``lookup`` functions.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import numpy as np

from ..autograd import function as _function
from ..autograd.grad_mode import enable_grad
from ..tensor import Tensor


class ExportError(RuntimeError):
    """A model (or one of its ops) that ``convnet.onnx.export`` cannot express in ONNX."""


_SIGNATURES: dict = {}


def bind(cls, args, kwargs) -> dict:
    """``forward``'s arguments of a Function (or module) call by parameter name."""
    sig = _SIGNATURES.get(cls)
    if sig is None:
        sig = _SIGNATURES[cls] = inspect.signature(cls.forward)
    bound = sig.bind(None, *args, **kwargs)
    bound.apply_defaults()
    out = dict(bound.arguments)
    out.pop(next(iter(sig.parameters)))  # self
    for name, p in sig.parameters.items():  # *arrays: a tuple under its own name
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            out.update(out.pop(name, {}))
    return out


@dataclass
class Op:
    """One recorded call. ``kind`` is ``"fn"`` (a Function; ``obj`` is the instance after its
    forward ran, so attributes it saved are readable) or ``"module"`` (``obj`` the module)."""

    kind: str
    obj: object
    args: tuple
    kwargs: dict
    outputs: tuple
    path: str
    module_type: str
    live: bool = False          # depends on a graph input
    index: int = 0
    _bound: dict | None = field(default=None, repr=False)

    @property
    def cls(self):
        return type(self.obj)

    @property
    def name(self) -> str:
        return self.cls.__name__.lstrip("_")

    @property
    def a(self) -> dict:
        """The call's arguments by ``forward``'s parameter names."""
        if self._bound is None:
            self._bound = bind(self.cls, self.args, self.kwargs)
        return self._bound


def where(path: str, module_type: str) -> str:
    return f"module '{path}' ({module_type})" if path else f"the model's own forward ({module_type})"


def no_mapping(op_name: str, path: str, module_type: str, why: str = "") -> ExportError:
    extra = f": {why}" if why else ""
    return ExportError(f"convnet.onnx.export: no ONNX mapping for op '{op_name}' in "
                       f"{where(path, module_type)}{extra}")


class Trace:
    """The ops of one forward pass and how to find the value behind any tensor.

    ``values`` maps ``(id(producer), output index)`` and ``id(tensor)`` (for outputs a
    producer does not stamp, e.g. argmax indices) to ``(op index, output index)``;
    ``-1`` as op index denotes graph input number ``j``.
    """

    def __init__(self):
        self.ops: list[Op] = []
        self.values: dict = {}
        self.live: set = set()        # keys of values that depend on a graph input
        self.snapshots: dict = {}     # id(tensor) -> ndarray copy (constants as first read)
        self.keep: list = []          # keeps every keyed object alive, so ids stay unique
        self.inputs: list[Tensor] = []
        self.by_array: dict = {}      # id(ndarray) -> (ndarray, value, live)
        self.outputs = None

    @staticmethod
    def _keys(t: Tensor):
        if t._ctx is not None:
            yield ("ctx", id(t._ctx), t._out_index)
        yield ("id", id(t))

    def find(self, t: Tensor):
        """``(op index, output index)`` of a traced value, or None for a constant/parameter."""
        for k in self._keys(t):
            v = self.values.get(k)
            if v is not None:
                return v
        return None

    def find_array(self, a):
        """The traced value whose tensor holds exactly the ndarray ``a``, or None."""
        hit = self.by_array.get(id(a)) if isinstance(a, np.ndarray) else None
        return hit[1] if hit is not None and hit[0] is a else None

    def is_live(self, t) -> bool:
        if isinstance(t, np.ndarray):
            hit = self.by_array.get(id(t))
            return hit is not None and hit[0] is t and hit[2]
        return isinstance(t, Tensor) and any(k in self.live for k in self._keys(t))

    def _define(self, t: Tensor, where_, live: bool) -> None:
        self.keep.append(t)
        if t._ctx is not None:
            self.keep.append(t._ctx)
        # an op given ``t._data`` itself (e.g. max_unpool's indices) reads this value
        self.by_array[id(t._data)] = (t._data, where_, live)
        for k in self._keys(t):
            self.values[k] = where_
            if live:
                self.live.add(k)
            else:
                self.live.discard(k)

    def _snapshot_constants(self, tensors, params: set) -> None:
        for t in tensors:
            if isinstance(t, Tensor) and id(t) not in self.snapshots and id(t) not in params \
                    and self.find(t) is None:
                self.keep.append(t)
                self.snapshots[id(t)] = np.array(t._data, copy=True)


def _tensors(obj):
    """The tensors in an argument or output structure, in order (tuples, lists, dicts)."""
    if isinstance(obj, Tensor):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for o in obj:
            yield from _tensors(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _tensors(o)


class _Recorder:
    """Installs the Function hook and module hooks for one forward pass."""

    def __init__(self, model, trace: Trace, fn_lookup, module_lookup, params: set):
        self.model, self.trace = model, trace
        self.fn_lookup, self.module_lookup, self.params = fn_lookup, module_lookup, params
        self.names = {id(m): n for n, m in model.named_modules()}
        self.stack: list = []   # (path, module, has_symbolic)
        self.suppress = 0
        self.handles = []

    # -------------------------------------------------------------------------- context
    def _where(self):
        if self.stack:
            path, mod, _ = self.stack[-1]
            return path, type(mod).__name__
        return "", type(self.model).__name__

    def __enter__(self):
        if _function._trace_hook is not None:
            raise ExportError("convnet.onnx.export: another export is tracing in this process")
        for _, m in self.model.named_modules():
            self.handles.append(m.register_forward_pre_hook(self._pre))
            self.handles.append(m.register_forward_hook(self._post))
        _function._trace_hook = self._on_function
        return self

    def __exit__(self, *exc):
        _function._trace_hook = None
        for h in self.handles:
            h.remove()
        return False

    # -------------------------------------------------------------------------- records
    def _record(self, kind, obj, args, kwargs, outputs):
        trace = self.trace
        inputs = list(_tensors(args)) + list(_tensors(kwargs))
        live = any(trace.is_live(t) for t in inputs) or any(
            trace.is_live(a) for a in list(args) + list(kwargs.values())
            if isinstance(a, np.ndarray))
        trace._snapshot_constants(inputs, self.params)
        path, mtype = self._where()
        op = Op(kind, obj, tuple(args), dict(kwargs), tuple(outputs), path, mtype, live,
                len(trace.ops))
        trace.ops.append(op)
        trace.keep.append(op)
        for j, t in enumerate(op.outputs):
            if isinstance(t, Tensor):
                trace._define(t, (op.index, j), live)
                if not live:
                    trace.snapshots[id(t)] = np.array(t._data, copy=True)
        return op

    def _on_function(self, fn, args, kwargs, outs):
        if self.suppress:
            return
        if self.fn_lookup(type(fn)) is None:
            path, mtype = self._where()
            raise no_mapping(type(fn).__name__.lstrip("_"), path, mtype)
        self._record("fn", fn, args, kwargs, outs)

    def _pre(self, module, args):
        path = self.names.get(id(module), type(module).__name__)
        symbolic = not self.suppress and self.module_lookup(module) is not None
        self.stack.append((path, module, symbolic))
        if symbolic:
            self.suppress += 1

    def _post(self, module, args, output):
        path, mod, symbolic = self.stack.pop()
        if symbolic:
            self.suppress -= 1
            self.stack.append((path, mod, False))  # so the record names this module
            try:
                self._record("module", module, args, {}, tuple(_tensors(output)))
            finally:
                self.stack.pop()


def trace(model, inputs: list[Tensor], extra_args: tuple, kwargs: dict, fn_lookup,
          module_lookup) -> Trace:
    """Run ``model(*inputs, *extra_args, **kwargs)`` once, recording it (see module doc)."""
    from ..ops.elementwise import Clone

    t = Trace()
    params = {id(p) for p in model.parameters()} | {id(b) for b in model.buffers()}
    with enable_grad():
        # non-leaf copies, so in-place ops on an input are allowed and every tensor
        # computed from one carries its producer
        for j, x in enumerate(inputs):
            leaf = Tensor._make(x._data)
            leaf.requires_grad = leaf.dtype.kind == "f"
            xin = Clone.apply(leaf) if leaf.requires_grad else leaf
            t.inputs.append(xin)
            t._define(xin, (-1, j), True)
        with _Recorder(model, t, fn_lookup, module_lookup, params):
            out = model(*t.inputs, *extra_args, **kwargs)
    t.outputs = out
    t.keep.append(out)
    return t

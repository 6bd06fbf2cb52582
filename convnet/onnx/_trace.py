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


def bind(cls, args, kwargs, method: str = "forward") -> dict:
    """The arguments of a call of ``cls.<method>`` (a Function's or a module's ``forward``)
    by parameter name."""
    sig = _SIGNATURES.get((cls, method))
    if sig is None:
        sig = _SIGNATURES[(cls, method)] = inspect.signature(getattr(cls, method))
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
    method: str | None = None   # a module method called directly (QFunctional.add, ...)
    locs: dict = field(default_factory=dict, repr=False)  # id(input) -> value, when called
    _bound: dict | None = field(default=None, repr=False)

    @property
    def cls(self):
        return type(self.obj)

    @property
    def name(self) -> str:
        name = self.cls.__name__.lstrip("_")
        return f"{name}.{self.method}" if self.method else name

    @property
    def a(self) -> dict:
        """The call's arguments by ``forward``'s (or the method's) parameter names."""
        if self._bound is None:
            self._bound = bind(self.cls, self.args, self.kwargs, self.method or "forward")
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
    def _keys(t):
        if getattr(t, "_ctx", None) is not None:
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
        return (isinstance(t, Tensor) or is_qtensor(t)) and any(k in self.live
                                                                for k in self._keys(t))

    def _define(self, t, where_, live: bool) -> None:
        self.keep.append(t)
        if getattr(t, "_ctx", None) is not None:
            self.keep.append(t._ctx)
        if isinstance(t, Tensor):
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


def is_qtensor(obj) -> bool:
    """A :class:`convnet.quantization.QTensor` (checked without importing quantization)."""
    return getattr(obj, "is_quantized", False) is True and hasattr(obj, "_int")


def _tensors(obj):
    """The tensors (and QTensors) in an argument or output structure, in order (tuples,
    lists, dicts)."""
    if isinstance(obj, Tensor) or is_qtensor(obj):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for o in obj:
            yield from _tensors(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _tensors(o)


class _Recorder:
    """Installs the Function hook and module hooks for one forward pass."""

    def __init__(self, model, trace: Trace, fn_lookup, module_lookup, params: set,
                 method_lookup=lambda m: ()):
        self.model, self.trace = model, trace
        self.fn_lookup, self.module_lookup, self.params = fn_lookup, module_lookup, params
        self.method_lookup = method_lookup
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
        self.wrapped = []     # (module, method name): instance attributes to delete
        self.patched = []     # (class, name, original)
        try:
            for path, m in self.model.named_modules():
                self.handles.append(m.register_forward_pre_hook(self._pre))
                self.handles.append(m.register_forward_hook(self._post))
                for method in self.method_lookup(m):
                    self._wrap_method(path, m, method)
            self._patch_qtensor()
        except BaseException:
            self.__exit__()
            raise
        _function._trace_hook = self._on_function
        return self

    def __exit__(self, *exc):
        _function._trace_hook = None
        for h in self.handles:
            h.remove()
        for m, method in self.wrapped:
            m.__dict__.pop(method, None)
        for cls, name, original in self.patched:
            setattr(cls, name, original)
        return False

    def _wrap_method(self, path, module, method):
        """Record direct calls of ``module.<method>`` (QFunctional.add, ...) as ops."""
        bound = getattr(module, method)

        def call(*args, **kwargs):
            out = bound(*args, **kwargs)
            if not self.suppress:
                self.stack.append((path, module, False))
                try:
                    self._record("module", module, args, kwargs, tuple(_tensors(out)), method)
                finally:
                    self.stack.pop()
            return out

        module.__dict__[method] = call
        self.wrapped.append((module, method))

    def _patch_qtensor(self):
        """QTensor's reshape/view/flatten are plain methods (no Function): record them."""
        import sys

        qmod = sys.modules.get("convnet.quantization.qtensor")
        if qmod is None:
            return
        cls = qmod.QTensor
        for name in ("reshape", "view", "flatten"):
            original = cls.__dict__.get(name)
            if original is None:
                continue
            self.patched.append((cls, name, original))
            setattr(cls, name, self._qtensor_method(original))

    def _qtensor_method(self, original):
        recorder = self

        def method(q, *args, **kwargs):
            out = original(q, *args, **kwargs)
            if not recorder.suppress:
                recorder._record("fn", QTensorReshape(), (q,), {}, (out,))
            return out

        return method

    # -------------------------------------------------------------------------- records
    def _record(self, kind, obj, args, kwargs, outputs, method=None):
        trace = self.trace
        inputs = list(_tensors(args)) + list(_tensors(kwargs))
        live = any(trace.is_live(t) for t in inputs) or any(
            trace.is_live(a) for a in list(args) + list(kwargs.values())
            if isinstance(a, np.ndarray))
        trace._snapshot_constants(inputs, self.params)
        path, mtype = self._where()
        op = Op(kind, obj, tuple(args), dict(kwargs), tuple(outputs), path, mtype, live,
                len(trace.ops), method)
        # the values the inputs hold now (an output may be the input object itself)
        for t in inputs:
            loc = trace.find(t)
            if loc is not None:
                op.locs[id(t)] = loc
        trace.ops.append(op)
        trace.keep.append(op)
        for j, t in enumerate(op.outputs):
            trace._define(t, (op.index, j), live)
            if not live and isinstance(t, Tensor):
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


class QTensorReshape:
    """Stands for a QTensor reshape/view/flatten in the trace (the output's shape says
    which)."""

    def forward(self, x):  # pragma: no cover - a signature for ``Op.a`` only
        raise NotImplementedError


def trace(model, inputs: list[Tensor], extra_args: tuple, kwargs: dict, fn_lookup,
          module_lookup, method_lookup=lambda m: ()) -> Trace:
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
        with _Recorder(model, t, fn_lookup, module_lookup, params, method_lookup):
            out = model(*t.inputs, *extra_args, **kwargs)
    t.outputs = out
    t.keep.append(out)
    return t

"""Building the ONNX graph from two traces: names, initializers, constants and the
batch-dependent shapes that a dynamic batch dimension needs."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..tensor import Tensor
from ._trace import ExportError, Op, Trace, is_qtensor, no_mapping

INT64_MAX = np.iinfo(np.int64).max
INT64_MIN = np.iinfo(np.int64).min


def _contiguous(a: np.ndarray) -> np.ndarray:
    return np.array(a, order="C", copy=not a.flags.c_contiguous)  # keeps 0-d arrays 0-d


def onnx_dtype(dtype) -> int:
    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


class Graph:
    """Collects nodes and initializers; one symbolic function emits each traced op.

    ``t1`` is the trace at the example batch, ``t2`` (or None for a static batch) the trace
    at another batch size: a shape that differs between them is batch-dependent and is
    computed from the input's batch size at run time.
    """

    def __init__(self, t1: Trace, t2: Trace | None, opset: int, fold: bool,
                 param_names: dict, array_names: dict, input_names: list[str]):
        self.t1, self.t2, self.opset, self.fold = t1, t2, opset, fold
        self.param_names, self.array_names = param_names, array_names
        self.nodes: list = []
        self.initializers: dict[str, onnx.TensorProto] = {}
        self.used: set[str] = set(input_names)
        self.names: dict = {}          # (op index, output index) -> ONNX value name
        self.const_names: dict = {}    # id(tensor or array) -> initializer name
        self.small: dict = {}          # (dtype, shape, bytes) -> initializer name
        self.input_names = input_names
        self.op: Op | None = None      # the op being emitted (node names, errors)
        self.alt: Op | None = None
        self._batch = None
        self.counter = 0
        if t2 is not None:
            self.b1 = int(t1.inputs[0].shape[0])
            self.b2 = int(t2.inputs[0].shape[0])
        for j, n in enumerate(input_names):
            self.names[(-1, j)] = n

    # ---------------------------------------------------------------------------- names
    def fresh(self, hint: str) -> str:
        base = hint
        name, k = base, 0
        while name in self.used:
            k += 1
            name = f"{base}_{k}"
        self.used.add(name)
        return name

    def _prefix(self) -> str:
        return "/" + self.op.path.replace(".", "/") if self.op is not None and self.op.path \
            else ""

    def node(self, op_type: str, inputs: list, n_out: int = 1, domain: str = "", **attrs):
        """Append a node; returns its output name (or the list of them when ``n_out > 1``)."""
        self.counter += 1
        name = self.fresh(f"{self._prefix()}/{op_type}_{self.counter}")
        outs = [self.fresh(f"{name}_output_{i}") for i in range(n_out)]
        attrs = {k: v for k, v in attrs.items() if v is not None}
        self.nodes.append(helper.make_node(op_type, [i or "" for i in inputs], outs, name=name,
                                           domain=domain or None, **attrs))
        return outs[0] if n_out == 1 else outs

    # ------------------------------------------------------------------------ constants
    def const(self, value, dtype=None, hint: str = "const") -> str:
        """An initializer holding ``value`` (small ones are shared)."""
        arr = np.asarray(value, dtype=dtype)
        if arr.dtype == np.float16 or arr.dtype.kind in "fiub":
            pass
        else:
            raise ExportError(f"convnet.onnx.export: cannot store a constant of dtype {arr.dtype}")
        key = None
        if arr.size <= 16:
            key = (arr.dtype.str, arr.shape, arr.tobytes())
            if key in self.small:
                return self.small[key]
        name = self.fresh(hint)
        self.initializers[name] = numpy_helper.from_array(_contiguous(arr), name)
        if key is not None:
            self.small[key] = name
        return name

    def i64(self, values) -> str:
        return self.const(np.asarray(values, dtype=np.int64).reshape(-1), hint="ints")

    def scalar(self, value, dtype) -> str:
        return self.const(np.asarray(value, dtype=dtype), hint="scalar")

    def array(self, arr: np.ndarray, hint: str = "const") -> str:
        """An ndarray argument of an op (e.g. running statistics): named after the buffer it
        belongs to when there is one."""
        name = self.array_names.get(id(arr))
        if name is not None:
            if name not in self.initializers:
                self.used.add(name)
                self.initializers[name] = numpy_helper.from_array(_contiguous(arr), name)
            return name
        return self.const(arr, hint=hint)

    # --------------------------------------------------------------------------- values
    def v(self, t, alt=None) -> str:
        """The ONNX name of tensor ``t`` (``alt``: the same argument in the second trace)."""
        if t is None:
            return ""
        if isinstance(t, np.ndarray):
            loc = self.t1.find_array(t)
            if loc is not None and loc in self.names:
                return self.names[loc]
            if alt is not None and self.t2 is not None:
                self._same_constant(t, np.asarray(alt))
            return self.array(t)
        quantized = is_qtensor(t)
        if not isinstance(t, Tensor) and not quantized:
            raise ExportError(f"convnet.onnx.export: expected a tensor, got {type(t).__name__}")
        loc = self.op.locs.get(id(t)) if self.op is not None else self.t1.find(t)
        if loc is not None:
            name = self.names.get(loc)
            if name is None:
                raise ExportError(
                    f"convnet.onnx.export: {self.where()} reads output {loc[1]} of op "
                    f"#{loc[0]} ({self.t1.ops[loc[0]].name}), which has no ONNX counterpart")
            return name
        if quantized:
            raise ExportError(
                f"convnet.onnx.export: {self.where()} reads a quantized tensor that no traced "
                "module produced (computed by a module or function without an ONNX mapping)")
        if id(t) in self.const_names:
            return self.const_names[id(t)]
        pname = self.param_names.get(id(t))
        if pname is not None:
            self.used.add(pname)
            self.initializers[pname] = numpy_helper.from_array(_contiguous(t._data),
                                                               pname)
            self.const_names[id(t)] = pname
            return pname
        data = self.t1.snapshots.get(id(t), t._data)
        if alt is not None and self.t2 is not None:
            data2 = self.t2.snapshots.get(id(alt), alt._data)
            if data2.shape != data.shape:
                return self._batch_constant(data, data2)
            self._same_constant(data, data2)
        name = self.const(data, hint="const")
        self.const_names[id(t)] = name
        return name

    def _same_constant(self, d1: np.ndarray, d2: np.ndarray) -> None:
        """A constant must be the same in both traces: one that is not was computed from the
        input outside the traced ops, and freezing it into the file would be wrong."""
        if d1.shape != d2.shape:
            self._batch_constant(d1, d2)  # raises unless uniform
            raise ExportError(
                f"convnet.onnx.export: {self.where()} takes an index or mask of shape "
                f"{tuple(d1.shape)} that follows the batch size; export with "
                "dynamic_batch=False")
        if not np.array_equal(d1, d2, equal_nan=d1.dtype.kind in "fc"):
            raise ExportError(
                f"convnet.onnx.export: {self.where()} reads a tensor of shape {tuple(d1.shape)} "
                "that is not computed by traced ops and whose values changed with the input (a "
                "value taken out of the graph, e.g. with .numpy(), .item(), .detach() or a "
                "comparison, or a random one)")

    def _batch_constant(self, d1: np.ndarray, d2: np.ndarray) -> str:
        flat = d1.reshape(-1)
        if d1.size and np.all(flat == flat[0]) and d2.size and np.all(d2 == flat[0]):
            shape = self.shape_tensor(d1.shape, d2.shape)
            value = numpy_helper.from_array(np.asarray([flat[0]], dtype=d1.dtype), "value")
            return self.node("ConstantOfShape", [shape], value=value)
        raise ExportError(
            f"convnet.onnx.export: {self.where()} reads a tensor of shape {tuple(d1.shape)} that "
            "is not computed by traced ops and whose size follows the batch size (computed "
            "outside convnet's ops, e.g. with NumPy); export with dynamic_batch=False or "
            "build it from traced ops")

    def arg(self, name: str) -> str:
        """ONNX name of the current op's argument ``name``."""
        alt = self.alt.a.get(name) if self.alt is not None else None
        return self.v(self.op.a.get(name), alt)

    def where(self) -> str:
        from ._trace import where

        if self.op is None:
            return "the model"
        return f"op '{self.op.name}' in " + where(self.op.path, self.op.module_type)

    def fail(self, why: str) -> ExportError:
        return no_mapping(self.op.name, self.op.path, self.op.module_type, why)

    # ---------------------------------------------------------------- dynamic shapes
    def batch(self) -> str:
        """The batch size of graph input 0 at run time, as a 1-element int64 tensor."""
        if self._batch is None:
            shape = self.node("Shape", [self.input_names[0]])
            self._batch = self.node("Slice", [shape, self.i64([0]), self.i64([1])])
        return self._batch

    def dims(self, s1, s2=None):
        """Per dim: an int (static) or ``(k, c)`` meaning ``k * batch + c``."""
        s1 = tuple(int(v) for v in s1)
        if s2 is None or self.t2 is None:
            return list(s1)
        s2 = tuple(int(v) for v in s2)
        if len(s1) != len(s2):
            raise self.fail(f"the rank of a shape changes with the batch size ({s1} vs {s2})")
        out = []
        for a, b in zip(s1, s2):
            if a == b:
                out.append(a)
                continue
            k, r = divmod(b - a, self.b2 - self.b1)
            if r:
                raise self.fail(f"shape {s1} does not follow the batch size linearly")
            out.append((k, a - k * self.b1))
        return out

    def shape_tensor(self, s1, s2=None) -> str:
        """An int64 shape tensor equal to ``s1`` at the traced batch and following the batch
        size where ``s1`` and ``s2`` differ."""
        dims = self.dims(s1, s2)
        if all(isinstance(d, int) for d in dims):
            return self.i64(dims)
        parts, static = [], []
        for d in dims:
            if isinstance(d, int):
                static.append(d)
                continue
            if static:
                parts.append(self.i64(static))
                static = []
            k, c = d
            e = self.batch()
            if k != 1:
                e = self.node("Mul", [e, self.i64([k])])
            if c:
                e = self.node("Add", [e, self.i64([c])])
            parts.append(e)
        if static:
            parts.append(self.i64(static))
        return self.node("Concat", parts, axis=0)

    def reshape_target(self, s1, s2=None) -> str:
        """Target of a Reshape to ``s1``: static, with -1 for the one batch-dependent dim."""
        dims = self.dims(s1, s2)
        dyn = [i for i, d in enumerate(dims) if not isinstance(d, int)]
        if len(dyn) <= 1:
            return self.i64([-1 if i in dyn else d for i, d in enumerate(dims)])
        return self.shape_tensor(s1, s2)

    def reshape(self, x: str, s1, s2=None) -> str:
        return self.node("Reshape", [x, self.reshape_target(s1, s2)])

    # ------------------------------------------------------------------ op helpers
    def reduce(self, kind: str, x: str, axes, keepdims: bool) -> str:
        """Reduce* over ``axes`` (None: all): axes are an attribute before opset 18 (except
        ReduceSum, an input from 13)."""
        if axes is None:
            return self.node(kind, [x], keepdims=int(keepdims))
        axes = [int(a) for a in axes]
        if kind == "ReduceSum" or self.opset >= 18:
            return self.node(kind, [x, self.i64(axes)], keepdims=int(keepdims))
        return self.node(kind, [x], axes=axes, keepdims=int(keepdims))

    def unsqueeze(self, x: str, axes) -> str:
        return self.node("Unsqueeze", [x, self.i64(list(axes))])

    def squeeze(self, x: str, axes) -> str:
        return self.node("Squeeze", [x, self.i64(list(axes))])

    def cast(self, x: str, dtype) -> str:
        return self.node("Cast", [x], to=onnx_dtype(dtype))

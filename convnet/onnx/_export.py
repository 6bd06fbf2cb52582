"""``export``: trace, emit, check, write (see :func:`convnet.onnx.export`)."""
from __future__ import annotations

import io
import os

import numpy as np
import onnx
from onnx import helper

from ..tensor import Tensor
from . import symbolic
from ._graph import Graph, onnx_dtype
from ._trace import ExportError, is_qtensor, trace

MIN_OPSET = 13


def _flatten_outputs(out, prefix="output"):
    """``[(default name, tensor)]`` of a model output (a tensor, or tuples/lists/dicts)."""
    items = []

    def walk(o, name):
        if isinstance(o, Tensor) or is_qtensor(o):
            items.append((name, o))
        elif isinstance(o, (tuple, list)):
            for i, v in enumerate(o):
                walk(v, f"{name}_{i}")
        elif isinstance(o, dict):
            for k, v in o.items():
                walk(v, f"{name}_{k}")

    walk(out, prefix)
    if len(items) == 1:
        items = [(prefix, items[0][1])]
    return items


def _split_args(args):
    """torch.onnx's convention: ``args`` is a tensor or a tuple of positional arguments,
    optionally ending with a dict of keyword arguments."""
    if isinstance(args, Tensor):
        args = (args,)
    elif isinstance(args, list):
        args = tuple(args)
    elif not isinstance(args, tuple):
        raise TypeError(f"convnet.onnx.export: args must be a Tensor or a tuple of arguments, "
                        f"got {type(args).__name__}")
    kwargs = {}
    if args and isinstance(args[-1], dict):
        args, kwargs = args[:-1], dict(args[-1])
    tensors = [a for a in args if isinstance(a, Tensor)]
    if not tensors:
        raise ValueError("convnet.onnx.export: args holds no Tensor to use as the graph input")
    if any(isinstance(a, Tensor) for a in args[len(tensors):]) or \
            any(not isinstance(a, Tensor) for a in args[:len(tensors)]):
        raise ValueError("convnet.onnx.export: tensor arguments must come first in args")
    return tensors, args[len(tensors):], kwargs


def _alt_input(x: Tensor) -> Tensor:
    """The same input at batch size ``N + 1`` with other values (second trace)."""
    a = x._data
    extra = a[:1] * 0.5 if a.dtype.kind == "f" else a[:1]
    return Tensor._make(np.ascontiguousarray(np.concatenate([a[::-1], extra], axis=0)))


def _dynamic_axes(dynamic_axes, dynamic_batch, input_names, output_names):
    """``{value name: batch dim name}`` for the inputs and outputs with a dynamic batch."""
    if dynamic_axes is None:
        if not dynamic_batch:
            return {}
        return {n: "batch" for n in list(input_names) + list(output_names)}
    known = set(input_names) | set(output_names)
    out = {}
    for name, axes in dynamic_axes.items():
        if name not in known:
            raise ValueError(f"convnet.onnx.export: dynamic_axes names {name!r}, which is not an "
                             f"input or output name ({sorted(known)})")
        if isinstance(axes, dict):
            items = list(axes.items())
        else:
            items = [(a, f"{name}_dynamic_axes_{i + 1}") for i, a in enumerate(axes)]
        for axis, label in items:
            if int(axis) != 0:
                raise NotImplementedError(
                    f"convnet.onnx.export: dynamic_axes {name!r}: only axis 0 (the batch) can be "
                    f"dynamic, got axis {axis}")
            out[name] = label
    return out


def build(model, args, input_names=None, output_names=None, opset_version: int = 17,
          dynamic_batch: bool = True, do_constant_folding: bool = True, dynamic_axes=None,
          verbose: bool = False) -> onnx.ModelProto:
    """The ONNX model of ``model`` traced on ``args`` (see :func:`convnet.onnx.export`)."""
    max_opset = onnx.defs.onnx_opset_version()
    if not isinstance(opset_version, (int, np.integer)) or isinstance(opset_version, bool) or \
            not MIN_OPSET <= opset_version <= max_opset:
        raise ValueError(f"convnet.onnx.export: opset_version must be an int in "
                         f"[{MIN_OPSET}, {max_opset}], got {opset_version!r}")
    tensors, extra, kwargs = _split_args(args)
    if input_names is None:
        input_names = ["input"] if len(tensors) == 1 else [f"input_{i}" for i in
                                                           range(len(tensors))]
    input_names = list(input_names)
    if len(input_names) != len(tensors) or len(set(input_names)) != len(input_names):
        raise ValueError(f"convnet.onnx.export: {len(tensors)} tensor inputs need as many "
                         f"distinct input_names, got {input_names}")
    dynamic = bool(dynamic_batch) or dynamic_axes is not None
    if dynamic and any(t.ndim == 0 or t.shape[0] == 0 for t in tensors):
        raise ValueError("convnet.onnx.export: a dynamic batch needs inputs with a non-empty "
                         f"first (batch) dim, got shapes {[tuple(t.shape) for t in tensors]}; "
                         "pass dynamic_batch=False")

    symbolic.load_extensions()
    training = {m: m.training for m in model.modules()}
    model.eval()
    lookups = (symbolic.function_symbolic, symbolic.module_lookup, symbolic.method_lookup)
    try:
        t1 = trace(model, tensors, extra, kwargs, *lookups)
        t2 = None
        if dynamic:
            t2 = trace(model, [_alt_input(t) for t in tensors], extra, kwargs, *lookups)
    finally:
        for m, flag in training.items():
            m.training = flag

    outs1 = _flatten_outputs(t1.outputs)
    if not outs1:
        raise ValueError("convnet.onnx.export: the model returned no Tensor")
    if output_names is None:
        output_names = [n for n, _ in outs1]
    output_names = list(output_names)
    if len(output_names) != len(outs1) or len(set(output_names)) != len(output_names) or \
            set(output_names) & set(input_names):
        raise ValueError(f"convnet.onnx.export: the model returns {len(outs1)} tensors, which "
                         f"need as many distinct output_names (not input names), got "
                         f"{output_names}")
    outs2 = _flatten_outputs(t2.outputs) if t2 is not None else None
    if t2 is not None:
        _check_same_graph(t1, t2, outs1, outs2)
    batch_names = _dynamic_axes(dynamic_axes, dynamic_batch, input_names, output_names)

    param_names = {}
    for name, p in model.named_parameters():
        param_names.setdefault(id(p), name)
    array_names = {}
    for name, b in model.named_buffers():
        param_names.setdefault(id(b), name)
        array_names.setdefault(id(b._data), name)
    g = Graph(t1, t2, int(opset_version), bool(do_constant_folding), param_names, array_names,
              input_names)
    for op in t1.ops:
        alt = t2.ops[op.index] if t2 is not None else None
        _emit(g, op, alt)
    g.op = g.alt = None

    # graph outputs: rename the producing node's output, or add an Identity
    produced = {o for n in g.nodes for o in n.output}
    rename, outputs = {}, []
    for j, ((_, t), name) in enumerate(zip(outs1, output_names)):
        if outs2 is not None and not t1.is_live(t):
            t_alt = outs2[j][1]
            if t_alt.shape != t.shape or not np.array_equal(_values(t_alt), _values(t),
                                                            equal_nan=True):
                raise ExportError(
                    f"convnet.onnx.export: output {name!r} changes with the input but is not "
                    "computed by traced ops (a value taken out of the graph, e.g. argmax/argmin, "
                    ".numpy() or .detach()); return the scores and take the argmax outside")
        v = g.v(t, outs2[j][1] if outs2 is not None else None)
        if v in produced and v not in rename:
            rename[v] = name
        else:
            g.nodes.append(helper.make_node("Identity", [rename.get(v, v)], [name],
                                            name=f"/Identity_output_{j}"))
        s1 = tuple(t.shape)
        s2 = tuple(outs2[j][1].shape) if outs2 is not None else s1
        dims = [a if a == b else batch_names.get(name, "batch") for a, b in zip(s1, s2)]
        if name not in batch_names and any(isinstance(d, str) for d in dims):
            dims = list(s1)  # the user asked for a static output
        dtype = np.float32 if is_qtensor(t) else t.dtype  # a QTensor leaves dequantized
        outputs.append(helper.make_tensor_value_info(name, onnx_dtype(dtype), dims))
    for n in g.nodes:
        for i, v in enumerate(n.input):
            if v in rename:
                n.input[i] = rename[v]
        for i, v in enumerate(n.output):
            if v in rename:
                n.output[i] = rename[v]
    inputs = []
    for name, t in zip(input_names, tensors):
        dims = list(t.shape)
        if name in batch_names:
            dims[0] = batch_names[name]
        inputs.append(helper.make_tensor_value_info(name, onnx_dtype(t.dtype), dims))
    graph = helper.make_graph(g.nodes, type(model).__name__, inputs, outputs,
                              initializer=list(g.initializers.values()))
    opset = [helper.make_opsetid("", int(opset_version))]
    proto = helper.make_model(graph, opset_imports=opset, producer_name="convnet",
                              ir_version=helper.find_min_ir_version_for(opset))
    if verbose:
        print(helper.printable_graph(proto.graph))
    return proto


def _values(t) -> np.ndarray:
    return t.dequantize()._data if is_qtensor(t) else t._data


def _check_same_graph(t1, t2, outs1, outs2) -> None:
    if len(t1.ops) != len(t2.ops) or len(outs1) != len(outs2) or any(
            a.cls is not b.cls or a.path != b.path for a, b in zip(t1.ops, t2.ops)):
        raise ExportError(
            "convnet.onnx.export: the model runs different ops at another batch size (control "
            "flow that depends on the batch size or on the input values); export with "
            "dynamic_batch=False")


def _emit(g: Graph, op, alt) -> None:
    g.op, g.alt = op, alt
    if g.fold and not op.live and _same_shapes(op, alt) and \
            all(isinstance(t, Tensor) for t in op.outputs):
        for j, t in enumerate(op.outputs):
            if isinstance(t, Tensor):
                data = g.t1.snapshots[id(t)]
                g.names[(op.index, j)] = g.const(data, hint=f"{op.name}_folded")
        return
    if op.kind == "module":
        f = symbolic.module_lookup(op.obj)
    else:
        f = symbolic.function_symbolic(op.cls)
    names = f(g, op)
    for j, name in enumerate(names):
        if name is not None and j < len(op.outputs):
            g.names[(op.index, j)] = name


def _same_shapes(op, alt) -> bool:
    if alt is None:
        return True
    return all(a.shape == b.shape for a, b in zip(op.outputs, alt.outputs)
               if isinstance(a, Tensor))


def save(proto: onnx.ModelProto, f) -> None:
    """Write ``proto`` to a path (atomically: temp file + rename) or a binary file object."""
    data = proto.SerializeToString()
    if hasattr(f, "write"):
        if isinstance(f, io.TextIOBase):
            raise TypeError("convnet.onnx.export: f must be opened in binary mode ('wb')")
        f.write(data)
        return
    if not isinstance(f, (str, os.PathLike)):
        raise TypeError(f"convnet.onnx.export: f must be a path or a binary file object, got "
                        f"{type(f).__name__}")
    from ..io.atomic import atomic_write_bytes

    path = os.fspath(f)
    if os.path.isdir(path):
        raise IsADirectoryError(f"convnet.onnx.export: {path} is a directory; give a file path")
    try:
        atomic_write_bytes(path, data)
    except OSError as e:
        raise OSError(e.errno, f"convnet.onnx.export: cannot write {path}: "
                               f"{e.strerror or e}") from None

"""ONNX export of convnet models (``pip install convnet[onnx]`` for the ``onnx`` package).

``export(model, args, f)`` runs one forward pass of ``model`` in eval mode on ``args`` and
records every op (the tracer hooks :class:`convnet.autograd.Function` and the modules with an
ONNX symbolic of their own), then emits one or a few ONNX nodes per op with ``onnx.helper``.
Parameters and buffers become initializers named by their ``state_dict`` keys.

With ``dynamic_batch=True`` (the default) the model is traced a second time at batch size
``N + 1``: a shape that differs between the two traces follows the batch size in the graph
(``-1`` in a Reshape, or computed from the input's ``Shape``), so one file serves any batch.
The same comparison catches values taken out of the graph (``.numpy()``, ``.item()``,
``.detach()``, control flow on values) that would otherwise be frozen into the file.

An op without an ONNX mapping stops the export with an error naming the op and the module
path, e.g. ``convnet.onnx.export: no ONNX mapping for op 'Foo' in module 'features.3'
(FooLayer)``. See :mod:`convnet.onnx.symbolic` for the table.
"""
from __future__ import annotations

__all__ = ["export", "ExportError"]

_INSTALL = "convnet.onnx needs the onnx package: pip install convnet[onnx] (or pip install onnx)"


def _require_onnx():
    try:
        import onnx  # noqa: F401
    except ImportError as e:
        raise ImportError(_INSTALL) from e


def __getattr__(name):
    if name == "ExportError":
        from ._trace import ExportError

        return ExportError
    raise AttributeError(f"module 'convnet.onnx' has no attribute {name!r}")


def export(model, args, f=None, input_names=None, output_names=None, opset_version: int = 17,
           dynamic_batch: bool = True, do_constant_folding: bool = True, dynamic_axes=None,
           verbose: bool = False):
    """Export ``model`` to ONNX by tracing ``model(*args)`` once (torch.onnx.export's order).

    Args:
        model: a ``convnet.nn.Module`` (exported in eval mode; its modes are restored).
        args: the example input: a Tensor, or a tuple of positional arguments (tensors
            first; they become the graph inputs), optionally ending with a dict of keyword
            arguments.
        f: a file path (written atomically: temp file + rename), a binary file object, or
            None to only return the model.
        input_names / output_names: graph value names (default ``input`` / ``output``, or
            ``input_0``, ... and ``output_0``, ... or ``output_<key>`` for dict outputs).
        opset_version: ONNX opset, 13 or newer (default 17).
        dynamic_batch: axis 0 of every input and output is a symbolic ``batch`` dim.
        do_constant_folding: ops on parameters and constants alone (weight slices,
            transposes) are computed once and stored as initializers.
        dynamic_axes: torch's form, ``{name: {0: "dim name"}}`` or ``{name: [0]}``; only axis
            0 may be dynamic. When given, only the named values get a symbolic batch dim.
        verbose: print the graph.

    Returns:
        The ``onnx.ModelProto`` (also when it was written to ``f``).

    Shapes: the traced input shapes are fixed in the graph except the batch dim.
    """
    _require_onnx()
    from ._export import build, save

    proto = build(model, args, input_names, output_names, opset_version, dynamic_batch,
                  do_constant_folding, dynamic_axes, verbose)
    if f is not None:
        save(proto, f)
    return proto

"""``Tensor.grad_fn``: a read-only view of the backward graph, shaped like torch's.

A result's ``grad_fn`` is a :class:`Node` wrapping the ``Function`` that made it;
``node.next_functions`` is a tuple with one ``(node, output_index)`` pair per Tensor input of
that Function: the input's own ``grad_fn`` node, an :class:`AccumulateGrad` node (``.variable``
is the leaf) for a leaf that requires grad, or ``(None, 0)`` for an input that needs no
gradient. ``node.name()`` is torch's name where one exists (``"AddBackward0"``,
``"MmBackward0"``, ``"NllLossBackward0"``); otherwise ``f"{FunctionClass}Backward0"``. Names
describe the operation, not always torch's exact overload: every reshape/view/squeeze is
``ViewBackward0``, every matmul ``MmBackward0``; sums, means and indexing tell their variants
apart (``SumBackward1`` over a dim, ``SelectBackward0``/``SliceBackward0``/``IndexBackward0``)
until backward frees what the Function kept.
"""
from __future__ import annotations

import numpy as np

# Function class name -> torch's grad_fn name (classes not listed get f"{name}Backward0").
_TORCH_NAMES = {
    "PowScalar": "PowBackward0", "RPowScalar": "PowBackward2", "Pow": "PowBackward1",
    "Clamp": "ClampBackward1", "Cast": "ToCopyBackward0", "Assign": "CopyBackwards",
    "Reshape": "ViewBackward0", "GetItem": "IndexBackward0", "IndexPut": "IndexPutBackward0",
    "MaxAll": "MaxBackward1", "MaxDim": "MaxBackward0", "MatMul": "MmBackward0",
    "Log1p": "Log1PBackward0", "RoundedDiv": "DivBackward2",
    "_Linear": "AddmmBackward0", "_CoefNLL": "NllLossBackward0", "_LogSoftmax": "LogSoftmaxBackward0",
    "_Conv": "ConvolutionBackward0", "_ConvTranspose": "ConvolutionBackward0",
    "_MaxPool": "MaxPool2DWithIndicesBackward0", "_AvgPool": "AvgPool2DBackward0",
    "_BCE": "BinaryCrossEntropyBackward0", "_BCEWithLogits": "BinaryCrossEntropyWithLogitsBackward0",
    "_LeakyReLU": "LeakyReluBackward0", "_ELUFn": "EluBackward0", "_GELU": "GeluBackward0",
    "_Pad": "ConstantPadNdBackward0", "_Mask": "NativeDropoutBackward0",
    "_Normalize": "NativeBatchNormBackward0", "_SDPA": "ScaledDotProductAttentionBackward0",
}


def _variant(cls: str, fn) -> str | None:
    """torch's overload-specific names, read from what the Function kept (until backward frees
    it): ``x[0]`` Select, ``x[1:]`` Slice, ``x[idx]`` Index; a sum/mean over ``dim`` ...1."""
    saved = fn.__dict__
    if cls in ("Sum", "Mean") and saved.get("axes") is not None:
        return f"{cls}Backward1"
    if cls == "GetItem" and "idx" in saved:
        items = saved["idx"] if isinstance(saved["idx"], tuple) else (saved["idx"],)
        if any(isinstance(i, (np.ndarray, list)) for i in items):
            return None  # advanced indexing: IndexBackward0
        items = [i for i in items if i is not Ellipsis and i != slice(None)]
        if items and all(isinstance(i, (int, np.integer)) for i in items):
            return "SelectBackward0"
        if items and all(isinstance(i, (int, np.integer, slice)) or i is None for i in items):
            return "SliceBackward0" if isinstance(items[-1], slice) else "SelectBackward0"
    return None


def function_name(fn) -> str:
    """torch-style name of the backward node of Function instance ``fn``."""
    cls = type(fn).__name__
    explicit = getattr(fn, "grad_fn_name", None)
    if explicit:
        return explicit
    return _variant(cls, fn) or _TORCH_NAMES.get(cls, cls.lstrip("_") + "Backward0")


class Node:
    """The backward node of one Function (``tensor.grad_fn``)."""

    __slots__ = ("_fn",)

    def __init__(self, fn):
        self._fn = fn

    def name(self) -> str:
        return function_name(self._fn)

    @property
    def next_functions(self) -> tuple:
        fn = self._fn
        if fn.parents is None:
            raise RuntimeError(
                f"{self.name()}.next_functions: the graph was freed by backward(); call "
                "backward(retain_graph=True) to inspect it afterwards"
            )
        out = []
        for parent, edge, needed in zip(fn.parents, fn.edges, fn.needs_input_grad):
            if parent is None:  # a non-Tensor argument (an axis, a shape): torch lists none
                continue
            if edge is not None:
                out.append((Node(edge[0]), edge[1]))
            elif needed:  # as recorded when the op ran
                out.append((AccumulateGrad(parent), 0))
            else:
                out.append((None, 0))
        return tuple(out)

    def __eq__(self, other):
        return isinstance(other, Node) and other._fn is self._fn

    def __hash__(self):
        return hash(id(self._fn))

    def __repr__(self) -> str:
        return f"<{self.name()} object at {id(self._fn):#x}>"


class AccumulateGrad:
    """The node that stores a leaf's gradient into ``.grad``; ``.variable`` is the leaf."""

    __slots__ = ("variable",)

    def __init__(self, variable):
        self.variable = variable

    def name(self) -> str:
        return "AccumulateGrad"

    @property
    def next_functions(self) -> tuple:
        return ()

    def __eq__(self, other):
        return isinstance(other, AccumulateGrad) and other.variable is self.variable

    def __hash__(self):
        return hash(id(self.variable))

    def __repr__(self) -> str:
        return f"<AccumulateGrad object at {id(self.variable):#x}>"

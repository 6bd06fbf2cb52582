"""``summary(model, input_shape)``: a torchinfo-style table with receptive-field columns.

One forward pass with forward hooks on every leaf module records output shapes; parameter
counts come from the modules, multiply-accumulates (MACs) from the layer formulas below and
receptive fields from ``receptive_field.trace_geometry``.

MACs per sample (bias additions, activations and normalisation are not counted, as in the
published counts):

* convolution:             ``C_out * prod(out_spatial) * (C_in / groups) * prod(K)``
                           (dilation spreads the taps but does not add any)
* transposed convolution:  ``C_in * prod(in_spatial) * (C_out / groups) * prod(K)``
                           (each input pixel scales the whole filter)
* linear:                  ``in_features * out_features`` per row
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..autograd.grad_mode import enable_grad
from ..tensor import Tensor
from .receptive_field import _as_result, model_dtype, trace_geometry

__all__ = ["summary", "ModelSummary", "LayerRow", "count_macs"]


@dataclass
class LayerRow:
    """One leaf-module call. ``receptive_field``, ``jump`` and ``start`` are ints (or per-axis
    tuples) in input pixels, ``None`` for non-spatial outputs (after flatten)."""

    name: str
    kind: str
    input_shape: tuple
    output_shape: tuple
    params: int
    trainable: int
    macs: int
    receptive_field: int | tuple | None
    jump: int | float | tuple | None
    start: int | float | tuple | None


@dataclass
class ModelSummary:
    """The result of ``summary``: ``rows`` plus totals; ``str()`` renders the table."""

    rows: list[LayerRow]
    input_shape: tuple
    total_params: int
    trainable_params: int
    total_macs: int
    input_bytes: int
    activation_bytes: int
    param_bytes: int
    receptive_field: int | tuple | None = None
    extra: dict = field(default_factory=dict)

    @property
    def non_trainable_params(self) -> int:
        return self.total_params - self.trainable_params

    def __str__(self) -> str:
        return self.table()

    def table(self, width: int = 100) -> str:
        """Render like torchinfo: one line per layer, then totals and memory."""
        heads = ("Layer (type)", "Output Shape", "Param #", "MACs", "RF", "Jump", "Start")
        body = []
        for r in self.rows:
            body.append((
                f"{r.name} ({r.kind})",
                str(list(r.output_shape)),
                f"{r.params:,}" if r.params else "--",
                f"{r.macs:,}" if r.macs else "--",
                _fmt(r.receptive_field),
                _fmt(r.jump),
                _fmt(r.start),
            ))
        cols = [max([len(h)] + [len(b[i]) for b in body]) for i, h in enumerate(heads)]
        first = max(cols[0], width - sum(cols[1:]) - 2 * (len(cols) - 1))
        cols[0] = first

        def line(vals):
            cells = [vals[0].ljust(cols[0])] + [v.rjust(c) for v, c in zip(vals[1:], cols[1:])]
            return "  ".join(cells).rstrip()

        rule_len = sum(cols) + 2 * (len(cols) - 1)
        out = ["=" * rule_len, line(heads), "=" * rule_len]
        out += [line(b) for b in body]
        mb = 1024 ** 2
        out += [
            "=" * rule_len,
            f"Total params: {self.total_params:,}",
            f"Trainable params: {self.trainable_params:,}",
            f"Non-trainable params: {self.non_trainable_params:,}",
            f"Total mult-adds (M): {self.total_macs / 1e6:.2f}",
            f"Receptive field of the last spatial layer: {_fmt(self.receptive_field)}",
            "-" * rule_len,
            f"Input size (MB): {self.input_bytes / mb:.2f}",
            f"Forward pass size (MB): {self.activation_bytes / mb:.2f}",
            f"Params size (MB): {self.param_bytes / mb:.2f}",
            f"Estimated Total Size (MB): "
            f"{(self.input_bytes + self.activation_bytes + self.param_bytes) / mb:.2f}",
            "=" * rule_len,
        ]
        return "\n".join(out)

    def to_dict(self) -> dict:
        return {
            "rows": [r.__dict__ for r in self.rows],
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "total_macs": self.total_macs,
            "activation_bytes": self.activation_bytes,
            "receptive_field": self.receptive_field,
        }


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, tuple):
        return "x".join(_fmt(i) for i in v)
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _is_conv(module) -> bool:
    return all(hasattr(module, a) for a in ("in_channels", "out_channels", "kernel_size"))


def count_macs(module, inputs: Sequence, output) -> int:
    """Multiply-accumulates of one call of a leaf module (whole batch); 0 for layers that do
    no multiply-adds by the counting convention above."""
    x = next((i for i in inputs if isinstance(i, Tensor)), None)
    if not isinstance(output, Tensor) or x is None:
        return 0
    kind = type(module).__name__
    if _is_conv(module):
        k = module.kernel_size
        k = tuple(k) if isinstance(k, (tuple, list)) else (k,) * (x.ndim - 2)
        groups = int(getattr(module, "groups", 1))
        transposed = bool(getattr(module, "transposed", False)) or "Transpose" in kind
        ksize = int(np.prod(k))
        if transposed:
            n_in = int(np.prod(x.shape))  # N * C_in * in_spatial
            return n_in * (module.out_channels // groups) * ksize
        n_out = int(np.prod(output.shape))  # N * C_out * out_spatial
        return n_out * (module.in_channels // groups) * ksize
    if hasattr(module, "in_features") and hasattr(module, "out_features"):
        rows = int(np.prod(output.shape[:-1])) if output.ndim > 1 else 1
        return rows * module.in_features * module.out_features
    return 0


def summary(
    model,
    input_shape: Sequence[int],
    batch_size: int = 1,
    dtype=None,
) -> ModelSummary:
    """Table of every leaf layer: output shape, parameters, MACs and receptive field.

    Args:
        model: a ``convnet.nn.Module``.
        input_shape: one sample's shape ``(C, *spatial)``, e.g. ``(3, 32, 32)``.
        batch_size: samples in the traced batch (MACs and memory scale with it; default 1).
        dtype: input dtype (default: the model's parameter dtype, float32 without parameters).

    Returns a ``ModelSummary``: ``rows`` (``LayerRow`` with ``name, kind, output_shape,
    params, trainable, macs, receptive_field, jump, start``), ``total_params``,
    ``trainable_params``, ``total_macs``, activation / parameter memory in bytes; printing
    it shows the table. Parameters shared by several calls are counted once in the totals.

    Example::

        >>> s = summary(models.create('resnet20'), (3, 32, 32))
        >>> s.total_params, round(s.total_macs / 1e6, 1)
        (269722, 40.6)
    """
    shape = tuple(int(v) for v in input_shape)
    if len(shape) < 2:
        raise ValueError(f"summary: input_shape {shape} must be (C, *spatial), e.g. (3, 32, 32)")
    was_training = [(m, m.training) for m in model.modules()]
    model.eval()  # a summary must not update batch-norm statistics
    try:
        x = Tensor._make(np.zeros((batch_size, *shape), dtype=dtype or model_dtype(model)))
        with enable_grad():
            calls, out_field = trace_geometry(model, x)
    finally:
        for m, t in was_training:
            m.training = t

    rows, seen_params = [], set()
    activation_bytes = 0
    for c in calls:
        out = c.output
        first = out if isinstance(out, Tensor) else next(
            (o for o in (out or ()) if isinstance(o, Tensor)), None)
        out_shape = tuple(first.shape) if first is not None else ()
        inp = next((i for i in c.inputs if isinstance(i, Tensor)), None)
        params = list(c.module.parameters(recurse=False)) if hasattr(c.module, "parameters") else []
        new = [p for p in params if id(p) not in seen_params]
        seen_params.update(id(p) for p in params)
        n_params = sum(int(np.prod(p.shape)) for p in new)
        n_train = sum(int(np.prod(p.shape)) for p in new if p.requires_grad)
        f = c.field
        spatial = f is not None and not f.global_
        rows.append(LayerRow(
            name=c.name,
            kind=type(c.module).__name__,
            input_shape=tuple(inp.shape) if inp is not None else (),
            output_shape=out_shape,
            params=n_params,
            trainable=n_train,
            macs=count_macs(c.module, c.inputs, first),
            receptive_field=_as_result(f.size) if spatial else None,
            jump=_as_result(f.jump) if spatial else None,
            start=_as_result(f.start) if spatial else None,
        ))
        if first is not None:
            activation_bytes += first._data.nbytes
    all_params = list(model.parameters())
    total = sum(int(np.prod(p.shape)) for p in all_params)
    trainable = sum(int(np.prod(p.shape)) for p in all_params if p.requires_grad)
    param_bytes = sum(p._data.nbytes for p in all_params)
    if out_field is not None and not out_field.global_:
        rf = _as_result(out_field.size)
    else:
        rf = next((r.receptive_field for r in reversed(rows) if r.receptive_field is not None), None)
    return ModelSummary(
        rows=rows,
        input_shape=(batch_size, *shape),
        total_params=total,
        trainable_params=trainable,
        total_macs=sum(r.macs for r in rows),
        input_bytes=x._data.nbytes,
        activation_bytes=activation_bytes,
        param_bytes=param_bytes,
        receptive_field=rf,
    )

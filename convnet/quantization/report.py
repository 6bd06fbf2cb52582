"""Layer tables for ``convnet summary`` on quantized runs, and bytes per layer for any model.

``quantized_table(model, input_shape)`` runs one forward pass with hooks on the leaves of a
converted model and lists each layer's output shape, stored dtype, bytes (as saved:
:func:`~convnet.quantization.serialize.quantized_size_bytes`) and output scale / zero point.
``bytes_table(model)`` is the bytes-per-layer block printed under a float run's summary.
"""
from __future__ import annotations

import numpy as np

from ..nn.modules.module import Module
from ..tensor import Tensor
from .qtensor import QTensor
from .quantized import QUANTIZED_MODULES
from .serialize import quantized_size_bytes

__all__ = ["is_quantized", "quantized_rows", "quantized_table", "bytes_table"]


def is_quantized(model: Module) -> bool:
    """Whether ``model`` holds converted (quantized) modules."""
    known = tuple(QUANTIZED_MODULES.values())
    return any(isinstance(m, known) for m in model.modules())


def _storage(m: Module) -> str:
    """What a layer stores: ``int8 per-channel``, ``float32``, ... or ``--``."""
    b = m._buffers
    if "weight" in b and "weight_scale" in b:
        return "int8 " + ("per-channel" if b["weight_scale"].ndim else "per-tensor")
    own = [t for t in list(m._parameters.values()) + list(b.values()) if t is not None]
    kinds = sorted({str(t._data.dtype) for t in own})
    return ",".join(kinds) if own else "--"


def quantized_rows(model: Module, input_shape) -> list[dict]:
    """One dict per leaf call: ``name, kind, output_shape, output_dtype, stored, bytes,
    scale, zero_point`` (``scale``/``zero_point`` of a quantized output, else None)."""
    from ..autograd.grad_mode import no_grad

    sizes = quantized_size_bytes(model)
    rows, handles = [], []
    for name, m in model.named_modules():
        if m._modules:
            continue

        def hook(mod, inputs, out, name=name):
            q = isinstance(out, QTensor)
            rows.append({"name": name, "kind": type(mod).__name__,
                         "output_shape": list(out.shape) if isinstance(out, (Tensor, QTensor))
                         else [], "output_dtype": out.dtype.name if q else
                         str(getattr(out, "dtype", "")),
                         "stored": _storage(mod), "bytes": sizes.get(name, 0),
                         "scale": out.q_scale() if q else None,
                         "zero_point": out.q_zero_point() if q else None})
        handles.append(m.register_forward_hook(hook))
    was = model.training
    model.eval()
    try:
        with no_grad():
            model(Tensor._make(np.zeros((1, *input_shape), dtype=np.float32)))
    finally:
        for h in handles:
            h.remove()
        model.train(was)
    return rows


def quantized_table(model: Module, input_shape, float_bytes: int | None = None) -> str:
    """The table ``convnet summary`` prints for a quantized run (module docstring)."""
    rows = quantized_rows(model, input_shape)
    heads = ("Layer (type)", "Output Shape", "Output", "Stored", "Bytes", "Scale / zero point")
    body = [(f"{r['name']} ({r['kind']})", str(r["output_shape"]), r["output_dtype"],
             r["stored"], f"{r['bytes']:,}" if r["bytes"] else "--",
             f"{r['scale']:.6g} / {r['zero_point']}" if r["scale"] is not None else "--")
            for r in rows]
    cols = [max([len(h)] + [len(b[i]) for b in body]) for i, h in enumerate(heads)]

    def line(vals):
        return "  ".join([vals[0].ljust(cols[0])] + [v.rjust(c) for v, c in
                                                      zip(vals[1:], cols[1:])]).rstrip()

    rule = "=" * (sum(cols) + 2 * (len(cols) - 1))
    total = quantized_size_bytes(model)["total"]
    out = [rule, line(heads), rule, *(line(b) for b in body), rule,
           f"Stored bytes (weights, biases, quantization parameters): {total:,}"]
    if float_bytes:
        out.append(f"The float32 model stores {float_bytes:,} bytes: {float_bytes / total:.2f}x "
                   "more")
    out.append(rule)
    return "\n".join(out)


def bytes_table(model: Module, title: str = "Stored bytes per layer") -> str:
    """``name (type)  dtype  bytes`` for every module that stores something, and the total."""
    sizes = quantized_size_bytes(model)
    mods = dict(model.named_modules())
    body = [(f"{name} ({type(mods[name]).__name__})" if name in mods else name,
             _storage(mods[name]) if name in mods else "", f"{n:,}")
            for name, n in sizes.items() if name != "total"]
    w0 = max([len(b[0]) for b in body] + [10])
    w1 = max([len(b[1]) for b in body] + [5])
    lines = [f"{title}:"]
    lines += [f"  {a.ljust(w0)}  {b.ljust(w1)}  {c:>12}" for a, b, c in body]
    lines.append(f"  {'total'.ljust(w0)}  {''.ljust(w1)}  {sizes['total']:>12,}")
    return "\n".join(lines)


def print_quantized_summary(model: Module, input_shape, run_dir=None, as_json: bool = False
                            ) -> int:
    """What ``convnet summary RUN-int8`` prints (the table, or JSON with ``--json``); the
    float model's bytes come from the run's metrics.json when it has them."""
    import json
    from pathlib import Path

    float_bytes = None
    if run_dir is not None and (Path(run_dir) / "metrics.json").is_file():
        try:
            m = json.loads((Path(run_dir) / "metrics.json").read_text())
            float_bytes = int(m["bytes_per_layer_float"]["total"])
        except (ValueError, KeyError, TypeError):
            float_bytes = None
    if as_json:
        print(json.dumps({"rows": quantized_rows(model, input_shape),
                          "bytes_per_layer": quantized_size_bytes(model),
                          "float_total_bytes": float_bytes}, indent=2))
    else:
        print(quantized_table(model, input_shape, float_bytes))
    return 0

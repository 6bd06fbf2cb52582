"""torch-style text for tensors: ``tensor([5.5000, 3.0000])``, ``convnet.Size([2, 3])``.

The layout follows what PyTorch prints (4 decimals, one common width per tensor, 80-column
lines, ``...`` summaries above 1000 elements) so that printed output of a script ported from
torch reads the same. Rules for floating tensors, decided once from all non-zero finite values:

* all integral        -> ``1.``, ``-3.`` (scientific if max/min > 1e3 or max > 1e8)
* otherwise           -> ``1.2500`` (scientific ``1.2500e-05`` if max/min > 1e3, max > 1e8
                         or min < 1e-4)
"""
from __future__ import annotations

import numpy as np

LINEWIDTH = 80
THRESHOLD = 1000  # more elements than this are summarised
EDGEITEMS = 3
PRECISION = 4

# Default dtypes are not printed: the values show them (``1.`` float, ``1`` int, ``True`` bool).
_DEFAULT_DTYPES = (np.dtype("float32"), np.dtype("int64"), np.dtype("bool"))


def dtype_name(dtype) -> str:
    """``'convnet.float32'`` for a NumPy dtype (torch's spelling of the dtype name)."""
    dtype = np.dtype(dtype)
    return "convnet." + ("bool" if dtype == np.bool_ else dtype.name)


class _Formatter:
    """Formats every element of one tensor with one style and one width."""

    def __init__(self, values: np.ndarray):
        self.floating = values.dtype.kind == "f"
        self.int_mode, self.sci_mode, self.width = True, False, 1
        flat = values.reshape(-1)
        if not self.floating:
            for v in flat.tolist():
                self.width = max(self.width, len(str(v)))
            return
        finite = flat[np.isfinite(flat) & (flat != 0)].astype(np.float64)
        if finite.size == 0:
            return
        mags = np.abs(finite)
        lo, hi = float(mags.min()), float(mags.max())
        self.int_mode = bool(np.all(finite == np.ceil(finite)))
        if self.int_mode:
            self.sci_mode = hi / lo > 1000.0 or hi > 1.0e8
        else:
            self.sci_mode = hi / lo > 1000.0 or hi > 1.0e8 or lo < 1.0e-4
        for v in finite.tolist():
            self.width = max(self.width, len(self._text(v)))

    def _text(self, v) -> str:
        if not self.floating:
            return str(v)
        if self.sci_mode:
            return f"{v:.{PRECISION}e}"
        if self.int_mode:
            text = f"{v:.0f}"
            return text if (np.isinf(v) or np.isnan(v)) else text + "."
        return f"{v:.{PRECISION}f}"

    def __call__(self, v) -> str:
        return self._text(v).rjust(self.width)


def _summary(a: np.ndarray) -> np.ndarray:
    """The elements a summarised print shows (first/last EDGEITEMS along every axis)."""
    if a.ndim == 0:
        return a
    if a.shape[0] > 2 * EDGEITEMS:
        a = np.concatenate([a[:EDGEITEMS], a[-EDGEITEMS:]])
    return np.stack([_summary(row) for row in a]) if a.ndim > 1 else a


def _body(a: np.ndarray, indent: int, summarize: bool, fmt: _Formatter) -> str:
    if a.ndim == 0:
        return fmt(a.item())
    cut = summarize and a.shape[0] > 2 * EDGEITEMS
    if a.ndim == 1:
        items = [fmt(v) for v in a.tolist()]
        if cut:
            items = items[:EDGEITEMS] + [" ..."] + items[-EDGEITEMS:]
        per_line = max(1, (LINEWIDTH - indent) // (fmt.width + 2))
        lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
        return "[" + (",\n" + " " * (indent + 1)).join(lines) + "]"
    rows = range(a.shape[0])
    if cut:
        rows = list(range(EDGEITEMS)) + [None] + list(range(a.shape[0] - EDGEITEMS, a.shape[0]))
    parts = ["..." if r is None else _body(a[r], indent + 1, summarize, fmt) for r in rows]
    return "[" + ("," + "\n" * (a.ndim - 1) + " " * (indent + 1)).join(parts) + "]"


def tensor_repr(array: np.ndarray, grad_fn_name: str | None, requires_grad: bool) -> str:
    """torch's ``repr`` of a tensor holding ``array``."""
    prefix = "tensor("
    indent = len(prefix)
    suffixes = []
    if array.size == 0:
        body = "[]"
        if array.ndim != 1:
            suffixes.append(f"size={tuple(array.shape)}")
        if array.dtype != np.float32:  # nothing to infer an empty tensor's dtype from
            suffixes.append("dtype=" + dtype_name(array.dtype))
    else:
        if array.dtype not in _DEFAULT_DTYPES:
            suffixes.append("dtype=" + dtype_name(array.dtype))
        summarize = array.size > THRESHOLD
        fmt = _Formatter(_summary(array) if summarize else array)
        body = _body(array, indent, summarize, fmt)
    if grad_fn_name is not None:
        suffixes.append(f"grad_fn=<{grad_fn_name}>")
    elif requires_grad:
        suffixes.append("requires_grad=True")
    out = prefix + body
    last = len(out) - out.rfind("\n") + 1
    for s in suffixes:
        if last + len(s) + 2 > LINEWIDTH:  # a suffix that does not fit goes on its own line
            out += ",\n" + " " * indent + s
            last = indent + len(s)
        else:
            out += ", " + s
            last += len(s) + 2
    return out + ")"

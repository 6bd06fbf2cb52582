"""torch's function forms of Tensor methods (``cn.add(a, b, alpha=2)``, ``cn.gather``,
``cn.einsum``, ...), re-exported by ``convnet``.

Each takes the tensor first, as torch; ``out=`` (where torch has it) writes the result into an
existing tensor, which torch forbids when autograd is recording, and so does convnet.
"""
from __future__ import annotations

import numpy as np

from .autograd.grad_mode import is_grad_enabled
from .ops.einsum import Einsum, parse
from .tensor import Tensor
from .tensor import matmul as _matmul

__all__ = [
    "add", "sub", "mul", "div", "multiply", "subtract", "divide", "true_divide", "neg", "negative",
    "log1p", "expm1", "mm", "matmul", "topk", "sort", "argsort", "gather", "scatter",
    "scatter_add", "masked_fill", "chunk", "split", "index_select", "repeat_interleave", "einsum",
    "softmax", "log_softmax",
]


def _tensor(x, op: str, name: str = "input") -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}(): argument '{name}' must be Tensor, not {type(x).__name__}")
    return x


def _into(out, result: Tensor, op: str) -> Tensor:
    """Write ``result`` into ``out`` (resized if its shape differs), as torch's ``out=``."""
    if out is None:
        return result
    _tensor(out, op, "out")
    if is_grad_enabled() and (result.requires_grad or out.requires_grad):
        raise RuntimeError(
            f"{op}(): functions with out=... arguments don't support automatic differentiation, "
            "but one of the arguments requires grad.")
    if not np.can_cast(result.dtype, out.dtype, "same_kind"):
        raise RuntimeError(f"{op}(): result type {result.dtype} can't be cast to the desired "
                           f"output type {out.dtype}")
    if out.shape != result.shape:
        out._data = np.empty(result.shape, out.dtype)
    np.copyto(out._data, result._data, casting="same_kind")
    out._bump_version()
    return out


def add(input, other, *, alpha=1, out=None):  # noqa: A002 - torch's names
    """``input + alpha * other``."""
    return _into(out, _tensor(input, "add").add(other, alpha=alpha), "add")


def sub(input, other, *, alpha=1, out=None):  # noqa: A002
    """``input - alpha * other``."""
    return _into(out, _tensor(input, "sub").sub(other, alpha=alpha), "sub")


def mul(input, other, *, out=None):  # noqa: A002
    return _into(out, _tensor(input, "mul").mul(other), "mul")


def div(input, other, *, rounding_mode=None, out=None):  # noqa: A002
    """``input / other``, optionally rounded (``'trunc'`` or ``'floor'``)."""
    return _into(out, _tensor(input, "div").div(other, rounding_mode=rounding_mode), "div")


multiply, subtract, divide = mul, sub, div


def true_divide(input, other, *, out=None):  # noqa: A002
    return _into(out, _tensor(input, "true_divide") / other, "true_divide")


def neg(input, *, out=None):  # noqa: A002
    return _into(out, _tensor(input, "neg").neg(), "neg")


negative = neg


def log1p(input, *, out=None):  # noqa: A002
    """``log(1 + input)``, accurate near 0."""
    return _into(out, _tensor(input, "log1p").log1p(), "log1p")


def expm1(input, *, out=None):  # noqa: A002
    """``exp(input) - 1``, accurate near 0."""
    return _into(out, _tensor(input, "expm1").expm1(), "expm1")


def mm(input, mat2, *, out=None):  # noqa: A002
    """``(n, k) @ (k, m) -> (n, m)``; both must be 2-D."""
    return _into(out, _tensor(input, "mm").mm(mat2), "mm")


def matmul(input, other, *, out=None):  # noqa: A002
    """Matrix product with broadcasting over batch axes (1-D operands as vectors)."""
    return _into(out, _matmul(_tensor(input, "matmul"), _tensor(other, "matmul", "other")), "matmul")


def topk(input, k, dim=-1, largest=True, sorted=True):  # noqa: A002
    return _tensor(input, "topk").topk(k, dim, largest, sorted)


def sort(input, dim=-1, descending=False, stable=False):  # noqa: A002
    return _tensor(input, "sort").sort(dim, descending, stable)


def argsort(input, dim=-1, descending=False, stable=False):  # noqa: A002
    return _tensor(input, "argsort").argsort(dim, descending, stable)


def gather(input, dim, index, *, sparse_grad=False):  # noqa: A002
    return _tensor(input, "gather").gather(dim, index)


def scatter(input, dim, index, src=None, *, value=None, reduce=None):  # noqa: A002
    return _tensor(input, "scatter").scatter(dim, index, src, value=value, reduce=reduce)


def scatter_add(input, dim, index, src):  # noqa: A002
    return _tensor(input, "scatter_add").scatter_add(dim, index, src)


def masked_fill(input, mask, value):  # noqa: A002
    return _tensor(input, "masked_fill").masked_fill(mask, value)


def chunk(input, chunks, dim=0):  # noqa: A002
    return _tensor(input, "chunk").chunk(chunks, dim)


def split(tensor, split_size_or_sections, dim=0):
    return _tensor(tensor, "split", "tensor").split(split_size_or_sections, dim)


def index_select(input, dim, index):  # noqa: A002
    return _tensor(input, "index_select").index_select(dim, index)


def repeat_interleave(input, repeats=None, dim=None, *, output_size=None):  # noqa: A002
    """``repeat_interleave(t, repeats, dim)``; with only an integer tensor of counts, the
    indices ``0, 0, ..., 1, 1, ...`` each repeated its count (torch's one-argument form)."""
    _tensor(input, "repeat_interleave")
    if repeats is None:
        counts = input._data
        if counts.ndim != 1 or counts.dtype.kind not in "iu":
            raise RuntimeError("repeat_interleave: repeats must be a 1-D integer tensor")
        if (counts < 0).any():
            raise RuntimeError("repeat_interleave: repeats can not be negative")
        return Tensor._make(np.repeat(np.arange(counts.size, dtype=np.int64), counts))
    return input.repeat_interleave(repeats, dim, output_size=output_size)


def einsum(equation, *operands):
    """Einstein summation: ``einsum('ij,jk->ik', a, b)`` is ``a @ b``; letters name axes,
    letters missing from the output (after ``->``) are summed, ``...`` stands for the
    remaining (broadcast) axes. Operands may also be passed as one list. Differentiable."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    for i, t in enumerate(operands):
        _tensor(t, "einsum", f"operands[{i}]")
    terms, out, sizes = parse(equation, [t.shape for t in operands])
    dtypes = {t.dtype for t in operands}
    if len(dtypes) > 1:  # one dtype for all, the widest (differentiable cast for floats)
        target = np.result_type(*dtypes)
        operands = tuple(t.astype(target) for t in operands)
    return Einsum.apply(*operands, terms=terms, out=out, sizes=sizes)


def softmax(input, dim, dtype=None):  # noqa: A002
    """``exp(x_i) / sum_j exp(x_j)`` along ``dim`` (``F.softmax``)."""
    from .functional import softmax as _softmax

    return _softmax(_tensor(input, "softmax"), dim, dtype=dtype)


def log_softmax(input, dim, dtype=None):  # noqa: A002
    """``x_i - log sum_j exp(x_j)`` along ``dim`` (``F.log_softmax``)."""
    from .functional import log_softmax as _log_softmax

    return _log_softmax(_tensor(input, "log_softmax"), dim, dtype=dtype)

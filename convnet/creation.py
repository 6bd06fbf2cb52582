"""Tensor factories and tensor-level functions (``cn.zeros``, ``cn.cat``, ...)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .ops import elementwise as E
from .ops import shape as S
from .random import generator
from .tensor import Tensor, _shape_args, _to_array, as_dtype, float32

__all__ = [
    "tensor", "from_numpy", "zeros", "ones", "empty", "full", "zeros_like", "ones_like",
    "full_like", "arange", "linspace", "eye", "randn", "rand", "randint", "randperm", "cat",
    "stack", "where", "maximum", "minimum", "exp", "log", "sqrt", "abs", "sigmoid", "tanh",
    "relu", "clamp", "matmul", "flatten", "sum", "mean", "argmax", "allclose", "max", "min",
    "std", "var", "reshape", "transpose", "permute", "squeeze", "unsqueeze", "logsumexp",
]


def tensor(data, dtype=None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of ``data`` (float lists default to float32)."""
    return Tensor._make(_to_array(data, dtype, copy=True)).requires_grad_(requires_grad)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing memory with ``array`` (dtype kept)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected np.ndarray, got {type(array).__name__}")
    return Tensor._make(array)


def _dt(dtype):
    return float32 if dtype is None else as_dtype(dtype)


def _new(arr, requires_grad):
    return Tensor._make(arr).requires_grad_(requires_grad)


def zeros(*size, dtype=None, requires_grad: bool = False) -> Tensor:
    return _new(np.zeros(_shape_args(size), dtype=_dt(dtype)), requires_grad)


def ones(*size, dtype=None, requires_grad: bool = False) -> Tensor:
    return _new(np.ones(_shape_args(size), dtype=_dt(dtype)), requires_grad)


def empty(*size, dtype=None, requires_grad: bool = False) -> Tensor:
    return _new(np.empty(_shape_args(size), dtype=_dt(dtype)), requires_grad)


def full(size, fill_value, dtype=None, requires_grad: bool = False) -> Tensor:
    if dtype is None:
        dtype = np.asarray(fill_value).dtype
        dtype = float32 if dtype.kind == "f" else ("int64" if dtype.kind in "iu" else dtype)
    return _new(np.full(_shape_args((size,)), fill_value, dtype=as_dtype(dtype)), requires_grad)


def zeros_like(t: Tensor, dtype=None, requires_grad: bool = False) -> Tensor:
    return _new(np.zeros(t.shape, dtype=as_dtype(dtype) if dtype else t.dtype), requires_grad)


def ones_like(t: Tensor, dtype=None, requires_grad: bool = False) -> Tensor:
    return _new(np.ones(t.shape, dtype=as_dtype(dtype) if dtype else t.dtype), requires_grad)


def full_like(t: Tensor, fill_value, dtype=None, requires_grad: bool = False) -> Tensor:
    return _new(np.full(t.shape, fill_value, dtype=as_dtype(dtype) if dtype else t.dtype), requires_grad)


def arange(start, end=None, step=1, dtype=None, requires_grad: bool = False) -> Tensor:
    """Like ``torch.arange``: int64 for integer arguments, float32 otherwise."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        ints = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
        dtype = "int64" if ints else float32
    return _new(np.arange(start, end, step).astype(as_dtype(dtype)), requires_grad)


def linspace(start, end, steps: int, dtype=None) -> Tensor:
    return Tensor._make(np.linspace(start, end, steps).astype(_dt(dtype)))


def eye(n: int, m: int | None = None, dtype=None) -> Tensor:
    return Tensor._make(np.eye(n, m, dtype=_dt(dtype)))


def randn(*size, dtype=None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples from the global generator (``cn.manual_seed``)."""
    arr = generator().standard_normal(_shape_args(size), dtype=np.float64).astype(_dt(dtype))
    return _new(arr, requires_grad)


def rand(*size, dtype=None, requires_grad: bool = False) -> Tensor:
    """Uniform [0, 1) samples from the global generator."""
    return _new(generator().random(_shape_args(size)).astype(_dt(dtype)), requires_grad)


def randint(low, high=None, size=(), dtype="int64") -> Tensor:
    if high is None:
        low, high = 0, low
    return Tensor._make(generator().integers(low, high, size=_shape_args((size,))).astype(as_dtype(dtype)))


def randperm(n: int) -> Tensor:
    return Tensor._make(generator().permutation(n).astype(np.int64))


def _as_tensors(tensors, op: str) -> list[Tensor]:
    if isinstance(tensors, Tensor) or not isinstance(tensors, Sequence) or len(tensors) == 0:
        raise TypeError(f"{op}: expected a non-empty list or tuple of tensors")
    out = [t if isinstance(t, Tensor) else tensor(t) for t in tensors]
    dtypes = {t.dtype for t in out}
    if len(dtypes) > 1:  # promote like torch: the widest float wins
        target = np.result_type(*dtypes)
        out = [t.astype(target) for t in out]
    return out


def cat(tensors, dim: int = 0) -> Tensor:
    """Concatenate along an existing axis ``dim``; other axes must match."""
    ts = _as_tensors(tensors, "cat")
    ref = ts[0]
    if ref.ndim == 0:
        raise ValueError("cat: zero-dimensional tensors cannot be concatenated")
    d = dim % ref.ndim if -ref.ndim <= dim < ref.ndim else None
    if d is None:
        raise IndexError(f"cat: dim {dim} is out of range for tensors of {ref.ndim} dims")
    for i, t in enumerate(ts[1:], 1):
        if t.ndim != ref.ndim or any(a != b for k, (a, b) in enumerate(zip(t.shape, ref.shape)) if k != d):
            raise ValueError(
                f"cat: tensor {i} has shape {t.shape} but tensor 0 has shape {ref.shape}; "
                f"all sizes except dim {dim} must match"
            )
    return S.Cat.apply(*ts, dim=d)


def stack(tensors, dim: int = 0) -> Tensor:
    """Stack equally-shaped tensors along a new axis ``dim``."""
    ts = _as_tensors(tensors, "stack")
    for i, t in enumerate(ts[1:], 1):
        if t.shape != ts[0].shape:
            raise ValueError(f"stack: tensor {i} has shape {t.shape} but tensor 0 has shape {ts[0].shape}")
    nd = ts[0].ndim + 1
    if not -nd <= dim < nd:
        raise IndexError(f"stack: dim {dim} is out of range for {nd} dims")
    return S.Stack.apply(*ts, dim=dim % nd)


def where(condition, input, other) -> Tensor:  # noqa: A002 - torch's names
    """Elements of ``input`` where ``condition`` holds, else of ``other``."""
    cond = condition._data if isinstance(condition, Tensor) else np.asarray(condition)
    a = input if isinstance(input, Tensor) else None
    b = other if isinstance(other, Tensor) else None
    ref = a if a is not None else b
    if ref is None:
        return Tensor._make(np.where(cond, input, other))
    a = a if a is not None else ref._operand(input)
    b = b if b is not None else ref._operand(other)
    try:
        np.broadcast_shapes(cond.shape, a.shape, b.shape)
    except ValueError:
        raise ValueError(
            f"where: condition {cond.shape}, input {a.shape} and other {b.shape} cannot be broadcast"
        ) from None
    return E.Where.apply(cond.astype(bool, copy=False), a, b)


def maximum(a: Tensor, b) -> Tensor:
    b = a._operand(b)
    return where(a._data >= b._data, a, b)


def minimum(a: Tensor, b) -> Tensor:
    b = a._operand(b)
    return where(a._data <= b._data, a, b)


# Tensor-level aliases of the methods
def exp(t): return t.exp()  # noqa: E704
def log(t): return t.log()  # noqa: E704
def sqrt(t): return t.sqrt()  # noqa: E704
def abs(t): return t.abs()  # noqa: E704,A001
def sigmoid(t): return t.sigmoid()  # noqa: E704
def tanh(t): return t.tanh()  # noqa: E704
def relu(t): return t.relu()  # noqa: E704
def clamp(t, min=None, max=None): return t.clamp(min, max)  # noqa: E704,A002
def matmul(a, b): return a @ b  # noqa: E704
def flatten(t, start_dim=0, end_dim=-1): return t.flatten(start_dim, end_dim)  # noqa: E704
def sum(t, dim=None, keepdim=False): return t.sum(dim, keepdim)  # noqa: E704,A001
def mean(t, dim=None, keepdim=False): return t.mean(dim, keepdim)  # noqa: E704
def argmax(t, dim=None, keepdim=False): return t.argmax(dim, keepdim)  # noqa: E704
def allclose(a, b, rtol=1e-5, atol=1e-8): return bool(np.allclose(np.asarray(a), np.asarray(b), rtol, atol))  # noqa: E704,E501
def std(t, dim=None, unbiased=True, keepdim=False): return t.std(dim, unbiased, keepdim)  # noqa: E704
def var(t, dim=None, unbiased=True, keepdim=False): return t.var(dim, unbiased, keepdim)  # noqa: E704
def reshape(t, shape): return t.reshape(shape)  # noqa: E704
def transpose(t, dim0, dim1): return t.transpose(dim0, dim1)  # noqa: E704
def permute(t, dims): return t.permute(dims)  # noqa: E704
def squeeze(t, dim=None): return t.squeeze(dim)  # noqa: E704
def unsqueeze(t, dim): return t.unsqueeze(dim)  # noqa: E704
def logsumexp(t, dim, keepdim=False): return t.logsumexp(dim, keepdim)  # noqa: E704


def max(input, dim=None, keepdim=False):  # noqa: A001 - torch's name
    """``max(t)``, ``max(t, dim)`` → (values, indices), or element-wise ``max(a, b)``."""
    if isinstance(dim, Tensor):
        return maximum(input, dim)
    return input.max(dim, keepdim)


def min(input, dim=None, keepdim=False):  # noqa: A001 - torch's name
    if isinstance(dim, Tensor):
        return minimum(input, dim)
    return input.min(dim, keepdim)

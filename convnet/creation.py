"""Tensor factories and tensor-level functions (``cn.zeros``, ``cn.cat``, ...)."""
from __future__ import annotations

import operator
from typing import Sequence

import numpy as np

from .ops import elementwise as E
from .ops import shape as S
from .device import check_device
from .random import generator as _global_generator
from .tensor import Tensor, _to_array, as_dtype, bool_, float32, int64

__all__ = [
    "tensor", "as_tensor", "from_numpy", "zeros", "ones", "empty", "full", "zeros_like",
    "ones_like", "empty_like", "full_like", "rand_like", "randn_like", "randint_like", "arange",
    "linspace", "logspace", "eye", "randn", "rand", "randint", "randperm", "cat",
    "stack", "where", "maximum", "minimum", "exp", "log", "sqrt", "abs", "sigmoid", "tanh",
    "relu", "clamp", "matmul", "flatten", "sum", "mean", "argmax", "allclose", "max", "min",
    "std", "var", "reshape", "transpose", "permute", "squeeze", "unsqueeze", "logsumexp",
]


# Every factory takes torch's keyword arguments: ``dtype=`` (float32 for floats by default),
# ``device=`` (the CPU; others raise), ``requires_grad=``, and ``layout=``/``pin_memory=``/
# ``memory_format=``/``generator=`` where torch has them. Sizes come as varargs
# (``zeros(2, 3)``), one sequence (``zeros((2, 3))``, ``zeros(x.shape)``) or ``size=``.


def _size(op: str, args: tuple, size=None) -> tuple[int, ...]:
    """The shape given as ``op(2, 3)``, ``op((2, 3))``/``op([2, 3])`` or ``op(size=(2, 3))``."""
    if size is not None:
        if args:
            raise TypeError(f"{op}: size given both positionally and as size=")
        args = (size,)
    if not args:
        raise TypeError(f'{op}() missing 1 required positional arguments: "size"')
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        args = tuple(args[0])
    try:
        shape = tuple(operator.index(a) for a in args)
    except TypeError:
        raise TypeError(f"{op}: size must be ints or one tuple of ints, got "
                        f"{tuple(type(a).__name__ for a in args)}") from None
    if any(s < 0 for s in shape):
        raise RuntimeError(f"{op}: Dimension size must be non-negative, got size {shape}")
    return shape


def _opts(op: str, device, layout=None, pin_memory: bool = False) -> None:
    """Check the placement keywords: the CPU, the strided layout, no pinned memory."""
    check_device(device, f"{op}(device=...)")
    if layout is not None and str(layout) not in ("strided", "torch.strided", "convnet.strided"):
        raise RuntimeError(f"{op}: only the strided (dense) layout exists, got layout={layout!r}")
    if pin_memory:
        raise RuntimeError(f"{op}: pin_memory=True needs an accelerator; convnet runs on the "
                           "CPU (leave pin_memory False)")


def _rng(generator) -> np.random.Generator:
    """The generator to draw from: the global one (``cn.manual_seed``) or the one given."""
    if generator is None:
        return _global_generator()
    if isinstance(generator, np.random.Generator):
        return generator
    inner = getattr(generator, "_generator", None)  # a wrapper object holding a NumPy generator
    if isinstance(inner, np.random.Generator):
        return inner
    raise TypeError(f"generator must be a np.random.Generator, got {type(generator).__name__}")


def _dt(dtype):
    return float32 if dtype is None else as_dtype(dtype)


def _new(op: str, arr: np.ndarray, requires_grad: bool) -> Tensor:
    if requires_grad and arr.dtype.kind != "f":
        raise RuntimeError(f"{op}: only Tensors of floating point dtype can require gradients, "
                           f"got dtype {arr.dtype}")
    return Tensor._make(arr).requires_grad_(bool(requires_grad))


def _scalar(v):
    """A Python number from a number or a one-element tensor (``arange(t.numel())``...)."""
    return v.item() if isinstance(v, Tensor) else v


def _data_dtype(data, dtype):
    """torch.tensor's dtype: the one asked for, else an array's or tensor's own (int32 stays
    int32), else float32 for Python floats, int64 for ints, bool for bools."""
    if dtype is not None:
        return as_dtype(dtype)
    src = data._data if isinstance(data, Tensor) else data
    if isinstance(src, (np.ndarray, np.generic)) and src.dtype.kind in "biuf":
        return src.dtype
    return None


def tensor(data, dtype=None, device=None, requires_grad: bool = False,
           pin_memory: bool = False) -> Tensor:
    """A new tensor holding a copy of ``data`` (never sharing memory, no history).

    Python floats give float32, ints int64, bools bool; NumPy arrays and tensors keep their
    dtype. ``convnet.tensor(t)`` of a Tensor copies its values, detached (torch warns there
    and suggests ``t.detach().clone()``).
    """
    _opts("tensor", device, pin_memory=pin_memory)
    arr = _to_array(data, _data_dtype(data, dtype), copy=True)
    if isinstance(data, Tensor) and np.shares_memory(arr, data._data):
        arr = arr.copy()
    return _new("tensor", arr, requires_grad)


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """Like :func:`tensor`, but shares memory with a NumPy array or Tensor of the same dtype
    (no copy); a Tensor comes back as itself when nothing changes."""
    check_device(device, "as_tensor(device=...)")
    if isinstance(data, Tensor):
        return data if dtype is None else data.to(dtype)
    return Tensor._make(_to_array(data, _data_dtype(data, dtype), copy=False))


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing memory with ``array`` (dtype kept)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected np.ndarray, got {type(array).__name__}")
    return Tensor._make(array)


def zeros(*shape, size=None, out=None, dtype=None, layout=None, device=None,
          requires_grad: bool = False) -> Tensor:
    """A tensor of zeros of the given size (float32 unless ``dtype``)."""
    _opts("zeros", device, layout)
    arr = np.zeros(_size("zeros", shape, size), _dt(dtype))
    return _out(out, _new("zeros", arr, requires_grad))


def ones(*shape, size=None, out=None, dtype=None, layout=None, device=None,
         requires_grad: bool = False) -> Tensor:
    """A tensor of ones of the given size (float32 unless ``dtype``)."""
    _opts("ones", device, layout)
    arr = np.ones(_size("ones", shape, size), _dt(dtype))
    return _out(out, _new("ones", arr, requires_grad))


def empty(*shape, size=None, out=None, dtype=None, layout=None, device=None,
          requires_grad: bool = False, pin_memory: bool = False, memory_format=None) -> Tensor:
    """A tensor of the given size with unspecified contents."""
    _opts("empty", device, layout, pin_memory)
    arr = np.empty(_size("empty", shape, size), _dt(dtype))
    return _out(out, _new("empty", arr, requires_grad))


def _fill_dtype(fill_value, dtype):
    if dtype is not None:
        return as_dtype(dtype)
    kind = np.asarray(_scalar(fill_value)).dtype.kind
    return bool_ if kind == "b" else (int64 if kind in "iu" else float32)


def full(size, fill_value, *, out=None, dtype=None, layout=None, device=None,
         requires_grad: bool = False) -> Tensor:
    """A tensor of ``size`` filled with ``fill_value``; its dtype follows the value (bool,
    int64, else float32) unless ``dtype`` is given."""
    _opts("full", device, layout)
    arr = np.full(_size("full", (size,)), _scalar(fill_value), _fill_dtype(fill_value, dtype))
    return _out(out, _new("full", arr, requires_grad))


def _like(op: str, input, dtype, layout, device, memory_format=None) -> tuple:
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(input).__name__}")
    _opts(op, device, layout)
    return input.shape, (input.dtype if dtype is None else as_dtype(dtype))


def zeros_like(input, *, dtype=None, layout=None, device=None, requires_grad: bool = False,
               memory_format=None) -> Tensor:  # noqa: A002 - torch's names
    shape, dt = _like("zeros_like", input, dtype, layout, device)
    return _new("zeros_like", np.zeros(shape, dt), requires_grad)


def ones_like(input, *, dtype=None, layout=None, device=None, requires_grad: bool = False,
              memory_format=None) -> Tensor:  # noqa: A002
    shape, dt = _like("ones_like", input, dtype, layout, device)
    return _new("ones_like", np.ones(shape, dt), requires_grad)


def empty_like(input, *, dtype=None, layout=None, device=None, requires_grad: bool = False,
               memory_format=None) -> Tensor:  # noqa: A002
    shape, dt = _like("empty_like", input, dtype, layout, device)
    return _new("empty_like", np.empty(shape, dt), requires_grad)


def full_like(input, fill_value, *, dtype=None, layout=None, device=None,
              requires_grad: bool = False, memory_format=None) -> Tensor:  # noqa: A002
    shape, dt = _like("full_like", input, dtype, layout, device)
    return _new("full_like", np.full(shape, _scalar(fill_value), dt), requires_grad)


def _float_only(op: str, dt) -> None:
    if dt.kind != "f":
        raise TypeError(f"{op}: needs a floating-point dtype, got {dt}")


def rand_like(input, *, generator=None, dtype=None, layout=None, device=None,
              requires_grad: bool = False, memory_format=None) -> Tensor:  # noqa: A002
    """Uniform [0, 1) samples with ``input``'s shape and dtype."""
    shape, dt = _like("rand_like", input, dtype, layout, device)
    _float_only("rand_like", dt)
    return _new("rand_like", _rng(generator).random(shape).astype(dt), requires_grad)


def randn_like(input, *, generator=None, dtype=None, layout=None, device=None,
               requires_grad: bool = False, memory_format=None) -> Tensor:  # noqa: A002
    """Standard normal samples with ``input``'s shape and dtype."""
    shape, dt = _like("randn_like", input, dtype, layout, device)
    _float_only("randn_like", dt)
    return _new("randn_like", _rng(generator).standard_normal(shape).astype(dt), requires_grad)


def randint_like(input, low=0, high=None, *, generator=None, dtype=None,  # noqa: A002
                 layout=None, device=None, requires_grad: bool = False,
                 memory_format=None) -> Tensor:
    """Integers uniform in ``[low, high)`` (``randint_like(x, high)`` or ``(x, low, high)``)
    with ``input``'s shape and dtype."""
    if high is None:
        low, high = 0, low
    shape, dt = _like("randint_like", input, dtype, layout, device)
    arr = _rng(generator).integers(_scalar(low), _scalar(high), size=shape).astype(dt)
    return _new("randint_like", arr, requires_grad)


def arange(start=0, end=None, step=1, *, out=None, dtype=None, layout=None, device=None,
           requires_grad: bool = False) -> Tensor:
    """``[start, end)`` in steps of ``step`` (``arange(end)`` starts at 0): int64 when all
    three are integers, float32 otherwise, unless ``dtype``."""
    _opts("arange", device, layout)
    start, end, step = _scalar(start), _scalar(end), _scalar(step)
    if end is None:
        start, end = 0, start
    if step == 0:
        raise RuntimeError("arange: step must be nonzero")
    if dtype is None:
        ints = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                   for v in (start, end, step))
        dtype = int64 if ints else float32
    arr = np.arange(start, end, step).astype(as_dtype(dtype))
    return _out(out, _new("arange", arr, requires_grad))


def linspace(start, end, steps: int, *, out=None, dtype=None, layout=None, device=None,
             requires_grad: bool = False) -> Tensor:
    """``steps`` evenly spaced values from ``start`` to ``end`` inclusive (float32)."""
    _opts("linspace", device, layout)
    arr = np.linspace(_scalar(start), _scalar(end), operator.index(steps)).astype(_dt(dtype))
    return _out(out, _new("linspace", arr, requires_grad))


def logspace(start, end, steps: int, base: float = 10.0, *, out=None, dtype=None, layout=None,
             device=None, requires_grad: bool = False) -> Tensor:
    """``base ** linspace(start, end, steps)`` (float32)."""
    _opts("logspace", device, layout)
    arr = np.logspace(_scalar(start), _scalar(end), operator.index(steps), base=base)
    return _out(out, _new("logspace", arr.astype(_dt(dtype)), requires_grad))


def eye(n: int, m: int | None = None, *, out=None, dtype=None, layout=None, device=None,
        requires_grad: bool = False) -> Tensor:
    """The ``n x m`` identity (``m = n`` by default)."""
    _opts("eye", device, layout)
    return _out(out, _new("eye", np.eye(n, m, dtype=_dt(dtype)), requires_grad))


def randn(*shape, size=None, generator=None, out=None, dtype=None, layout=None, device=None,
          requires_grad: bool = False, pin_memory: bool = False) -> Tensor:
    """Standard normal samples from the global generator (``cn.manual_seed``) or ``generator``."""
    _opts("randn", device, layout, pin_memory)
    dt = _dt(dtype)
    _float_only("randn", dt)
    arr = _rng(generator).standard_normal(_size("randn", shape, size), dtype=np.float64)
    return _out(out, _new("randn", arr.astype(dt), requires_grad))


def rand(*shape, size=None, generator=None, out=None, dtype=None, layout=None, device=None,
         requires_grad: bool = False, pin_memory: bool = False) -> Tensor:
    """Uniform [0, 1) samples from the global generator or ``generator``."""
    _opts("rand", device, layout, pin_memory)
    dt = _dt(dtype)
    _float_only("rand", dt)
    arr = _rng(generator).random(_size("rand", shape, size))
    return _out(out, _new("rand", arr.astype(dt), requires_grad))


def randint(low=0, high=None, size=None, *, generator=None, out=None, dtype=None, layout=None,
            device=None, requires_grad: bool = False) -> Tensor:
    """Integers uniform in ``[low, high)``: ``randint(high, size)`` or ``randint(low, high,
    size)``; int64 unless ``dtype``."""
    if size is None and isinstance(high, (tuple, list)):  # randint(high, size)
        low, high, size = 0, low, high
    if high is None:
        low, high = 0, low
    if size is None:
        raise TypeError("randint: missing the size argument, e.g. randint(10, (3,))")
    _opts("randint", device, layout)
    if _scalar(low) >= _scalar(high):
        raise RuntimeError(f"randint: expects 'from' < 'to', got from={low} to={high}")
    arr = _rng(generator).integers(_scalar(low), _scalar(high), size=_size("randint", (size,)))
    return _out(out, _new("randint", arr.astype(int64 if dtype is None else as_dtype(dtype)),
                          requires_grad))


def randperm(n: int, *, generator=None, out=None, dtype=None, layout=None, device=None,
             requires_grad: bool = False, pin_memory: bool = False) -> Tensor:
    """A random permutation of ``0 .. n-1`` (int64 unless ``dtype``)."""
    _opts("randperm", device, layout, pin_memory)
    arr = _rng(generator).permutation(operator.index(_scalar(n)))
    return _out(out, _new("randperm", arr.astype(int64 if dtype is None else as_dtype(dtype)),
                          requires_grad))


def _out(out, result: Tensor) -> Tensor:
    """torch's ``out=``: write the result into ``out`` (reshaped to fit) and return ``out``."""
    if out is None:
        return result
    if not isinstance(out, Tensor):
        raise TypeError(f"out must be a Tensor, got {type(out).__name__}")
    if out.shape == result.shape:
        np.copyto(out._data, result._data, casting="unsafe")
    else:  # torch resizes ``out`` to the result's size
        out._data = result._data.astype(out.dtype, copy=False)
    return out


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

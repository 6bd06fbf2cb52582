"""``Tensor``: an n-dimensional array that records the operations applied to it so
that ``backward()`` can compute gradients (reverse-mode automatic differentiation).

Data live in a NumPy array (``._data``; users reach it with ``.numpy()``, and ``.data`` is
torch's: a Tensor sharing the memory, without history). Operations on tensors that require grad
create ``Function`` nodes (see ``convnet.autograd``); leaves collect gradients in
``.grad``. Names and semantics follow PyTorch.
"""
from __future__ import annotations

import numbers

import numpy as np

from .autograd import engine
from .autograd.grad_mode import is_grad_enabled
from .ops import elementwise as E
from .ops import reduction as R
from .ops import shape as S
from .ops.matmul import MatMul

float32 = np.dtype("float32")
float64 = np.dtype("float64")
int64 = np.dtype("int64")
int32 = np.dtype("int32")
uint8 = np.dtype("uint8")
bool_ = np.dtype("bool")

_DTYPE_NAMES = {
    "float32": float32, "float": float32, "float64": float64, "double": float64,
    "int64": int64, "long": int64, "int32": int32, "int": int32, "uint8": uint8, "bool": bool_,
}


def as_dtype(dtype) -> np.dtype:
    """Normalise a dtype given as a NumPy dtype, a type or a name (``'float32'``)."""
    if isinstance(dtype, str):
        if dtype not in _DTYPE_NAMES:
            raise TypeError(f"unknown dtype {dtype!r}; expected one of {sorted(_DTYPE_NAMES)}")
        return _DTYPE_NAMES[dtype]
    if dtype is bool:
        return bool_
    return np.dtype(dtype)


def _default_dtype(arr: np.ndarray, keep_float64: bool) -> np.dtype:
    kind = arr.dtype.kind
    if kind == "f":
        return float64 if (keep_float64 and arr.dtype == float64) else float32
    if kind in "iu":
        return arr.dtype if arr.dtype == uint8 else int64
    if kind == "b":
        return bool_
    raise TypeError(f"tensor: cannot make a tensor from data of dtype {arr.dtype}")


def _to_array(data, dtype=None, copy=True) -> np.ndarray:
    keep64 = isinstance(data, (np.ndarray, np.generic, Tensor))
    if isinstance(data, Tensor):
        data = data._data
    elif isinstance(data, (list, tuple)) and any(isinstance(x, Tensor) for x in data):
        data = [x._data if isinstance(x, Tensor) else x for x in data]
    arr = np.array(data, copy=copy) if copy else np.asarray(data)
    target = as_dtype(dtype) if dtype is not None else _default_dtype(arr, keep64)
    if arr.dtype != target:
        arr = arr.astype(target)
    return arr


class Tensor:
    """An array with gradient tracking.

    Args:
        data: array-like. Float data default to float32 unless given as a float64
            NumPy array; integers become int64; bools stay bool.
        requires_grad: record operations for ``backward``.
        dtype: force a dtype.
    """

    __slots__ = ("_data", "grad", "requires_grad", "_ctx", "_out_index", "_version_box", "_is_view",
                 "__weakref__", "__dict__")
    __array_priority__ = 1000  # ndarray <op> Tensor defers to Tensor's reflected operator
    __hash__ = object.__hash__

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        self._data = _to_array(data, dtype, copy=False)
        self.grad = None
        self._ctx = None
        self._out_index = 0
        self._version_box = None
        self._is_view = False
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _make(cls, array) -> "Tensor":
        """Wrap an ndarray without copying or dtype conversion (no grad)."""
        t = object.__new__(Tensor)
        t._data = array if isinstance(array, np.ndarray) else np.asarray(array)
        t.grad = None
        t.requires_grad = False
        t._ctx = None
        t._out_index = 0
        t._version_box = None
        t._is_view = False
        return t

    # ------------------------------------------------------------------ basics
    @property
    def data(self) -> "Tensor":
        """torch's ``.data``: a Tensor sharing this one's memory, with no history and
        ``requires_grad=False``; changes through it are not seen by autograd (its version
        counter is its own). ``.numpy()`` gives the NumPy array."""
        return Tensor._make(self._data)

    @data.setter
    def data(self, value) -> None:
        if not isinstance(value, Tensor):
            raise TypeError(
                f"data: assigned data must be a Tensor, got {type(value).__name__} "
                "(wrap arrays with convnet.tensor(...))"
            )
        self._data = value._data

    @property
    def shape(self) -> tuple[int, ...]:
        return self._data.shape

    @property
    def ndim(self) -> int:
        return self._data.ndim

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    @property
    def T(self) -> "Tensor":
        return self.permute(*reversed(range(self.ndim)))

    def size(self, dim: int | None = None):
        return self.shape if dim is None else self.shape[dim]

    def dim(self) -> int:
        return self.ndim

    def numel(self) -> int:
        return int(self._data.size)

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        body = np.array2string(self._data, separator=", ", prefix="tensor(", precision=4)
        extra = ""
        if self.dtype not in (float32, int64, bool_):
            extra += f", dtype={self.dtype}"
        if self._ctx is not None:
            extra += f", grad_fn=<{type(self._ctx).__name__}>"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    def __array__(self, dtype=None, copy=None):
        arr = self._data
        if dtype is not None and arr.dtype != dtype:
            return arr.astype(dtype)
        return arr.copy() if copy else arr

    def numpy(self) -> np.ndarray:
        """The underlying array (shared memory, like ``torch.Tensor.numpy``)."""
        return self._data

    def item(self):
        if self._data.size != 1:
            raise ValueError(f"item: only one-element tensors can be converted, got shape {self.shape}")
        return self._data.reshape(()).item()

    def tolist(self):
        return self._data.tolist()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        if self._data.size != 1:
            raise ValueError(
                f"the truth value of a tensor of shape {self.shape} is ambiguous; use .any() or .all()"
            )
        return bool(self.item())

    def __index__(self):
        if self.dtype.kind not in "iu" or self._data.size != 1:
            raise TypeError("only integer tensors of one element can be used as an index")
        return int(self.item())

    # ---------------------------------------------------------------- autograd
    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        if requires_grad and self.dtype.kind != "f":
            raise TypeError(f"requires_grad: only floating-point tensors can require grad, got {self.dtype}")
        self.requires_grad = bool(requires_grad)
        return self

    def detach(self) -> "Tensor":
        """A tensor sharing the data (and, as torch, the version counter), cut from the graph."""
        t = Tensor._make(self._data)
        t._version_box = self._version_ref()
        return t

    def retain_grad(self) -> None:
        """Keep ``.grad`` for this non-leaf tensor after backward."""
        if self._ctx is None:
            return
        import weakref

        self._ctx.__dict__.setdefault("_retained", {})[self._out_index] = weakref.ref(self)

    def backward(self, gradient=None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into each leaf's ``.grad``.

        ``gradient`` is d(loss)/d(self); it may be omitted only for a one-element tensor.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward: this tensor does not require grad and has no grad_fn "
                "(no input of the computation had requires_grad=True, or it ran under no_grad)"
            )
        if gradient is None:
            if self._data.size != 1:
                raise RuntimeError(
                    f"backward: grad can be implicitly created only for one-element outputs; "
                    f"this tensor has shape {self.shape}: pass gradient= of that shape"
                )
            g = np.ones(self.shape, dtype=self.dtype)
        else:
            g = gradient._data if isinstance(gradient, Tensor) else np.asarray(gradient)
            if g.shape != self.shape:
                raise ValueError(f"backward: gradient has shape {g.shape} but the tensor has shape {self.shape}")
            g = g.astype(self.dtype, copy=False)
        engine.run_backward(self, g, retain_graph=retain_graph)

    # ------------------------------------------------------------ dtype casts
    def astype(self, dtype) -> "Tensor":
        dtype = as_dtype(dtype)
        if dtype == self.dtype:
            return self
        if self.requires_grad and dtype.kind == "f":
            return E.Cast.apply(self, dtype)
        return Tensor._make(self._data.astype(dtype))

    def to(self, *args, **kwargs) -> "Tensor":
        """torch's ``to(dtype)``, ``to(device, dtype=None)`` and ``to(other)`` (other's dtype),
        each with ``non_blocking=`` (no effect) and ``copy=`` (a new tensor even when nothing
        changes). Returns ``self`` when nothing changes; a float cast stays differentiable.
        The device must be the CPU (anything else raises RuntimeError)."""
        from .device import parse_to

        _, dtype, copy = parse_to("Tensor.to", args, kwargs)
        out = self if dtype is None else self.astype(dtype)
        return E.Clone.apply(self) if copy and out is self else out

    # ---------------------------------------------------------------- devices
    @property
    def device(self):
        """Always ``device(type='cpu')``: convnet keeps data in NumPy arrays."""
        from .device import CPU

        return CPU

    is_cuda = False

    def cpu(self, memory_format=None) -> "Tensor":
        return self

    def cuda(self, device=None, non_blocking: bool = False, memory_format=None) -> "Tensor":
        from .device import check_device

        check_device("cuda", "Tensor.cuda()")  # always raises: there is no GPU to copy to

    def float(self) -> "Tensor":
        return self.astype(float32)

    def double(self) -> "Tensor":
        return self.astype(float64)

    def long(self) -> "Tensor":
        return self.astype(int64)

    def int(self) -> "Tensor":
        return self.astype(int32)

    def bool(self) -> "Tensor":
        return self.astype(bool_)

    def clone(self) -> "Tensor":
        return E.Clone.apply(self)

    def contiguous(self) -> "Tensor":
        return self

    # -------------------------------------------------------------- operators
    def _operand(self, other) -> "Tensor":
        """Turn ``other`` into a Tensor whose dtype combines with self like torch's."""
        if isinstance(other, Tensor):
            return other
        if isinstance(other, (bool, numbers.Number, np.generic)) and not isinstance(other, np.ndarray):
            if isinstance(other, (bool, np.bool_)):
                dt = self.dtype if self.dtype != bool_ else bool_
            elif isinstance(other, (numbers.Integral, np.integer)):
                dt = self.dtype if self.dtype.kind in "fiu" else int64
            elif isinstance(other, (numbers.Real, np.floating)):
                dt = self.dtype if self.dtype.kind == "f" else float32
            else:
                raise TypeError(f"unsupported operand {other!r}")
            return Tensor._make(np.asarray(other, dtype=dt))
        if isinstance(other, np.ndarray):
            return Tensor._make(other)
        try:
            return Tensor(other)
        except TypeError:
            raise TypeError(f"unsupported operand type {type(other).__name__} for a Tensor") from None

    def _binary(self, other, fn, op: str, reverse: bool = False) -> "Tensor":
        other = self._operand(other)
        a, b = (other, self) if reverse else (self, other)
        try:
            np.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            raise ValueError(
                f"{op}: shapes {a.shape} and {b.shape} cannot be broadcast together"
            ) from None
        # Match torch's promotion: an integer/bool tensor meeting a float tensor takes its dtype.
        ka, kb = a.dtype.kind, b.dtype.kind
        if ka == "f" and kb != "f":
            b = Tensor._make(b._data.astype(a.dtype))
        elif kb == "f" and ka != "f":
            a = Tensor._make(a._data.astype(b.dtype))
        return fn.apply(a, b)

    def __add__(self, other):
        return self._binary(other, E.Add, "add")

    def __radd__(self, other):
        return self._binary(other, E.Add, "add", reverse=True)

    def __sub__(self, other):
        return self._binary(other, E.Sub, "sub")

    def __rsub__(self, other):
        return self._binary(other, E.Sub, "sub", reverse=True)

    def __mul__(self, other):
        return self._binary(other, E.Mul, "mul")

    def __rmul__(self, other):
        return self._binary(other, E.Mul, "mul", reverse=True)

    def __truediv__(self, other):
        out_self = self if self.dtype.kind == "f" else self.float()
        return out_self._binary(other, E.Div, "div")

    def __rtruediv__(self, other):
        out_self = self if self.dtype.kind == "f" else self.float()
        return out_self._binary(other, E.Div, "div", reverse=True)

    def __neg__(self):
        return E.Neg.apply(self)

    def __pos__(self):
        return self

    def __pow__(self, exponent):
        if isinstance(exponent, (numbers.Number, np.generic)) and not isinstance(exponent, Tensor):
            if self.dtype.kind != "f" and isinstance(exponent, float):
                return self.float().__pow__(exponent)
            return E.PowScalar.apply(self, exponent)
        return self._binary(exponent, E.Pow, "pow")

    def __rpow__(self, base):
        if isinstance(base, (numbers.Number, np.generic)):
            src = self if self.dtype.kind == "f" else self.float()
            return E.RPowScalar.apply(src, base)
        return self._binary(base, E.Pow, "pow", reverse=True)

    def __matmul__(self, other):
        other = self._operand(other)
        return matmul(self, other)

    def __rmatmul__(self, other):
        return matmul(self._operand(other), self)

    def _compare(self, other, ufunc) -> "Tensor":
        o = other._data if isinstance(other, Tensor) else other
        try:
            return Tensor._make(np.asarray(ufunc(self._data, o)))
        except ValueError:
            raise ValueError(
                f"{ufunc.__name__}: shapes {self.shape} and {np.shape(o)} cannot be broadcast together"
            ) from None

    def __eq__(self, other):  # type: ignore[override]
        return self._compare(other, np.equal)

    def __ne__(self, other):  # type: ignore[override]
        return self._compare(other, np.not_equal)

    def __lt__(self, other):
        return self._compare(other, np.less)

    def __le__(self, other):
        return self._compare(other, np.less_equal)

    def __gt__(self, other):
        return self._compare(other, np.greater)

    def __ge__(self, other):
        return self._compare(other, np.greater_equal)

    def __invert__(self):
        return Tensor._make(~self._data)

    def __and__(self, other):
        return self._compare(other, np.logical_and)

    def __or__(self, other):
        return self._compare(other, np.logical_or)

    def eq(self, other):
        return self == other

    def any(self):
        return Tensor._make(np.asarray(self._data.any()))

    def all(self):
        return Tensor._make(np.asarray(self._data.all()))

    # ------------------------------------------------------------- elementwise
    def exp(self):
        return E.Exp.apply(self)

    def log(self):
        return E.Log.apply(self)

    def sqrt(self):
        return E.Sqrt.apply(self)

    def abs(self):
        return E.Abs.apply(self)

    __abs__ = abs

    def pow(self, exponent):
        return self ** exponent

    def square(self):
        return self * self

    def norm(self, p=2, dim=None, keepdim: bool = False):
        """The p-norm over ``dim`` (all elements by default)."""
        if p == 2:
            return (self * self).sum(dim, keepdim).sqrt()
        if p == 1:
            return self.abs().sum(dim, keepdim)
        return (self.abs() ** p).sum(dim, keepdim) ** (1.0 / p)

    def logsumexp(self, dim, keepdim: bool = False):
        """``log(sum(exp(x), dim))`` computed stably (max-shifted)."""
        m = Tensor._make(self._data.max(axis=dim, keepdims=True))
        out = (self - m).exp().sum(dim, keepdim=True).log() + m
        return out if keepdim else out.squeeze(dim)

    def clamp(self, min=None, max=None):  # noqa: A002 - torch's names
        if min is None and max is None:
            raise ValueError("clamp: at least one of min and max must be given")
        return E.Clamp.apply(self, min, max)

    clip = clamp

    def sigmoid(self):
        return E.Sigmoid.apply(self)

    def tanh(self):
        return E.Tanh.apply(self)

    def relu(self):
        return E.Relu.apply(self)

    # -------------------------------------------------------------- reductions
    def _axes(self, dim, op: str):
        if dim is None:
            return None
        dims = (dim,) if isinstance(dim, (int, np.integer)) else tuple(dim)
        out = []
        for d in dims:
            if not -self.ndim <= d < max(self.ndim, 1):
                raise IndexError(f"{op}: dim {d} is out of range for a tensor of shape {self.shape}")
            out.append(d % max(self.ndim, 1))
        return tuple(out)

    def sum(self, dim=None, keepdim: bool = False):
        return R.Sum.apply(self, self._axes(dim, "sum"), keepdim)

    def mean(self, dim=None, keepdim: bool = False):
        if self.dtype.kind != "f":
            raise TypeError(f"mean: expected a floating-point tensor, got {self.dtype}")
        return R.Mean.apply(self, self._axes(dim, "mean"), keepdim)

    def var(self, dim=None, unbiased: bool = True, keepdim: bool = False, *, correction=None):
        corr = (1 if unbiased else 0) if correction is None else correction
        return R.Var.apply(self, self._axes(dim, "var"), corr, keepdim, False)

    def std(self, dim=None, unbiased: bool = True, keepdim: bool = False, *, correction=None):
        corr = (1 if unbiased else 0) if correction is None else correction
        return R.Var.apply(self, self._axes(dim, "std"), corr, keepdim, True)

    def _max_min(self, dim, keepdim, use_min, op):
        if self._data.size == 0:
            raise ValueError(f"{op}: empty tensor of shape {self.shape}")
        if dim is None:
            return R.MaxAll.apply(self, use_min)
        (d,) = self._axes(dim, op)
        return _ValuesIndices(*R.MaxDim.apply(self, d, keepdim, use_min))

    def max(self, dim=None, keepdim: bool = False):
        """``max()`` → the largest value; ``max(dim)`` → ``(values, indices)`` like torch."""
        return self._max_min(dim, keepdim, False, "max")

    def min(self, dim=None, keepdim: bool = False):
        return self._max_min(dim, keepdim, True, "min")

    def argmax(self, dim=None, keepdim: bool = False):
        if dim is None:
            return Tensor._make(np.asarray(self._data.argmax(), dtype=np.int64))
        (d,) = self._axes(dim, "argmax")
        idx = self._data.argmax(axis=d)
        return Tensor._make((np.expand_dims(idx, d) if keepdim else idx).astype(np.int64))

    def argmin(self, dim=None, keepdim: bool = False):
        if dim is None:
            return Tensor._make(np.asarray(self._data.argmin(), dtype=np.int64))
        (d,) = self._axes(dim, "argmin")
        idx = self._data.argmin(axis=d)
        return Tensor._make((np.expand_dims(idx, d) if keepdim else idx).astype(np.int64))

    # ------------------------------------------------------------------ shape
    def reshape(self, *shape):
        shape = _shape_args(shape)
        _check_reshape(self.shape, shape, "reshape")
        return S.Reshape.apply(self, shape)

    def view(self, *shape):
        shape = _shape_args(shape)
        _check_reshape(self.shape, shape, "view")
        return S.Reshape.apply(self, shape)

    def view_as(self, other):
        return self.view(other.shape)

    def flatten(self, start_dim: int = 0, end_dim: int = -1):
        if self.ndim == 0:
            return self.reshape(1)
        s, e = start_dim % self.ndim, end_dim % self.ndim
        if s > e:
            raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
        shape = self.shape[:s] + (int(np.prod(self.shape[s : e + 1])),) + self.shape[e + 1 :]
        return S.Reshape.apply(self, shape)

    def squeeze(self, dim=None):
        if dim is None:
            shape = tuple(n for n in self.shape if n != 1)
        else:
            dims = self._axes(dim, "squeeze")
            shape = tuple(n for i, n in enumerate(self.shape) if not (i in dims and n == 1))
        return S.Reshape.apply(self, shape)

    def unsqueeze(self, dim: int):
        if not -self.ndim - 1 <= dim <= self.ndim:
            raise IndexError(f"unsqueeze: dim {dim} is out of range for a tensor of shape {self.shape}")
        d = dim % (self.ndim + 1)
        return S.Reshape.apply(self, self.shape[:d] + (1,) + self.shape[d:])

    def permute(self, *dims):
        dims = _shape_args(dims)
        if sorted(d % max(self.ndim, 1) for d in dims) != list(range(self.ndim)):
            raise ValueError(f"permute: dims {dims} are not a permutation of the {self.ndim} axes of {self.shape}")
        return S.Permute.apply(self, tuple(d % self.ndim for d in dims))

    def transpose(self, dim0: int, dim1: int):
        order = list(range(self.ndim))
        a, b = self._axes((dim0, dim1), "transpose")
        order[a], order[b] = order[b], order[a]
        return S.Permute.apply(self, tuple(order))

    def t(self):
        if self.ndim > 2:
            raise ValueError(f"t: expects a tensor of at most 2 dims, got shape {self.shape}")
        return self.T if self.ndim == 2 else self

    def expand(self, *sizes):
        sizes = _shape_args(sizes)
        lead = len(sizes) - self.ndim
        if lead < 0:
            raise ValueError(f"expand: {len(sizes)} sizes given for a tensor of shape {self.shape}")
        shape = tuple(
            self.shape[i - lead] if (s == -1 and i >= lead) else s for i, s in enumerate(sizes)
        )
        try:
            np.broadcast_shapes(self.shape, shape)
            if np.broadcast_shapes(self.shape, shape) != shape:
                raise ValueError
        except ValueError:
            raise ValueError(f"expand: cannot expand shape {self.shape} to {sizes}") from None
        return S.Expand.apply(self, shape)

    def expand_as(self, other):
        return self.expand(other.shape)

    def repeat(self, *sizes):
        sizes = _shape_args(sizes)
        if len(sizes) < self.ndim:
            raise ValueError(
                f"repeat: {len(sizes)} repeat counts given for a tensor of {self.ndim} dims {self.shape}"
            )
        return S.Repeat.apply(self, sizes)

    def __getitem__(self, idx):
        idx = _index_arrays(idx)
        try:
            return S.GetItem.apply(self, idx)
        except IndexError as e:
            raise IndexError(f"getitem: {e} (tensor shape {self.shape})") from None

    def __setitem__(self, idx, value):
        """``self[idx] = value`` in place; differentiable (w.r.t. ``value`` and the elements
        of ``self`` not overwritten) like torch's ``index_put_``."""
        idx = _index_arrays(idx)
        if isinstance(value, Tensor) and value.dtype != self.dtype:
            value = value.astype(self.dtype)
        if not self._recording(value):
            try:
                self._data[idx] = value._data if isinstance(value, Tensor) else value
            except (IndexError, ValueError) as e:
                raise type(e)(f"setitem: {e} (tensor shape {self.shape})") from None
            self._bump_version()
            return
        value = value if isinstance(value, Tensor) else Tensor._make(np.asarray(value, self.dtype))
        self._inplace("setitem", lambda prev: S.IndexPut.apply(prev, value, idx))

    # --------------------------------------------------------------- in-place
    # torch's in-place ops change the tensor's own memory (views see it) and bump its version;
    # under autograd the tensor takes the op's history (a leaf that requires grad refuses).
    def _version_ref(self) -> list:
        """The version counter: a one-element list, shared by a tensor and its views."""
        box = self._version_box
        if box is None:
            box = self._version_box = [0]
        return box

    @property
    def _version(self) -> int:
        """How many in-place changes this tensor's memory has seen (torch's ``_version``)."""
        return self._version_ref()[0]

    def _bump_version(self) -> None:
        self._version_ref()[0] += 1

    def _recording(self, *others) -> bool:
        return is_grad_enabled() and (
            self.requires_grad or any(isinstance(o, Tensor) and o.requires_grad for o in others)
        )

    def _inplace(self, op: str, compute, *others) -> "Tensor":
        """Store ``compute(self_before)`` (a Tensor of a broadcast-compatible shape and a dtype
        castable to self's) into self's memory; with autograd on, self takes its history."""
        if not self._recording(*others):
            result = compute(self)
            self._write(op, result)
            return self
        if self.requires_grad and self._ctx is None:
            raise RuntimeError(
                f"{op}: a leaf Variable that requires grad is being used in an in-place "
                "operation (wrap parameter updates in `with convnet.no_grad():`)"
            )
        result = compute(self._snapshot(copy=False))
        if result._ctx is not None and "_watch" in result._ctx.__dict__:
            # The op saved self's memory for its backward: give it a copy that stays as it was.
            result = compute(self._snapshot(copy=True))
        self._write(op, result)
        if result.requires_grad:
            self._ctx, self._out_index, self.requires_grad = result._ctx, result._out_index, True
        return self

    def _snapshot(self, copy: bool) -> "Tensor":
        """Self as it is now (same graph node), sharing or copying its memory."""
        t = Tensor._make(self._data.copy() if copy else self._data)
        t.requires_grad, t._ctx, t._out_index = self.requires_grad, self._ctx, self._out_index
        return t

    def _write(self, op: str, result: "Tensor") -> None:
        if result.shape != self.shape:
            raise RuntimeError(
                f"{op}: output with shape {self.shape} doesn't match the broadcast shape "
                f"{result.shape}"
            )
        if result.dtype != self.dtype and not np.can_cast(result.dtype, self.dtype, "same_kind"):
            raise RuntimeError(
                f"{op}: result type {result.dtype} can't be cast to the desired output type "
                f"{self.dtype}"
            )
        np.copyto(self._data, result._data, casting="unsafe")
        self._bump_version()

    def _assign(self, op: str, new) -> "Tensor":
        new = new if isinstance(new, Tensor) else Tensor._make(np.asarray(new, dtype=self.dtype))
        if not self._recording(new):
            try:
                np.copyto(self._data, np.broadcast_to(new._data, self.shape), casting="unsafe")
            except ValueError:
                raise RuntimeError(
                    f"{op}: source shape {new.shape} cannot be broadcast to {self.shape}"
                ) from None
            self._bump_version()
            return self
        try:
            np.broadcast_to(np.empty(new.shape, np.int8), self.shape)
        except ValueError:
            raise RuntimeError(f"{op}: source shape {new.shape} cannot be broadcast to {self.shape}") from None
        return self._inplace(op, lambda prev: E.Assign.apply(prev, new), new)

    def zero_(self):
        return self._assign("zero_", 0)

    def fill_(self, value):
        return self._assign("fill_", value)

    def copy_(self, src):
        return self._assign("copy_", src if isinstance(src, Tensor) else np.asarray(src))

    def add_(self, other, alpha=1):
        if alpha != 1:
            return self._inplace("add_", lambda prev: prev + other * alpha, other)
        return self._inplace("add_", lambda prev: prev + other, other)

    def sub_(self, other, alpha=1):
        if alpha != 1:
            return self._inplace("sub_", lambda prev: prev - other * alpha, other)
        return self._inplace("sub_", lambda prev: prev - other, other)

    def mul_(self, other):
        return self._inplace("mul_", lambda prev: prev * other, other)

    def div_(self, other):
        return self._inplace("div_", lambda prev: prev / other, other)

    def pow_(self, exponent):
        return self._inplace("pow_", lambda prev: prev ** exponent, exponent)

    def clamp_(self, min=None, max=None):  # noqa: A002 - torch's names
        return self._inplace("clamp_", lambda prev: prev.clamp(min, max))

    def clamp_min_(self, min):  # noqa: A002
        return self.clamp_(min=min)

    def clamp_max_(self, max):  # noqa: A002
        return self.clamp_(max=max)

    def neg_(self):
        return self._inplace("neg_", lambda prev: -prev)

    def abs_(self):
        return self._inplace("abs_", lambda prev: prev.abs())

    def exp_(self):
        return self._inplace("exp_", lambda prev: prev.exp())

    def log_(self):
        return self._inplace("log_", lambda prev: prev.log())

    def sqrt_(self):
        return self._inplace("sqrt_", lambda prev: prev.sqrt())

    def sigmoid_(self):
        return self._inplace("sigmoid_", lambda prev: prev.sigmoid())

    def tanh_(self):
        return self._inplace("tanh_", lambda prev: prev.tanh())

    def relu_(self):
        return self._inplace("relu_", lambda prev: prev.relu())

    def addcmul_(self, tensor1, tensor2, value=1):
        return self._inplace("addcmul_", lambda prev: prev + value * tensor1 * tensor2,
                             tensor1, tensor2)

    def addcdiv_(self, tensor1, tensor2, value=1):
        return self._inplace("addcdiv_", lambda prev: prev + value * tensor1 / tensor2,
                             tensor1, tensor2)

    def lerp_(self, end, weight):
        return self._inplace("lerp_", lambda prev: prev + weight * (end - prev), end, weight)

    def __iadd__(self, other):
        return self._inplace("add_", lambda prev: prev + other, other)

    def __isub__(self, other):
        return self._inplace("sub_", lambda prev: prev - other, other)

    def __imul__(self, other):
        return self._inplace("mul_", lambda prev: prev * other, other)

    def __itruediv__(self, other):
        return self._inplace("div_", lambda prev: prev / other, other)

    def uniform_(self, a=0.0, b=1.0):
        from .random import generator

        return self._assign("uniform_", generator().uniform(a, b, self.shape).astype(self.dtype))

    def normal_(self, mean=0.0, std=1.0):
        from .random import generator

        return self._assign("normal_", generator().normal(mean, std, self.shape).astype(self.dtype))

    # Torch-style aliases for the Tensor-level functions below
    def softmax(self, dim):
        from .functional import softmax

        return softmax(self, dim)

    def log_softmax(self, dim):
        from .functional import log_softmax

        return log_softmax(self, dim)


# -------------------------------------------------------------------- helpers
class _ValuesIndices(tuple):
    """``(values, indices)`` with ``.values``/``.indices`` names, like torch's return type."""

    def __new__(cls, values, indices):
        return super().__new__(cls, (values, indices))

    @property
    def values(self):
        return self[0]

    @property
    def indices(self):
        return self[1]


def _shape_args(args) -> tuple:
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        args = tuple(args[0])
    return tuple(int(a) for a in args)


def _check_reshape(old, new, op: str) -> None:
    size = int(np.prod(old))
    if new.count(-1) > 1:
        raise ValueError(f"{op}: only one dimension can be -1, got {new}")
    known = int(np.prod([n for n in new if n != -1]))
    ok = (size == known) if -1 not in new else (known != 0 and size % known == 0)
    if not ok:
        raise ValueError(f"{op}: shape {new} is invalid for a tensor of shape {tuple(old)} ({size} elements)")


def _index_arrays(idx):
    if isinstance(idx, Tensor):
        return idx._data
    if isinstance(idx, tuple):
        return tuple(i._data if isinstance(i, Tensor) else i for i in idx)
    if isinstance(idx, list):
        return np.asarray(idx)
    return idx


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """Matrix product with NumPy's broadcasting rules; errors name both shapes."""
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both operands need at least 1 dim, got {a.shape} and {b.shape}")
    ka = a.shape[-1]
    kb = b.shape[-2] if b.ndim > 1 else b.shape[0]
    if ka != kb:
        raise ValueError(
            f"matmul: shapes {a.shape} and {b.shape} are not aligned ({ka} != {kb} on the inner dimension)"
        )
    try:
        np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ValueError(f"matmul: batch dims of {a.shape} and {b.shape} cannot be broadcast") from None
    return MatMul.apply(a, b)

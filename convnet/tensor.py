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
from .ops import indexing as Ix
from .ops import reduction as R
from .ops import shape as S
from .ops.matmul import MatMul

float32 = np.dtype("float32")
float64 = np.dtype("float64")
int64 = np.dtype("int64")
int32 = np.dtype("int32")
uint8 = np.dtype("uint8")
bool_ = np.dtype("bool")

# Tensor.type() names (torch's legacy tensor-type names)
_TYPE_NAMES = {
    np.dtype("float32"): "FloatTensor", np.dtype("float64"): "DoubleTensor",
    np.dtype("float16"): "HalfTensor", np.dtype("int64"): "LongTensor", np.dtype("int32"): "IntTensor",
    np.dtype("int16"): "ShortTensor", np.dtype("int8"): "CharTensor", np.dtype("uint8"): "ByteTensor",
    np.dtype("bool"): "BoolTensor",
}

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
    def shape(self) -> "Size":
        """The sizes of the axes, a ``convnet.Size`` (a tuple)."""
        return Size(self._data.shape)

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
        """``convnet.Size`` of all axes, or the length of axis ``dim``."""
        if dim is None:
            return Size(self._data.shape)
        if not -self.ndim <= dim < self.ndim:
            raise IndexError(f"size: dim {dim} is out of range for a tensor of shape {self.shape}")
        return self._data.shape[dim]

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
        """torch's layout: ``tensor([5.5000, 3.0000], requires_grad=True)``."""
        from ._printing import tensor_repr
        from .autograd.graph import function_name

        name = function_name(self._ctx) if self._ctx is not None else None
        return tensor_repr(self._data, name, self.requires_grad)

    def __format__(self, spec: str) -> str:
        # As torch: a 0-d tensor formats like its number (f"{loss:.4f}"); others only with "".
        if self.ndim == 0:
            return format(self.item(), spec)
        return object.__format__(self, spec)

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
    @property
    def grad_fn(self):
        """The backward node that made this tensor (``None`` for a leaf): ``.name()`` and
        ``.next_functions`` as torch's (see ``convnet.autograd.graph``)."""
        if self._ctx is None:
            return None
        from .autograd.graph import Node

        return Node(self._ctx)

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
        return S.Transpose.apply(self, tuple(order))

    def t(self):
        if self.ndim > 2:
            raise ValueError(f"t: expects a tensor of at most 2 dims, got shape {self.shape}")
        return S.T.apply(self, (1, 0)) if self.ndim == 2 else self

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

    # ---------------------------------------------------- torch-style tensor API
    def type(self, dtype=None, non_blocking: bool = False, **kwargs):
        """No argument: the type name (``'convnet.FloatTensor'``); with a dtype or a type name
        (``'torch.LongTensor'`` is accepted too): this tensor cast to it."""
        if dtype is None:
            return "convnet." + _TYPE_NAMES.get(self.dtype, self.dtype.name + "Tensor")
        if isinstance(dtype, str) and dtype.rsplit(".", 1)[-1].endswith("Tensor"):
            if ".cuda." in dtype:
                from .device import check_device

                check_device("cuda", f"Tensor.type({dtype!r})")
            name = dtype.rsplit(".", 1)[-1]
            match = [dt for dt, n in _TYPE_NAMES.items() if n == name]
            if not match:
                raise ValueError(f"type: invalid type {dtype!r}")
            dtype = match[0]
        return self.astype(dtype)

    def _new_like(self, op, arr, dtype, device, requires_grad):
        if device is not None:
            from .device import check_device

            check_device(device, f"Tensor.{op}")
        dtype = self.dtype if dtype is None else as_dtype(dtype)
        return Tensor._make(np.asarray(arr, dtype=dtype)).requires_grad_(requires_grad)

    def new_tensor(self, data, dtype=None, device=None, requires_grad: bool = False):
        """A copy of ``data`` with this tensor's dtype unless ``dtype`` is given."""
        data = data._data if isinstance(data, Tensor) else data
        return self._new_like("new_tensor", np.array(data), dtype, device, requires_grad)

    def new_zeros(self, *size, dtype=None, device=None, requires_grad: bool = False):
        return self._new_like("new_zeros", np.zeros(_shape_args(size)), dtype, device, requires_grad)

    def new_ones(self, *size, dtype=None, device=None, requires_grad: bool = False):
        return self._new_like("new_ones", np.ones(_shape_args(size)), dtype, device, requires_grad)

    def new_empty(self, *size, dtype=None, device=None, requires_grad: bool = False):
        return self._new_like("new_empty", np.zeros(_shape_args(size)), dtype, device, requires_grad)

    def new_full(self, size, fill_value, dtype=None, device=None, requires_grad: bool = False):
        return self._new_like("new_full", np.full(_shape_args((size,)), fill_value), dtype, device,
                              requires_grad)

    # arithmetic as methods (torch.add(a, b, alpha=2) == a + 2 * b)
    def add(self, other, *, alpha=1):
        return self + (other if alpha == 1 else other * alpha)

    def sub(self, other, *, alpha=1):
        return self - (other if alpha == 1 else other * alpha)

    def mul(self, other):
        return self * other

    def div(self, other, *, rounding_mode=None):
        """``self / other``; ``rounding_mode='trunc'`` or ``'floor'`` rounds the quotient
        (integer inputs then keep their dtype; the gradient is zero, as torch)."""
        if rounding_mode is None:
            return self / other
        if rounding_mode not in ("trunc", "floor"):
            raise RuntimeError(
                "div expected rounding_mode to be one of None, 'trunc', or 'floor' but found "
                f"{rounding_mode!r}")
        other = self._operand(other)
        a, b = self, other
        if a.dtype.kind == "f" and b.dtype.kind != "f":
            b = Tensor._make(b._data.astype(a.dtype))
        elif b.dtype.kind == "f" and a.dtype.kind != "f":
            a = Tensor._make(a._data.astype(b.dtype))
        try:
            np.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            raise ValueError(f"div: shapes {a.shape} and {b.shape} cannot be broadcast together") from None
        return E.RoundedDiv.apply(a, b, rounding_mode)

    multiply, subtract, divide, true_divide = mul, sub, div, __truediv__

    def neg(self):
        return E.Neg.apply(self)

    negative = neg

    def log1p(self):
        return E.Log1p.apply(self)

    def expm1(self):
        return E.Expm1.apply(self)

    def matmul(self, other):
        return matmul(self, self._operand(other))

    def mm(self, mat2):
        """2-D matrix product (``matmul`` for any rank)."""
        if self.ndim != 2 or not isinstance(mat2, Tensor) or mat2.ndim != 2:
            other = mat2.shape if isinstance(mat2, Tensor) else type(mat2).__name__
            raise RuntimeError(f"mm: both arguments must be matrices (2-D), got {self.shape} and {other}")
        if self.shape[1] != mat2.shape[0]:
            raise RuntimeError(f"mm: mat1 and mat2 shapes cannot be multiplied "
                               f"({self.shape[0]}x{self.shape[1]} and {mat2.shape[0]}x{mat2.shape[1]})")
        return matmul(self, mat2)

    # sorting and selection (values are differentiable, indices are int64)
    def _one_dim(self, dim, op: str) -> int:
        (d,) = self._axes(dim, op)
        return d

    def _order(self, d: int, descending: bool) -> np.ndarray:
        """Stable sort positions along axis ``d`` (NaN sorts as the largest value, as torch)."""
        key = self._data
        if key.dtype.kind in "bu":
            key = key.astype(np.int64)
        if descending:
            key = np.where(np.isnan(key), -np.inf, -key) if key.dtype.kind == "f" else -key
        return np.argsort(key, axis=d, kind="stable")

    def sort(self, dim: int = -1, descending: bool = False, stable: bool = False):
        """``(values, indices)`` along ``dim``; equal values keep their order (stable)."""
        src = self.reshape(1) if self.ndim == 0 else self
        d = src._one_dim(dim, "sort")
        idx = src._order(d, descending)
        values = Ix.Sort.apply(src, idx, d)
        if self.ndim == 0:
            values, idx = values.reshape(()), idx.reshape(())
        return _ValuesIndices(values, Tensor._make(idx.astype(np.int64)))

    def argsort(self, dim: int = -1, descending: bool = False, stable: bool = False):
        return self.sort(dim, descending, stable)[1]

    def topk(self, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):  # noqa: A002
        """The ``k`` largest (``largest=False``: smallest) values along ``dim`` and their
        indices, in sorted order."""
        src = self.reshape(1) if self.ndim == 0 else self
        d = src._one_dim(dim, "topk")
        n = src.shape[d]
        if not 0 <= k <= n:
            raise RuntimeError(f"topk: selected index k={k} out of range for dim {dim} of size {n}")
        idx = np.take(src._order(d, largest), np.arange(k), axis=d)
        values = Ix.Topk.apply(src, idx, d)
        if self.ndim == 0:
            values, idx = values.reshape(()), idx.reshape(())
        return _ValuesIndices(values, Tensor._make(idx.astype(np.int64)))

    def _check_index(self, op: str, dim, index, src=None) -> tuple[int, np.ndarray]:
        """torch's checks for gather/scatter: an integer index of self's rank, no larger than
        self (except along ``dim``) nor than ``src``, with entries in ``[0, size(dim))``."""
        if not isinstance(index, Tensor):
            raise TypeError(f"{op}(): index must be a Tensor, got {type(index).__name__}")
        if index.dtype not in (int64, int32):
            raise RuntimeError(f"{op}(): Expected dtype int64 for index, got {index.dtype}")
        d = self._one_dim(dim, op)
        if index.ndim != self.ndim:
            raise RuntimeError(
                f"{op}(): Index tensor must have the same number of dimensions as input tensor "
                f"(index {index.shape}, input {self.shape})")
        for ax in range(self.ndim):
            if (ax != d and index.shape[ax] > self.shape[ax]) or (
                    src is not None and index.shape[ax] > src.shape[ax]):
                extra = f" and to be no larger size than src {list(src.shape)}" if src is not None else ""
                raise RuntimeError(
                    f"{op}(): Expected index {list(index.shape)} to be no larger than self "
                    f"{list(self.shape)} apart from dimension {d}{extra}")
        idx = index._data
        if idx.size:
            bad = idx[(idx < 0) | (idx >= self.shape[d])]
            if bad.size:
                raise RuntimeError(
                    f"{op}(): index {int(bad.flat[0])} is out of bounds for dimension {d} with "
                    f"size {self.shape[d]}")
        return d, idx

    def gather(self, dim: int, index, *, sparse_grad: bool = False):
        """``out[i][j] = self[index[i][j]][j]`` for ``dim=0`` (each axis likewise)."""
        d, idx = self._check_index("gather", dim, index)
        return Ix.Gather.apply(self, idx, d)

    def _scatter_src(self, op: str, src, value):
        if src is None and value is None:
            raise TypeError(f"{op}(): expected a src tensor or a value")
        src = value if src is None else src
        if isinstance(src, Tensor):
            if src.dtype != self.dtype:
                raise RuntimeError(f"{op}(): Expected self.dtype to be equal to src.dtype "
                                   f"({self.dtype} vs {src.dtype})")
            if src.ndim != self.ndim:
                raise RuntimeError(f"{op}(): Index tensor must have the same number of dimensions "
                                   f"as src tensor (src {src.shape}, input {self.shape})")
        return src

    def scatter(self, dim: int, index, src=None, *, value=None, reduce=None):
        """A copy of self with ``out[index[i][j]][j] = src[i][j]`` for ``dim=0`` (``src`` a
        tensor or a number; ``reduce='add'`` adds instead)."""
        src = self._scatter_src("scatter", src, value)
        if reduce is not None:
            if reduce != "add" or not isinstance(src, Tensor):
                raise ValueError(f"scatter(): reduce={reduce!r} is not supported (use "
                                 "scatter_add, or reduce='add' with a src tensor)")
            return self.scatter_add(dim, index, src)
        d, idx = self._check_index("scatter", dim, index, src if isinstance(src, Tensor) else None)
        if not isinstance(src, Tensor):
            src = np.asarray(src, dtype=self.dtype)[()]
        return Ix.Scatter.apply(self, idx, src, d)

    def scatter_add(self, dim: int, index, src):
        """A copy of self with ``src[i][j]`` added at ``out[index[i][j]][j]`` for ``dim=0``."""
        if not isinstance(src, Tensor):
            raise TypeError(f"scatter_add(): src must be a Tensor, got {type(src).__name__}")
        src = self._scatter_src("scatter_add", src, None)
        d, idx = self._check_index("scatter_add", dim, index, src)
        return Ix.ScatterAdd.apply(self, idx, src, d)

    def scatter_(self, dim: int, index, src=None, *, value=None, reduce=None):
        return self._inplace("scatter_", lambda prev: prev.scatter(
            dim, index, src, value=value, reduce=reduce), src)

    def scatter_add_(self, dim: int, index, src):
        return self._inplace("scatter_add_", lambda prev: prev.scatter_add(dim, index, src), src)

    def masked_fill(self, mask, value):
        """``value`` where the bool ``mask`` (broadcast with self) is True, self elsewhere."""
        if not isinstance(mask, Tensor) or mask.dtype != bool_:
            got = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
            raise RuntimeError(f"masked_fill only supports boolean masks, but got mask with dtype {got}")
        if isinstance(value, Tensor):
            if value.ndim != 0:
                raise RuntimeError("masked_fill only supports a 0-dimensional value tensor, but "
                                   f"got tensor with {value.ndim} dimension(s).")
            value = value.astype(self.dtype) if value.dtype != self.dtype else value
        else:
            value = np.asarray(value, dtype=self.dtype)
        try:
            np.broadcast_shapes(self.shape, mask.shape)
        except ValueError:
            raise RuntimeError(f"masked_fill: mask of shape {mask.shape} cannot be broadcast to "
                               f"the tensor's shape {self.shape}") from None
        return Ix.MaskedFill.apply(self, mask._data, value)

    def masked_fill_(self, mask, value):
        return self._inplace("masked_fill_", lambda prev: prev.masked_fill(mask, value), value)

    # splitting and selecting along one axis
    def split(self, split_size_or_sections, dim: int = 0):
        """Pieces of ``split_size`` along ``dim`` (the last may be smaller), or of the listed
        sizes (which must add up to ``size(dim)``). Each piece is differentiable."""
        if self.ndim == 0:
            raise RuntimeError("split: expects at least a 1-dimensional tensor")
        d = self._one_dim(dim, "split")
        n = self.shape[d]
        if isinstance(split_size_or_sections, (int, np.integer)):
            size = int(split_size_or_sections)
            if size < 0 or (size == 0 and n != 0):
                raise RuntimeError(f"split expects split_size be positive, but got split_size={size}")
            sizes = [size] * (n // size) + ([n % size] if n % size else []) if n else [0]
        else:
            sizes = [int(s) for s in split_size_or_sections]
            if any(s < 0 for s in sizes) or sum(sizes) != n:
                raise RuntimeError(
                    f"split_with_sizes expects split_sizes to sum exactly to {n} (input tensor's "
                    f"size at dimension {dim}), but got split_sizes={sizes}")
        lead = (slice(None),) * d
        out, start = [], 0
        for s in sizes:
            out.append(Ix.Split.apply(self, lead + (slice(start, start + s),)))
            start += s
        return tuple(out)

    def chunk(self, chunks: int, dim: int = 0):
        """At most ``chunks`` pieces of ``ceil(size(dim) / chunks)`` along ``dim``."""
        if chunks <= 0:
            raise RuntimeError(f"chunk expects `chunks` to be greater than 0, got: {chunks}")
        if self.ndim == 0:
            raise RuntimeError("chunk expects at least a 1-dimensional tensor")
        n = self.shape[self._one_dim(dim, "chunk")]
        return self.split(max(-(-n // chunks), 1), dim)

    def index_select(self, dim: int, index):
        """The entries ``index`` (a 1-D integer tensor) along ``dim``."""
        if not isinstance(index, Tensor) or index.dtype not in (int64, int32):
            got = index.dtype if isinstance(index, Tensor) else type(index).__name__
            raise RuntimeError(f"index_select(): Expected dtype int32 or int64 for index, got {got}")
        if index.ndim > 1:
            raise IndexError(f"index_select(): Index is supposed to be a vector, got shape {index.shape}")
        src = self.reshape(1) if self.ndim == 0 else self
        d = src._one_dim(dim, "index_select")
        idx = index._data.reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= src.shape[d]):
            raise IndexError(f"index_select(): index out of range in self (indices {idx.min()}.."
                             f"{idx.max()} for dim {dim} of size {src.shape[d]})")
        out = Ix.IndexSelect.apply(src, (slice(None),) * d + (idx,))
        return out.reshape(()) if self.ndim == 0 else out

    def repeat_interleave(self, repeats, dim=None, *, output_size=None):
        """Each entry along ``dim`` repeated ``repeats`` times (an int, or one count per entry);
        ``dim=None`` works on the flattened tensor."""
        src = self.reshape(-1) if dim is None else self
        d = 0 if dim is None else src._one_dim(dim, "repeat_interleave")
        n = src.shape[d] if src.ndim else 1
        counts = repeats._data if isinstance(repeats, Tensor) else np.asarray(repeats)
        if counts.dtype.kind not in "iu" or counts.ndim > 1:
            raise RuntimeError("repeat_interleave: repeats must be an int or a 1-D integer tensor")
        counts = counts.reshape(-1)
        if counts.size == 1:
            counts = np.repeat(counts, n)
        if counts.size != n:
            raise RuntimeError(
                f"repeat_interleave: repeats must have the same size as input along dim, but got "
                f"repeats.size(0) = {counts.size} and input.size({d}) = {n}")
        if (counts < 0).any():
            raise RuntimeError("repeat_interleave: repeats can not be negative")
        idx = np.repeat(np.arange(n), counts)
        return Ix.IndexSelect.apply(src, (slice(None),) * d + (idx,))

    # Torch-style aliases for the Tensor-level functions below
    def softmax(self, dim):
        from .functional import softmax

        return softmax(self, dim)

    def log_softmax(self, dim):
        from .functional import log_softmax

        return log_softmax(self, dim)


# -------------------------------------------------------------------- helpers
class Size(tuple):
    """torch.Size's counterpart: the tuple of a tensor's axis lengths, printed
    ``convnet.Size([2, 3])``; equal to the plain tuple of the same numbers. Unlike torch,
    an f-string shows it as the plain tuple ``(2, 3)`` (see ``__format__``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"convnet.Size({list(self)})"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        # f-strings keep the plain tuple text, which convnet's error messages are written with
        # ("shapes (2, 3) and (4, 5)"); print()/str()/repr() give torch's convnet.Size([2, 3]).
        return format(tuple.__repr__(self), spec)

    def __getitem__(self, item):
        out = tuple.__getitem__(self, item)
        return Size(out) if isinstance(item, slice) else out

    def __add__(self, other):
        return Size(tuple.__add__(self, tuple(other)))

    def __radd__(self, other):
        return Size(tuple(other) + tuple(self))

    def numel(self) -> int:
        """The number of elements of a tensor of this shape."""
        n = 1
        for d in self:
            n *= d
        return n


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

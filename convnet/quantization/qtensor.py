"""``QTensor``: integers plus the scale and zero point that give them meaning (torch's
quantized tensor), and ``quantize_per_tensor`` / ``quantize_per_channel``.

A QTensor ``q`` stands for the float tensor ``(q - zero_point) * scale``. Per tensor, one
``(scale, zero_point)`` covers every element; per channel, element ``[..., c, ...]`` (``c``
along ``axis``) uses ``(scales[c], zero_points[c])``. A QTensor is not a :class:`Tensor`: it
has no autograd and no arithmetic, only what quantized modules need (``int_repr``,
``dequantize``, the quantization parameters, shape changes), as in torch.

Example::

    >>> import convnet, convnet.quantization as cq
    >>> q = cq.quantize_per_tensor(convnet.tensor([-1.0, 0.0, 0.26, 2.0]), 0.1, 10, cq.quint8)
    >>> q.int_repr().tolist()          # round(x / 0.1) + 10, clamped to 0..255
    [0, 10, 13, 30]
    >>> q.dequantize().tolist()        # (q - 10) * 0.1
    [-1.0, 0.0, 0.30000001192092896, 2.0]
"""
from __future__ import annotations

import math

import numpy as np

from ..kernels import quantized as K
from ..tensor import Tensor
from .dtypes import QDType, as_qdtype

__all__ = ["QTensor", "quantize_per_tensor", "quantize_per_channel"]

PER_TENSOR_AFFINE = "per_tensor_affine"
PER_CHANNEL_AFFINE = "per_channel_affine"


def _array(x, op: str, name: str = "input") -> np.ndarray:
    if isinstance(x, QTensor):
        raise TypeError(f"{op}: {name} is already quantized (dequantize() it first)")
    arr = x._data if isinstance(x, Tensor) else np.asarray(x)
    if arr.dtype.kind != "f":
        raise TypeError(f"{op}: {name} must be a floating point tensor, got dtype {arr.dtype}")
    return arr


def _scalar(value, op: str, name: str, kind: type):
    arr = value._data if isinstance(value, Tensor) else np.asarray(value)
    if arr.size != 1:
        raise ValueError(f"{op}: {name} must be a single number, got shape {tuple(arr.shape)}")
    return kind(arr.reshape(()))


def _check_scale(scale: np.ndarray, op: str) -> None:
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise ValueError(f"{op}: scale must be positive and finite, got {scale.tolist()}")


def _check_zero_point(zp: np.ndarray, dtype: QDType, op: str) -> None:
    if np.any(zp < dtype.qmin) or np.any(zp > dtype.qmax):
        raise ValueError(f"{op}: zero_point must be between {dtype.qmin} and {dtype.qmax} "
                         f"for {dtype!r}, got {zp.tolist()}")


class QTensor:
    """A quantized tensor: integer storage ``int_repr`` meaning ``(q - z) * s``.

    Build one with :func:`quantize_per_tensor`, :func:`quantize_per_channel`, or from
    integers already quantized with :meth:`from_int_repr`. ``dtype`` is a
    :class:`~convnet.quantization.QDType` (``quint8``, ``qint8``, ``qint32``);
    ``qscheme()`` is ``"per_tensor_affine"`` or ``"per_channel_affine"``.
    """

    is_quantized = True

    def __init__(self, int_repr: np.ndarray, dtype, scale, zero_point, axis: int | None = None):
        # internal: callers validate; the public constructors are the functions below
        self.dtype = as_qdtype(dtype)
        self._int = np.ascontiguousarray(int_repr, dtype=self.dtype.storage)
        if axis is None:
            self._scale, self._zero_point, self._axis = float(scale), int(zero_point), None
        else:
            self._scale = np.asarray(scale, dtype=np.float64).reshape(-1)
            self._zero_point = np.asarray(zero_point, dtype=np.int64).reshape(-1)
            self._axis = int(axis)

    @classmethod
    def from_int_repr(cls, int_repr, scale, zero_point, dtype=None,
                      axis: int | None = None) -> "QTensor":
        """Wrap integers already quantized (torch's ``_make_per_tensor_quantized_tensor`` and
        ``_make_per_channel_quantized_tensor``). ``dtype`` defaults from the storage: uint8 ->
        quint8, int8 -> qint8, int32 -> qint32. Values outside the dtype's range are an
        error (they would have been clamped by quantization)."""
        op = "QTensor.from_int_repr"
        arr = int_repr._data if isinstance(int_repr, Tensor) else np.asarray(int_repr)
        by_storage = {"uint8": "quint8", "int8": "qint8", "int32": "qint32"}
        if dtype is None:
            if arr.dtype.name not in by_storage:
                raise TypeError(f"{op}: int_repr must be uint8, int8 or int32 (or give dtype=), "
                                f"got {arr.dtype}")
            dtype = by_storage[arr.dtype.name]
        dtype = as_qdtype(dtype, op)
        if arr.dtype.kind not in "iu":
            raise TypeError(f"{op}: int_repr must hold integers, got dtype {arr.dtype}")
        if arr.size and (arr.min() < dtype.qmin or arr.max() > dtype.qmax):
            raise ValueError(f"{op}: values must lie in [{dtype.qmin}, {dtype.qmax}] for "
                             f"{dtype!r}, got [{arr.min()}, {arr.max()}]")
        if axis is None:
            s, z = _scalar(scale, op, "scale", float), _scalar(zero_point, op, "zero_point", int)
            _check_scale(np.asarray(s), op)
            _check_zero_point(np.asarray(z), dtype, op)
            return cls(arr, dtype, s, z)
        s, z, axis = _channel_params(arr, scale, zero_point, axis, dtype, op)
        return cls(arr, dtype, s, z, axis)

    # ------------------------------------------------------------ torch's accessors
    def int_repr(self) -> Tensor:
        """The stored integers as a Tensor (uint8 for quint8, int8 for qint8, int32 for
        qint32); a copy."""
        return Tensor._make(self._int.copy())

    def dequantize(self) -> Tensor:
        """``(q - z) * s`` as a float32 Tensor."""
        if self._axis is None:
            return Tensor._make(K.dequantize(self._int, self._scale, self._zero_point))
        return Tensor._make(K.dequantize(self._int, self._scale, self._zero_point, self._axis))

    def qscheme(self) -> str:
        return PER_TENSOR_AFFINE if self._axis is None else PER_CHANNEL_AFFINE

    def _need(self, per_channel: bool, what: str) -> None:
        if (self._axis is not None) != per_channel:
            raise RuntimeError(f"QTensor.{what}: expected a "
                               f"{'per-channel' if per_channel else 'per-tensor'} quantized "
                               f"tensor, this one is {self.qscheme()}")

    def q_scale(self) -> float:
        self._need(False, "q_scale")
        return self._scale

    def q_zero_point(self) -> int:
        self._need(False, "q_zero_point")
        return self._zero_point

    def q_per_channel_scales(self) -> Tensor:
        """Per-channel scales, float64 (as torch)."""
        self._need(True, "q_per_channel_scales")
        return Tensor._make(self._scale.copy())

    def q_per_channel_zero_points(self) -> Tensor:
        """Per-channel zero points, int64."""
        self._need(True, "q_per_channel_zero_points")
        return Tensor._make(self._zero_point.copy())

    def q_per_channel_axis(self) -> int:
        self._need(True, "q_per_channel_axis")
        return self._axis

    # ------------------------------------------------------------------ shape
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._int.shape)

    def size(self, dim: int | None = None):
        return self.shape if dim is None else self.shape[dim]

    def dim(self) -> int:
        return self._int.ndim

    ndim = property(dim)

    def numel(self) -> int:
        return int(self._int.size)

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d QTensor")
        return self.shape[0]

    def _with(self, int_repr: np.ndarray) -> "QTensor":
        """Same qparams, new integers (shape-changing views keep per-tensor params)."""
        return QTensor(int_repr, self.dtype, self._scale, self._zero_point, self._axis)

    def reshape(self, *shape) -> "QTensor":
        if self._axis is not None:
            raise RuntimeError("QTensor.reshape: only per-tensor quantized tensors can be "
                               "reshaped (the channel axis would be lost)")
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) \
            else shape
        try:
            return self._with(self._int.reshape(shape))
        except ValueError:
            raise RuntimeError(f"QTensor.reshape: shape {list(shape)} is invalid for a tensor "
                               f"of shape {list(self.shape)} ({self.numel()} elements)") from None

    view = reshape

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> "QTensor":
        """Merge dims ``start_dim..end_dim`` (torch's ``flatten``)."""
        nd = max(self.dim(), 1)
        s, e = start_dim % nd, end_dim % nd
        if s > e:
            raise RuntimeError(f"QTensor.flatten: start_dim {start_dim} comes after end_dim "
                               f"{end_dim} for a {self.dim()}-d tensor")
        shape = self.shape or (1,)
        return self.reshape(shape[:s] + (math.prod(shape[s:e + 1]),) + shape[e + 1:])

    def clone(self) -> "QTensor":
        return self._with(self._int.copy())

    def detach(self) -> "QTensor":
        return self

    def contiguous(self) -> "QTensor":
        return self

    def _no_arithmetic(self, *_):
        raise TypeError("QTensor has no arithmetic operators: quantized adds and multiplies go "
                        "through FloatFunctional (converted to QFunctional: add, add_relu, mul, "
                        "cat); or dequantize() first")

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _no_arithmetic
    __truediv__ = __matmul__ = __neg__ = _no_arithmetic

    def __repr__(self) -> str:
        values = np.array2string(self.dequantize()._data, precision=4, separator=", ",
                                 prefix="tensor(")
        if self._axis is None:
            q = f"scale={self._scale}, zero_point={self._zero_point}"
        else:
            q = (f"scale={np.array2string(self._scale, precision=4, separator=', ')}, "
                 f"zero_point={self._zero_point.tolist()}, axis={self._axis}")
        return (f"tensor({values}, size={self.shape}, dtype={self.dtype!r},\n"
                f"       quantization_scheme={self.qscheme()}, {q})")


def _channel_params(x: np.ndarray, scales, zero_points, axis, dtype: QDType, op: str):
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{op}: axis must be an int, got {axis!r}")
    if not -x.ndim <= axis < x.ndim or x.ndim == 0:
        raise ValueError(f"{op}: axis {axis} is out of range for a tensor of shape "
                         f"{tuple(x.shape)}")
    axis = int(axis) % x.ndim
    s = np.asarray(scales._data if isinstance(scales, Tensor) else scales, dtype=np.float64)
    z = np.asarray(zero_points._data if isinstance(zero_points, Tensor) else zero_points)
    if z.dtype.kind not in "iu" and not np.all(z == np.round(z)):
        raise TypeError(f"{op}: zero_points must be integers, got {z.tolist()}")
    z = z.astype(np.int64)
    n = x.shape[axis]
    if s.ndim != 1 or z.ndim != 1 or s.shape[0] != n or z.shape[0] != n:
        raise ValueError(f"{op}: scales {tuple(s.shape)} and zero_points {tuple(z.shape)} must "
                         f"be vectors of length {n} (size of axis {axis} of the input "
                         f"{tuple(x.shape)})")
    _check_scale(s, op)
    _check_zero_point(z, dtype, op)
    return s, z, axis


def quantize_per_tensor(input, scale, zero_point, dtype) -> QTensor:
    """``q = clamp(round_half_even(x / scale) + zero_point, qmin, qmax)`` (torch's
    ``torch.quantize_per_tensor``; its float32 arithmetic, bit for bit).

    Args:
        input: float Tensor or array, any shape.
        scale: positive float (or a 1-element Tensor).
        zero_point: int in the dtype's range.
        dtype: ``quint8``, ``qint8`` or ``qint32`` (or its name).
    """
    op = "quantize_per_tensor"
    x = _array(input, op)
    dtype = as_qdtype(dtype, op)
    s, z = _scalar(scale, op, "scale", float), _scalar(zero_point, op, "zero_point", int)
    _check_scale(np.asarray(s), op)
    _check_zero_point(np.asarray(z), dtype, op)
    q = K.quantize_per_tensor(x, s, z, dtype.qmin, dtype.qmax, dtype.storage)
    return QTensor(q, dtype, s, z)


def quantize_per_channel(input, scales, zero_points, axis: int, dtype) -> QTensor:
    """``q[..., c, ...] = clamp(round_half_even(x / scales[c]) + zero_points[c])`` along
    ``axis`` (torch's ``torch.quantize_per_channel``, bit for bit). ``scales`` (float) and
    ``zero_points`` (int) are vectors of length ``input.shape[axis]``."""
    op = "quantize_per_channel"
    x = _array(input, op)
    dtype = as_qdtype(dtype, op)
    s, z, axis = _channel_params(x, scales, zero_points, axis, dtype, op)
    q = K.quantize_per_channel(x, s, z, axis, dtype.qmin, dtype.qmax, dtype.storage)
    return QTensor(q, dtype, s, z, axis)

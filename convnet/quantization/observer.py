"""Observers: modules that watch tensors go by and choose quantization parameters.

An observer is called like a layer; it records statistics of its input (a running
min/max, a moving average of them, or a histogram) and returns the input unchanged.
``calculate_qparams()`` then turns the statistics into ``(scale, zero_point)`` so that
``x_q = clamp(round(x / scale) + zero_point, qmin, qmax)`` covers the observed range.

With the range widened to include 0 (``min_neg = min(min, 0)``, ``max_pos = max(max, 0)``,
so that 0.0 is exactly representable, e.g. for zero padding):

* affine: ``scale = (max_pos - min_neg) / (qmax - qmin)``,
  ``zero_point = clamp(qmin - round(min_neg / scale), qmin, qmax)``;
* symmetric: ``scale = max(-min_neg, max_pos) / ((qmax - qmin) / 2)``, ``zero_point = 0``
  for qint8 (128, or the midpoint of a custom range, for quint8);

and ``scale`` is at least ``eps`` (float32 machine epsilon by default). The arithmetic is
float32 in torch's order, so scales and zero points equal ``torch.ao.quantization``'s.
Names, arguments and defaults are torch's; ``qscheme`` values are the strings exported as
``per_tensor_affine``, ``per_tensor_symmetric``, ``per_channel_affine`` and
``per_channel_symmetric``.
"""
from __future__ import annotations

import functools
import warnings

import numpy as np

from ..nn.modules.module import Module
from ..tensor import Tensor
from . import _histogram
from .dtypes import QDType, as_qdtype, qint8, qint32, quint8

__all__ = [
    "per_tensor_affine", "per_tensor_symmetric", "per_channel_affine", "per_channel_symmetric",
    "per_channel_affine_float_qparams", "ObserverBase", "UniformQuantizationObserverBase", "MinMaxObserver",
    "MovingAverageMinMaxObserver", "PerChannelMinMaxObserver",
    "MovingAveragePerChannelMinMaxObserver", "HistogramObserver", "FixedQParamsObserver",
    "PlaceholderObserver", "NoopObserver", "RecordingObserver",
    "default_observer", "default_weight_observer", "default_per_channel_weight_observer",
    "default_histogram_observer", "default_placeholder_observer", "default_debug_observer",
    "weight_observer_range_neg_127_to_127", "per_channel_weight_observer_range_neg_127_to_127",
    "default_fixed_qparams_range_neg1to1_observer", "default_fixed_qparams_range_0to1_observer",
]

per_tensor_affine = "per_tensor_affine"
per_tensor_symmetric = "per_tensor_symmetric"
per_channel_affine = "per_channel_affine"
per_channel_symmetric = "per_channel_symmetric"
per_channel_affine_float_qparams = "per_channel_affine_float_qparams"
_PER_TENSOR = (per_tensor_affine, per_tensor_symmetric)
_PER_CHANNEL = (per_channel_affine, per_channel_symmetric, per_channel_affine_float_qparams)

_F32 = np.float32
_EPS = float(np.finfo(np.float32).eps)


def _as_qscheme(qscheme, op: str) -> str:
    """A qscheme string (``"per_tensor_affine"``; ``"torch.per_tensor_affine"`` also reads)."""
    name = str(qscheme).removeprefix("torch.")
    if name not in _PER_TENSOR + _PER_CHANNEL:
        raise ValueError(f"{op}: qscheme must be one of {_PER_TENSOR + _PER_CHANNEL}, "
                         f"got {qscheme!r}")
    return name


def _check_family(qscheme, per_channel: bool, op: str) -> None:
    """A known qscheme of the family the observer supports (else NotImplementedError, as
    torch)."""
    q = _as_qscheme(qscheme, op)
    if per_channel != is_per_channel(q):
        want = "per_channel_affine and per_channel_symmetric" if per_channel else \
            "per_tensor_affine and per_tensor_symmetric"
        raise NotImplementedError(f"{op}'s qscheme only supports {want}, got {qscheme!r}")


def is_per_tensor(qscheme) -> bool:
    return qscheme in _PER_TENSOR


def is_per_channel(qscheme) -> bool:
    return qscheme in _PER_CHANNEL


def is_symmetric(qscheme) -> bool:
    return qscheme in (per_tensor_symmetric, per_channel_symmetric)


def calculate_qmin_qmax(quant_min, quant_max, has_customized_qrange: bool, dtype: QDType,
                        reduce_range: bool) -> tuple[int, int]:
    """The integer range ``[qmin, qmax]`` an observer quantizes to (torch's rules).

    Without a custom range it is the dtype's (quint8 0..255, qint8 -128..127) or, with
    ``reduce_range``, one bit less (0..127, -64..63), which keeps x86's 16-bit
    intermediate sums of u8*s8 products from overflowing. A custom range is halved by
    ``reduce_range`` too (``qmin // 2, qmax // 2``).
    """
    if has_customized_qrange:
        span = quant_max - quant_min + 1
        limit = 2 ** 32 if dtype == qint32 else 256
        if dtype in (qint8, qint32) and not 0 < span <= limit:
            raise ValueError(f"quantization range [{quant_min}, {quant_max}] must be positive "
                             f"and hold at most {limit} values for {dtype}")
        if reduce_range:
            quant_min, quant_max = quant_min // 2, quant_max // 2
        return quant_min, quant_max
    if dtype == qint8:
        return (-64, 63) if reduce_range else (-128, 127)
    if dtype == quint8:
        return (0, 127) if reduce_range else (0, 255)
    return qint32.qmin, qint32.qmax


# --------------------------------------------------------------------- factories
class _PartialWrapper:
    """A reusable observer constructor with some arguments bound (what ``with_args`` returns).

    Calling it builds a new, independent observer each time; ``with_args`` binds more.
    ``with_callable_args`` binds arguments whose values are computed at each construction.
    """

    def __init__(self, p: functools.partial):
        self.p = p
        self.callable_args: dict = {}

    def __call__(self, *args, **kwargs):
        for name, fn in self.callable_args.items():
            kwargs.setdefault(name, fn())
        return self.p(*args, **kwargs)

    def with_args(self, **kwargs) -> "_PartialWrapper":
        return _with_args(self, **kwargs)

    def with_callable_args(self, **kwargs) -> "_PartialWrapper":
        out = _PartialWrapper(self.p)
        out.callable_args = {**self.callable_args, **kwargs}
        return out

    def __repr__(self) -> str:
        return repr(self.p) + repr(self.callable_args)


def _with_args(cls_or_self, **kwargs) -> _PartialWrapper:
    return _PartialWrapper(functools.partial(cls_or_self, **kwargs))


def _with_callable_args(cls_or_self, **kwargs) -> _PartialWrapper:
    return _PartialWrapper(functools.partial(cls_or_self)).with_callable_args(**kwargs)


def _array(x, op: str) -> np.ndarray:
    if isinstance(x, Tensor):
        return x._data
    if isinstance(x, np.ndarray):
        return x
    raise TypeError(f"{op}: expected a Tensor, got {type(x).__name__}")


def _check_finite(a: np.ndarray, op: str) -> None:
    if not np.isfinite(a).all():
        n_nan, n_inf = int(np.isnan(a).sum()), int(np.isinf(a).sum())
        raise ValueError(f"{op}: input of shape {a.shape} has {n_nan} NaN and {n_inf} inf "
                         f"values; a quantization range must be finite")


# ----------------------------------------------------------------------- observers
class ObserverBase(Module):
    """Base of all observers: ``forward(x)`` records statistics and returns ``x``;
    ``calculate_qparams()`` returns the quantization parameters."""

    def __init__(self, dtype, is_dynamic: bool = False):
        super().__init__()
        self.dtype = dtype
        self.is_dynamic = is_dynamic

    def forward(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    def calculate_qparams(self, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError

    with_args = classmethod(_with_args)
    with_callable_args = classmethod(_with_callable_args)


class UniformQuantizationObserverBase(ObserverBase):
    """Shared arguments and the scale/zero-point formulas of uniform (affine or symmetric)
    observers.

    Args:
        dtype: ``quint8`` (default) or ``qint8`` (``qint32`` too).
        qscheme: ``per_tensor_affine`` (default), ``per_tensor_symmetric``,
            ``per_channel_affine`` or ``per_channel_symmetric``.
        reduce_range: quantize to one bit less (see :func:`calculate_qmin_qmax`).
        quant_min, quant_max: a custom integer range (both or neither; must include 0).
        eps: smallest scale (float32 epsilon by default), kept in the buffer ``eps``.
    """

    def __init__(self, dtype=quint8, qscheme=per_tensor_affine, reduce_range: bool = False,
                 quant_min: int | None = None, quant_max: int | None = None,
                 factory_kwargs=None, eps: float = _EPS, is_dynamic: bool = False, **kwargs):
        name = type(self).__name__
        if kwargs:
            raise TypeError(f"{name}: unexpected arguments {sorted(kwargs)}")
        super().__init__(as_qdtype(dtype, name), is_dynamic=is_dynamic)
        self.qscheme = _as_qscheme(qscheme, name)
        self.reduce_range = bool(reduce_range)
        self.register_buffer("eps", Tensor._make(np.array([eps], _F32)))
        self.has_customized_qrange = quant_min is not None and quant_max is not None
        if self.has_customized_qrange:
            if not quant_min <= 0 <= quant_max:
                raise ValueError(f"{name}: the quantization range [quant_min, quant_max] must "
                                 f"include 0, got [{quant_min}, {quant_max}]")
            if quant_min >= quant_max:
                raise ValueError(f"{name}: quant_min must be < quant_max, got "
                                 f"[{quant_min}, {quant_max}]")
        self.quant_min, self.quant_max = calculate_qmin_qmax(
            quant_min, quant_max, self.has_customized_qrange, self.dtype, self.reduce_range)

    def _check_symmetric_reduce(self) -> None:
        if is_symmetric(self.qscheme) and self.reduce_range and self.dtype == quint8:
            raise NotImplementedError(f"{type(self).__name__}: cannot reduce range for "
                                      "symmetric quantization with quint8")

    def _calculate_qparams(self, min_val: np.ndarray, max_val: np.ndarray):
        """``(scale, zero_point)`` Tensors for float32 ``min_val``/``max_val`` (a scalar or one
        per channel); see the module docstring for the formulas. Before any observation:
        ``scale = 1``, ``zero_point = 0``."""
        min_val, max_val = np.asarray(min_val, _F32), np.asarray(max_val, _F32)
        if not _valid_min_max(min_val, max_val, type(self).__name__):
            return Tensor._make(np.array([1.0], _F32)), Tensor._make(np.array([0], np.int64))
        qmin, qmax = self.quant_min, self.quant_max
        eps = self.eps._data
        min_neg = np.minimum(min_val, _F32(0))
        max_pos = np.maximum(max_val, _F32(0))
        if is_symmetric(self.qscheme):
            max_pos = np.maximum(-min_neg, max_pos)
            scale = np.maximum(max_pos / _F32((qmax - qmin) / 2), eps)
            mid = 0
            if self.dtype == quint8:
                mid = (qmin + qmax) // 2 if self.has_customized_qrange else 128
            zero_point = np.full(min_neg.shape, mid, np.int64)  # torch: int64 here
        elif self.qscheme == per_channel_affine_float_qparams:
            # embeddings: x_q = round((x - min) / scale), a float zero point -min / scale
            scale = (max_val - min_val) / _F32(qmax - qmin)
            scale = np.where(scale > eps, scale, _F32(1))
            zero_point = -min_val / scale
        else:
            scale = np.maximum((max_pos - min_neg) / _F32(qmax - qmin), eps)
            # torch: int32 here (round half to even, then clamp)
            zero_point = qmin - np.round(min_neg / scale).astype(np.int32)
            zero_point = np.clip(zero_point, qmin, qmax).astype(np.int32)
        scale = np.atleast_1d(scale.astype(_F32))
        zero_point = np.atleast_1d(zero_point)
        return Tensor._make(scale), Tensor._make(zero_point)

    def reset_min_max_vals(self):
        raise NotImplementedError(f"{type(self).__name__}: cannot reset min/max values")

    def _set(self, name: str, value) -> None:
        """Overwrite a float32 buffer's values in place (shared with state_dict views)."""
        self._buffers[name]._data = np.array(value, _F32)


def _valid_min_max(min_val: np.ndarray, max_val: np.ndarray, op: str) -> bool:
    if min_val.size == 0 or max_val.size == 0 or (
            min_val.ndim == 0 and min_val == np.inf and max_val == -np.inf):
        warnings.warn(f"{op}: must run observer before calling calculate_qparams. "
                      "Returning default values.", stacklevel=3)
        return False
    if np.any(min_val > max_val):
        raise ValueError(f"{op}: min {min_val} should be less than max {max_val}")
    return True


class MinMaxObserver(UniformQuantizationObserverBase):
    """Observes the running minimum and maximum of everything it has seen.

    ``min = min(min, min(X))``, ``max = max(max, max(X))`` (buffers ``min_val``,
    ``max_val``, float32, starting at +inf/-inf); qparams as in the module docstring.
    Args as :class:`UniformQuantizationObserverBase` (per-tensor qschemes only).
    """

    def __init__(self, dtype=quint8, qscheme=per_tensor_affine, reduce_range: bool = False,
                 quant_min=None, quant_max=None, factory_kwargs=None, eps: float = _EPS,
                 is_dynamic: bool = False, **kwargs):
        _check_family(qscheme, False, type(self).__name__)
        super().__init__(dtype, qscheme, reduce_range, quant_min, quant_max, factory_kwargs,
                         eps, is_dynamic, **kwargs)
        self.register_buffer("min_val", Tensor._make(np.array(np.inf, _F32)))
        self.register_buffer("max_val", Tensor._make(np.array(-np.inf, _F32)))
        self._check_symmetric_reduce()

    def _observed_range(self, x) -> tuple[np.float32, np.float32] | None:
        a = _array(x, type(self).__name__)
        if a.size == 0:
            return None
        _check_finite(a, type(self).__name__)
        a = a.astype(_F32, copy=False)
        return a.min(), a.max()

    def forward(self, x_orig):
        """Records the running minimum and maximum of ``x_orig``; returns it unchanged."""
        seen = self._observed_range(x_orig)
        if seen is not None:
            self._set("min_val", np.minimum(seen[0], self.min_val._data))
            self._set("max_val", np.maximum(seen[1], self.max_val._data))
        return x_orig

    def calculate_qparams(self):
        return self._calculate_qparams(self.min_val._data, self.max_val._data)

    def extra_repr(self) -> str:
        return f"min_val={float(self.min_val._data)}, max_val={float(self.max_val._data)}"

    def reset_min_max_vals(self) -> None:
        self._set("min_val", np.inf)
        self._set("max_val", -np.inf)


class MovingAverageMinMaxObserver(MinMaxObserver):
    """Observes moving averages of the minimum and maximum.

    The first batch sets ``min``/``max``; later ones move them by
    ``min = min + c * (min(X) - min)`` (same for max) with ``c = averaging_constant``
    (0.01 by default; 1 keeps only the last batch). qparams as :class:`MinMaxObserver`.
    """

    def __init__(self, averaging_constant: float = 0.01, dtype=quint8,
                 qscheme=per_tensor_affine, reduce_range: bool = False, quant_min=None,
                 quant_max=None, eps: float = _EPS, is_dynamic: bool = False, **kwargs):
        _check_family(qscheme, False, type(self).__name__)
        if is_dynamic and averaging_constant != 1:
            raise NotImplementedError(f"{type(self).__name__} doesn't support dynamic "
                                      f"quantization for averaging constant {averaging_constant}")
        super().__init__(dtype=dtype, qscheme=qscheme, reduce_range=reduce_range,
                         quant_min=quant_min, quant_max=quant_max, eps=eps,
                         is_dynamic=is_dynamic, **kwargs)
        self.averaging_constant = averaging_constant

    def forward(self, x_orig):
        seen = self._observed_range(x_orig)
        if seen is None:
            return x_orig
        lo, hi = self.min_val._data, self.max_val._data
        if lo == np.inf and hi == -np.inf:
            lo, hi = seen
        else:
            c = _F32(self.averaging_constant)
            lo = lo + c * (seen[0] - lo)
            hi = hi + c * (seen[1] - hi)
        self._set("min_val", lo)
        self._set("max_val", hi)
        return x_orig


class PerChannelMinMaxObserver(UniformQuantizationObserverBase):
    """Running minimum and maximum of each slice along ``ch_axis`` (default 0: the output
    channels of a conv or linear weight), giving one scale and zero point per channel.

    Buffers ``min_val``/``max_val`` have shape ``(C,)`` once observed (``(0,)`` before).
    ``PerChannelMinMaxObserver(dtype=qint8, qscheme=per_channel_symmetric)`` is the usual
    weight observer: ``scale_c = max|W_c| / 127.5``, ``zero_point_c = 0``.
    """

    _resizable_buffers = ("min_val", "max_val")  # load_state_dict takes the saved shape

    def __init__(self, ch_axis: int = 0, dtype=quint8, qscheme=per_channel_affine,
                 reduce_range: bool = False, quant_min=None, quant_max=None,
                 factory_kwargs=None, eps: float = _EPS, is_dynamic: bool = False, **kwargs):
        _check_family(qscheme, True, type(self).__name__)
        if is_dynamic:
            raise NotImplementedError(f"{type(self).__name__} doesn't support dynamic quantization")
        super().__init__(dtype, qscheme, reduce_range, quant_min, quant_max, factory_kwargs,
                         eps, is_dynamic, **kwargs)
        self.ch_axis = ch_axis
        self.register_buffer("min_val", Tensor._make(np.zeros(0, _F32)))
        self.register_buffer("max_val", Tensor._make(np.zeros(0, _F32)))
        self._check_symmetric_reduce()

    def _channel_range(self, x) -> tuple[np.ndarray, np.ndarray] | None:
        name = type(self).__name__
        a = _array(x, name)
        if a.size == 0:
            return None
        if not -a.ndim <= self.ch_axis < a.ndim:
            raise ValueError(f"{name}: ch_axis={self.ch_axis} is out of range for an input of "
                             f"shape {a.shape}")
        _check_finite(a, name)
        rows = np.moveaxis(a.astype(_F32, copy=False), self.ch_axis, 0).reshape(a.shape[self.ch_axis], -1)
        lo, hi = rows.min(axis=1), rows.max(axis=1)
        if self.min_val._data.size and self.min_val._data.shape != lo.shape:
            raise ValueError(f"{name}: input of shape {a.shape} has {lo.size} channels along "
                             f"axis {self.ch_axis}, but {self.min_val._data.size} were observed before")
        return lo, hi

    def forward(self, x_orig):
        seen = self._channel_range(x_orig)
        if seen is not None:
            if self.min_val._data.size == 0:
                lo, hi = seen
            else:
                lo = np.minimum(seen[0], self.min_val._data)
                hi = np.maximum(seen[1], self.max_val._data)
            self._set("min_val", lo)
            self._set("max_val", hi)
        return x_orig

    def calculate_qparams(self):
        return self._calculate_qparams(self.min_val._data, self.max_val._data)

    def extra_repr(self) -> str:
        return f"min_val={self.min_val._data}, max_val={self.max_val._data}"

    def reset_min_max_vals(self) -> None:
        self._set("min_val", np.zeros(0, _F32))
        self._set("max_val", np.zeros(0, _F32))


class MovingAveragePerChannelMinMaxObserver(PerChannelMinMaxObserver):
    """Per-channel moving averages ``min_c = min_c + c * (min(X_c) - min_c)`` (and max);
    the first batch sets them. ``averaging_constant`` c defaults to 0.01."""

    def __init__(self, averaging_constant: float = 0.01, ch_axis: int = 0, dtype=quint8,
                 qscheme=per_channel_affine, reduce_range: bool = False, quant_min=None,
                 quant_max=None, eps: float = _EPS, is_dynamic: bool = False, **kwargs):
        super().__init__(ch_axis=ch_axis, dtype=dtype, qscheme=qscheme,
                         reduce_range=reduce_range, quant_min=quant_min, quant_max=quant_max,
                         eps=eps, is_dynamic=is_dynamic, **kwargs)
        self.averaging_constant = averaging_constant

    def forward(self, x_orig):
        seen = self._channel_range(x_orig)
        if seen is None:
            return x_orig
        if self.min_val._data.size == 0:
            lo, hi = seen
        else:
            c = _F32(self.averaging_constant)
            lo, hi = self.min_val._data, self.max_val._data
            lo = lo + c * (seen[0] - lo)
            hi = hi + c * (seen[1] - hi)
        self._set("min_val", lo)
        self._set("max_val", hi)
        return x_orig


class HistogramObserver(UniformQuantizationObserverBase):
    """Keeps a histogram of everything observed and picks the range that minimises the L2
    quantization error, which clips rare outliers instead of spending levels on them.

    1. The first batch is binned into ``bins`` (2048) equal bins over its ``[min, max]``.
       A later batch that widens the range is binned over the new range, and the old
       histogram is re-binned onto it (each old bin split into 16 parts, each part's mass
       moved to the new bin holding its midpoint) and added.
    2. ``calculate_qparams`` trims the histogram's tails step by step (torch's
       ``_non_linear_param_search``: quantile steps of 1e-5, moving the side that drops
       more bins) while the error of quantizing the kept range into ``2**8`` levels falls,
       then computes scale and zero point from the kept ``[new_min, new_max]`` as
       :class:`MinMaxObserver` does.

    Infinite inputs are ignored with a warning (as torch); NaN is an error.
    """

    def __init__(self, bins: int = 2048, dtype=quint8, qscheme=per_tensor_affine,
                 reduce_range: bool = False, quant_min=None, quant_max=None,
                 factory_kwargs=None, eps: float = _EPS, is_dynamic: bool = False, **kwargs):
        _check_family(qscheme, False, type(self).__name__)
        if is_dynamic:
            raise NotImplementedError(f"{type(self).__name__} doesn't support dynamic quantization")
        super().__init__(dtype, qscheme, reduce_range, quant_min, quant_max, factory_kwargs,
                         eps, is_dynamic, **kwargs)
        if not isinstance(bins, (int, np.integer)) or bins < 1:
            raise ValueError(f"HistogramObserver: bins must be a positive int, got {bins!r}")
        self.bins = int(bins)
        self.register_buffer("histogram", Tensor._make(np.zeros(self.bins, _F32)))
        self.register_buffer("min_val", Tensor._make(np.array(np.inf, _F32)))
        self.register_buffer("max_val", Tensor._make(np.array(-np.inf, _F32)))
        self.dst_nbins = 2 ** (8 if self.dtype != qint32 else 32)
        self.upsample_rate = 16

    def forward(self, x_orig):
        a = _array(x_orig, "HistogramObserver")
        if a.size == 0:
            return x_orig
        if np.isnan(a).any():
            raise ValueError(f"HistogramObserver: input of shape {a.shape} has "
                             f"{int(np.isnan(a).sum())} NaN values")
        if a.dtype.kind != "f":
            a = a.astype(_F32)
        x_min, x_max = a.min(), a.max()
        if np.isinf(x_min) or np.isinf(x_max):
            warnings.warn("HistogramObserver: inf detected in input tensor, ignoring those "
                          "values", stacklevel=2)
            a = a[np.isfinite(a)]
            if a.size == 0:
                return x_orig
            x_min, x_max = a.min(), a.max()
        cur_min, cur_max = self.min_val._data[()], self.max_val._data[()]
        if cur_min == np.inf or cur_max == -np.inf:
            self._set("min_val", x_min)
            self._set("max_val", x_max)
            self._set("histogram", _histogram.histc(a, self.bins, float(x_min), float(x_max)))
            return x_orig
        # 0-d float32 vs the input's dtype: the wider one wins, as torch promotes
        new_min, new_max = np.minimum(cur_min, x_min), np.maximum(cur_max, x_max)
        update = _histogram.histc(a, self.bins, float(new_min), float(new_max))
        hist = self.histogram._data
        if new_min == cur_min and new_max == cur_max:
            self._set("histogram", hist + update)
        else:
            self._set("histogram", self._combine_histograms(hist, cur_min, cur_max, update,
                                                            new_min, new_max))
            self._set("min_val", new_min)
            self._set("max_val", new_max)
        return x_orig

    def _combine_histograms(self, orig_hist, orig_min, orig_max, update_hist, update_min,
                            update_max) -> np.ndarray:
        if update_min == orig_min and update_max == orig_max:
            return orig_hist + update_hist
        if orig_min == orig_max:  # all old values sat at one point: re-bin that point
            point = np.array([orig_min], _F32)
            moved = _histogram.histc(point, self.bins, float(update_min), float(update_max))
            return moved * _histogram.sum_f32(orig_hist) + update_hist
        moved = _histogram.upscale_histogram(orig_hist, orig_min, orig_max, update_min,
                                             update_max, self.upsample_rate)
        return update_hist + moved

    def calculate_qparams(self):
        if self.min_val._data == np.inf and self.max_val._data == -np.inf:
            warnings.warn("HistogramObserver: must run observer before calling "
                          "calculate_qparams. Returning default scale and zero point",
                          stacklevel=2)
            return Tensor._make(np.array([1.0], _F32)), Tensor._make(np.array([0], np.int64))
        if self.histogram._data.size != self.bins:
            raise ValueError(f"HistogramObserver: the histogram has {self.histogram._data.size} "
                             f"bins but the observer was built with bins={self.bins}")
        new_min, new_max = _histogram.non_linear_param_search(
            self.histogram._data, self.min_val._data, self.max_val._data, self.dst_nbins)
        return self._calculate_qparams(new_min, new_max)

    def extra_repr(self) -> str:
        return f"min_val={float(self.min_val._data)}, max_val={float(self.max_val._data)}"


class FixedQParamsObserver(ObserverBase):
    """Fixed ``scale`` and ``zero_point`` (for ops with a known output range, e.g. sigmoid's
    [0, 1] -> scale 1/256, zero point 0); observes nothing."""

    def __init__(self, scale: float, zero_point: int, dtype=quint8, qscheme=per_tensor_affine,
                 quant_min: int = 0, quant_max: int = 255, is_dynamic: bool = False, **kwargs):
        if is_dynamic:
            raise NotImplementedError("FixedQParamsObserver doesn't support dynamic quantization")
        super().__init__(as_qdtype(dtype, "FixedQParamsObserver"), is_dynamic=is_dynamic)
        self.quant_min, self.quant_max = quant_min, quant_max
        self.qscheme = _as_qscheme(qscheme, "FixedQParamsObserver")
        self.register_buffer("scale", Tensor._make(np.array([scale], _F32)))
        self.register_buffer("zero_point", Tensor._make(np.array([zero_point], np.int32)))

    def forward(self, X):
        return X

    def calculate_qparams(self):
        return self.scale, self.zero_point


class PlaceholderObserver(ObserverBase):
    """Observes nothing; carries ``dtype`` (and the other settings) to ``convert``, e.g. for
    float16 or dynamic quantization. ``calculate_qparams`` is an error."""

    def __init__(self, dtype=np.float32, custom_op_name: str = "", compute_dtype=None,
                 quant_min=None, quant_max=None, qscheme=None, eps=None,
                 is_dynamic: bool = False):
        super().__init__(dtype=dtype, is_dynamic=is_dynamic or bool(compute_dtype))
        self.qscheme = per_tensor_affine if qscheme is None else _as_qscheme(qscheme, "PlaceholderObserver")
        self.quant_min, self.quant_max = quant_min, quant_max
        self.eps = _EPS if eps is None else eps
        self.custom_op = custom_op_name

    def forward(self, x):
        return x

    def extra_repr(self) -> str:
        return f"dtype={self.dtype}, is_dynamic={self.is_dynamic}"

    def calculate_qparams(self):
        raise RuntimeError("calculate_qparams should not be called for PlaceholderObserver")


class NoopObserver(ObserverBase):
    """Observes nothing and passes ``dtype`` on (default float16); ``calculate_qparams`` is
    an error."""

    def __init__(self, dtype=np.float16, custom_op_name: str = ""):
        super().__init__(dtype=dtype, is_dynamic=False)
        self.custom_op = custom_op_name

    def forward(self, x):
        return x

    def calculate_qparams(self):
        raise RuntimeError("calculate_qparams should not be called for NoopObserver")


class RecordingObserver(ObserverBase):
    """Debugging: keeps a copy of every tensor it sees in ``tensor_val``."""

    def __init__(self, dtype=quint8):
        super().__init__(dtype=dtype, is_dynamic=False)
        self.tensor_val: list = []

    def forward(self, x):
        self.tensor_val.append(Tensor._make(_array(x, "RecordingObserver").copy()))
        return x

    def get_tensor_value(self) -> list:
        return self.tensor_val

    def calculate_qparams(self):
        raise RuntimeError("calculate_qparams should not be called for RecordingObserver")


# torch's preset constructors (same classes and arguments)
default_observer = MinMaxObserver.with_args(quant_min=0, quant_max=127)
default_placeholder_observer = PlaceholderObserver
default_debug_observer = RecordingObserver
default_weight_observer = MinMaxObserver.with_args(dtype=qint8, qscheme=per_tensor_symmetric)
weight_observer_range_neg_127_to_127 = MinMaxObserver.with_args(
    dtype=qint8, qscheme=per_tensor_symmetric, quant_min=-127, quant_max=127, eps=2 ** -12)
default_histogram_observer = HistogramObserver.with_args(quant_min=0, quant_max=127)
default_per_channel_weight_observer = PerChannelMinMaxObserver.with_args(
    dtype=qint8, qscheme=per_channel_symmetric)
per_channel_weight_observer_range_neg_127_to_127 = PerChannelMinMaxObserver.with_args(
    dtype=qint8, qscheme=per_channel_symmetric, quant_min=-127, quant_max=127, eps=2 ** -12)
default_fixed_qparams_range_neg1to1_observer = FixedQParamsObserver.with_args(
    scale=2.0 / 256.0, zero_point=128, dtype=quint8, quant_min=0, quant_max=255)
default_fixed_qparams_range_0to1_observer = FixedQParamsObserver.with_args(
    scale=1.0 / 256.0, zero_point=0, dtype=quint8, quant_min=0, quant_max=255)

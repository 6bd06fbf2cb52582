"""Fake quantization: quantize-then-dequantize in float, for quantization-aware training.

``fake_quant(x) = (clamp(round(x / scale) + zero_point, qmin, qmax) - zero_point) * scale``

rounds ``x`` to the nearest of the ``qmax - qmin + 1`` representable values, so the
forward pass sees the error int8 inference will make. ``round`` is half-to-even and, as in
torch, ``x / scale`` is computed as ``x * (1 / scale)`` with ``1 / scale`` in float32.
The gradient is the straight-through estimator: ``dL/dx = dL/dy`` where
``qmin <= round(x / scale) + zero_point <= qmax`` and 0 where the value was clamped.

:class:`FakeQuantize` wraps an observer (``activation_post_process``) and keeps the
current ``scale`` and ``zero_point`` in buffers; :class:`FusedMovingAvgObsFakeQuantize`
(what ``get_default_qat_qconfig`` uses) does the same with torch's fused kernel's
arithmetic (:func:`choose_qparams`). Names, arguments and defaults are torch's.
"""
from __future__ import annotations

import numpy as np

from ..autograd.function import Function
from ..nn.modules.module import Module
from ..tensor import Tensor
from .dtypes import as_qdtype, qint8, quint8
from .observer import (
    FixedQParamsObserver,
    HistogramObserver,
    MovingAverageMinMaxObserver,
    MovingAveragePerChannelMinMaxObserver,
    _check_finite,
    _with_args,
    default_fixed_qparams_range_0to1_observer,
    default_fixed_qparams_range_neg1to1_observer,
    is_per_channel,
    is_per_tensor,
    is_symmetric,
    per_channel_affine_float_qparams,
    per_channel_symmetric,
    per_tensor_affine,
    per_tensor_symmetric,
)

__all__ = [
    "fake_quantize_per_tensor_affine", "fake_quantize_per_channel_affine", "choose_qparams",
    "FakeQuantizeBase", "FakeQuantize", "FixedQParamsFakeQuantize",
    "FusedMovingAvgObsFakeQuantize",
    "disable_fake_quant", "enable_fake_quant", "disable_observer", "enable_observer",
    "default_fake_quant", "default_weight_fake_quant", "default_per_channel_weight_fake_quant",
    "default_histogram_fake_quant", "default_fused_act_fake_quant", "default_fused_wt_fake_quant",
    "default_fused_per_channel_wt_fake_quant", "fused_wt_fake_quant_range_neg_127_to_127",
    "fused_per_channel_wt_fake_quant_range_neg_127_to_127",
    "default_fixed_qparams_range_neg1to1_fake_quant",
    "default_fixed_qparams_range_0to1_fake_quant",
]

_F32 = np.float32
_INT64_MIN = np.iinfo(np.int64).min


# ------------------------------------------------------------------- the operation
def _fake_quant(x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray, qmin: int,
                qmax: int, f32_output: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Fake-quantized ``x`` and the mask of values inside ``[qmin, qmax]`` (``scale`` and
    ``zero_point`` broadcast against ``x``). Float32 inputs use float32 arithmetic;
    ``f32_output`` rounds ``(q - zero_point) * scale`` to float32 even for float64 inputs
    (torch's per-tensor kernel does, its per-channel kernel does not)."""
    inv_scale = _F32(1) / scale.astype(_F32)
    wide = x.dtype == np.float64
    v = np.rint(x * (inv_scale.astype(np.float64) if wide else inv_scale))
    v = v + zero_point.astype(x.dtype)
    # a value the int64 conversion cannot hold (inf, nan, |v| >= 2^63) becomes INT64_MIN on
    # x86, which is what torch's kernel then clamps: keep that behaviour, without warnings
    ok = np.isfinite(v) & (np.abs(v) < 2.0 ** 63)
    q = np.where(ok, v, 0).astype(np.int64)
    q[~ok] = _INT64_MIN
    mask = (q >= qmin) & (q <= qmax)
    deq = np.clip(q, qmin, qmax) - zero_point.astype(np.int64)
    if f32_output:
        return (deq.astype(_F32) * scale.astype(_F32)).astype(x.dtype), mask
    return deq.astype(x.dtype) * scale.astype(x.dtype), mask


def _check_range(op: str, quant_min: int, quant_max: int) -> None:
    if quant_min > quant_max:
        raise RuntimeError(f"{op}: quant_min ({quant_min}) should be less than or equal to "
                           f"quant_max ({quant_max})")


class _FakeQuantizePerTensor(Function):
    def forward(self, x, scale, zero_point, quant_min, quant_max):
        out, self.mask = _fake_quant(x, np.asarray(scale), np.asarray(zero_point),
                                     quant_min, quant_max, f32_output=True)
        return out

    def backward(self, g):
        # straight-through estimator: pass the gradient where the value was not clamped
        return np.where(self.mask, g, 0).astype(g.dtype), None, None, None, None


class _FakeQuantizePerChannel(Function):
    def forward(self, x, scale, zero_point, axis, quant_min, quant_max):
        shape = [1] * x.ndim
        shape[axis] = -1
        out, self.mask = _fake_quant(x, np.asarray(scale).reshape(shape),
                                     np.asarray(zero_point).reshape(shape), quant_min, quant_max)
        return out

    def backward(self, g):
        return np.where(self.mask, g, 0).astype(g.dtype), None, None, None, None, None


def _qparam(value, op: str, arg: str, kind: str) -> np.ndarray:
    a = value._data if isinstance(value, Tensor) else np.asarray(value)
    if a.size != 1:
        raise RuntimeError(f"{op}: {arg} must hold one value for per-tensor fake quantization, "
                           f"got shape {a.shape}")
    if kind == "i" and a.dtype.kind == "f":
        a = np.rint(a)
    return a.reshape(()).astype(np.int64 if kind == "i" else _F32)


def _float_input(input, op: str) -> Tensor:
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(input).__name__}")
    if input.dtype.kind != "f":
        raise TypeError(f"{op}: input must be a float tensor, got dtype {input.dtype}")
    return input


def fake_quantize_per_tensor_affine(input: Tensor, scale, zero_point, quant_min: int,
                                    quant_max: int) -> Tensor:
    """``(clamp(round(x / scale) + zero_point, quant_min, quant_max) - zero_point) * scale``
    with one ``scale`` (float or 1-element Tensor) and ``zero_point`` for the whole tensor.

    Differentiable in ``input`` only (straight-through estimator, 0 where clamped).
    Shape: output as input.
    """
    op = "fake_quantize_per_tensor_affine"
    input = _float_input(input, op)
    _check_range(op, quant_min, quant_max)
    s, z = _qparam(scale, op, "scale", "f"), _qparam(zero_point, op, "zero_point", "i")
    if not quant_min <= z <= quant_max:
        raise RuntimeError(f"{op}: zero_point ({int(z)}) must be between quant_min "
                           f"({quant_min}) and quant_max ({quant_max})")
    return _FakeQuantizePerTensor.apply(input, s, z, int(quant_min), int(quant_max))


def fake_quantize_per_channel_affine(input: Tensor, scale, zero_point, axis: int,
                                     quant_min: int, quant_max: int) -> Tensor:
    """Fake quantization with one ``scale[c]``/``zero_point[c]`` per slice ``c`` along
    ``axis`` (1-D, of length ``input.shape[axis]``). Gradient as
    :func:`fake_quantize_per_tensor_affine`."""
    op = "fake_quantize_per_channel_affine"
    input = _float_input(input, op)
    _check_range(op, quant_min, quant_max)
    s = scale._data if isinstance(scale, Tensor) else np.asarray(scale)
    z = zero_point._data if isinstance(zero_point, Tensor) else np.asarray(zero_point)
    if not 0 <= axis < input.ndim:
        raise RuntimeError(f"{op}: axis must be between 0 and {input.ndim - 1} for an input of "
                           f"shape {tuple(input.shape)}, got {axis}")
    n = input.shape[axis]
    if s.ndim != 1 or z.ndim != 1 or s.shape != (n,) or z.shape != (n,):
        raise RuntimeError(f"{op}: scale {s.shape} and zero_point {z.shape} must be 1-D of "
                           f"length input.shape[{axis}] = {n} (input shape {tuple(input.shape)})")
    if z.dtype.kind == "f":
        z = np.rint(z)
    z = z.astype(np.int64)
    if (z < quant_min).any() or (z > quant_max).any():
        raise RuntimeError(f"{op}: zero_point must be between quant_min ({quant_min}) and "
                           f"quant_max ({quant_max}), got {z}")
    return _FakeQuantizePerChannel.apply(input, s.astype(_F32), z, int(axis), int(quant_min),
                                         int(quant_max))


def choose_qparams(min_val: float, max_val: float, qmin: int, qmax: int,
                   preserve_sparsity: bool = False) -> tuple[np.float32, int]:
    """``(scale, zero_point)`` for the range ``[min_val, max_val]`` as torch's fused
    observe-and-fake-quantize kernel picks them (fbgemm's ``ChooseQuantizationParams``).

    The range is widened to include 0; ``scale = (max - min) / (qmax - qmin)`` in float64
    (0.1 if that is 0), at least ``6.1e-5`` (then the range is stretched to match);
    ``zero_point`` solves ``qmin = min / scale + zp`` (or the qmax equation, whichever
    loses less precision), rounded half to even and clamped. With ``preserve_sparsity``
    (symmetric schemes) and a range straddling 0, the range is made symmetric around 0
    with ``scale = max(|min| / 128, max / 127)`` (for 8 bits) and ``zero_point`` is the
    middle of ``[qmin, qmax]``. Note this differs from the observers' own formulas.
    """
    f = _F32
    mn, mx = f(min_val), f(max_val)
    if not mn <= mx:
        raise RuntimeError(f"choose_qparams: min ({mn}) should be less than or equal to "
                           f"max ({mx}); was the observer ever enabled?")
    if mn < 0 and mx > 0 and preserve_sparsity:
        sym_qmin = -((qmax - qmin) // 2 + 1)
        sym_qmax = (qmax - qmin) // 2
        max_scale = float(max(abs(f(mn / f(sym_qmin))), abs(f(mx / f(sym_qmax)))))
        mn, mx = f(max_scale * sym_qmin), f(max_scale * sym_qmax)
    mn, mx = min(mn, f(0)), max(mx, f(0))
    if not qmin < qmax:
        raise RuntimeError(f"choose_qparams: qmin ({qmin}) should be less than qmax ({qmax})")
    scale = (float(mx) - float(mn)) / (qmax - qmin)
    if f(scale) == 0 or np.isinf(f(1) / f(scale)):
        scale = 0.1
    small = f(6.1e-5)  # fp16's smallest normal: scales below it are raised to it
    if scale < float(small):
        org = f(scale)
        scale = float(small)
        if mn == 0:
            mx = f(small * f(qmax - qmin))
        elif mx == 0:
            mn = f(-small * f(qmax - qmin))
        else:
            amp = f(small / org)
            mn, mx = f(mn * amp), f(mx * amp)
    zp_from_min = qmin - float(mn) / scale
    zp_from_max = qmax - float(mx) / scale
    err_min = abs(qmin) - abs(float(mn) / scale)
    err_max = abs(qmax) - abs(float(mx) / scale)
    initial = zp_from_min if err_min < err_max else zp_from_max
    if mn < 0 and mx > 0 and preserve_sparsity:
        initial = (qmin + qmax) / 2
    if initial < qmin:
        zp = qmin
    elif initial > qmax:
        zp = qmax
    else:
        zp = int(np.rint(initial))
    return f(scale), zp


# ----------------------------------------------------------------------- modules
class FakeQuantizeBase(Module):
    """Base of fake-quantize modules: the switches ``fake_quant_enabled`` and
    ``observer_enabled`` (uint8 buffers ``[1]``/``[0]``, as torch) and their setters."""

    def __init__(self):
        super().__init__()
        self.register_buffer("fake_quant_enabled", Tensor._make(np.array([1], np.uint8)))
        self.register_buffer("observer_enabled", Tensor._make(np.array([1], np.uint8)))

    def forward(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    def calculate_qparams(self, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError

    def enable_fake_quant(self, enabled: bool = True) -> None:
        self.fake_quant_enabled._data[0] = 1 if enabled else 0

    def disable_fake_quant(self) -> None:
        self.enable_fake_quant(False)

    def enable_observer(self, enabled: bool = True) -> None:
        self.observer_enabled._data[0] = 1 if enabled else 0

    def disable_observer(self) -> None:
        self.enable_observer(False)

    with_args = classmethod(_with_args)


class FakeQuantize(FakeQuantizeBase):
    """Observe, then fake-quantize (see the module docstring for the formula).

    While ``observer_enabled``, each call feeds ``x`` to the observer
    ``activation_post_process`` and copies its ``calculate_qparams()`` into the buffers
    ``scale`` (float32) and ``zero_point`` (int32); while ``fake_quant_enabled`` the output
    is fake-quantized with them (per channel along ``ch_axis`` for per-channel observers),
    otherwise ``x`` passes through.

    Args:
        observer: observer class or ``with_args`` factory (default
            :class:`MovingAverageMinMaxObserver`).
        quant_min, quant_max: integer range, passed to the observer (both or neither).
        **observer_kwargs: more observer arguments (``dtype``, ``qscheme``, ...).
    """

    _resizable_buffers = ("scale", "zero_point")  # one per channel once observed

    def __init__(self, observer=MovingAverageMinMaxObserver, quant_min: int | None = None,
                 quant_max: int | None = None, is_dynamic: bool = False, **observer_kwargs):
        super().__init__()
        if quant_min is not None and quant_max is not None:
            if quant_min > quant_max:
                raise ValueError(f"{type(self).__name__}: quant_min ({quant_min}) must be <= "
                                 f"quant_max ({quant_max})")
            dtype = observer_kwargs.get("dtype", quint8)
            bound = getattr(getattr(observer, "p", None), "keywords", {})
            dtype = as_qdtype(bound.get("dtype", dtype), type(self).__name__)
            if quant_min < dtype.qmin or quant_max > dtype.qmax:
                raise ValueError(f"{type(self).__name__}: [quant_min, quant_max] = [{quant_min}, "
                                 f"{quant_max}] is out of {dtype}'s range [{dtype.qmin}, {dtype.qmax}]")
            observer_kwargs.update(quant_min=quant_min, quant_max=quant_max)
        observer_kwargs["is_dynamic"] = is_dynamic
        self.activation_post_process = observer(**observer_kwargs)
        app = self.activation_post_process
        self.quant_min, self.quant_max = app.quant_min, app.quant_max
        self.is_dynamic = app.is_dynamic
        self.dtype, self.qscheme = app.dtype, app.qscheme
        zp_dtype = _F32 if self.qscheme == per_channel_affine_float_qparams else np.int32
        self.register_buffer("scale", Tensor._make(np.array([1.0], _F32)))
        self.register_buffer("zero_point", Tensor._make(np.array([0], zp_dtype)))
        self.ch_axis = getattr(app, "ch_axis", -1)
        if not (is_per_channel(self.qscheme) or is_per_tensor(self.qscheme)):
            raise ValueError(f"{type(self).__name__}: only per-channel and per-tensor "
                             f"quantization are supported, got qscheme {self.qscheme!r}")
        self.is_per_channel = is_per_channel(self.qscheme)

    def calculate_qparams(self):
        return self.activation_post_process.calculate_qparams()

    def forward(self, X):
        if self.observer_enabled._data[0] == 1:
            self.activation_post_process(X.detach())
            scale, zero_point = self.calculate_qparams()
            self.scale._data = scale._data.astype(_F32)
            self.zero_point._data = zero_point._data.astype(self.zero_point.dtype)
        if self.fake_quant_enabled._data[0] == 1:
            return self._fake_quantize(X)
        return X

    def _fake_quantize(self, X):
        app = self.activation_post_process
        if self.is_per_channel:
            return fake_quantize_per_channel_affine(X, self.scale, self.zero_point,
                                                    self.ch_axis % X.ndim, app.quant_min,
                                                    app.quant_max)
        return fake_quantize_per_tensor_affine(X, self.scale, self.zero_point, app.quant_min,
                                               app.quant_max)

    def extra_repr(self) -> str:
        app = self.activation_post_process
        return (f"fake_quant_enabled={self.fake_quant_enabled._data}, "
                f"observer_enabled={self.observer_enabled._data}, quant_min={app.quant_min}, "
                f"quant_max={app.quant_max}, dtype={self.dtype}, qscheme={self.qscheme}, "
                f"ch_axis={self.ch_axis}, scale={self.scale._data}, "
                f"zero_point={self.zero_point._data}")


class FixedQParamsFakeQuantize(FakeQuantize):
    """Fake quantization with the fixed scale/zero point of a :class:`FixedQParamsObserver`
    (e.g. sigmoid outputs in [0, 1]: scale 1/256, zero point 0)."""

    def __init__(self, observer):
        super().__init__(observer=observer)
        if type(self.activation_post_process) is not FixedQParamsObserver:
            raise ValueError(f"{type(self).__name__}'s observer must be a FixedQParamsObserver, "
                             f"got {type(self.activation_post_process).__name__}")
        self.scale = self.activation_post_process.scale
        self.zero_point = self.activation_post_process.zero_point
        if not is_per_tensor(self.qscheme):
            raise ValueError(f"{type(self).__name__} supports per-tensor quantization only, "
                             f"got {self.qscheme!r}")

    def calculate_qparams(self):
        return self.scale, self.zero_point


class FusedMovingAvgObsFakeQuantize(FakeQuantize):
    """torch's fused observer + fake quantize (``get_default_qat_qconfig``'s choice).

    While ``observer_enabled``, the moving averages of min/max are updated as
    :class:`MovingAverageMinMaxObserver` does (the first call sets them). While
    ``fake_quant_enabled``, ``scale``/``zero_point`` are recomputed from them with
    :func:`choose_qparams` (symmetric schemes keep zeros sparse) and the input is
    fake-quantized; otherwise the input passes through and the qparams are not updated.
    Unlike torch (float32 only), float64 inputs work (statistics kept in float32).
    """

    def __init__(self, observer=MovingAverageMinMaxObserver, quant_min: int = 0,
                 quant_max: int = 255, **observer_kwargs):
        super().__init__(observer, quant_min, quant_max, **observer_kwargs)
        if not isinstance(self.activation_post_process,
                          (MovingAverageMinMaxObserver, MovingAveragePerChannelMinMaxObserver)):
            raise ValueError("FusedMovingAvgObsFakeQuantize works only with "
                             "MovingAverageMinMaxObserver or MovingAveragePerChannelMinMaxObserver, "
                             f"got {type(self.activation_post_process).__name__}")
        self.register_buffer("fake_quant_enabled", Tensor._make(np.array([1], np.int64)))
        self.register_buffer("observer_enabled", Tensor._make(np.array([1], np.int64)))
        self.is_symmetric_quant = is_symmetric(self.activation_post_process.qscheme)

    def forward(self, X):
        app = self.activation_post_process
        x = X._data
        if self.observer_enabled._data[0] == 1:
            _check_finite(x, type(self).__name__)
        if self.is_per_channel:
            axis = self.ch_axis % x.ndim
            n = x.shape[axis]
            if app.min_val._data.size == 0:
                app._set("min_val", np.full(n, np.inf, _F32))
                app._set("max_val", np.full(n, -np.inf, _F32))
                self.scale._data = np.ones(n, _F32)
                self.zero_point._data = np.zeros(n, np.int32)
            if self.observer_enabled._data[0] == 1:
                rows = np.moveaxis(x.astype(_F32, copy=False), axis, 0).reshape(n, -1)
                self._average(rows.min(axis=1), rows.max(axis=1))
        elif self.observer_enabled._data[0] == 1:
            a = x.astype(_F32, copy=False)
            self._average(a.min(), a.max())
        if self.fake_quant_enabled._data[0] != 1:
            return X
        lo = np.atleast_1d(app.min_val._data)
        hi = np.atleast_1d(app.max_val._data)
        qp = [choose_qparams(a, b, app.quant_min, app.quant_max, self.is_symmetric_quant)
              for a, b in zip(lo, hi)]
        self.scale._data = np.array([s for s, _ in qp], _F32)
        self.zero_point._data = np.array([z for _, z in qp], np.int32)
        return self._fake_quantize(X)

    def _average(self, cur_min, cur_max) -> None:
        """``run = cur`` where the running value is still infinite, else
        ``run + c * (cur - run)`` in float32 (c = the observer's averaging_constant)."""
        app = self.activation_post_process
        c = _F32(app.averaging_constant)
        for name, cur in (("min_val", cur_min), ("max_val", cur_max)):
            run = app._buffers[name]._data
            with np.errstate(invalid="ignore"):
                moved = run + c * (cur - run)
            app._set(name, np.where(np.isinf(run), cur, moved))

    def extra_repr(self) -> str:
        return super().extra_repr() + f", reduce_range={self.activation_post_process.reduce_range}"


# ------------------------------------------------------------------ switches (for .apply)
def disable_fake_quant(mod: Module) -> None:
    """``model.apply(disable_fake_quant)``: outputs pass through unquantized."""
    if isinstance(mod, FakeQuantizeBase):
        mod.disable_fake_quant()


def enable_fake_quant(mod: Module) -> None:
    if isinstance(mod, FakeQuantizeBase):
        mod.enable_fake_quant()


def disable_observer(mod: Module) -> None:
    """``model.apply(disable_observer)``: freeze scales and zero points."""
    if isinstance(mod, FakeQuantizeBase):
        mod.disable_observer()


def enable_observer(mod: Module) -> None:
    if isinstance(mod, FakeQuantizeBase):
        mod.enable_observer()


# torch's preset constructors (same classes and arguments)
default_fake_quant = FakeQuantize.with_args(
    observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=255, dtype=quint8,
    qscheme=per_tensor_affine, reduce_range=True)
default_weight_fake_quant = FakeQuantize.with_args(
    observer=MovingAverageMinMaxObserver, quant_min=-128, quant_max=127, dtype=qint8,
    qscheme=per_tensor_symmetric, reduce_range=False)
default_per_channel_weight_fake_quant = FakeQuantize.with_args(
    observer=MovingAveragePerChannelMinMaxObserver, quant_min=-128, quant_max=127,
    dtype=qint8, qscheme=per_channel_symmetric, reduce_range=False, ch_axis=0)
default_histogram_fake_quant = FakeQuantize.with_args(
    observer=HistogramObserver, quant_min=0, quant_max=255, dtype=quint8,
    qscheme=per_tensor_affine, reduce_range=True)
default_fused_act_fake_quant = FusedMovingAvgObsFakeQuantize.with_args(
    observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=255, dtype=quint8)
default_fused_wt_fake_quant = FusedMovingAvgObsFakeQuantize.with_args(
    observer=MovingAverageMinMaxObserver, quant_min=-128, quant_max=127, dtype=qint8,
    qscheme=per_tensor_symmetric)
default_fused_per_channel_wt_fake_quant = FusedMovingAvgObsFakeQuantize.with_args(
    observer=MovingAveragePerChannelMinMaxObserver, quant_min=-128, quant_max=127,
    dtype=qint8, qscheme=per_channel_symmetric)
fused_wt_fake_quant_range_neg_127_to_127 = FusedMovingAvgObsFakeQuantize.with_args(
    observer=MovingAverageMinMaxObserver, quant_min=-127, quant_max=127, dtype=qint8,
    qscheme=per_tensor_symmetric, eps=2 ** -12)
fused_per_channel_wt_fake_quant_range_neg_127_to_127 = FusedMovingAvgObsFakeQuantize.with_args(
    observer=MovingAveragePerChannelMinMaxObserver, quant_min=-127, quant_max=127,
    dtype=qint8, qscheme=per_channel_symmetric, eps=2 ** -12)
default_fixed_qparams_range_neg1to1_fake_quant = FixedQParamsFakeQuantize.with_args(
    observer=default_fixed_qparams_range_neg1to1_observer)
default_fixed_qparams_range_0to1_fake_quant = FixedQParamsFakeQuantize.with_args(
    observer=default_fixed_qparams_range_0to1_observer)

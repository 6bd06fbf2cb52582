"""Quantized modules (``torch.ao.nn.quantized`` names): QTensor in, QTensor out, integer maths.

Every module computes with :mod:`convnet.kernels.quantized`. Modules with their own output
quantization (``Quantize``, ``Conv2d``, ``ConvReLU2d``, ``Linear``, ``LinearReLU``,
``QFunctional``) hold the output ``scale`` / ``zero_point``; the others (``ReLU``, ``ReLU6``,
pooling, ``Flatten``, ``Dropout``, ``Identity``) keep their input's, as torch's quantized
operators do. Each has ``from_float(mod)`` reading the calibrated observer
(``mod.activation_post_process``) and ``mod.qconfig.weight`` (or, for QAT modules,
``mod.weight_fake_quant``), which is what :func:`convnet.quantization.convert` calls.

State dict (a quantized module stores integers as buffers, so ``state_dict`` /
``load_state_dict`` round-trip through safetensors like any other model)::

    weight             int8 (C_out, C_in/G, kH, kW) or (out, in)   the quantized weight
    weight_scale       float64 (C_out,) per channel, () per tensor
    weight_zero_point  int64, the same shape
    bias               float32 (C_out,), absent without bias
    scale, zero_point  float64 () and int64 (): the output's quantization

``weight()`` returns the weight as a :class:`QTensor`, ``bias()`` the float bias (or None).
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from ..kernels import quantized as K
from ..kernels.shapes import pair, parse_conv_padding
from ..nn.modules.module import Module
from ..tensor import Tensor
from .dtypes import as_qdtype, qint8, quint8
from .qtensor import QTensor, quantize_per_channel, quantize_per_tensor

__all__ = ["Quantize", "DeQuantize", "Conv2d", "ConvReLU2d", "Linear", "LinearReLU", "ReLU",
           "ReLU6", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "Flatten", "Dropout",
           "Identity", "QFunctional"]


def _np(value) -> np.ndarray:
    return np.asarray(value._data if isinstance(value, Tensor) else value)


def _qtensor_input(module: Module, x, ndim: int | None = None) -> QTensor:
    """``x`` must be a per-tensor QTensor (of ``ndim`` dims): else a clear error."""
    name = module._get_name()
    if not isinstance(x, QTensor):
        raise TypeError(f"{name}: expected a quantized tensor (QTensor) as input, got "
                        f"{type(x).__name__}; quantize it first (QuantStub/Quantize)")
    if x.qscheme() != "per_tensor_affine":
        raise ValueError(f"{name}: expected a per-tensor quantized input, got {x.qscheme()}")
    if ndim is not None and x.dim() != ndim:
        raise ValueError(f"{name}: expected a {ndim}-d input, got shape {list(x.shape)}")
    return x


def _observer(mod: Module, what: str = "activation_post_process"):
    obs = getattr(mod, what, None)
    if obs is None:
        raise RuntimeError(f"{type(mod).__name__} has no {what}: run "
                           "convnet.quantization.prepare() and calibrate (or prepare_qat and "
                           "train) before convert")
    return obs


def _output_qparams(mod: Module) -> tuple[float, int]:
    """``(scale, zero_point)`` of the calibrated output observer of ``mod``."""
    scale, zp = _observer(mod).calculate_qparams()
    return float(_np(scale).reshape(-1)[0]), int(_np(zp).reshape(-1)[0])


def _quantize_weight(weight, observer) -> QTensor:
    """Quantize a float weight with the qparams ``observer`` computed (torch's
    ``_quantize_weight``): per channel along ``observer.ch_axis``, or per tensor."""
    dtype = as_qdtype(observer.dtype, "weight observer")
    if dtype != qint8:
        raise ValueError(f"weight observer must have dtype qint8, got {dtype!r}")
    scale, zp = observer.calculate_qparams()
    scheme = str(observer.qscheme)
    if "per_channel" in scheme:
        return quantize_per_channel(weight, _np(scale), _np(zp), int(observer.ch_axis), qint8)
    return quantize_per_tensor(weight, float(_np(scale).reshape(-1)[0]),
                               int(_np(zp).reshape(-1)[0]), qint8)


def _first(mod: Module) -> Module:
    """The conv/linear inside a fused module (``mod[0]``), or ``mod`` itself."""
    inner = mod._modules.get("0")
    return inner if inner is not None else mod


def _weighted_parts(mod: Module, cls) -> tuple[Module, object, object]:
    """``(float module with the final float weights, weight observer, output observer)`` for
    a calibrated float module, a fused one, or a QAT module (whose ``to_float()`` folds
    batch norm into the weights, as torch's ``fuse_conv_bn_weights`` does in ``from_float``).
    The weight observer has been run on the weight, as in torch."""
    from ..autograd.grad_mode import no_grad

    act = _observer(mod)
    if hasattr(mod, "weight_fake_quant"):  # QAT: the fake-quant module keeps its statistics
        float_mod = _first(mod.to_float()) if hasattr(mod, "to_float") else _first(mod)
        weight_pp = mod.weight_fake_quant
    else:
        float_mod = _first(mod)
        qconfig = getattr(mod, "qconfig", None)
        if qconfig is None:
            raise RuntimeError(f"{cls.__name__}.from_float: {type(mod).__name__} has no qconfig "
                               "(set model.qconfig before prepare)")
        weight_pp = qconfig.weight()
    if getattr(float_mod, "weight", None) is None:
        raise TypeError(f"{cls.__name__}.from_float: {type(mod).__name__} holds no weight")
    with no_grad():
        weight_pp(float_mod.weight)
    return float_mod, weight_pp, act


class _QuantizedModule(Module):
    """Base: the output quantization lives in buffers ``scale`` / ``zero_point`` and reads
    as Python numbers (``m.scale = 0.1`` works as in torch)."""

    _NAME = ""  # torch's printed name (``QuantizedConv2d``), when it differs from the class's

    def _init_qparams(self, scale: float = 1.0, zero_point: int = 0) -> None:
        self.register_buffer("scale", Tensor._make(np.array(scale, dtype=np.float64)))
        self.register_buffer("zero_point", Tensor._make(np.array(zero_point, dtype=np.int64)))

    def __setattr__(self, name: str, value) -> None:
        if name in ("scale", "zero_point") and not isinstance(value, Tensor):
            value = Tensor._make(np.array(value, dtype=np.float64 if name == "scale"
                                          else np.int64))
        super().__setattr__(name, value)

    def _qparam(self, name: str):
        t = self._buffers.get(name)
        if t is None:
            raise AttributeError(f"{self._get_name()} keeps its input's quantization and has "
                                 f"no {name} of its own")
        return t._data

    @property
    def scale(self) -> float:
        return float(self._qparam("scale"))

    @property
    def zero_point(self) -> int:
        return int(self._qparam("zero_point"))

    def _get_name(self) -> str:
        return self._NAME or type(self).__name__

    def __repr__(self) -> str:
        if self._modules:
            return super().__repr__().replace(type(self).__name__, self._get_name(), 1)
        return f"{self._get_name()}({self.extra_repr()})"

    def _spec(self) -> dict:
        """Constructor arguments that rebuild this module's skeleton (for serialization)."""
        return {}

    def _out(self, q: np.ndarray, like: QTensor) -> QTensor:
        return QTensor(q, like.dtype, self.scale, self.zero_point)

    def _range(self, x: QTensor) -> tuple[int, int]:
        if not x.dtype.qmin <= self.zero_point <= x.dtype.qmax:
            raise ValueError(f"{self._get_name()}: output zero_point {self.zero_point} is "
                             f"outside the input dtype {x.dtype!r}'s range")
        return x.dtype.qmin, x.dtype.qmax


class _Stateless(_QuantizedModule):
    """Modules whose output keeps the input's quantization (no ``scale`` of their own)."""


# ------------------------------------------------------------------ stubs
class Quantize(_QuantizedModule):
    """float Tensor -> QTensor: ``q = clamp(round(x / scale) + zero_point)`` (the converted
    ``QuantStub``).

    Args:
        scale, zero_point: the quantization of the output.
        dtype: ``quint8`` (default in torch's qconfigs), ``qint8`` or ``qint32``.
    """

    def __init__(self, scale: float, zero_point: int, dtype=quint8):
        super().__init__()
        self.dtype = as_qdtype(dtype, "Quantize")
        self._init_qparams(float(scale), int(zero_point))

    def forward(self, x) -> QTensor:
        return quantize_per_tensor(x, self.scale, self.zero_point, self.dtype)

    @classmethod
    def from_float(cls, mod: Module, use_precomputed_fake_quant: bool = False) -> "Quantize":
        obs = _observer(mod)
        scale, zp = _output_qparams(mod)
        return cls(scale, zp, getattr(obs, "dtype", quint8))

    def _spec(self) -> dict:
        return {"scale": self.scale, "zero_point": self.zero_point, "dtype": self.dtype.name}

    def extra_repr(self) -> str:
        return f"scale={self.scale}, zero_point={self.zero_point}, dtype={self.dtype!r}"


class DeQuantize(_Stateless):
    """QTensor -> float32 Tensor ``(q - zero_point) * scale`` (the converted
    ``DeQuantStub``); a float Tensor passes through unchanged, as torch's ``dequantize()``."""

    def forward(self, x):
        return x.dequantize() if isinstance(x, QTensor) else x

    @classmethod
    def from_float(cls, mod: Module, use_precomputed_fake_quant: bool = False) -> "DeQuantize":
        return cls()


# ------------------------------------------------------------------ weighted layers
class _Weighted(_QuantizedModule):
    """Holds a qint8 weight (per tensor or per channel along axis 0) and a float bias."""

    _RELU = False
    # per tensor () or per channel (C_out,): a state dict of either kind loads, also through
    # a parent's load_state_dict (convnet.nn.Module honours _resizable_buffers)
    _resizable_buffers = ("weight_scale", "weight_zero_point")

    def _init_weight(self, shape: tuple[int, ...], bias: bool, per_channel: bool) -> None:
        n = shape[0]
        self.register_buffer("weight", Tensor._make(np.zeros(shape, dtype=np.int8)))
        qshape = (n,) if per_channel else ()
        self.register_buffer("weight_scale", Tensor._make(np.ones(qshape, dtype=np.float64)))
        self.register_buffer("weight_zero_point", Tensor._make(np.zeros(qshape, np.int64)))
        self.register_buffer("bias", Tensor._make(np.zeros(n, np.float32)) if bias else None)
        self._init_qparams()

    def weight(self) -> QTensor:  # noqa: F811 (the buffer of the same name is the storage)
        """The quantized weight (qint8, per channel along axis 0 or per tensor)."""
        b = self._buffers
        if b["weight_scale"].ndim:
            return QTensor(b["weight"]._data, qint8, b["weight_scale"]._data,
                           b["weight_zero_point"]._data, axis=0)
        return QTensor(b["weight"]._data, qint8, b["weight_scale"]._data,
                       b["weight_zero_point"]._data)

    def bias(self) -> Tensor | None:  # noqa: F811
        """The float bias (a copy), or None."""
        b = self._buffers.get("bias")
        return None if b is None else Tensor._make(b._data.copy())

    def _weight_bias(self):
        return self.weight(), self.bias()

    def set_weight_bias(self, w: QTensor, b=None) -> None:
        """Install a qint8 weight QTensor (per tensor, or per channel along axis 0) and a
        float bias (Tensor, array or None; None keeps the layer without bias only if it was
        built with ``bias=False``: a layer with bias gets zeros, as torch)."""
        name = self._get_name()
        if not isinstance(w, QTensor) or w.dtype != qint8:
            raise TypeError(f"{name}.set_weight_bias: weight must be a qint8 QTensor, got "
                            f"{getattr(w, 'dtype', type(w).__name__)!r}")
        expected = tuple(self._buffers["weight"].shape)
        if w.shape != expected:
            raise ValueError(f"{name}.set_weight_bias: weight shape {list(w.shape)} does not "
                             f"match the layer's {list(expected)}")
        if w.qscheme() == "per_channel_affine":
            if w.q_per_channel_axis() != 0:
                raise ValueError(f"{name}.set_weight_bias: per-channel weights must use axis "
                                 f"0 (output channels), got axis {w.q_per_channel_axis()}")
            scale, zp = w._scale, w._zero_point
        else:
            scale, zp = np.array(w._scale), np.array(w._zero_point)
        self._buffers["weight"] = Tensor._make(w._int.copy())
        self._buffers["weight_scale"] = Tensor._make(np.array(scale, dtype=np.float64))
        self._buffers["weight_zero_point"] = Tensor._make(np.array(zp, dtype=np.int64))
        if b is None:
            if self._buffers.get("bias") is not None:
                self._buffers["bias"] = Tensor._make(np.zeros(expected[0], np.float32))
            return
        arr = _np(b).astype(np.float32)
        if arr.shape != (expected[0],):
            raise ValueError(f"{name}.set_weight_bias: bias shape {list(arr.shape)} must be "
                             f"[{expected[0]}]")
        self._buffers["bias"] = Tensor._make(arr.copy())

    def _quant_args(self, x: QTensor) -> dict:
        b = self._buffers
        qmin, qmax = self._range(x)
        bias = b.get("bias")
        return dict(x_scale=x._scale, x_zero_point=x._zero_point, wq=b["weight"]._data,
                    w_scales=b["weight_scale"]._data.reshape(-1),
                    w_zero_points=b["weight_zero_point"]._data.reshape(-1),
                    bias=None if bias is None else bias._data, out_scale=self.scale,
                    out_zero_point=self.zero_point, qmin=qmin, qmax=qmax,
                    storage=x.dtype.storage, relu=self._RELU)

    def bias_int32(self, input_scale: float) -> np.ndarray | None:
        """The int32 bias added to the accumulator for an input of scale ``input_scale``:
        ``round(bias / (input_scale * weight_scale))`` (what a QDQ/ONNX export stores, with
        scale ``input_scale * weight_scale`` and zero point 0)."""
        b = self._buffers.get("bias")
        if b is None:
            return None
        return K.quantize_bias(b._data, input_scale, self._buffers["weight_scale"]._data)


class Conv2d(_Weighted):
    """Quantized 2-D convolution (torch's ``nnq.Conv2d``): ``(N, C_in, H, W)`` QTensor ->
    ``(N, C_out, H', W')`` QTensor with the output ``scale`` / ``zero_point``::

        acc = sum (x_q - z_x)(w_q - z_w) + round(bias / (s_x s_w))      (int32)
        y_q = clamp(round(acc * s_x s_w / s_y) + z_y)

    ``H' = floor((H + 2 padding - dilation (kernel - 1) - 1) / stride) + 1``. Arguments as
    :class:`convnet.nn.Conv2d`; only zero padding.
    """

    _NAME = "QuantizedConv2d"

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 device=None, dtype=None, *, per_channel: bool = False):
        super().__init__()
        name = self._get_name()
        if padding_mode != "zeros":
            raise ValueError(f"{name}: only padding_mode='zeros' is supported, got "
                             f"{padding_mode!r}")
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(f"{name}: in_channels ({in_channels}) and out_channels "
                             f"({out_channels}) must be divisible by groups ({groups})")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = pair(kernel_size, "kernel_size", name)
        self.stride = pair(stride, "stride", name)
        self.dilation = pair(dilation, "dilation", name)
        pads = parse_conv_padding(padding, 2, self.kernel_size, self.dilation, self.stride, name)
        if any(lo != hi for lo, hi in pads):
            raise ValueError(f"{name}: asymmetric padding {pads} is not supported")
        self.padding = tuple(lo for lo, _ in pads)
        self.padding_mode = padding_mode
        self._init_weight((out_channels, in_channels // groups, *self.kernel_size), bias,
                          per_channel)

    def forward(self, x: QTensor) -> QTensor:
        x = _qtensor_input(self, x, 4)
        if x.shape[1] != self.in_channels:
            raise ValueError(f"{self._get_name()}: expected input with {self.in_channels} "
                             f"channels, got shape {list(x.shape)}")
        out = K.quantized_conv2d(x._int, stride=self.stride, padding=self.padding,
                                 dilation=self.dilation, groups=self.groups,
                                 **self._quant_args(x))
        return self._out(out, x)

    @classmethod
    def from_float(cls, mod: Module, use_precomputed_fake_quant: bool = False) -> "Conv2d":
        """From a calibrated ``nn.Conv2d``, a fused ``ConvReLU2d`` or a QAT conv module."""
        conv, weight_pp, _ = _weighted_parts(mod, cls)
        qweight = _quantize_weight(conv.weight, weight_pp)
        q = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                conv.padding, conv.dilation, conv.groups, conv.bias is not None,
                conv.padding_mode, per_channel=qweight.qscheme() == "per_channel_affine")
        q.set_weight_bias(qweight, conv.bias)
        q.scale, q.zero_point = _output_qparams(mod)
        return q

    def _spec(self) -> dict:
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": list(self.padding), "dilation": list(self.dilation),
                "groups": self.groups, "bias": self._buffers.get("bias") is not None,
                "per_channel": bool(self._buffers["weight_scale"].ndim)}

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}, scale={self.scale}, zero_point={self.zero_point}")
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self._buffers.get("bias") is None:
            s += ", bias=False"
        return s


class ConvReLU2d(Conv2d):
    """:class:`Conv2d` followed by ReLU, fused: the output is clamped below at its zero
    point (torch's ``nniq.ConvReLU2d``)."""

    _NAME = "QuantizedConvReLU2d"
    _RELU = True


class Linear(_Weighted):
    """Quantized ``y = x W^T + b`` (torch's ``nnq.Linear``): ``(*, in_features)`` QTensor ->
    ``(*, out_features)`` QTensor, the same integer formula as :class:`Conv2d`."""

    _NAME = "QuantizedLinear"

    def __init__(self, in_features: int, out_features: int, bias_: bool = True, dtype=qint8,
                 *, per_channel: bool = False):
        super().__init__()
        if as_qdtype(dtype, self._get_name()) != qint8:
            raise ValueError(f"{self._get_name()}: only qint8 weights are supported")
        self.in_features, self.out_features = in_features, out_features
        self._init_weight((out_features, in_features), bias_, per_channel)

    def forward(self, x: QTensor) -> QTensor:
        x = _qtensor_input(self, x)
        if x.dim() < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"{self._get_name()}: expected input of shape (*, "
                             f"{self.in_features}), got {list(x.shape)}")
        return self._out(K.quantized_linear(x._int, **self._quant_args(x)), x)

    @classmethod
    def from_float(cls, mod: Module, use_precomputed_fake_quant: bool = False) -> "Linear":
        """From a calibrated ``nn.Linear``, a fused ``LinearReLU`` or a QAT linear module."""
        lin, weight_pp, _ = _weighted_parts(mod, cls)
        qweight = _quantize_weight(lin.weight, weight_pp)
        q = cls(lin.in_features, lin.out_features, lin.bias is not None,
                per_channel=qweight.qscheme() == "per_channel_affine")
        q.set_weight_bias(qweight, lin.bias)
        q.scale, q.zero_point = _output_qparams(mod)
        return q

    def _spec(self) -> dict:
        return {"in_features": self.in_features, "out_features": self.out_features,
                "bias_": self._buffers.get("bias") is not None,
                "per_channel": bool(self._buffers["weight_scale"].ndim)}

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"scale={self.scale}, zero_point={self.zero_point}, "
                f"qscheme={self.weight().qscheme()}")


class LinearReLU(Linear):
    """:class:`Linear` followed by ReLU, fused (torch's ``nniq.LinearReLU``)."""

    _NAME = "QuantizedLinearReLU"
    _RELU = True


# ------------------------------------------------------------------ qparams pass through
class ReLU(_Stateless):
    """``max(q, zero_point)``: ReLU on the integers, the input's quantization kept."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, x: QTensor) -> QTensor:
        x = _qtensor_input(self, x)
        return x._with(K.relu(x._int, x._zero_point))

    @classmethod
    def from_float(cls, mod: Module, use_precomputed_fake_quant: bool = False) -> "ReLU":
        return cls(getattr(mod, "inplace", False))


class ReLU6(ReLU):
    """``min(max(q, z), q6)`` with ``q6`` the quantized 6.0 (torch's ``nnq.ReLU6``)."""

    def forward(self, x: QTensor) -> QTensor:
        x = _qtensor_input(self, x)
        six = K.quantize_per_tensor(np.float32(6.0), x._scale, x._zero_point, x.dtype.qmin,
                                    x.dtype.qmax, x.dtype.storage)
        return x._with(np.minimum(K.relu(x._int, x._zero_point), six))


def _jsonable(v):
    return list(v) if isinstance(v, tuple) else v


class MaxPool2d(_Stateless):
    """Max pooling on the integers (dequantization is increasing, so the largest integer is
    the largest value); arguments as :class:`convnet.nn.MaxPool2d` without indices (kept as
    given, so the module prints like the float one, as torch's does)."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1,
                 return_indices: bool = False, ceil_mode: bool = False):
        super().__init__()
        if return_indices:
            raise ValueError("MaxPool2d: return_indices is not supported on quantized tensors")
        for name, v in (("kernel_size", kernel_size), ("stride", stride), ("padding", padding),
                        ("dilation", dilation)):
            if v is not None:
                pair(v, name, "MaxPool2d")  # validate now, not at the first forward
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.dilation, self.ceil_mode = padding, dilation, ceil_mode

    def forward(self, x: QTensor) -> QTensor:
        x = _qtensor_input(self, x, 4)
        return x._with(K.max_pool2d(x._int, pair(self.kernel_size), pair(self.stride),
                                    pair(self.padding), pair(self.dilation), self.ceil_mode))

    @classmethod
    def from_float(cls, mod: Module, use_precomputed_fake_quant: bool = False) -> "MaxPool2d":
        if getattr(mod, "return_indices", False):
            raise ValueError("MaxPool2d with return_indices=True cannot be quantized")
        return cls(mod.kernel_size, mod.stride, mod.padding, mod.dilation,
                   ceil_mode=mod.ceil_mode)

    def _spec(self) -> dict:
        return {k: _jsonable(getattr(self, k)) for k in ("kernel_size", "stride", "padding",
                                                          "dilation", "ceil_mode")}

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool2d(_Stateless):
    """Average pooling with the input's quantization:
    ``y_q = round(sum_window (q - z) / divisor + z)`` (padding counts as the quantized 0)."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override: int | None = None):
        super().__init__()
        for name, v in (("kernel_size", kernel_size), ("stride", stride), ("padding", padding)):
            if v is not None:
                pair(v, name, "AvgPool2d")
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def forward(self, x: QTensor) -> QTensor:
        x = _qtensor_input(self, x, 4)
        return x._with(K.avg_pool2d(x._int, x._zero_point, x.dtype.qmin, x.dtype.qmax,
                                    pair(self.kernel_size), pair(self.stride),
                                    pair(self.padding), self.ceil_mode, self.count_include_pad,
                                    self.divisor_override))

    @classmethod
    def from_float(cls, mod: Module, use_precomputed_fake_quant: bool = False) -> "AvgPool2d":
        return cls(mod.kernel_size, mod.stride, mod.padding, mod.ceil_mode,
                   mod.count_include_pad, getattr(mod, "divisor_override", None))

    def _spec(self) -> dict:
        return {k: _jsonable(getattr(self, k)) for k in (
            "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
            "divisor_override")}

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(_Stateless):
    """Adaptive average pooling to ``output_size`` (an int, a pair, ``None`` keeping that
    side) with the input's quantization; windows as :class:`convnet.nn.AdaptiveAvgPool2d`."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x: QTensor) -> QTensor:
        x = _qtensor_input(self, x, 4)
        size = (self.output_size,) * 2 if isinstance(self.output_size, int) \
            else tuple(self.output_size)
        size = tuple(x.shape[2 + i] if s is None else int(s) for i, s in enumerate(size))
        return x._with(K.adaptive_avg_pool2d(x._int, x._zero_point, x.dtype.qmin, x.dtype.qmax,
                                             size))

    @classmethod
    def from_float(cls, mod: Module, use_precomputed_fake_quant: bool = False):
        return cls(mod.output_size)

    def _spec(self) -> dict:
        return {"output_size": _jsonable(self.output_size)}

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class Flatten(_Stateless):
    """Merge dims ``start_dim..end_dim`` of a QTensor (the integers are reshaped)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: QTensor) -> QTensor:
        return _qtensor_input(self, x).flatten(self.start_dim, self.end_dim)

    @classmethod
    def from_float(cls, mod: Module, use_precomputed_fake_quant: bool = False) -> "Flatten":
        return cls(mod.start_dim, mod.end_dim)

    def _spec(self) -> dict:
        return {"start_dim": self.start_dim, "end_dim": self.end_dim}

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Identity(_Stateless):
    """Returns its input (the slots that fusion emptied, for instance)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x

    @classmethod
    def from_float(cls, mod: Module, use_precomputed_fake_quant: bool = False) -> "Identity":
        return cls()


class Dropout(Identity):
    """Dropout at inference: the identity (torch's ``nnq.Dropout``)."""

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        self.p, self.inplace = p, inplace

    @classmethod
    def from_float(cls, mod: Module, use_precomputed_fake_quant: bool = False) -> "Dropout":
        return cls(getattr(mod, "p", 0.5), getattr(mod, "inplace", False))

    def _spec(self) -> dict:
        return {"p": self.p}

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


# ------------------------------------------------------------------ functional
class QFunctional(_QuantizedModule):
    """Quantized ``add``, ``add_relu``, ``mul``, ``cat`` producing the module's output
    ``scale`` / ``zero_point`` (the converted ``FloatFunctional``); call its methods, not the
    module::

        add(a, b)      = quantize(dequantize(a) + dequantize(b))
        mul(a, b)      = round((a - z_a)(b - z_b) s_a s_b / s_y) + z_y
        cat(xs, dim)   = the parts requantized to the output's qparams, concatenated
    """

    def __init__(self):
        super().__init__()
        self._init_qparams()

    def forward(self, x):
        raise RuntimeError("QFunctional is not meant to be called; use its methods add, "
                           "add_relu, mul or cat")

    def _binary(self, fn, a, b, relu: bool, what: str) -> QTensor:
        a, b = _qtensor_input(self, a), _qtensor_input(self, b)
        if a.dtype != b.dtype:
            raise TypeError(f"QFunctional.{what}: operands have dtypes {a.dtype!r} and "
                            f"{b.dtype!r}")
        try:
            shape = np.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            raise ValueError(f"QFunctional.{what}: shapes {list(a.shape)} and {list(b.shape)} "
                             "do not broadcast") from None
        qmin, qmax = self._range(a)
        out = fn(np.broadcast_to(a._int, shape), a._scale, a._zero_point,
                 np.broadcast_to(b._int, shape), b._scale, b._zero_point, self.scale,
                 self.zero_point, qmin, qmax, a.dtype.storage, relu)
        return self._out(out, a)

    def add(self, x: QTensor, y: QTensor) -> QTensor:
        return self._binary(K.add, x, y, False, "add")

    def add_relu(self, x: QTensor, y: QTensor) -> QTensor:
        return self._binary(K.add, x, y, True, "add_relu")

    def mul(self, x: QTensor, y: QTensor) -> QTensor:
        return self._binary(K.mul, x, y, False, "mul")

    def cat(self, x, dim: int = 0) -> QTensor:
        parts = [_qtensor_input(self, t) for t in x]
        if not parts:
            raise ValueError("QFunctional.cat: expected a non-empty list of QTensors")
        if len({p.dtype for p in parts}) > 1:
            raise TypeError("QFunctional.cat: all parts must have the same dtype")
        qmin, qmax = self._range(parts[0])
        try:
            out = K.cat([p._int for p in parts], [p._scale for p in parts],
                        [p._zero_point for p in parts], self.scale, self.zero_point, qmin,
                        qmax, parts[0].dtype.storage, axis=dim)
        except (ValueError, np.exceptions.AxisError) as e:
            raise ValueError(f"QFunctional.cat: cannot concatenate shapes "
                             f"{[list(p.shape) for p in parts]} along dim {dim} ({e})") from None
        return self._out(out, parts[0])

    @classmethod
    def from_float(cls, mod: Module, use_precomputed_fake_quant: bool = False) -> "QFunctional":
        q = cls()
        q.scale, q.zero_point = _output_qparams(mod)
        return q

    def extra_repr(self) -> str:
        return f"scale={self.scale}, zero_point={self.zero_point}"


# class name -> class, for serialization (names are stable; see serialize.py)
QUANTIZED_MODULES = OrderedDict((name, globals()[name]) for name in __all__)

"""Quantization-aware-training modules (``torch.ao.nn.qat`` and ``torch.ao.nn.intrinsic.qat``).

Each is its float layer with the weight fake-quantized on the way in:
``y = layer(x; weight_fake_quant(W))``, so training sees (and adapts to) int8 weight
rounding, while gradients reach ``W`` through the straight-through estimator.
``prepare_qat`` swaps float and fused modules for these (``from_float``) and gives each an
``activation_post_process`` fake quantizer for its output; ``to_float()`` goes back.

The conv+BN modules (``ConvBn2d``, ``ConvBnReLU2d``, ``LinearBn1d``) simulate the BN folding
that ``convert`` will do, while BN keeps training (torch's ``_ConvBnNd``). With
``s = gamma / sqrt(running_var + eps)`` per output channel:

    ``y = bn(conv(x, fake_quant(W * s)) / s + b)``

The conv sees the folded weight ``W * s`` exactly as inference will (quantized), dividing
by ``s`` undoes the scaling so that BN can normalise with batch statistics and update its
running ones; after ``freeze_bn_stats()`` BN uses the running statistics, and the output
equals the folded conv's. ``to_float()`` returns the conv with BN folded in.
"""
from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from .. import nn
from ..nn import init
from ..nn.parameter import Parameter
from . import intrinsic as nni
from .fuse import fuse_conv_bn_weights, fuse_linear_bn_weights
from .intrinsic import _FusedModule

__all__ = [
    "Linear", "LinearReLU", "LinearBn1d", "Conv2d", "Conv3d", "ConvReLU2d", "ConvReLU3d",
    "ConvBn1d", "ConvBn2d", "ConvBn3d", "ConvBnReLU1d", "ConvBnReLU2d", "ConvBnReLU3d",
    "freeze_bn_stats", "update_bn_stats",
]


def _require_qconfig(cls_name: str, qconfig) -> None:
    if not qconfig:
        raise ValueError(f"qat.{cls_name}: qconfig must be provided for a QAT module")


def _check_from_float(cls, mod) -> None:
    if type(mod) is not cls._FLOAT_MODULE:
        raise TypeError(f"qat.{cls.__name__}.from_float only works for "
                        f"{cls._FLOAT_MODULE.__name__}, got {type(mod).__name__}")
    if not getattr(mod, "qconfig", None):
        raise ValueError(f"qat.{cls.__name__}.from_float: the input {type(mod).__name__} must "
                         "have a qconfig (set model.qconfig, or run propagate_qconfig_)")


def _conv_forward(conv, input, weight, bias):
    """``conv``'s convolution (its stride, padding mode, ...) with the given weight and bias."""
    if conv.padding_mode != "zeros":
        x = F.pad(input, conv._reversed_padding_repeated_twice, mode=conv.padding_mode)
        return type(conv)._fn(x, weight, bias, conv.stride, 0, conv.dilation, conv.groups)
    return type(conv)._fn(input, weight, bias, conv.stride, conv.padding, conv.dilation,
                          conv.groups)


def _float_conv(mod, float_cls):
    """A float ``float_cls`` conv with ``mod``'s hyper-parameters and (shared) weights."""
    conv = float_cls(mod.in_channels, mod.out_channels, mod.kernel_size, mod.stride,
                     mod.padding, mod.dilation, mod.groups, mod.bias is not None,
                     mod.padding_mode)
    conv.weight = Parameter(mod.weight.detach())
    if mod.bias is not None:
        conv.bias = Parameter(mod.bias.detach())
    return conv


# ------------------------------------------------------------------------------ linear
class Linear(nn.Linear):
    """``linear(x, weight_fake_quant(W), b)``; args as ``nn.Linear`` plus ``qconfig``."""

    _FLOAT_MODULE = nn.Linear

    def __init__(self, in_features: int, out_features: int, bias: bool = True, qconfig=None,
                 device=None, dtype=None):
        nn.Linear.__init__(self, in_features, out_features, bias, device=device, dtype=dtype)
        _require_qconfig(type(self).__name__, qconfig)
        self.qconfig = qconfig
        self.weight_fake_quant = qconfig.weight(factory_kwargs={"device": device, "dtype": dtype})

    def forward(self, input):
        return F.linear(input, self.weight_fake_quant(self.weight), self.bias)

    @classmethod
    def from_float(cls, mod, use_precomputed_fake_quant: bool = False):
        """The QAT module for float ``mod`` (which has a ``qconfig``); shares its Parameters."""
        _check_from_float(cls, mod)
        if isinstance(mod, _FusedModule):
            mod = mod[0]
        qat = cls(mod.in_features, mod.out_features, bias=mod.bias is not None,
                  qconfig=mod.qconfig)
        qat.weight = mod.weight
        qat.bias = mod.bias
        return qat

    def to_float(self):
        linear = nn.Linear(self.in_features, self.out_features, self.bias is not None)
        linear.weight = Parameter(self.weight.detach())
        if self.bias is not None:
            linear.bias = Parameter(self.bias.detach())
        linear.train(self.training)
        return linear


class LinearReLU(Linear, _FusedModule):
    """``relu(linear(x, weight_fake_quant(W), b))``, from ``intrinsic.LinearReLU``."""

    _FLOAT_MODULE = nni.LinearReLU

    def forward(self, input):
        return F.relu(F.linear(input, self.weight_fake_quant(self.weight), self.bias))

    def to_float(self):
        return nni.LinearReLU(Linear.to_float(self), nn.ReLU())


# -------------------------------------------------------------------------------- conv
class _ConvQAT:
    """Shared ``__init__``/``forward``/``from_float``/``to_float`` of the QAT convs."""

    _FLOAT_MODULE: type
    _FLOAT_CONV_MODULE: type
    _FLOAT_RELU_MODULE: type | None = None

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 qconfig=None, device=None, dtype=None):
        self._FLOAT_CONV_MODULE.__init__(self, in_channels, out_channels, kernel_size, stride,
                                         padding, dilation, groups, bias, padding_mode,
                                         device=device, dtype=dtype)
        _require_qconfig(type(self).__name__, qconfig)
        self.qconfig = qconfig
        self.weight_fake_quant = qconfig.weight(factory_kwargs={"device": device, "dtype": dtype})

    def forward(self, input):
        out = _conv_forward(self, input, self.weight_fake_quant(self.weight), self.bias)
        return F.relu(out) if self._FLOAT_RELU_MODULE else out

    @classmethod
    def from_float(cls, mod, use_precomputed_fake_quant: bool = False):
        """The QAT conv for float ``mod`` (a conv or ``ConvReLU``); shares its Parameters."""
        _check_from_float(cls, mod)
        if isinstance(mod, _FusedModule):
            mod = mod[0]
        qat = cls(mod.in_channels, mod.out_channels, mod.kernel_size, stride=mod.stride,
                  padding=mod.padding, dilation=mod.dilation, groups=mod.groups,
                  bias=mod.bias is not None, padding_mode=mod.padding_mode, qconfig=mod.qconfig)
        qat.weight = mod.weight
        qat.bias = mod.bias
        return qat

    def to_float(self):
        conv = _float_conv(self, self._FLOAT_CONV_MODULE)
        if self._FLOAT_RELU_MODULE:
            fused = self._FLOAT_MODULE(conv, self._FLOAT_RELU_MODULE())
            fused.train(self.training)
            return fused
        return conv


class Conv2d(_ConvQAT, nn.Conv2d):
    """``conv2d(x, weight_fake_quant(W), b)``; args as ``nn.Conv2d`` plus ``qconfig``."""

    _FLOAT_MODULE = _FLOAT_CONV_MODULE = nn.Conv2d


class Conv3d(_ConvQAT, nn.Conv3d):
    """``conv3d(x, weight_fake_quant(W), b)``."""

    _FLOAT_MODULE = _FLOAT_CONV_MODULE = nn.Conv3d


class ConvReLU2d(_ConvQAT, nn.Conv2d, _FusedModule):
    """``relu(conv2d(x, weight_fake_quant(W), b))``, from ``intrinsic.ConvReLU2d``."""

    _FLOAT_MODULE, _FLOAT_CONV_MODULE, _FLOAT_RELU_MODULE = nni.ConvReLU2d, nn.Conv2d, nn.ReLU


class ConvReLU3d(_ConvQAT, nn.Conv3d, _FusedModule):
    """``relu(conv3d(x, weight_fake_quant(W), b))``, from ``intrinsic.ConvReLU3d``."""

    _FLOAT_MODULE, _FLOAT_CONV_MODULE, _FLOAT_RELU_MODULE = nni.ConvReLU3d, nn.Conv3d, nn.ReLU


# --------------------------------------------------------------- conv/linear + batch norm
class _BnFolding:
    """BN folding simulated during training (see the module docstring); the layer's own
    ``bias`` is added after the unscaling, so BN sees ``conv(x) + b`` as in the float model."""

    def _init_bn(self, bn_cls, num_features: int, eps: float, momentum, freeze_bn: bool,
                 qconfig, bias: bool) -> None:
        _require_qconfig(type(self).__name__, qconfig)
        self.qconfig = qconfig
        self.freeze_bn = freeze_bn if self.training else True
        self.bn = bn_cls(num_features, eps, momentum, True, True)
        self.weight_fake_quant = qconfig.weight()
        if bias:
            self.bias = Parameter(np.empty(num_features, dtype=self.weight.dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_bn_parameters()
        if self.training and not freeze_bn:
            self.update_bn_stats()
        else:
            self.freeze_bn_stats()

    def reset_running_stats(self) -> None:
        self.bn.reset_running_stats()

    def reset_bn_parameters(self) -> None:
        self.bn.reset_running_stats()
        init.uniform_(self.bn.weight)
        init.zeros_(self.bn.bias)
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in)
            init.uniform_(self.bias, -bound, bound)

    def update_bn_stats(self):
        """BN normalises with batch statistics in training and updates its running ones."""
        self.freeze_bn = False
        self.bn.train(True)
        return self

    def freeze_bn_stats(self):
        """BN uses (and keeps) its running statistics, also in training mode."""
        self.freeze_bn = True
        self.bn.train(False)
        return self

    def train(self, mode: bool = True):
        """Frozen BN stays in eval mode when the model goes back to training (as torch)."""
        nn.Module.train(self, mode)
        if self.freeze_bn:
            self.bn.train(False)
        return self

    def _folded(self, input, layer_op):
        """``bn(layer_op(x, fake_quant(W * s)) / s + b)`` with ``s = gamma / running_std``."""
        running_std = (self.bn.running_var + self.bn.eps).sqrt()
        scale_factor = self.bn.weight / running_std
        w_shape = [-1] + [1] * (self.weight.ndim - 1)
        out_shape = [1, -1] + [1] * (self.weight.ndim - 2)
        scaled_weight = self.weight_fake_quant(self.weight * scale_factor.reshape(w_shape))
        out = layer_op(input, scaled_weight) / scale_factor.reshape(out_shape)
        if self.bias is not None:
            out = out + self.bias.reshape(out_shape)
        if self.freeze_bn:  # a parent's train() reaches bn directly: keep it frozen
            self.bn.training = False
        return self.bn(out)

    @staticmethod
    def _copy_bn(dst, src) -> None:
        dst.weight, dst.bias = src.weight, src.bias
        dst.running_mean, dst.running_var = src.running_mean, src.running_var
        dst.num_batches_tracked = src.num_batches_tracked


class _ConvBnQAT(_BnFolding):
    _FLOAT_MODULE: type
    _FLOAT_CONV_MODULE: type
    _FLOAT_BN_MODULE: type
    _FLOAT_RELU_MODULE: type | None = None
    _FUSED_FLOAT_MODULE: type | None = None

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias=None, padding_mode: str = "zeros",
                 eps: float = 1e-5, momentum: float = 0.1, freeze_bn: bool = False,
                 qconfig=None):
        self._FLOAT_CONV_MODULE.__init__(self, in_channels, out_channels, kernel_size, stride,
                                         padding, dilation, groups, False, padding_mode)
        self._init_bn(self._FLOAT_BN_MODULE, out_channels, eps, momentum, freeze_bn, qconfig,
                      bool(bias))

    def forward(self, input):
        out = self._folded(input, lambda x, w: _conv_forward(self, x, w, None))
        return F.relu(out) if self._FLOAT_RELU_MODULE else out

    @classmethod
    def from_float(cls, mod, use_precomputed_fake_quant: bool = False):
        """The QAT module for ``intrinsic.ConvBn*d``/``ConvBnReLU*d``; shares Parameters and
        BN buffers."""
        _check_from_float(cls, mod)
        conv, bn = mod[0], mod[1]
        qat = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                  conv.padding, conv.dilation, conv.groups, conv.bias is not None,
                  conv.padding_mode, bn.eps, bn.momentum, False, mod.qconfig)
        qat.weight, qat.bias = conv.weight, conv.bias
        cls._copy_bn(qat.bn, bn)
        return qat

    def to_float(self):
        """The float conv with BN's running statistics folded in (``ConvReLU*d`` if fused
        with a ReLU)."""
        conv = _float_conv(self, self._FLOAT_CONV_MODULE)
        conv.weight, conv.bias = fuse_conv_bn_weights(
            conv.weight, conv.bias, self.bn.running_mean, self.bn.running_var, self.bn.eps,
            self.bn.weight, self.bn.bias)
        if self._FLOAT_RELU_MODULE:
            fused = self._FUSED_FLOAT_MODULE(conv, self._FLOAT_RELU_MODULE())
            fused.train(self.training)
            return fused
        conv.train(self.training)
        return conv


class ConvBn1d(_ConvBnQAT, nn.Conv1d, _FusedModule):
    """Conv1d + BatchNorm1d with simulated folding (see the module docstring)."""

    _FLOAT_MODULE, _FLOAT_CONV_MODULE, _FLOAT_BN_MODULE = nni.ConvBn1d, nn.Conv1d, nn.BatchNorm1d


class ConvBn2d(_ConvBnQAT, nn.Conv2d, _FusedModule):
    """Conv2d + BatchNorm2d with simulated folding (see the module docstring)."""

    _FLOAT_MODULE, _FLOAT_CONV_MODULE, _FLOAT_BN_MODULE = nni.ConvBn2d, nn.Conv2d, nn.BatchNorm2d


class ConvBn3d(_ConvBnQAT, nn.Conv3d, _FusedModule):
    """Conv3d + BatchNorm3d with simulated folding."""

    _FLOAT_MODULE, _FLOAT_CONV_MODULE, _FLOAT_BN_MODULE = nni.ConvBn3d, nn.Conv3d, nn.BatchNorm3d


class ConvBnReLU1d(ConvBn1d):
    """``relu`` of :class:`ConvBn1d`."""

    _FLOAT_MODULE, _FLOAT_RELU_MODULE, _FUSED_FLOAT_MODULE = nni.ConvBnReLU1d, nn.ReLU, nni.ConvReLU1d


class ConvBnReLU2d(ConvBn2d):
    """``relu`` of :class:`ConvBn2d`."""

    _FLOAT_MODULE, _FLOAT_RELU_MODULE, _FUSED_FLOAT_MODULE = nni.ConvBnReLU2d, nn.ReLU, nni.ConvReLU2d


class ConvBnReLU3d(ConvBn3d):
    """``relu`` of :class:`ConvBn3d`."""

    _FLOAT_MODULE, _FLOAT_RELU_MODULE, _FUSED_FLOAT_MODULE = nni.ConvBnReLU3d, nn.ReLU, nni.ConvReLU3d


class LinearBn1d(_BnFolding, nn.Linear, _FusedModule):
    """Linear + BatchNorm1d with simulated folding (see the module docstring)."""

    _FLOAT_MODULE = nni.LinearBn1d

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 eps: float = 1e-5, momentum: float = 0.1, freeze_bn: bool = False,
                 qconfig=None):
        nn.Linear.__init__(self, in_features, out_features, bias)
        self._init_bn(nn.BatchNorm1d, out_features, eps, momentum, freeze_bn, qconfig, bias)

    def forward(self, input):
        return self._folded(input, lambda x, w: F.linear(x, w, None))

    @classmethod
    def from_float(cls, mod, use_precomputed_fake_quant: bool = False):
        _check_from_float(cls, mod)
        linear, bn = mod[0], mod[1]
        qat = cls(linear.in_features, linear.out_features, linear.bias is not None, bn.eps,
                  bn.momentum, False, mod.qconfig)
        qat.weight, qat.bias = linear.weight, linear.bias
        cls._copy_bn(qat.bn, bn)
        return qat

    def to_float(self):
        linear = nn.Linear(self.in_features, self.out_features)
        linear.weight, linear.bias = fuse_linear_bn_weights(
            self.weight, self.bias, self.bn.running_mean, self.bn.running_var, self.bn.eps,
            self.bn.weight, self.bn.bias)
        return linear


_BN_FOLDING = (ConvBn1d, ConvBn2d, ConvBn3d, ConvBnReLU1d, ConvBnReLU2d, ConvBnReLU3d,
               LinearBn1d)


def freeze_bn_stats(mod) -> None:
    """``model.apply(freeze_bn_stats)``: BN in every conv+BN QAT module stops updating its
    running statistics and normalises with them (usual for the last QAT epochs)."""
    if type(mod) in _BN_FOLDING:
        mod.freeze_bn_stats()


def update_bn_stats(mod) -> None:
    """``model.apply(update_bn_stats)``: undo :func:`freeze_bn_stats`."""
    if type(mod) in _BN_FOLDING:
        mod.update_bn_stats()

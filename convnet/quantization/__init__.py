"""Eager-mode quantization, shaped like ``torch.ao.quantization``.

Post-training static quantization::

    model.eval()
    model.qconfig = cq.get_default_qconfig("x86")
    fused = cq.fuse_modules(model, [["conv", "bn", "relu"]])
    prepared = cq.prepare(cq.QuantWrapper(fused))
    for x, _ in calibration_batches:          # observers record ranges
        prepared(x)
    quantized = cq.convert(prepared)          # int8 weights, integer arithmetic

Quantization-aware training swaps in fake-quantized modules (``prepare_qat``), trains,
then ``convert`` as above.
"""
from __future__ import annotations

import importlib

from .dtypes import QDType, qint8, qint32, quint8  # noqa: F401

# name -> submodule that defines it; loaded on first use so that importing
# convnet.quantization stays cheap and each part can be read on its own.
_EXPORTS = {
    # observers (observer.py)
    "ObserverBase": "observer", "MinMaxObserver": "observer",
    "MovingAverageMinMaxObserver": "observer", "HistogramObserver": "observer",
    "PerChannelMinMaxObserver": "observer", "MovingAveragePerChannelMinMaxObserver": "observer",
    "PlaceholderObserver": "observer", "NoopObserver": "observer",
    "UniformQuantizationObserverBase": "observer", "FixedQParamsObserver": "observer",
    "RecordingObserver": "observer", "per_tensor_affine": "observer",
    "per_tensor_symmetric": "observer", "per_channel_affine": "observer",
    "per_channel_symmetric": "observer", "per_channel_affine_float_qparams": "observer",
    "default_observer": "observer", "default_weight_observer": "observer",
    "default_per_channel_weight_observer": "observer", "default_histogram_observer": "observer",
    "default_placeholder_observer": "observer", "default_debug_observer": "observer",
    "weight_observer_range_neg_127_to_127": "observer",
    "per_channel_weight_observer_range_neg_127_to_127": "observer",
    # fake quantization (fake_quantize.py)
    "FakeQuantize": "fake_quantize", "FakeQuantizeBase": "fake_quantize",
    "fake_quantize_per_tensor_affine": "fake_quantize",
    "fake_quantize_per_channel_affine": "fake_quantize",
    "default_fake_quant": "fake_quantize", "default_weight_fake_quant": "fake_quantize",
    "default_per_channel_weight_fake_quant": "fake_quantize",
    "disable_observer": "fake_quantize", "enable_observer": "fake_quantize",
    "disable_fake_quant": "fake_quantize", "enable_fake_quant": "fake_quantize",
    "FixedQParamsFakeQuantize": "fake_quantize", "FusedMovingAvgObsFakeQuantize": "fake_quantize",
    "default_histogram_fake_quant": "fake_quantize", "default_fused_act_fake_quant": "fake_quantize",
    "default_fused_wt_fake_quant": "fake_quantize",
    "default_fused_per_channel_wt_fake_quant": "fake_quantize",
    # qconfig presets (qconfig.py)
    "QConfig": "qconfig", "default_qconfig": "qconfig", "default_per_channel_qconfig": "qconfig",
    "default_qat_qconfig": "qconfig", "get_default_qconfig": "qconfig",
    "get_default_qat_qconfig": "qconfig", "float_qparams_weight_only_qconfig": "qconfig",
    "default_debug_qconfig": "qconfig", "default_dynamic_qconfig": "qconfig",
    "default_qat_qconfig_v2": "qconfig", "default_weight_only_qconfig": "qconfig",
    "default_activation_only_qconfig": "qconfig", "default_symmetric_qnnpack_qconfig": "qconfig",
    "default_per_channel_symmetric_qnnpack_qconfig": "qconfig", "qconfig_equals": "qconfig",
    # stubs (stubs.py)
    "QuantStub": "stubs", "DeQuantStub": "stubs", "QuantWrapper": "stubs",
    "FloatFunctional": "stubs",
    # fusion (fuse.py)
    "fuse_modules": "fuse", "fuse_modules_qat": "fuse", "fuse_conv_bn_eval": "fuse",
    "fuse_linear_bn_eval": "fuse", "fuse_known_modules": "fuse", "get_fuser_method": "fuse",
    "fuse_conv_bn_weights": "fuse", "fuse_linear_bn_weights": "fuse",
    # prepare (prepare.py)
    "prepare": "prepare", "prepare_qat": "prepare", "propagate_qconfig_": "prepare",
    "add_quant_dequant": "prepare", "get_default_qconfig_propagation_list": "prepare",
    "get_default_qat_module_mappings": "prepare",
    # QAT modules' BN switches, for model.apply (qat.py)
    "freeze_bn_stats": "qat", "update_bn_stats": "qat",
    # convert and the quantized world (convert.py, qtensor.py)
    "convert": "convert", "quantize": "convert", "quantize_qat": "convert",
    "QTensor": "qtensor", "quantize_per_tensor": "qtensor", "quantize_per_channel": "qtensor",
    "save_quantized": "serialize", "load_quantized": "serialize",
    "quantized_size_bytes": "serialize",
}

__all__ = ["QDType", "quint8", "qint8", "qint32", *sorted(_EXPORTS)]


def __getattr__(name: str):
    if name in _EXPORTS:
        module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'convnet.quantization' has no attribute {name!r}")


# A submodule named like the function it defines (prepare.py: prepare) becomes the package
# attribute as soon as anything imports it, hiding the function from __getattr__: bind the
# function now (~35 ms) so that ``convnet.quantization.prepare`` is always the function.
from .prepare import prepare  # noqa: E402,F401
from .convert import convert  # noqa: E402,F401  (convert.py defines convert: the same)

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
    # fake quantization (fake_quantize.py)
    "FakeQuantize": "fake_quantize", "FakeQuantizeBase": "fake_quantize",
    "fake_quantize_per_tensor_affine": "fake_quantize",
    "fake_quantize_per_channel_affine": "fake_quantize",
    "default_fake_quant": "fake_quantize", "default_weight_fake_quant": "fake_quantize",
    "default_per_channel_weight_fake_quant": "fake_quantize",
    "disable_observer": "fake_quantize", "enable_observer": "fake_quantize",
    "disable_fake_quant": "fake_quantize", "enable_fake_quant": "fake_quantize",
    # qconfig presets (qconfig.py)
    "QConfig": "qconfig", "default_qconfig": "qconfig", "default_per_channel_qconfig": "qconfig",
    "default_qat_qconfig": "qconfig", "get_default_qconfig": "qconfig",
    "get_default_qat_qconfig": "qconfig", "float_qparams_weight_only_qconfig": "qconfig",
    # stubs (stubs.py)
    "QuantStub": "stubs", "DeQuantStub": "stubs", "QuantWrapper": "stubs",
    # fusion (fuse.py)
    "fuse_modules": "fuse", "fuse_modules_qat": "fuse", "fuse_conv_bn_eval": "fuse",
    "fuse_linear_bn_eval": "fuse",
    # prepare (prepare.py)
    "prepare": "prepare", "prepare_qat": "prepare", "propagate_qconfig_": "prepare",
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


# convert.py defines convert: once anything imports the submodule it would become the package
# attribute and hide the function from __getattr__, so bind the function now.
from .convert import convert  # noqa: E402,F401

"""``QConfig``: how to observe a layer's activations and weights, and torch's presets.

A ``QConfig(activation=..., weight=...)`` holds observer *constructors* (classes or
``Observer.with_args(...)`` factories), never observer instances: ``prepare`` builds a
fresh observer for every layer. Set ``model.qconfig`` (children inherit it; ``None``
excludes a subtree) before ``prepare``/``prepare_qat``.

Presets (same classes and arguments as torch 2.13):

* ``get_default_qconfig("x86")`` / ``"fbgemm"``: activations
  ``HistogramObserver(reduce_range=True)`` (quint8 0..127), weights
  ``PerChannelMinMaxObserver(dtype=qint8, qscheme=per_channel_symmetric)``;
  ``"qnnpack"``: ``HistogramObserver(reduce_range=False)`` and per-tensor symmetric qint8
  weights (``MinMaxObserver``); ``"onednn"``: full-range histogram, per-channel weights.
* ``get_default_qat_qconfig(...)``: the same choices with fake quantization
  (``FusedMovingAvgObsFakeQuantize`` over moving-average min/max; ``version=0`` gives
  ``FakeQuantize``).
* ``default_qconfig`` (min/max, quint8 0..127 activations, per-tensor symmetric qint8
  weights), ``default_per_channel_qconfig``, ``default_qat_qconfig``.
"""
from __future__ import annotations

from collections import namedtuple

from ..nn.modules.container import Identity
from ..nn.modules.module import Module
from .dtypes import qint8, quint8
from .fake_quantize import (
    FakeQuantize,
    FakeQuantizeBase,
    FusedMovingAvgObsFakeQuantize,
    default_fake_quant,
    default_fused_act_fake_quant,
    default_fused_per_channel_wt_fake_quant,
    default_fused_wt_fake_quant,
    default_per_channel_weight_fake_quant,
    default_weight_fake_quant,
)
from .observer import (
    HistogramObserver,
    MovingAverageMinMaxObserver,
    PerChannelMinMaxObserver,
    MovingAveragePerChannelMinMaxObserver,
    PlaceholderObserver,
    _PartialWrapper,
    default_debug_observer,
    default_observer,
    default_per_channel_weight_observer,
    default_placeholder_observer,
    default_weight_observer,
    per_channel_affine_float_qparams,
    per_channel_weight_observer_range_neg_127_to_127,
    weight_observer_range_neg_127_to_127,
)

__all__ = [
    "QConfig", "default_qconfig", "default_debug_qconfig", "default_per_channel_qconfig",
    "default_dynamic_qconfig", "default_qat_qconfig", "default_qat_qconfig_v2",
    "default_weight_only_qconfig", "default_activation_only_qconfig",
    "default_symmetric_qnnpack_qconfig", "default_per_channel_symmetric_qnnpack_qconfig",
    "float_qparams_weight_only_qconfig", "get_default_qconfig", "get_default_qat_qconfig",
    "qconfig_equals",
]

_BACKENDS = ("fbgemm", "x86", "qnnpack", "onednn")


class QConfig(namedtuple("QConfig", ["activation", "weight"])):
    """``(activation, weight)`` observer constructors; instances are rejected."""

    __slots__ = ()

    def __new__(cls, activation, weight):
        if isinstance(activation, Module) or isinstance(weight, Module):
            raise ValueError("QConfig received observer instance, please pass observer class "
                             "instead. Use MyObserver.with_args(x=1) to override arguments to "
                             "constructor if needed")
        return super().__new__(cls, activation, weight)


default_qconfig = QConfig(activation=default_observer, weight=default_weight_observer)
default_debug_qconfig = QConfig(weight=default_weight_observer, activation=default_debug_observer)
default_per_channel_qconfig = QConfig(activation=default_observer,
                                      weight=default_per_channel_weight_observer)
default_dynamic_qconfig = QConfig(
    activation=PlaceholderObserver.with_args(dtype=quint8, quant_min=0, quant_max=255,
                                             is_dynamic=True),
    weight=default_weight_observer)
float_qparams_weight_only_qconfig = QConfig(
    activation=default_placeholder_observer,
    weight=PerChannelMinMaxObserver.with_args(dtype=quint8,
                                              qscheme=per_channel_affine_float_qparams,
                                              ch_axis=0))
default_qat_qconfig = QConfig(activation=default_fake_quant, weight=default_weight_fake_quant)
default_qat_qconfig_v2 = QConfig(activation=default_fused_act_fake_quant,
                                 weight=default_fused_wt_fake_quant)
default_weight_only_qconfig = QConfig(activation=Identity, weight=default_weight_fake_quant)
default_activation_only_qconfig = QConfig(activation=default_fake_quant, weight=Identity)
default_symmetric_qnnpack_qconfig = QConfig(
    activation=HistogramObserver.with_args(dtype=qint8, reduce_range=False, eps=2 ** -12),
    weight=weight_observer_range_neg_127_to_127)
default_per_channel_symmetric_qnnpack_qconfig = QConfig(
    activation=HistogramObserver.with_args(dtype=qint8, reduce_range=False, eps=2 ** -12),
    weight=per_channel_weight_observer_range_neg_127_to_127)


def _check_backend(backend: str, version, versions: tuple, fn: str) -> None:
    if backend not in _BACKENDS:
        raise ValueError(f"{fn}: backend {backend!r} not supported; backend must be one of "
                         f"{list(_BACKENDS)}")
    if version not in versions:
        raise ValueError(f"{fn}: version {version!r} is not supported; it must be one of "
                         f"{list(versions)}")


def get_default_qconfig(backend: str = "x86", version: int = 0) -> QConfig:
    """The post-training-quantization QConfig torch uses for ``backend`` (see the module
    docstring). x86/fbgemm reduce activations to 7 bits, which keeps their u8 x s8 products'
    pairwise sums inside int16 (no saturation in the vpmaddubsw instruction)."""
    _check_backend(backend, version, (0,), "get_default_qconfig")
    if backend in ("x86", "fbgemm"):
        return QConfig(activation=HistogramObserver.with_args(reduce_range=True),
                       weight=default_per_channel_weight_observer)
    if backend == "qnnpack":
        return QConfig(activation=HistogramObserver.with_args(reduce_range=False),
                       weight=default_weight_observer)
    return QConfig(activation=HistogramObserver.with_args(reduce_range=False),
                   weight=default_per_channel_weight_observer)


def get_default_qat_qconfig(backend: str = "x86", version: int = 1) -> QConfig:
    """The quantization-aware-training QConfig torch uses for ``backend``: moving-average
    min/max fake quantization (fused, ``version=1``, default; ``FakeQuantize``,
    ``version=0``), 0..127 activations for x86/fbgemm, per-channel weights except qnnpack."""
    _check_backend(backend, version, (0, 1), "get_default_qat_qconfig")
    # torch binds reduce_range for x86/fbgemm (True) and qnnpack (False), not for onednn
    reduce = {} if backend == "onednn" else {"reduce_range": backend in ("x86", "fbgemm")}
    if version == 0:
        act = FakeQuantize.with_args(observer=MovingAverageMinMaxObserver, quant_min=0,
                                     quant_max=255, **reduce)
        weight = (default_weight_fake_quant if backend == "qnnpack"
                  else default_per_channel_weight_fake_quant)
    else:
        act = FusedMovingAvgObsFakeQuantize.with_args(
            observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=255, **reduce)
        weight = (default_fused_wt_fake_quant if backend == "qnnpack"
                  else default_fused_per_channel_wt_fake_quant)
    return QConfig(activation=act, weight=weight)


def _ctor_equals(a, b) -> bool:
    if isinstance(a, _PartialWrapper) and isinstance(b, _PartialWrapper):
        return (_ctor_equals(a.p.func, b.p.func) and a.p.args == b.p.args
                and a.p.keywords == b.p.keywords and a.callable_args == b.callable_args)
    return a == b


def qconfig_equals(q1: QConfig | None, q2: QConfig | None) -> bool:
    """Whether two QConfigs build the same observers (factories compared by class and
    bound arguments)."""
    if q1 is None or q2 is None:
        return q1 is q2
    return _ctor_equals(q1.activation, q2.activation) and _ctor_equals(q1.weight, q2.weight)


def _activation_is_memoryless(qconfig: QConfig) -> bool:
    """Whether the activation observer keeps no history (a moving average with constant 1):
    such observers are run on the *input* (a forward pre-hook), as torch does."""
    act = qconfig.activation()
    if isinstance(act, FakeQuantizeBase) and hasattr(act, "activation_post_process"):
        act = act.activation_post_process
    return getattr(act, "averaging_constant", None) == 1


def _assert_valid_qconfig(qconfig: QConfig | None, mod: Module) -> None:
    """Per-channel weight observers do not support transposed convolutions (as torch)."""
    from .. import nn

    if qconfig is None or qconfig.weight is None:
        return
    if isinstance(mod, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
        if isinstance(qconfig.weight(), (PerChannelMinMaxObserver,
                                         MovingAveragePerChannelMinMaxObserver)):
            raise ValueError(f"{type(mod).__name__}: per-channel weight observers are not "
                             "supported for transposed convolutions")

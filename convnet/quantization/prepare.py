"""``prepare`` and ``prepare_qat``: attach observers (or fake quantizers) to a float model.

1. :func:`propagate_qconfig_` gives every module a ``qconfig``: its own if set, else one
   from ``qconfig_dict`` (by module type, then by path), else its parent's. ``None``
   excludes a module and, unless they set their own, its children.
2. Every quantizable leaf with a qconfig gets a child ``activation_post_process`` built
   from ``qconfig.activation`` and a forward hook that passes the module's output through
   it (torch's rules, below), so running data through the model records each output's
   range. ``convert`` later reads the ranges as the quantized modules' output qparams.

Which modules are observed (as torch): leaves whose type is in the allow list (by default
:func:`get_default_qconfig_propagation_list`: QuantStub, Conv*, Linear, BatchNorm2d/3d,
ReLU6, LeakyReLU, Hardswish, ELU, the norm layers, the fused modules, the QAT modules,
...); fused modules as a whole (not their insides); ``FloatFunctional`` through its own
``activation_post_process`` slot. Not observed: ``DeQuantStub``, ``nn.Dropout``, and
layers that keep their input's qparams such as ``ReLU``, ``MaxPool2d``, ``Flatten`` and
the average pools (``convert`` runs them on quantized tensors directly).

:func:`prepare_qat` first swaps conv/linear/fused modules for their QAT versions
(:mod:`convnet.quantization.qat`, :func:`get_default_qat_module_mappings`), then prepares.
"""
from __future__ import annotations

import copy
import warnings

from .. import nn
from . import intrinsic as nni
from . import qat as nnqat
from .fake_quantize import default_fixed_qparams_range_0to1_fake_quant
from .fake_quantize import default_fixed_qparams_range_neg1to1_fake_quant
from .intrinsic import _FusedModule
from .qconfig import _activation_is_memoryless, _assert_valid_qconfig
from .stubs import DeQuantStub, FloatFunctional, QuantStub

__all__ = ["propagate_qconfig_", "prepare", "prepare_qat", "add_quant_dequant",
           "get_default_qconfig_propagation_list", "get_default_qat_module_mappings"]

_QAT_MODULE_MAPPINGS = {
    nn.Conv2d: nnqat.Conv2d,
    nn.Conv3d: nnqat.Conv3d,
    nn.Linear: nnqat.Linear,
    nni.ConvBn1d: nnqat.ConvBn1d,
    nni.ConvBn2d: nnqat.ConvBn2d,
    nni.ConvBn3d: nnqat.ConvBn3d,
    nni.ConvBnReLU1d: nnqat.ConvBnReLU1d,
    nni.ConvBnReLU2d: nnqat.ConvBnReLU2d,
    nni.ConvBnReLU3d: nnqat.ConvBnReLU3d,
    nni.ConvReLU2d: nnqat.ConvReLU2d,
    nni.ConvReLU3d: nnqat.ConvReLU3d,
    nni.LinearReLU: nnqat.LinearReLU,
    nni.LinearBn1d: nnqat.LinearBn1d,
}

# torch's static-quantization module list (the float side of its mapping table), restricted
# to the layers convnet has; together with the QAT modules these are the observed leaves.
_STATIC_QUANT_FLOAT_MODULES = (
    QuantStub, DeQuantStub, nn.BatchNorm2d, nn.BatchNorm3d, nn.Dropout, nn.Conv1d, nn.Conv2d,
    nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.ELU,
    nn.GroupNorm, nn.Hardswish, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d,
    nn.LayerNorm, nn.LeakyReLU, nn.Linear, nn.ReLU6, FloatFunctional, nni.BNReLU2d,
    nni.BNReLU3d, nni.ConvReLU1d, nni.ConvReLU2d, nni.ConvReLU3d, nni.LinearReLU,
)
_DYNAMIC_QUANT_FLOAT_MODULES = (nn.Linear, nn.LSTM, nn.GRU, nni.LinearReLU)

# output ranges known in advance (used when preparing a model in training mode, as torch)
_MODULE_TO_ACT_POST_PROCESS = {
    nn.Hardsigmoid: default_fixed_qparams_range_0to1_fake_quant,
    nn.Sigmoid: default_fixed_qparams_range_0to1_fake_quant,
    nn.Softmax: default_fixed_qparams_range_0to1_fake_quant,
    nn.Tanh: default_fixed_qparams_range_neg1to1_fake_quant,
}


def get_default_qat_module_mappings() -> dict:
    """float or fused module type -> QAT module type (torch's table)."""
    return dict(_QAT_MODULE_MAPPINGS)


def get_default_qconfig_propagation_list() -> set:
    """Module types that ``prepare`` observes when they are leaves (torch's list)."""
    return (set(_STATIC_QUANT_FLOAT_MODULES) | set(_QAT_MODULE_MAPPINGS)
            | set(_QAT_MODULE_MAPPINGS.values()) | set(_DYNAMIC_QUANT_FLOAT_MODULES)
            | {nnqat.ConvBn1d, nnqat.ConvBnReLU1d, nn.Sequential})


# --------------------------------------------------------------------------- qconfig
def propagate_qconfig_(module, qconfig_dict: dict | None = None,
                       prepare_custom_config_dict: dict | None = None) -> None:
    """Set ``qconfig`` on ``module`` and all its submodules, in place.

    A module keeps its own ``qconfig`` if it has one; otherwise it takes
    ``qconfig_dict[path]``, else ``qconfig_dict[type(module)]``, else its parent's.
    """
    qconfig_dict = qconfig_dict or {}
    stack = [(module, None, "")]
    while stack:
        mod, parent_qconfig, prefix = stack.pop()
        qconfig = qconfig_dict.get(type(mod), parent_qconfig)
        qconfig = qconfig_dict.get(prefix, qconfig)
        qconfig = getattr(mod, "qconfig", qconfig)
        _assert_valid_qconfig(qconfig, mod)
        mod.qconfig = qconfig
        for name, child in reversed(list(mod.named_children())):
            stack.append((child, qconfig, f"{prefix}.{name}" if prefix else name))


# ----------------------------------------------------------------------- observers
def _observer_forward_hook(self, input, output):
    """Forward hook: pass the module's output through its observer."""
    return self.activation_post_process(output)


def _observer_forward_pre_hook(self, input):
    """Forward pre-hook: pass the module's input through its observer."""
    return self.activation_post_process(input[0])


def _needs_observation(m) -> bool:
    return getattr(m, "qconfig", None) is not None


def _insert_observer(m, special=None) -> None:
    """Add ``m.activation_post_process`` and the hook that runs it, first among m's hooks."""
    if not _needs_observation(m) or isinstance(m, DeQuantStub):
        return
    m.add_module("activation_post_process", special() if special else m.qconfig.activation())
    if _activation_is_memoryless(m.qconfig):
        handle = m.register_forward_pre_hook(_observer_forward_pre_hook)
        m._forward_pre_hooks.move_to_end(handle.id, last=False)
    else:
        handle = m.register_forward_hook(_observer_forward_hook)
        m._forward_hooks.move_to_end(handle.id, last=False)


def _is_leaf(module) -> bool:
    return not any(True for _ in module.named_children())


def _add_observer_(module, allow_list: set, non_leaf_module_list=None,
                   custom_module_class_mapping=None) -> None:
    """Insert observers into the quantizable leaves of ``module`` (torch's rules)."""
    custom = custom_module_class_mapping or {}
    for name, child in list(module.named_children()):
        if type(child) is nn.Dropout:
            continue
        if isinstance(child, FloatFunctional):
            if _needs_observation(child):
                child.activation_post_process = child.qconfig.activation()
        elif isinstance(child, _FusedModule):
            _insert_observer(child)
        elif non_leaf_module_list is not None and type(child) in non_leaf_module_list:
            _insert_observer(child)
        elif child.training and type(child) in _MODULE_TO_ACT_POST_PROCESS:
            _insert_observer(child, _MODULE_TO_ACT_POST_PROCESS[type(child)])
        elif _needs_observation(child) and type(child) in custom:
            observed = custom[type(child)].from_float(child)
            module._modules[name] = observed
            _insert_observer(observed)
        else:
            _add_observer_(child, allow_list, non_leaf_module_list, custom)
    if type(module) in allow_list and not isinstance(module, nn.Sequential):
        if _is_leaf(module) or hasattr(module, "weight_fake_quant"):
            _insert_observer(module)


def prepare(model, inplace: bool = False, allow_list: set | None = None,
            observer_non_leaf_module_list: set | None = None,
            prepare_custom_config_dict: dict | None = None):
    """A copy of ``model`` (or ``model`` itself, ``inplace=True``) with observers attached,
    ready for calibration: run representative data through it, then ``convert``.

    Args:
        model: a float model whose ``qconfig`` (on it or on submodules) says how to observe.
        inplace: modify ``model`` instead of a deep copy.
        allow_list: module types to observe (default
            :func:`get_default_qconfig_propagation_list`).
        observer_non_leaf_module_list: non-leaf module types to observe as a whole.
        prepare_custom_config_dict: ``{"float_to_observed_custom_module_class": {A: B}}``
            swaps ``A`` modules for ``B.from_float(a)`` and observes them.
    """
    custom = (prepare_custom_config_dict or {}).get("float_to_observed_custom_module_class", {})
    if not inplace:
        model = copy.deepcopy(model)
    allow = get_default_qconfig_propagation_list() if allow_list is None else set(allow_list)
    propagate_qconfig_(model)
    if not any(getattr(m, "qconfig", None) for m in model.modules()):
        warnings.warn("prepare: none of the submodules got a qconfig, so nothing will be "
                      "observed; set model.qconfig (e.g. get_default_qconfig('x86')) first",
                      stacklevel=2)
    _add_observer_(model, allow, observer_non_leaf_module_list, custom)
    return model


# ------------------------------------------------------------------------------- QAT
def _swap_module(mod, mapping: dict):
    """``mapping[type(mod)].from_float(mod)`` if ``mod`` has a qconfig and a mapping; hooks
    move to the new module (observer hooks excepted)."""
    if not _needs_observation(mod) or type(mod) not in mapping:
        return mod
    new = mapping[type(mod)].from_float(mod)
    for hook in mod._forward_pre_hooks.values():
        new.register_forward_pre_hook(hook)
    for hook in mod._forward_hooks.values():
        if hook is not _observer_forward_hook:
            new.register_forward_hook(hook)
    return new


def _swap_modules(module, mapping: dict) -> None:
    """Swap every mapped submodule in place (children first; fused modules whole)."""
    for name, child in list(module.named_children()):
        if not isinstance(child, _FusedModule):
            _swap_modules(child, mapping)
        module._modules[name] = _swap_module(child, mapping)


def prepare_qat(model, mapping: dict | None = None, inplace: bool = False):
    """A copy of the training-mode ``model`` with conv/linear/fused modules swapped for QAT
    modules (fake-quantized weights) and fake quantizers on their outputs.

    Train it as usual (``model.apply(freeze_bn_stats)`` and ``disable_observer`` for the
    last epochs are common), then ``convert(model.eval())``.
    """
    if not model.training:
        raise ValueError("prepare_qat only works on models in training mode; call "
                         "model.train() first (use prepare for post-training quantization)")
    mapping = get_default_qat_module_mappings() if mapping is None else mapping
    if not inplace:
        model = copy.deepcopy(model)
    propagate_qconfig_(model)
    _swap_modules(model, mapping)
    prepare(model, inplace=True, observer_non_leaf_module_list=set(mapping.values()))
    return model


def add_quant_dequant(module):
    """Wrap each leaf with a qconfig in a :class:`QuantWrapper` (in place; returns the
    wrapped module if ``module`` itself is such a leaf)."""
    from .stubs import QuantWrapper

    if _is_leaf(module) and getattr(module, "qconfig", None):
        return QuantWrapper(module)
    for name, child in list(module.named_children()):
        module._modules[name] = add_quant_dequant(child)
    return module

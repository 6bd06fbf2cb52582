"""``convert``: swap calibrated float modules for quantized ones (torch's eager ``convert``),
and the one-call ``quantize`` / ``quantize_qat``.

``convert`` walks the model like torch's: a child whose type is a key of the mapping is
replaced, as one unit, by ``mapping[type(child)].from_float(child)`` (fused and QAT modules
included); any other child is walked into. The default mapping is torch's default static
mapping (stubs, ``Conv2d``, ``Linear``, the fused ``ConvReLU2d`` / ``LinearReLU``, the QAT
modules, ``FloatFunctional``, ``Dropout``) plus the float modules that torch runs directly on
quantized tensors (``ReLU``, ``ReLU6``, ``MaxPool2d``, ``AvgPool2d``, ``AdaptiveAvgPool2d``,
``Flatten``, ``Identity``), which convnet swaps for their quantized equivalents.

A leaf module that has a ``qconfig`` (it sits in the quantized part of the model) but no
quantized version is an error naming every such module by path and type, before anything is
changed (torch would leave it float and fail later on a quantized input).
"""
from __future__ import annotations

import copy
import importlib
from typing import Callable

from ..nn.modules.module import Module
from . import quantized as Q

__all__ = ["convert", "quantize", "quantize_qat", "get_default_static_quant_module_mappings",
           "find_unsupported", "UnsupportedModuleError"]

# (module of convnet, class name) -> quantized class. The float side is looked up when the
# mapping is built, so that this file loads on its own.
_STATIC = [
    ("convnet.quantization.stubs", "QuantStub", Q.Quantize),
    ("convnet.quantization.stubs", "DeQuantStub", Q.DeQuantize),
    ("convnet.nn", "Conv2d", Q.Conv2d),
    ("convnet.nn", "Linear", Q.Linear),
    ("convnet.nn", "Dropout", Q.Dropout),
    ("convnet.quantization.intrinsic", "ConvReLU2d", Q.ConvReLU2d),
    ("convnet.quantization.intrinsic", "LinearReLU", Q.LinearReLU),
    ("convnet.quantization.qat", "Conv2d", Q.Conv2d),
    ("convnet.quantization.qat", "Linear", Q.Linear),
    ("convnet.quantization.qat", "ConvBn2d", Q.Conv2d),
    ("convnet.quantization.qat", "ConvBnReLU2d", Q.ConvReLU2d),
    ("convnet.quantization.qat", "ConvReLU2d", Q.ConvReLU2d),
    ("convnet.quantization.qat", "LinearReLU", Q.LinearReLU),
    # torch runs these float modules on quantized tensors directly; they keep the qparams
    ("convnet.nn", "ReLU", Q.ReLU),
    ("convnet.nn", "ReLU6", Q.ReLU6),
    ("convnet.nn", "MaxPool2d", Q.MaxPool2d),
    ("convnet.nn", "AvgPool2d", Q.AvgPool2d),
    ("convnet.nn", "AdaptiveAvgPool2d", Q.AdaptiveAvgPool2d),
    ("convnet.nn", "Flatten", Q.Flatten),
    ("convnet.nn", "Identity", Q.Identity),
]
# FloatFunctional lives with the float-side helpers; the first of these modules that has it
_FLOAT_FUNCTIONAL_HOMES = ("convnet.quantization.stubs", "convnet.quantization.functional_modules",
                           "convnet.quantization.intrinsic", "convnet.quantization.prepare")
# children that prepare/prepare_qat attach: never converted, never reported
_OBSERVER_NAMES = ("activation_post_process", "weight_fake_quant")


class UnsupportedModuleError(ValueError):
    """Modules in the quantized part of a model have no quantized version."""


def _lookup(module_name: str, class_name: str):
    try:
        return getattr(importlib.import_module(module_name), class_name, None)
    except ImportError:
        return None


def get_default_static_quant_module_mappings() -> dict[type, type]:
    """float (or fused, or QAT) module class -> quantized module class (a new dict)."""
    mapping: dict[type, type] = {}
    for module_name, class_name, qcls in _STATIC:
        cls = _lookup(module_name, class_name)
        if cls is not None:
            mapping.setdefault(cls, qcls)
    for home in _FLOAT_FUNCTIONAL_HOMES:
        cls = _lookup(home, "FloatFunctional")
        if cls is not None:
            mapping[cls] = Q.QFunctional
            break
    return mapping


def _is_observer(name: str, mod: Module) -> bool:
    if name in _OBSERVER_NAMES:
        return True
    bases = [_lookup("convnet.quantization.observer", "ObserverBase"),
             _lookup("convnet.quantization.fake_quantize", "FakeQuantizeBase")]
    return any(b is not None and isinstance(mod, b) for b in bases)


def _is_fused(mod: Module) -> bool:
    fused = _lookup("convnet.quantization.intrinsic", "_FusedModule")
    return fused is not None and isinstance(mod, fused)


def _children(mod: Module):
    """Children other than observers / fake quantizers."""
    return [(n, c) for n, c in mod.named_children() if not _is_observer(n, c)]


def _unsupported(module: Module, mapping: dict, prefix: str = "") -> list[tuple[str, str]]:
    """``(path, type name)`` of every leaf with a qconfig and no entry in ``mapping``."""
    found = []
    for name, child in _children(module):
        path = f"{prefix}.{name}" if prefix else name
        if type(child) in mapping:
            continue
        if _is_fused(child) and getattr(child, "qconfig", None) is not None:
            found.append((path, type(child).__name__))  # one unit: its parts are not listed
        elif _children(child):
            found += _unsupported(child, mapping, path)
        elif getattr(child, "qconfig", None) is not None:
            found.append((path, type(child).__name__))
    return found


def find_unsupported(module: Module, mapping: dict | None = None) -> list[tuple[str, str]]:
    """``(path, type name)`` of every module that has a qconfig but no quantized version in
    ``mapping`` (default mapping if None): what :func:`convert` would refuse."""
    mapping = get_default_static_quant_module_mappings() if mapping is None else mapping
    return _unsupported(module, mapping)


def _is_observer_hook(fn) -> bool:
    """prepare's hooks that run the observers: not carried over to the quantized module."""
    name = getattr(getattr(fn, "func", fn), "__name__", "")  # functools.partial too
    return "observer" in name.lower() or "activation_post_process" in name


def _swap(mod: Module, mapping: dict) -> Module:
    new = mapping[type(mod)].from_float(mod)
    # user hooks survive the swap (they see quantized tensors now), as in torch
    for hook in mod._forward_pre_hooks.values():
        if not _is_observer_hook(hook):
            new.register_forward_pre_hook(hook)
    for hook in mod._forward_hooks.values():
        if not _is_observer_hook(hook):
            new.register_forward_hook(hook)
    return new


def _convert(module: Module, mapping: dict) -> None:
    for name, child in _children(module):
        if type(child) in mapping:
            # torch swaps only modules that were given a qconfig: ``qconfig = None`` keeps a
            # layer (and its observer-free float weights) as it is
            if getattr(child, "qconfig", None) is not None:
                module._modules[name] = _swap(child, mapping)
        else:
            _convert(child, mapping)


def _remove_qconfig(module: Module) -> None:
    for m in module.modules():
        if "qconfig" in m.__dict__:
            del m.__dict__["qconfig"]


def convert(module: Module, mapping: dict | None = None, inplace: bool = False,
            remove_qconfig: bool = True) -> Module:
    """Replace every calibrated float module by its quantized version (torch's ``convert``).

    Args:
        module: a model after :func:`prepare` and calibration (or :func:`prepare_qat` and
            training).
        mapping: float class -> quantized class with ``from_float``; default
            :func:`get_default_static_quant_module_mappings`.
        inplace: change ``module`` itself (default: convert a deep copy).
        remove_qconfig: delete the ``qconfig`` attributes afterwards (default True).

    Raises:
        UnsupportedModuleError (a ValueError): modules with a qconfig and no quantized
            version, all of them named with their paths and types.
    """
    if not isinstance(module, Module):
        raise TypeError(f"convert: expected an nn.Module, got {type(module).__name__}")
    mapping = get_default_static_quant_module_mappings() if mapping is None else dict(mapping)
    if type(module) in mapping:  # the model itself is one quantizable unit
        return _swap(module if inplace else copy.deepcopy(module), mapping)
    bad = find_unsupported(module, mapping)
    if bad:
        listed = ", ".join(f"{path!r} ({kind})" for path, kind in bad)
        raise UnsupportedModuleError(
            f"convert: {len(bad)} module(s) in the quantized part of the model have no "
            f"quantized version: {listed}. Fuse batch norm and activations into the preceding "
            "conv/linear (fuse_modules), replace the layer, or set its qconfig = None and "
            "surround it with DeQuantStub/QuantStub to keep it in float")
    if not inplace:
        module = copy.deepcopy(module)
    _convert(module, mapping)
    if remove_qconfig:
        _remove_qconfig(module)
    return module


def quantize(model: Module, run_fn: Callable, run_args, mapping: dict | None = None,
             inplace: bool = False) -> Module:
    """Post-training static quantization in one call: ``eval()``, :func:`prepare`,
    ``run_fn(model, *run_args)`` to calibrate, :func:`convert` (torch's ``quantize``)."""
    from .prepare import prepare

    if not inplace:
        model = copy.deepcopy(model)
    model.eval()
    prepare(model, inplace=True)
    run_fn(model, *run_args)
    return convert(model, mapping, inplace=True)


def quantize_qat(model: Module, run_fn: Callable, run_args, inplace: bool = False) -> Module:
    """Quantization-aware training in one call: ``train()``, :func:`prepare_qat`,
    ``run_fn(model, *run_args)`` to train, then :func:`convert` (torch's ``quantize_qat``)."""
    from .prepare import prepare_qat

    if not inplace:
        model = copy.deepcopy(model)
    model.train()
    prepare_qat(model, inplace=True)
    run_fn(model, *run_args)
    return convert(model, inplace=True)

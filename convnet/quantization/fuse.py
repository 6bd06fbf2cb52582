"""Module fusion: merge conv/linear + batch norm (+ ReLU) into one module before quantizing.

Folding an eval-mode BatchNorm (running mean ``mu``, variance ``var``, affine ``gamma``,
``beta``) into the preceding conv or linear layer (weight ``W``, bias ``b``):

    ``s = gamma / sqrt(var + eps)``  (one factor per output channel)
    ``W' = W * s`` (scaling output channel ``c`` by ``s[c]``),
    ``b' = (b - mu) * s + beta``

gives one layer computing exactly ``bn(conv(x))``, so the quantized model has one
requantization where the float one had two ops, and BN costs nothing at inference.
A ReLU that follows is kept in a fused module (``ConvReLU2d``, ``LinearReLU``) so the
quantized kernel can clamp in the integer domain.

``fuse_modules(model, [["conv", "bn", "relu"], ...])`` (eval mode) puts the fused module
in the first slot and ``nn.Identity()`` in the others, as torch does. For QAT
(``fuse_modules_qat``, train mode) conv+bn stay unfolded in ``ConvBn2d``/``ConvBnReLU2d``:
``prepare_qat`` turns them into modules that simulate the folding while BN still learns.
"""
from __future__ import annotations

import copy

import numpy as np

from .. import nn
from ..nn.parameter import Parameter
from . import intrinsic as nni

__all__ = [
    "fuse_modules", "fuse_modules_qat", "fuse_known_modules", "fuse_conv_bn_eval",
    "fuse_conv_bn_weights", "fuse_linear_bn_eval", "fuse_linear_bn_weights", "fuse_conv_bn",
    "fuse_conv_bn_relu", "fuse_linear_bn", "get_fuser_method",
]


# ----------------------------------------------------------------- folding the weights
def fuse_conv_bn_weights(conv_w, conv_b, bn_rm, bn_rv, bn_eps: float, bn_w, bn_b,
                         transpose: bool = False) -> tuple[Parameter, Parameter]:
    """``(W * s, (b - mu) * s + beta)`` with ``s = gamma / sqrt(var + eps)`` per output
    channel (axis 0 of ``W``, axis 1 for a transposed conv); missing ``b``/``gamma``/``beta``
    count as 0/1/0. Returns new Parameters in the conv's dtypes."""
    w = conv_w._data
    rm, rv = bn_rm._data, bn_rv._data
    b = conv_b._data if conv_b is not None else np.zeros_like(rm)
    gamma = bn_w._data if bn_w is not None else np.ones_like(rm)
    beta = bn_b._data if bn_b is not None else np.zeros_like(rm)
    rsqrt = 1 / np.sqrt(rv + bn_eps)
    shape = [1, -1] if transpose else [-1, 1]
    shape += [1] * (w.ndim - 2)
    fused_w = (w * (gamma * rsqrt).reshape(shape)).astype(w.dtype)
    fused_b = ((b - rm) * rsqrt * gamma + beta).astype(b.dtype if conv_b is not None else w.dtype)
    grad_b = conv_b.requires_grad if conv_b is not None else False
    return Parameter(fused_w, conv_w.requires_grad), Parameter(fused_b, grad_b)


def fuse_linear_bn_weights(linear_w, linear_b, bn_rm, bn_rv, bn_eps: float, bn_w, bn_b):
    """Linear version of :func:`fuse_conv_bn_weights` (rows of ``W`` are output features)."""
    return fuse_conv_bn_weights(linear_w, linear_b, bn_rm, bn_rv, bn_eps, bn_w, bn_b)


def _check_eval(op: str, *mods) -> None:
    if any(m.training for m in mods):
        modes = ", ".join(f"{type(m).__name__}(training={m.training})" for m in mods)
        raise ValueError(f"{op}: folding BatchNorm uses its running statistics, so the modules "
                         f"must be in eval mode, got {modes}; call model.eval() first, or use "
                         "fuse_modules_qat for quantization-aware training")


def fuse_conv_bn_eval(conv, bn, transpose: bool = False):
    """A copy of ``conv`` whose weight and bias absorb the eval-mode ``bn`` (see the module
    docstring). Both must be in eval mode and ``bn`` must track running statistics."""
    _check_eval("fuse_conv_bn_eval", conv, bn)
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("fuse_conv_bn_eval: bn has no running statistics "
                         "(track_running_stats=False) to fold")
    fused = copy.deepcopy(conv)
    fused.weight, fused.bias = fuse_conv_bn_weights(fused.weight, fused.bias, bn.running_mean,
                                                    bn.running_var, bn.eps, bn.weight, bn.bias,
                                                    transpose)
    return fused


def fuse_linear_bn_eval(linear, bn):
    """A copy of ``linear`` that absorbs the eval-mode ``bn`` (``BatchNorm1d`` over its
    ``out_features``, or over 1 feature)."""
    _check_eval("fuse_linear_bn_eval", linear, bn)
    if linear.out_features != bn.num_features and bn.num_features != 1:
        raise ValueError(f"fuse_linear_bn_eval: linear.out_features ({linear.out_features}) "
                         f"must equal bn.num_features ({bn.num_features}) or bn must have 1 feature")
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("fuse_linear_bn_eval: bn has no running statistics to fold")
    fused = copy.deepcopy(linear)
    fused.weight, fused.bias = fuse_linear_bn_weights(fused.weight, fused.bias, bn.running_mean,
                                                      bn.running_var, bn.eps, bn.weight, bn.bias)
    return fused


# ----------------------------------------------------------------------- fuser methods
def _check_qat_bn(layer, bn, out: int) -> None:
    if bn.num_features != out:
        raise ValueError(f"fuse_modules_qat: {type(layer).__name__} has {out} outputs but "
                         f"{type(bn).__name__} has num_features={bn.num_features}")
    if not bn.affine or not bn.track_running_stats:
        raise ValueError(f"fuse_modules_qat: {type(bn).__name__} needs affine=True and "
                         "track_running_stats=True to be fused for QAT")


_CONV_BN = {nn.Conv1d: nni.ConvBn1d, nn.Conv2d: nni.ConvBn2d, nn.Conv3d: nni.ConvBn3d}
_CONV_BN_RELU = {nn.Conv1d: nni.ConvBnReLU1d, nn.Conv2d: nni.ConvBnReLU2d,
                 nn.Conv3d: nni.ConvBnReLU3d}
_CONV_RELU = {nn.Conv1d: nni.ConvReLU1d, nn.Conv2d: nni.ConvReLU2d, nn.Conv3d: nni.ConvReLU3d}


def _same_mode(*mods) -> None:
    if len({m.training for m in mods}) > 1:
        modes = ", ".join(f"{type(m).__name__}(training={m.training})" for m in mods)
        raise ValueError(f"fuse_modules: the modules must all be in the same mode (train or "
                         f"eval), got {modes}")


def fuse_conv_bn(is_qat: bool, conv, bn):
    """QAT: ``ConvBn*d(conv, bn)``; otherwise the BN folded into a copy of the conv."""
    _same_mode(conv, bn)
    if is_qat:
        _check_qat_bn(conv, bn, conv.out_channels)
        return _CONV_BN[type(conv)](conv, bn)
    return fuse_conv_bn_eval(conv, bn)


def fuse_conv_bn_relu(is_qat: bool, conv, bn, relu):
    """QAT: ``ConvBnReLU*d(conv, bn, relu)``; otherwise ``ConvReLU*d(folded conv, relu)``."""
    _same_mode(conv, bn, relu)
    if is_qat:
        _check_qat_bn(conv, bn, conv.out_channels)
        return _CONV_BN_RELU[type(conv)](conv, bn, relu)
    return _CONV_RELU[type(conv)](fuse_conv_bn_eval(conv, bn), relu)


def fuse_linear_bn(is_qat: bool, linear, bn):
    """QAT: ``LinearBn1d(linear, bn)``; otherwise the BN folded into a copy of the linear."""
    _same_mode(linear, bn)
    if is_qat:
        _check_qat_bn(linear, bn, linear.out_features)
        return nni.LinearBn1d(linear, bn)
    return fuse_linear_bn_eval(linear, bn)


def fuse_convtranspose_bn(is_qat: bool, convt, bn):
    """Eval only: the BN folded into a copy of the transposed conv (its axis 1)."""
    _same_mode(convt, bn)
    if is_qat:
        raise NotImplementedError("fuse_modules_qat: fusing ConvTranspose+BatchNorm is not "
                                  "supported for QAT")
    return fuse_conv_bn_eval(convt, bn, transpose=True)


def _sequential(cls):
    def fuser(is_qat, a, b):
        return cls(a, b)
    return fuser


# torch's table: module types in order -> how to fuse them
_DEFAULT_OP_LIST_TO_FUSER_METHOD = {
    (nn.Conv1d, nn.BatchNorm1d): fuse_conv_bn,
    (nn.Conv1d, nn.BatchNorm1d, nn.ReLU): fuse_conv_bn_relu,
    (nn.Conv2d, nn.BatchNorm2d): fuse_conv_bn,
    (nn.Conv2d, nn.BatchNorm2d, nn.ReLU): fuse_conv_bn_relu,
    (nn.Conv3d, nn.BatchNorm3d): fuse_conv_bn,
    (nn.Conv3d, nn.BatchNorm3d, nn.ReLU): fuse_conv_bn_relu,
    (nn.Conv1d, nn.ReLU): _sequential(nni.ConvReLU1d),
    (nn.Conv2d, nn.ReLU): _sequential(nni.ConvReLU2d),
    (nn.Conv3d, nn.ReLU): _sequential(nni.ConvReLU3d),
    (nn.Linear, nn.BatchNorm1d): fuse_linear_bn,
    (nn.Linear, nn.ReLU): _sequential(nni.LinearReLU),
    (nn.BatchNorm2d, nn.ReLU): _sequential(nni.BNReLU2d),
    (nn.BatchNorm3d, nn.ReLU): _sequential(nni.BNReLU3d),
    (nn.ConvTranspose1d, nn.BatchNorm1d): fuse_convtranspose_bn,
    (nn.ConvTranspose2d, nn.BatchNorm2d): fuse_convtranspose_bn,
    (nn.ConvTranspose3d, nn.BatchNorm3d): fuse_convtranspose_bn,
}


def _names(types) -> str:
    return "(" + ", ".join(t.__name__ for t in types) + ")"


def get_fuser_method(op_list: tuple, additional_fuser_method_mapping: dict | None = None):
    """The fuser for a tuple of module types; a ``ValueError`` naming them if there is none."""
    table = {**_DEFAULT_OP_LIST_TO_FUSER_METHOD, **(additional_fuser_method_mapping or {})}
    method = table.get(tuple(op_list))
    if method is None:
        known = "; ".join(_names(k) for k in table)
        raise ValueError(f"fuse_modules: cannot fuse {_names(op_list)}; fusable sequences are "
                         f"{known}")
    return method


def fuse_known_modules(mod_list: list, is_qat: bool, additional_fuser_method_mapping=None):
    """``[fused, Identity(), ...]`` for one fusable list of modules. The first module's
    forward pre-hooks and the last one's forward hooks move to the fused module."""
    fuser = get_fuser_method(tuple(type(m) for m in mod_list), additional_fuser_method_mapping)
    fused = fuser(is_qat, *mod_list)
    for hook in mod_list[0]._forward_pre_hooks.values():
        fused.register_forward_pre_hook(hook)
    mod_list[0]._forward_pre_hooks.clear()
    for hook in mod_list[-1]._forward_hooks.values():
        fused.register_forward_hook(hook)
    mod_list[-1]._forward_hooks.clear()
    rest = []
    for _ in mod_list[1:]:
        identity = nn.Identity()
        identity.train(mod_list[0].training)
        rest.append(identity)
    return [fused] + rest


def _get_module(model, path: str, op: str):
    mod = model
    for i, part in enumerate(path.split(".")):
        child = mod._modules.get(part) if hasattr(mod, "_modules") else None
        if child is None:
            where = ".".join(path.split(".")[:i]) or "the model"
            raise AttributeError(f"{op}: no submodule {path!r} ({where} "
                                 f"[{type(mod).__name__}] has no child {part!r})")
        mod = child
    return mod


def _set_module(model, path: str, module) -> None:
    *parents, last = path.split(".")
    mod = model
    for part in parents:
        mod = mod._modules[part]
    mod._modules[last] = module


def _check_fusable(paths, mods, is_qat: bool, extra: dict, op: str) -> None:
    """Name the paths and types when a group cannot be fused, or cannot be fused now."""
    types = tuple(type(m) for m in mods)
    if types not in {**_DEFAULT_OP_LIST_TO_FUSER_METHOD, **extra}:
        known = "; ".join(_names(k) for k in {**_DEFAULT_OP_LIST_TO_FUSER_METHOD, **extra})
        raise ValueError(f"{op}: cannot fuse {list(paths)} = {_names(types)}; fusable "
                         f"sequences are {known}")
    bn_types = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
    if not is_qat and any(isinstance(m, bn_types) for m in mods[1:]) \
            and any(m.training for m in mods):
        modes = ", ".join(f"{p!r} {type(m).__name__}(training={m.training})"
                          for p, m in zip(paths, mods))
        raise ValueError(f"{op}: folding BatchNorm uses its running statistics, so {modes} "
                         "must be in eval mode; call model.eval() first, or use "
                         "fuse_modules_qat for quantization-aware training")


def _fuse_modules(model, modules_to_fuse, is_qat: bool, inplace: bool, fuser_func,
                  fuse_custom_config_dict, op: str):
    if not inplace:
        model = copy.deepcopy(model)
    extra = (fuse_custom_config_dict or {}).get("additional_fuser_method_mapping", {})
    groups = [modules_to_fuse] if all(isinstance(m, str) for m in modules_to_fuse) \
        else modules_to_fuse
    for group in groups:
        mods = [_get_module(model, path, op) for path in group]
        if fuser_func is fuse_known_modules:
            _check_fusable(group, mods, is_qat, extra, op)
        for path, m in zip(group, fuser_func(mods, is_qat, extra)):
            _set_module(model, path, m)
    return model


def fuse_modules(model, modules_to_fuse, inplace: bool = False, fuser_func=fuse_known_modules,
                 fuse_custom_config_dict=None):
    """Fuse each listed group of submodules (dotted paths) of an eval-mode ``model``.

    Fusable groups (torch's table): conv+bn, conv+bn+relu, conv+relu, linear+bn,
    linear+relu, bn+relu (1d/2d/3d as applicable). The first path gets the fused module,
    the others ``nn.Identity()``. ``modules_to_fuse`` is a list of lists of names, or one
    list of names. Returns a fused copy (``inplace=False``) or ``model`` itself.

    Examples::

        model.eval()
        fused = fuse_modules(model, [["features.0", "features.1", "features.2"]])
    """
    return _fuse_modules(model, modules_to_fuse, False, inplace, fuser_func,
                         fuse_custom_config_dict, "fuse_modules")


def fuse_modules_qat(model, modules_to_fuse, inplace: bool = False,
                     fuser_func=fuse_known_modules, fuse_custom_config_dict=None):
    """:func:`fuse_modules` for quantization-aware training (train mode): conv+bn(+relu)
    and linear+bn become ``ConvBn2d``/``ConvBnReLU2d``/``LinearBn1d`` (BN not folded yet)."""
    return _fuse_modules(model, modules_to_fuse, True, inplace, fuser_func,
                         fuse_custom_config_dict, "fuse_modules_qat")

"""Fused float modules (``torch.ao.nn.intrinsic``): a ``Sequential`` of layers that
quantization treats as one op.

``fuse_modules`` builds them; each runs its layers in order (``ConvReLU2d(conv, relu)(x) ==
relu(conv(x))``), so a fused float model computes what the original did. ``prepare``
observes only the fused module's output (one requantization instead of two) and
``convert`` swaps it for one quantized kernel; ``prepare_qat`` swaps it for the QAT module
of :mod:`convnet.quantization.qat`. ``[0]`` is the conv/linear, as in torch.
"""
from __future__ import annotations

from .. import nn

__all__ = [
    "ConvReLU1d", "ConvReLU2d", "ConvReLU3d", "LinearReLU", "ConvBn1d", "ConvBn2d",
    "ConvBn3d", "ConvBnReLU1d", "ConvBnReLU2d", "ConvBnReLU3d", "BNReLU2d", "BNReLU3d",
    "LinearBn1d",
]


class _FusedModule(nn.Sequential):
    """Base of fused modules: quantization passes treat it as one leaf (they add one
    observer to it and do not recurse into it)."""

    _TYPES: tuple = ()

    def __init__(self, *mods):
        want = self._TYPES
        if len(mods) != len(want) or any(type(m) is not t for m, t in zip(mods, want)):
            got = ", ".join(type(m).__name__ for m in mods)
            raise TypeError(f"{type(self).__name__}: expected modules "
                            f"({', '.join(t.__name__ for t in want)}), got ({got})")
        super().__init__(*mods)


def _fused(name: str, types: tuple, doc: str) -> type:
    return type(name, (_FusedModule,), {"_TYPES": types, "__doc__": doc, "__module__": __name__})


ConvReLU1d = _fused("ConvReLU1d", (nn.Conv1d, nn.ReLU), "``relu(conv1d(x))``.")
ConvReLU2d = _fused("ConvReLU2d", (nn.Conv2d, nn.ReLU), "``relu(conv2d(x))``.")
ConvReLU3d = _fused("ConvReLU3d", (nn.Conv3d, nn.ReLU), "``relu(conv3d(x))``.")
LinearReLU = _fused("LinearReLU", (nn.Linear, nn.ReLU), "``relu(linear(x))``.")
ConvBn1d = _fused("ConvBn1d", (nn.Conv1d, nn.BatchNorm1d),
                  "``bn(conv1d(x))``, kept unfolded for QAT (``fuse_modules_qat``).")
ConvBn2d = _fused("ConvBn2d", (nn.Conv2d, nn.BatchNorm2d),
                  "``bn(conv2d(x))``, kept unfolded for QAT (``fuse_modules_qat``).")
ConvBn3d = _fused("ConvBn3d", (nn.Conv3d, nn.BatchNorm3d),
                  "``bn(conv3d(x))``, kept unfolded for QAT (``fuse_modules_qat``).")
ConvBnReLU1d = _fused("ConvBnReLU1d", (nn.Conv1d, nn.BatchNorm1d, nn.ReLU),
                      "``relu(bn(conv1d(x)))``, for QAT.")
ConvBnReLU2d = _fused("ConvBnReLU2d", (nn.Conv2d, nn.BatchNorm2d, nn.ReLU),
                      "``relu(bn(conv2d(x)))``, for QAT.")
ConvBnReLU3d = _fused("ConvBnReLU3d", (nn.Conv3d, nn.BatchNorm3d, nn.ReLU),
                      "``relu(bn(conv3d(x)))``, for QAT.")
BNReLU2d = _fused("BNReLU2d", (nn.BatchNorm2d, nn.ReLU), "``relu(batch_norm2d(x))``.")
BNReLU3d = _fused("BNReLU3d", (nn.BatchNorm3d, nn.ReLU), "``relu(batch_norm3d(x))``.")
LinearBn1d = _fused("LinearBn1d", (nn.Linear, nn.BatchNorm1d),
                    "``bn(linear(x))``, kept unfolded for QAT (``fuse_modules_qat``).")

"""Where a model enters and leaves the quantized world, and float ops that need observing.

* :class:`QuantStub` marks where float inputs become quantized: before ``convert`` it is
  the identity (``prepare`` gives it an observer for the input's range), after it
  quantizes. :class:`DeQuantStub` marks where outputs become float again.
* :class:`QuantWrapper` puts the pair around a whole model: ``dequant(module(quant(x)))``.
* :class:`FloatFunctional` does tensor arithmetic that is not a layer (residual ``add``,
  ``cat``, ...) through a module, so ``prepare`` can observe the result's range and
  ``convert`` can swap in a quantized version.
"""
from __future__ import annotations

from .. import functional as F
from ..nn.modules.container import Identity
from ..nn.modules.module import Module

__all__ = ["QuantStub", "DeQuantStub", "QuantWrapper", "FloatFunctional"]


class QuantStub(Module):
    """Identity until ``convert`` swaps it for a quantize op. Args: ``qconfig`` (optional; by
    default the parent's is used)."""

    def __init__(self, qconfig=None):
        super().__init__()
        if qconfig:
            self.qconfig = qconfig

    def forward(self, x):
        return x


class DeQuantStub(Module):
    """Identity until ``convert`` swaps it for a dequantize op (never observed)."""

    def __init__(self, qconfig=None):
        super().__init__()
        if qconfig:
            self.qconfig = qconfig

    def forward(self, x):
        return x


class QuantWrapper(Module):
    """``dequant(module(quant(x)))``: quantize a whole model. The stubs take ``module``'s
    ``qconfig`` (if it has one) and the wrapper takes its train/eval mode."""

    def __init__(self, module: Module):
        super().__init__()
        qconfig = getattr(module, "qconfig", None)
        self.add_module("quant", QuantStub(qconfig))
        self.add_module("dequant", DeQuantStub(qconfig))
        self.add_module("module", module)
        self.train(module.training)

    def forward(self, X):
        return self.dequant(self.module(self.quant(X)))


class FloatFunctional(Module):
    """Float tensor ops whose results pass through ``self.activation_post_process``
    (``Identity`` until ``prepare`` puts an observer there).

    Use an instance per op site instead of the bare op: ``self.skip = FloatFunctional()``,
    then ``out = self.skip.add(x, identity)``. ``add_scalar`` and ``mul_scalar`` are not
    observed (as in torch: their quantized versions derive the output range from the
    input's). Calling the module itself is an error.
    """

    def __init__(self):
        super().__init__()
        self.activation_post_process = Identity()

    def forward(self, x):
        raise RuntimeError("FloatFunctional is not intended to use the 'forward'. Please use "
                           "the underlying operation (add, add_relu, mul, cat, ...)")

    def add(self, x, y):
        """``x + y``."""
        return self.activation_post_process(x + y)

    def add_scalar(self, x, y: float):
        """``x + y`` for a Python number ``y`` (not observed)."""
        return x + y

    def mul(self, x, y):
        """``x * y``."""
        return self.activation_post_process(x * y)

    def mul_scalar(self, x, y: float):
        """``x * y`` for a Python number ``y`` (not observed)."""
        return x * y

    def cat(self, x, dim: int = 0):
        """``cat(x, dim)`` of a sequence of tensors."""
        from .. import cat

        return self.activation_post_process(cat(list(x), dim=dim))

    def add_relu(self, x, y):
        """``relu(x + y)`` (ResNet's residual join)."""
        return self.activation_post_process(F.relu(x + y))

    def matmul(self, x, y):
        """``x @ y``."""
        return self.activation_post_process(x @ y)

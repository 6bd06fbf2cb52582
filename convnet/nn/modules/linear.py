"""``Linear``: a fully-connected layer."""
from __future__ import annotations

import math

import numpy as np

from ... import functional as F
from ...device import parameter_dtype
from .. import init
from ..parameter import Parameter
from .module import Module

__all__ = ["Linear"]


class Linear(Module):
    """``y = x W^T + b``.

    Args:
        in_features, out_features: sizes of each input and output sample.
        bias: learn an additive bias (default True).
        device: must be the CPU (``None``, ``'cpu'``); others raise RuntimeError.
        dtype: parameter dtype (float32 default).

    Shape: ``(*, in_features) -> (*, out_features)``. Parameters:
    ``in_features * out_features + out_features``. Initialisation as PyTorch:
    ``W, b ~ U(-1/sqrt(in), 1/sqrt(in))``.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None,
                 dtype=None):
        super().__init__()
        dtype = parameter_dtype("Linear", device, dtype)
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(np.empty((out_features, in_features), dtype=dtype))
        self.bias = Parameter(np.empty(out_features, dtype=dtype)) if bias else None
        if not bias:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"

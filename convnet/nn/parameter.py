"""``Parameter``: a Tensor that a Module registers as learnable."""
from __future__ import annotations

import numpy as np

from ..tensor import Tensor, _to_array


class Parameter(Tensor):
    """A leaf tensor with ``requires_grad=True`` that ``Module`` registers when assigned.

    Float data keep their dtype (float32 by default; float64 stays float64).
    """

    def __init__(self, data=None, requires_grad: bool = True):
        if data is None:
            data = np.empty(0, dtype=np.float32)
        arr = data._data if isinstance(data, Tensor) else _to_array(data, copy=False)
        super().__init__(arr, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

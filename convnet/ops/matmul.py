"""Matrix product with NumPy's ``matmul`` semantics (1-D, 2-D and batched, broadcast)."""
from __future__ import annotations

import numpy as np

from ..autograd.function import Function, unbroadcast


class MatMul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return np.asarray(np.matmul(a, b))

    def backward(self, g):
        a, b = self.a, self.b
        na, nb = self.needs_input_grad
        # Promote 1-D operands to matrices so one rule covers every case.
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = g
        if b.ndim == 1:  # restore the dropped column axis first, then the row axis
            g2 = np.expand_dims(g2, -1)
        if a.ndim == 1:
            g2 = np.expand_dims(g2, -2)
        ga = gb = None
        if na:
            ga = np.matmul(g2, np.swapaxes(b2, -1, -2))
            ga = unbroadcast(ga, a2.shape).reshape(a.shape)
        if nb:
            gb = np.matmul(np.swapaxes(a2, -1, -2), g2)
            gb = unbroadcast(gb, b2.shape).reshape(b.shape)
        return ga, gb

"""Fully-connected layer: ``(*, in_features) -> (*, out_features)``, ``y = x W^T + b``."""
from __future__ import annotations


from ..autograd.function import Function
from ..tensor import Tensor

__all__ = ["linear"]


class _Linear(Function):
    """One GEMM forward, two GEMMs backward; leading dims are folded into the batch."""

    def forward(self, x, w, b):
        self.x, self.w, self.has_b = x, w, b is not None
        x2 = x.reshape(-1, x.shape[-1])
        out = x2 @ w.T
        if b is not None:
            out += b
        return out.reshape(x.shape[:-1] + (w.shape[0],))

    def backward(self, g):
        nx, nw, nb = self.needs_input_grad
        g2 = g.reshape(-1, g.shape[-1])
        gx = (g2 @ self.w).reshape(self.x.shape) if nx else None
        gw = g2.T @ self.x.reshape(-1, self.x.shape[-1]) if nw else None
        gb = g2.sum(axis=0) if (nb and self.has_b) else None
        return gx, gw, gb


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``y = x W^T + b``.

    Shapes: input ``(*, in)``, weight ``(out, in)``, bias ``(out,)`` -> ``(*, out)``.
    """
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out, in), got shape {weight.shape}")
    if input.ndim == 0 or input.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"linear: input of shape {input.shape} has {input.shape[-1] if input.ndim else 0} "
            f"features but weight {weight.shape} expects {weight.shape[1]}"
        )
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"linear: bias shape {bias.shape} does not match weight {weight.shape}")
    if input.dtype != weight.dtype:
        raise TypeError(f"linear: input dtype {input.dtype} differs from weight dtype {weight.dtype}")
    return _Linear.apply(input, weight, bias)

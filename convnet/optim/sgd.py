"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay."""
from __future__ import annotations

from .. import backends
from .optimizer import Optimizer


class SGD(Optimizer):
    """PyTorch's SGD:

    ``g = grad + wd * p``; with momentum ``b = mu * b + (1 - dampening) * g`` (``b = g``
    on the first step); ``g = g + mu * b`` (Nesterov) or ``g = b``; ``p -= lr * g``.
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0, dampening: float = 0,
                 weight_decay: float = 0, nesterov: bool = False, *, maximize: bool = False):
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"SGD: lr, momentum and weight_decay must be >= 0 (got {lr}, {momentum}, {weight_decay})")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov, maximize=maximize))

    _update_negates = True  # the kernel applies maximize: no negated copy of the gradient

    def _update(self, p, grad, state, group):
        # one fused in-place pass on the numba backend; the NumPy reference otherwise
        buf = backends.get().sgd_update(
            p._data, grad, state.get("momentum_buffer"), group["lr"], group["momentum"],
            group["dampening"], group["weight_decay"], group["nesterov"],
            group.get("maximize", False))
        if buf is not None:
            state["momentum_buffer"] = buf

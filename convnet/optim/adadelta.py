"""Adadelta (Zeiler 2012), PyTorch's variant."""
from __future__ import annotations

import numpy as np

from .optimizer import Optimizer


class Adadelta(Optimizer):
    """Adadelta: a step size from running averages of squared gradients and squared updates.

    ``g = grad + wd * p``; ``v = rho v + (1 - rho) g^2``;
    ``delta = sqrt(u + eps) / sqrt(v + eps) * g``; ``u = rho u + (1 - rho) delta^2``;
    ``p -= lr * delta`` (``v`` is ``state['square_avg']``, ``u`` is ``state['acc_delta']``).
    ``maximize=True`` ascends (``g = -grad``).

    Example::

        opt = optim.Adadelta(model.parameters(), lr=1.0)
    """

    def __init__(self, params, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0, foreach: bool | None = None, *,
                 capturable: bool = False, maximize: bool = False, differentiable: bool = False):
        if lr < 0:
            raise ValueError(f"Adadelta: invalid learning rate: {lr}")
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Adadelta: invalid rho value: {rho}")
        if eps < 0:
            raise ValueError(f"Adadelta: invalid epsilon value: {eps}")
        if weight_decay < 0:
            raise ValueError(f"Adadelta: invalid weight_decay value: {weight_decay}")
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay,
                                      maximize=maximize, foreach=foreach,
                                      capturable=capturable, differentiable=differentiable))

    def _update(self, p, grad, state, group):
        rho, eps, wd = group["rho"], group["eps"], group["weight_decay"]
        if not state:
            state["step"] = 0
            state["square_avg"] = np.zeros_like(p._data)
            state["acc_delta"] = np.zeros_like(p._data)
        state["step"] += 1
        if wd:
            grad = grad + wd * p._data
        v, u = state["square_avg"], state["acc_delta"]
        v *= rho
        v += (1 - rho) * grad * grad
        delta = np.sqrt(u + eps) / np.sqrt(v + eps) * grad
        u *= rho
        u += (1 - rho) * delta * delta
        p._data -= group["lr"] * delta

"""Adam and AdamW (Kingma & Ba 2015; Loshchilov & Hutter 2019)."""
from __future__ import annotations

import numpy as np

from .. import backends
from .optimizer import Optimizer


class Adam(Optimizer):
    """PyTorch's Adam: ``m = b1 m + (1-b1) g``, ``v = b2 v + (1-b2) g^2``,
    ``p -= lr / (1-b1^t) * m / (sqrt(v) / sqrt(1-b2^t) + eps)``. ``weight_decay`` adds
    ``wd * p`` to the gradient (L2); AdamW decays the weights directly instead."""

    _decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, amsgrad: bool = False, *, maximize: bool = False):
        if lr < 0 or eps < 0 or weight_decay < 0:
            raise ValueError(f"{type(self).__name__}: lr, eps and weight_decay must be >= 0")
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"{type(self).__name__}: betas must be in [0, 1), got {betas}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize))

    _update_negates = True  # the kernel applies maximize: no negated copy of the gradient

    def _update(self, p, grad, state, group):
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(p._data)
            state["exp_avg_sq"] = np.zeros_like(p._data)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = np.zeros_like(p._data)
        state["step"] += 1
        b1, b2 = group["betas"]
        # one fused in-place pass on the numba backend; the NumPy reference otherwise
        backends.get().adam_update(
            p._data, grad, state["exp_avg"], state["exp_avg_sq"],
            state.get("max_exp_avg_sq") if group["amsgrad"] else None, state["step"],
            group["lr"], b1, b2, group["eps"], group["weight_decay"], self._decoupled,
            group.get("maximize", False))


class AdamW(Adam):
    """Adam with decoupled weight decay: ``p *= 1 - lr * wd`` before the Adam step."""

    _decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)

"""Adagrad (Duchi, Hazan & Singer 2011), PyTorch's variant."""
from __future__ import annotations

import numpy as np

from .optimizer import Optimizer


class Adagrad(Optimizer):
    """Adagrad: per-coordinate steps shrinking with the sum of squared gradients.

    At step ``t`` (from 1): ``g = grad + wd * p``; ``clr = lr / (1 + (t - 1) lr_decay)``;
    ``s += g^2`` (``s`` starts at ``initial_accumulator_value``);
    ``p -= clr * g / (sqrt(s) + eps)``. ``maximize=True`` ascends (``g = -grad``).

    Example::

        opt = optim.Adagrad(model.parameters(), lr=0.01)
    """

    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0, weight_decay: float = 0,
                 initial_accumulator_value: float = 0, eps: float = 1e-10,
                 foreach: bool | None = None, *, maximize: bool = False,
                 differentiable: bool = False, fused: bool | None = None):
        checks = dict(learning_rate=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                      initial_accumulator_value=initial_accumulator_value, epsilon=eps)
        for name, v in checks.items():
            if v < 0:
                raise ValueError(f"Adagrad: invalid {name} value: {v} (must be >= 0)")
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, eps=eps,
                                      weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      foreach=foreach, maximize=maximize,
                                      differentiable=differentiable, fused=fused))
        # torch creates the accumulators at construction, so they are in state_dict() at once
        for g in self.param_groups:
            for p in g["params"]:
                self.state[id(p)] = self._init_state(p, g)
        self._built = True

    @staticmethod
    def _init_state(p, group) -> dict:
        return {"step": 0, "sum": np.full_like(p._data, group["initial_accumulator_value"])}

    def add_param_group(self, group: dict) -> None:
        super().add_param_group(group)
        if getattr(self, "_built", False):  # a group added after construction
            g = self.param_groups[-1]
            for p in g["params"]:
                self.state.setdefault(id(p), self._init_state(p, g))

    def _update(self, p, grad, state, group):
        if not state:
            state.update(self._init_state(p, group))
        state["step"] += 1
        if group["weight_decay"]:
            grad = grad + group["weight_decay"] * p._data
        clr = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
        s = state["sum"]
        s += grad * grad
        p._data -= clr * grad / (np.sqrt(s) + group["eps"])

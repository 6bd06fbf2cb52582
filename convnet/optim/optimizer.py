"""``Optimizer``: parameter groups, per-parameter state, and (de)serialisation.

Subclasses implement ``_update(p, grad, state, group)``, which changes ``p._data`` in
place. Updates are NumPy operations on the parameter's own dtype.
"""
from __future__ import annotations

import copy
from typing import Iterable

import numpy as np

from ..autograd.grad_mode import no_grad
from ..tensor import Tensor


class Optimizer:
    """Base class. ``params`` is an iterable of tensors or of dicts (parameter groups)
    with a ``'params'`` key and per-group option overrides."""

    def __init__(self, params: Iterable, defaults: dict):
        self.defaults = dict(defaults)
        self.param_groups: list[dict] = []
        self.state: dict[int, dict] = {}  # keyed by id(param)
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of "
                            f"Tensors or dicts, but got a Tensor of shape {params.shape}")
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}: optimizer got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, group: dict) -> None:
        """Add a group: ``{'params': [...], **options}``; options left out take the
        optimizer's defaults. Parameters that do not require grad are accepted (they have
        no ``.grad``, so ``step`` skips them, as in torch). ``params`` may also hold
        ``(name, tensor)`` pairs, as ``model.named_parameters()`` yields."""
        if not isinstance(group, dict):
            raise TypeError(f"{type(self).__name__}: param group must be a dict, "
                            f"got {type(group).__name__}")
        group = dict(group)
        ps = group["params"]
        if isinstance(ps, Tensor):
            ps = [ps]
        elif isinstance(ps, (set, frozenset)):
            raise TypeError("optimizer parameters need to be organized in ordered collections, "
                            "but the ordering of tensors in sets will change between runs. "
                            "Please use a list instead.")
        ps = list(ps)
        if ps and all(isinstance(p, tuple) and len(p) == 2 for p in ps):
            group["param_names"] = [name for name, _ in ps]
            ps = [p for _, p in ps]
        group["params"] = ps
        for p in ps:
            if not isinstance(p, Tensor):
                raise TypeError(f"{type(self).__name__}: optimizer can only optimize Tensors, "
                                f"but one of the params is {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError(f"{type(self).__name__}: can't optimize a non-leaf Tensor "
                                 f"(shape {p.shape}); optimize the leaf it was computed from")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in ps):
            raise ValueError(f"{type(self).__name__}: some parameters appear in more than one "
                             "parameter group")
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's ``.grad``: to ``None`` (torch 2.x's default) or, with
        ``set_to_none=False``, to zeros in place."""
        for g in self.param_groups:
            for p in g["params"]:
                if set_to_none or p.grad is None:
                    p.grad = None
                else:  # the same grad Tensor, zeroed (a fresh array: see clip_grad_norm_)
                    p.grad._data = np.zeros_like(p.grad._data)

    @no_grad()
    def step(self, closure=None):
        """Apply one update to every parameter that has a gradient."""
        loss = None
        if closure is not None:
            from ..autograd.grad_mode import enable_grad

            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad._data
                if grad.dtype != p._data.dtype:
                    grad = grad.astype(p._data.dtype)
                if group.get("maximize", False) and not self._update_negates:
                    grad = -grad
                self._update(p, grad, self.state.setdefault(id(p), {}), group)
        return loss

    #: True where ``_update`` applies ``maximize`` itself (a fused kernel), so step() does not
    #: make a negated copy of the gradient
    _update_negates = False

    def _update(self, p: Tensor, grad: np.ndarray, state: dict, group: dict) -> None:  # pragma: no cover
        raise NotImplementedError

    # ------------------------------------------------------------ state dict
    def state_dict(self) -> dict:
        """``{'state': {index: {...}}, 'param_groups': [{..., 'params': [index, ...]}]}``;
        parameters are referred to by their position across groups, as torch does."""
        index, groups, i = {}, [], 0
        for g in self.param_groups:
            packed = {k: v for k, v in g.items() if k != "params"}
            packed["params"] = []
            for p in g["params"]:
                index[id(p)] = i
                packed["params"].append(i)
                i += 1
            groups.append(packed)
        state = {index[pid]: copy.deepcopy(s) for pid, s in self.state.items() if pid in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(f"load_state_dict: {len(groups)} parameter groups in the state, "
                             f"{len(self.param_groups)} in the optimizer")
        params = [p for g in self.param_groups for p in g["params"]]
        for saved, own in zip(groups, self.param_groups):
            if len(saved["params"]) != len(own["params"]):
                raise ValueError("load_state_dict: a parameter group's size does not match the state")
            for k, v in saved.items():
                if k != "params":
                    own[k] = v
        self.state = {}
        for i, s in state_dict["state"].items():
            p = params[int(i)]
            s = copy.deepcopy(s)
            for k, v in s.items():
                if isinstance(v, np.ndarray) and v.shape == p.shape:
                    s[k] = v.astype(p._data.dtype, copy=False)
            self.state[id(p)] = s

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(k for k in g if k != "params"):
                lines.append(f"    {k}: {g[k]}")
        return "\n".join(lines) + "\n)"

"""Checkpoints: weights, optimizer and scheduler state, and run state in one safetensors file.

A checkpoint is a single ``.safetensors`` file written atomically, so an interrupted save
leaves the previous checkpoint intact and never a half-written one:

* tensors ``model/<state_dict key>`` (parameters and buffers),
* tensors ``optim/<param index>/<name>`` (optimizer arrays such as momentum buffers),
* ``__metadata__["convnet"]``: JSON with the optimizer's param groups and scalar state,
  the scheduler state, and whatever run state the caller adds (epoch, history, RNG states).

:func:`save_weights` / :func:`load_weights` handle a weights-only file (``model.safetensors``);
like ``torch.save(obj, f)`` and ``models.load_weights(model, path)`` they take the model first.
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np

from ..io.safetensors import SafetensorsError, load_file, save_file  # noqa: F401 (re-exported)

__all__ = ["save_checkpoint", "load_checkpoint", "save_weights", "load_weights", "CheckpointError",
           "to_jsonable"]

FORMAT = "convnet-checkpoint-1"


class CheckpointError(ValueError):
    """A checkpoint is missing parts or does not fit the model/optimizer it is loaded into."""


def to_jsonable(obj):
    """Recursively turn NumPy scalars/arrays and tuples into JSON-friendly values."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, float) and not np.isfinite(obj):
        return str(obj)  # JSON has no inf/nan; "inf"/"nan" round-trip through float()
    return obj


def _fit_scalars(tensors: dict[str, np.ndarray], model) -> dict[str, np.ndarray]:
    """Files from an earlier writer stored 0-d buffers as shape (1,); give them back shape ()."""
    own = model.state_dict()
    out = {}
    for k, v in tensors.items():
        if k in own and own[k].shape == () and v.shape == (1,):
            v = v.reshape(())
        out[k] = v
    return out


def _model_tensors(model) -> dict[str, np.ndarray]:
    return {f"model/{k}": v._data for k, v in model.state_dict().items()}


def _model_first(fn: str, model, path):
    """``(model, path)``; the older ``(path, model)`` order still works, with a warning."""
    from ..nn.modules.module import Module

    if isinstance(model, Module):
        return model, path
    if isinstance(path, Module):
        warnings.warn(f"{fn}(path, model) is deprecated; pass (model, path), the order of "
                      "models.load_weights and torch.save(obj, f)", DeprecationWarning,
                      stacklevel=3)
        return path, model
    raise TypeError(f"{fn}: expected (model, path), got ({type(model).__name__}, "
                    f"{type(path).__name__})")


def save_weights(model, path: str | os.PathLike, metadata: dict | None = None) -> None:
    """Write ``model.state_dict()`` to a safetensors file (atomically); ``metadata`` (any
    JSON-able dict) is stored under ``__metadata__["convnet"]``."""
    model, path = _model_first("save_weights", model, path)
    meta = {"convnet": json.dumps(to_jsonable(metadata))} if metadata else None
    save_file({k: v._data for k, v in model.state_dict().items()}, path, meta)


def load_weights(model, path: str | os.PathLike, strict: bool = True):
    """Load a weights file written by :func:`save_weights` (or any safetensors state dict,
    such as ``convnet.save(model.state_dict(), path)`` writes) into ``model``."""
    model, path = _model_first("load_weights", model, path)
    tensors = load_file(path)
    if any(k.startswith("model/") for k in tensors):  # a full checkpoint works too
        tensors = {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")}
    return model.load_state_dict(_fit_scalars(tensors, model), strict=strict)


def _optimizer_type(optimizer) -> str:
    """The optimizer's class name; a wrapper that only coordinates another optimizer
    (``convnet.distributed.DistributedOptimizer``) is named by the one it wraps, so a run can
    be resumed with or without data parallelism."""
    from ..optim import Optimizer

    inner = getattr(optimizer, "optimizer", None)
    return type(inner if isinstance(inner, Optimizer) else optimizer).__name__


def save_checkpoint(path: str | os.PathLike, model, optimizer=None, scheduler=None,
                    **state) -> None:
    """Write a full training checkpoint atomically. ``state`` is JSON-able run state."""
    tensors = _model_tensors(model)
    meta: dict = {"format": FORMAT, "state": to_jsonable(state)}
    if optimizer is not None:
        sd = optimizer.state_dict()
        scalars = {}
        for idx, pstate in sd["state"].items():
            for name, value in pstate.items():
                if isinstance(value, np.ndarray):
                    tensors[f"optim/{idx}/{name}"] = value
                else:
                    scalars.setdefault(str(idx), {})[name] = to_jsonable(value)
        meta["optimizer"] = {"type": _optimizer_type(optimizer),
                             "param_groups": to_jsonable(sd["param_groups"]), "scalars": scalars}
    if scheduler is not None:
        meta["scheduler"] = {"type": type(scheduler).__name__,
                             "state": to_jsonable(scheduler.state_dict())}
    save_file(tensors, path, {"convnet": json.dumps(meta)})


def _restore_types(saved_groups: list[dict], own_groups: list[dict]) -> list[dict]:
    """JSON turned tuples (Adam's betas) into lists; give values the type the optimizer had."""
    out = []
    for saved, own in zip(saved_groups, own_groups):
        g = dict(saved)
        for k, v in g.items():
            if isinstance(own.get(k), tuple) and isinstance(v, list):
                g[k] = tuple(v)
        out.append(g)
    return out


def load_checkpoint(path: str | os.PathLike, model=None, optimizer=None, scheduler=None) -> dict:
    """Restore what ``path`` holds into the given objects; return the run ``state`` dict.

    Raises FileNotFoundError, :class:`~convnet.io.SafetensorsError` for a damaged file, and
    :class:`CheckpointError` when the checkpoint lacks a part asked for or does not match.
    """
    path = Path(path)
    tensors, metadata = load_file(path, with_metadata=True)
    try:
        meta = json.loads(metadata["convnet"])
    except (KeyError, json.JSONDecodeError):
        raise CheckpointError(f"{path}: not a convnet checkpoint (no convnet metadata)") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: unknown checkpoint format {meta.get('format')!r} "
                              f"(expected {FORMAT})")
    if model is not None:
        weights = {k[6:]: v for k, v in tensors.items() if k.startswith("model/")}
        try:
            model.load_state_dict(_fit_scalars(weights, model))
        except (KeyError, ValueError, RuntimeError) as e:
            raise CheckpointError(f"{path}: the checkpoint does not fit this model: {e}") from None
    if optimizer is not None:
        if "optimizer" not in meta:
            raise CheckpointError(f"{path}: the checkpoint has no optimizer state")
        om = meta["optimizer"]
        if om["type"] != _optimizer_type(optimizer):
            raise CheckpointError(f"{path}: checkpoint optimizer is {om['type']}, not "
                                  f"{_optimizer_type(optimizer)}")
        state: dict[int, dict] = {}
        for key, arr in tensors.items():
            if key.startswith("optim/"):
                _, idx, name = key.split("/", 2)
                state.setdefault(int(idx), {})[name] = arr
        for idx, scalars in om["scalars"].items():
            state.setdefault(int(idx), {}).update(scalars)
        groups = _restore_types(om["param_groups"], optimizer.param_groups)
        try:
            optimizer.load_state_dict({"state": state, "param_groups": groups})
        except (ValueError, IndexError) as e:
            raise CheckpointError(f"{path}: optimizer state does not fit: {e}") from None
    if scheduler is not None:
        if "scheduler" not in meta:
            raise CheckpointError(f"{path}: the checkpoint has no scheduler state")
        saved = _restore_tuples(meta["scheduler"]["state"], scheduler.state_dict())
        scheduler.load_state_dict(saved)
    return meta.get("state", {})


def _restore_tuples(saved: dict, own: dict) -> dict:
    out = dict(saved)
    for k, v in own.items():
        if isinstance(v, tuple) and isinstance(out.get(k), list):
            out[k] = tuple(out[k])
        elif isinstance(v, list) and v and isinstance(v[0], tuple) and isinstance(out.get(k), list):
            out[k] = [tuple(x) for x in out[k]]
    return out


__all__.append("SafetensorsError")

"""Saving and loading quantized models: one safetensors file with JSON metadata.

The file holds the converted model's ``state_dict`` with its integer dtypes (int8 weights,
float64 weight scales, int64 zero points, float32 biases, and whatever float layers remain),
and under ``__metadata__["convnet.quantized"]`` a JSON document::

    {"format": "convnet-quantized", "version": 1,
     "wrapper": "QuantWrapper" | null,         # the float model was wrapped in QuantWrapper
     "modules": {"module.features.0": {"type": "ConvReLU2d", "args": {...},
                                       "scale": 0.031, "zero_point": 0,
                                       "weight": {"dtype": "qint8",
                                                  "qscheme": "per_channel_affine"}}, ...},
     "recipe": {...}}                           # how it was made (qconfig, fusion, model)

Loading builds the float model (``float_model_builder()``, or ``recipe["model"]`` with
``recipe["model_options"]`` through :func:`convnet.models.create`), wraps it as recorded,
puts a quantized module of the recorded type and arguments at every recorded path, and loads
the tensors strictly. Writes are atomic; a truncated or foreign file is a clear ValueError.
"""
from __future__ import annotations

import json
import os
from collections import OrderedDict
from pathlib import Path
from typing import Callable

import numpy as np

from ..io.safetensors import load_file, save_file
from ..nn.modules.module import Module
from .quantized import QUANTIZED_MODULES

__all__ = ["save_quantized", "load_quantized", "quantized_size_bytes", "read_quantized_metadata"]

FORMAT = "convnet-quantized"
VERSION = 1
_KEY = "convnet.quantized"


def _quantized_modules(model: Module):
    known = tuple(QUANTIZED_MODULES.values())
    for path, m in model.named_modules():
        if isinstance(m, known):
            yield path, m


def _describe(m: Module) -> dict:
    entry: dict = {"type": type(m).__name__, "args": m._spec()}
    if "scale" in m._buffers:
        entry["scale"], entry["zero_point"] = m.scale, m.zero_point
    if "weight" in m._buffers:
        w = m.weight()
        entry["weight"] = {"dtype": w.dtype.name, "qscheme": w.qscheme()}
    return entry


def save_quantized(model: Module, path: str | os.PathLike, recipe: dict | None = None) -> None:
    """Write a converted model to ``path`` (safetensors + JSON metadata, atomically).

    ``recipe`` (JSON-able) records how the model was made; with ``recipe["model"]`` (a zoo
    name) and ``recipe["model_options"]``, :func:`load_quantized` needs no builder.
    """
    if not isinstance(model, Module):
        raise TypeError(f"save_quantized: expected an nn.Module, got {type(model).__name__}")
    modules = OrderedDict((p, _describe(m)) for p, m in _quantized_modules(model))
    if not modules:
        raise ValueError("save_quantized: the model has no quantized modules (convert it "
                         "first; a float model is saved with convnet.save / save_weights)")
    from .stubs import QuantWrapper

    meta = {"format": FORMAT, "version": VERSION,
            "wrapper": "QuantWrapper" if type(model) is QuantWrapper else None,
            "modules": modules, "recipe": recipe}
    tensors = {k: v._data for k, v in model.state_dict().items()}
    save_file(tensors, path, {_KEY: json.dumps(meta)})


def read_quantized_metadata(path: str | os.PathLike) -> dict:
    """The JSON metadata of a file written by :func:`save_quantized` (ValueError if the file
    is not one)."""
    from ..io.safetensors import read_metadata

    return _parse_meta(read_metadata(path), path)


def _parse_meta(raw: dict, path) -> dict:
    if _KEY not in raw:
        raise ValueError(f"{path}: not a quantized convnet model (no {_KEY!r} metadata; a "
                         "float model loads with convnet.load / load_weights)")
    try:
        meta = json.loads(raw[_KEY])
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: corrupt quantization metadata ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT \
            or not isinstance(meta.get("modules"), dict):
        raise ValueError(f"{path}: corrupt quantization metadata (expected format {FORMAT!r} "
                         "with a 'modules' table)")
    if meta.get("version", 0) > VERSION:
        raise ValueError(f"{path}: written by a newer convnet (format version "
                         f"{meta['version']}; this one reads {VERSION})")
    return meta


def _float_model(meta: dict, builder, path) -> Module:
    if isinstance(builder, Module):
        return builder
    if builder is not None:
        model = builder()
        if not isinstance(model, Module):
            raise TypeError(f"load_quantized: float_model_builder returned "
                            f"{type(model).__name__}, not an nn.Module")
        return model
    recipe = meta.get("recipe") or {}
    if not recipe.get("model"):
        raise ValueError(f"{path}: the file records no model recipe; pass "
                         "float_model_builder (a function returning the float model)")
    from .. import models

    return models.create(recipe["model"], **(recipe.get("model_options") or {}))


def _set_submodule(root: Module, path: str, new: Module, where) -> Module:
    if not path:
        return new
    *parents, last = path.split(".")
    parent = root
    for part in parents:
        child = parent._modules.get(part)
        if child is None:
            raise ValueError(f"{where}: the float model has no module {path!r} (was the file "
                             "made from another model?)")
        parent = child
    if last not in parent._modules:
        raise ValueError(f"{where}: the float model has no module {path!r} (was the file made "
                         "from another model?)")
    parent._modules[last] = new
    return root


def load_quantized(path: str | os.PathLike,
                   float_model_builder: Callable[[], Module] | Module | None = None) -> Module:
    """Rebuild a quantized model saved by :func:`save_quantized` (in eval mode).

    Args:
        path: the ``.safetensors`` file.
        float_model_builder: a function returning the float model the quantized one was made
            from (or that model itself); default: the recipe recorded in the file.
    """
    tensors, raw = load_file(path, with_metadata=True)
    meta = _parse_meta(raw, path)
    model = _float_model(meta, float_model_builder, path)
    if meta.get("wrapper") == "QuantWrapper":
        from .stubs import QuantWrapper

        model = QuantWrapper(model)
    for mod_path, entry in meta["modules"].items():
        cls = QUANTIZED_MODULES.get(entry.get("type"))
        if cls is None:
            raise ValueError(f"{path}: unknown quantized module type {entry.get('type')!r} at "
                             f"{mod_path!r}")
        try:
            new = cls(**entry.get("args", {}))
        except TypeError as e:
            raise ValueError(f"{path}: corrupt arguments for {mod_path!r} ({e})") from None
        model = _set_submodule(model, mod_path, new, path)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        detail = " ".join(str(e).split())  # one line: the CLI prints errors on one line
        raise ValueError(f"{path}: the tensors do not fit the rebuilt model: {detail}") from None
    return model.eval()


def quantized_size_bytes(model: Module) -> "OrderedDict[str, int]":
    """Bytes of each module's own state (parameters and persistent buffers, as saved), by
    module path, plus ``"total"``; works for float and quantized models alike (a float32
    conv counts 4 bytes a weight, its int8 version 1 plus its scales)."""
    out: OrderedDict[str, int] = OrderedDict()
    total = 0
    for path, m in model.named_modules():
        own = [t for t in m._parameters.values() if t is not None]
        own += [b for k, b in m._buffers.items() if b is not None and k not in m._non_persistent]
        if own:
            n = int(sum(np.asarray(t._data).nbytes for t in own))
            out[path or type(model).__name__] = n
            total += n
    out["total"] = total
    return out


def file_size(path: str | os.PathLike) -> int:
    """Size of a file in bytes (the on-disk number the CLI reports)."""
    return Path(path).stat().st_size

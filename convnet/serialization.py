"""``convnet.save`` / ``convnet.load``: torch's names and arguments, a safe file format.

``torch.save`` pickles, and unpickling can run arbitrary code. convnet writes a standard
safetensors file instead (see :mod:`convnet.io.safetensors`):

* every tensor (or NumPy array) in the saved object is one safetensors tensor, named by its
  path in the object: a state dict's tensors are named by their keys (``"fc.weight"``), a
  checkpoint's by the joined keys (``"model.fc.weight"``, ``"optim.state.0.momentum_buffer"``).
  A plain ``model.state_dict()`` file is therefore an ordinary state-dict safetensors file that
  other tools (``safetensors.numpy.load_file``, ``safetensors.torch.load_file``) read.
* the structure around the tensors (dicts and their key order, lists, tuples, numbers,
  strings, bools, None) is JSON in ``__metadata__["convnet.save"]``, each tensor referred to
  by its name.

Loading parses JSON and copies bytes; it never executes anything from the file. A whole
``nn.Module`` may be saved too (``torch.save(model, path)``): its class is stored by name and,
with ``weights_only=False`` as in torch, resolved among the classes the program already has
(convnet's own, or ones the script defines or imports, as pickle requires) and rebuilt from
its saved attributes without calling ``__init__``.
"""
from __future__ import annotations

import importlib
import json
import math
import os
import sys
from collections import OrderedDict

import numpy as np

from .io.atomic import atomic_write_bytes
from .io.safetensors import SafetensorsError, _load as _parse_safetensors
from .io.safetensors import save as _safetensors_bytes
from .tensor import Tensor

__all__ = ["save", "load"]

_KEY = "convnet.save"  # the __metadata__ entry holding the structure
_VERSION = 1
# Module attributes holding callables that are not saved (torch cannot pickle most hooks
# either); a loaded module starts with none.
_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_state_dict_hooks")
# Inside a module, these containers are skipped in tensor names, so a saved model's tensors
# carry its state-dict keys.
_MODULE_STORES = ("_parameters", "_buffers", "_modules")


# --------------------------------------------------------------------------- save
class _Writer:
    def __init__(self):
        self.tensors: dict[str, object] = {}

    def name(self, path: list[str]) -> str:
        base = ".".join(path) or "tensor"
        name, n = base, 1
        while name in self.tensors or name == "__metadata__":
            n += 1
            name = f"{base}#{n}"  # two paths joined to the same string ("a.b" vs a -> b)
        return name

    def encode(self, obj, path: list[str], where: str):
        """JSON tree for ``obj``; tensors go to ``self.tensors``. Tags are one-key objects
        (JSON objects never stand for anything else), lists and scalars are themselves."""
        from .nn.modules.module import Module
        from .nn.parameter import Parameter

        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, int):
            return int(obj)
        if isinstance(obj, float):
            # JSON has no inf/nan; tag them so they come back as floats
            return float(obj) if math.isfinite(obj) else {"float": repr(float(obj))}
        if isinstance(obj, Tensor):
            name = self.name(path)
            self.tensors[name] = obj._data
            tag = {"tensor": name}
            if isinstance(obj, Parameter):
                tag["parameter"] = True
            if obj.requires_grad:
                tag["requires_grad"] = True
            return tag
        if isinstance(obj, np.ndarray):
            name = self.name(path)
            self.tensors[name] = obj
            return {"ndarray": name}
        if isinstance(obj, np.generic):
            name = self.name(path)
            self.tensors[name] = np.asarray(obj)
            return {"numpy_scalar": name}
        if isinstance(obj, np.dtype):
            return {"dtype": obj.str}
        if isinstance(obj, Module):
            return self._module(obj, path, where)
        if isinstance(obj, dict):
            items = [[self._key(k, where), self.encode(v, path + [str(k)], f"{where}[{k!r}]")]
                     for k, v in obj.items()]
            return {"odict" if isinstance(obj, OrderedDict) else "dict": items}
        if isinstance(obj, (list, tuple)):
            items = [self.encode(v, path + [str(i)], f"{where}[{i}]") for i, v in enumerate(obj)]
            return items if isinstance(obj, list) else {"tuple": items}
        if isinstance(obj, (set, frozenset)):
            return {"set": [self._key(v, where) for v in obj]}
        raise TypeError(
            f"convnet.save: cannot save {type(obj).__name__} at {where}: the safe format holds "
            "tensors, NumPy arrays, numbers, strings, bools, None, dicts, lists, tuples and "
            "nn.Modules (no pickle, so no arbitrary objects or functions)")

    def _key(self, key, where: str):
        if key is None or isinstance(key, (bool, str, int, float)):
            return self.encode(key, [], where)
        if isinstance(key, tuple):
            return {"tuple": [self._key(k, where) for k in key]}
        raise TypeError(f"convnet.save: cannot save a dict key of type {type(key).__name__} "
                        f"in {where} (keys may be str, int, float, bool, None or tuples of them)")

    def _module(self, mod, path: list[str], where: str):
        cls = type(mod)
        if "<locals>" in cls.__qualname__:
            raise TypeError(f"convnet.save: cannot save {cls.__qualname__} at {where}: a class "
                            "defined inside a function cannot be found by name when loading; "
                            "define it at module level or save model.state_dict()")
        attrs = []
        for k, v in mod.__dict__.items():
            if k in _HOOK_DICTS:
                continue
            sub = path if k in _MODULE_STORES else path + [k]
            attrs.append([k, self.encode(v, sub, f"{where}.{k}")])
        return {"module": f"{cls.__module__}:{cls.__qualname__}", "attrs": attrs}


def save(obj, f) -> None:
    """Save ``obj`` to ``f`` (a path, or a binary file object such as ``io.BytesIO``).

    ``obj`` is a tensor, a NumPy array, a number, string, bool or None, an ``nn.Module``, or a
    dict/list/tuple nesting these: state dicts, optimizer state dicts, checkpoint dicts. The
    file is a safetensors file with the structure as JSON metadata (no pickle). Paths are
    written atomically (temporary file, then rename), so an interrupted save never leaves a
    half-written file. Raises TypeError naming the first object that cannot be stored.
    """
    writer = _Writer()
    tree = writer.encode(obj, [], "obj")
    meta = {_KEY: json.dumps({"version": _VERSION, "tree": tree}, separators=(",", ":"))}
    data = _safetensors_bytes(writer.tensors, meta)
    if hasattr(f, "write"):
        f.write(data)
    elif isinstance(f, (str, os.PathLike)):
        atomic_write_bytes(f, data)
    else:
        raise TypeError(f"convnet.save: f must be a path or a binary file object, got "
                        f"{type(f).__name__}")


# --------------------------------------------------------------------------- load
def _check_map_location(map_location):
    """Return a callable ``fn(tensor) -> tensor`` or None. Only CPU targets exist."""

    from .device import check_device  # the one "convnet runs on the CPU" error

    def cpu_only(target, what):
        check_device(target, f"convnet.load({what}=...)")

    if map_location is None or isinstance(map_location, (str, int)) or \
            hasattr(map_location, "type"):
        cpu_only(map_location, "map_location")
        return None
    if isinstance(map_location, dict):
        for k, v in map_location.items():
            cpu_only(v, "map_location")
        return None
    if callable(map_location):
        # torch calls fn(storage, location) and keeps the result unless it is None
        def remap(t):
            out = map_location(t, "cpu")
            return t if out is None else out
        return remap
    raise TypeError(f"convnet.load: map_location must be None, 'cpu', a device, a dict or a "
                    f"callable, got {type(map_location).__name__}")


def _read(f) -> tuple[bytes, str]:
    if isinstance(f, (str, os.PathLike)):
        path = os.fspath(f)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"convnet.load: no such file: {path!r}")
        with open(path, "rb") as fh:
            return fh.read(), path
    if hasattr(f, "read"):
        data = f.read()
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError("convnet.load: the file object must be opened in binary mode")
        return bytes(data), str(getattr(f, "name", "<file object>"))
    raise TypeError(f"convnet.load: f must be a path or a binary file object, got "
                    f"{type(f).__name__}")


def _foreign_format(data: bytes, where: str) -> str | None:
    if data[:4] == b"PK\x03\x04":
        kind = "a PyTorch (zip/pickle) checkpoint"
    elif data[:1] == b"\x80":
        kind = "a pickle file"
    elif data[:6] == b"\x93NUMPY":
        kind = "a NumPy .npy file"
    else:
        return None
    return (f"convnet.load: {where} is {kind}, not a safetensors file. convnet never unpickles "
            "(unpickling can run code); convert it once with PyTorch: "
            "safetensors.torch.save_file(torch.load(path), 'model.safetensors')")


class _Reader:
    def __init__(self, arrays: dict, where: str, weights_only: bool, remap):
        self.arrays, self.where, self.weights_only, self.remap = arrays, where, weights_only, remap
        self.used: set[str] = set()

    def _array(self, name) -> np.ndarray:
        if name not in self.arrays:
            raise SafetensorsError(f"{self.where}: corrupt convnet.save metadata (refers to "
                                   f"tensor {name!r}, which the file does not hold)")
        self.used.add(name)
        return self.arrays[name]

    def decode(self, node):
        if node is None or isinstance(node, (bool, str, int, float)):
            return node
        if isinstance(node, list):
            return [self.decode(v) for v in node]
        if not isinstance(node, dict):
            raise self._corrupt(node)
        if "tensor" in node:
            return self._tensor(node)
        if "ndarray" in node:
            return self._array(node["ndarray"])
        if "numpy_scalar" in node:
            return self._array(node["numpy_scalar"])[()]
        if "module" in node:
            return self.module(node)
        if len(node) != 1:
            raise self._corrupt(node)
        (tag, value), = node.items()
        if tag == "float" and value in ("inf", "-inf", "nan"):
            return float(value)
        if tag == "dtype" and isinstance(value, str):
            return np.dtype(value)
        if tag in ("dict", "odict") and isinstance(value, list):
            pairs = ((self._hashable(k), self.decode(v)) for k, v in value)
            return OrderedDict(pairs) if tag == "odict" else dict(pairs)
        if tag == "tuple" and isinstance(value, list):
            return tuple(self.decode(v) for v in value)
        if tag == "set" and isinstance(value, list):
            return {self._hashable(v) for v in value}
        raise self._corrupt(node)

    def _hashable(self, node):
        value = self.decode(node)
        try:
            hash(value)
        except TypeError:
            raise self._corrupt(node) from None
        return value

    def _tensor(self, node):
        from .nn.parameter import Parameter

        arr = self._array(node["tensor"])
        rg = bool(node.get("requires_grad", False))
        if node.get("parameter"):
            t = Parameter(arr, requires_grad=rg)
        else:
            t = Tensor._make(arr)
            if rg:
                t.requires_grad_(True)
        return t if self.remap is None else self.remap(t)

    def _corrupt(self, node):
        return SafetensorsError(f"{self.where}: corrupt convnet.save metadata near "
                                f"{json.dumps(node)[:80]}")

    def module(self, node):
        from .nn.modules.module import Module

        spec = node.get("module")
        if not isinstance(spec, str) or ":" not in spec or not isinstance(node.get("attrs"), list):
            raise self._corrupt(node)
        if self.weights_only:
            raise RuntimeError(
                f"convnet.load: {self.where} holds a whole nn.Module ({spec.replace(':', '.')}); "
                "load it with weights_only=False (as torch requires), or save and load "
                "model.state_dict() instead")
        modname, qualname = spec.split(":", 1)
        mod = sys.modules.get(modname)
        if mod is None and (modname == "convnet" or modname.startswith("convnet.")):
            mod = importlib.import_module(modname)  # convnet's own code, nothing from the file
        if mod is None:
            raise RuntimeError(
                f"convnet.load: {self.where} holds a {qualname} from module {modname!r}, which "
                "is not imported; define or import the class before loading (as pickle needs)")
        cls = mod
        for part in qualname.split("."):
            cls = getattr(cls, part, None)
        if not (isinstance(cls, type) and issubclass(cls, Module)):
            raise RuntimeError(f"convnet.load: {self.where}: {modname}.{qualname} is not an "
                               "nn.Module class in this program")
        obj = cls.__new__(cls)  # no __init__: the saved attributes are the whole state
        d = obj.__dict__
        for k, v in node["attrs"]:
            d[k] = self.decode(v)
        for k in ("_forward_hooks", "_forward_pre_hooks"):
            d.setdefault(k, OrderedDict())
        return obj


def load(f, map_location=None, *, weights_only: bool | None = True, mmap=None):
    """Load what :func:`save` wrote (or any safetensors file) from a path or binary file object.

    Returns the saved object: dicts (key order and ``OrderedDict`` kept), lists, tuples, numbers,
    strings, bools and None as themselves; tensors as convnet Tensors with their dtype (and
    ``requires_grad``, False for state-dict values); NumPy arrays as arrays. A safetensors file
    from another tool loads as ``{name: Tensor}``.

    Args:
        map_location: None, ``'cpu'``, a CPU device, a dict whose targets are CPU, or a callable
            ``fn(tensor, 'cpu')`` applied to each tensor. A CUDA/MPS target raises RuntimeError.
        weights_only: accepted for torch compatibility. Nothing in the file is ever executed,
            either way; ``False`` is only needed to rebuild a saved ``nn.Module`` (its class is
            looked up by name among classes already in the program, as torch requires too).
        mmap: accepted and ignored (the file is read into memory).

    Raises FileNotFoundError, and :class:`~convnet.io.SafetensorsError` (a ValueError) naming
    the file when it is truncated, corrupt, or not a safetensors file.
    """
    remap = _check_map_location(map_location)
    data, where = _read(f)
    foreign = _foreign_format(data, where)
    if foreign:
        raise SafetensorsError(foreign)
    arrays, metadata = _parse_safetensors(data, where)
    if _KEY not in metadata:  # a safetensors file written by another tool: {name: Tensor}
        reader = _Reader(arrays, where, weights_only is not False, remap)
        return {k: reader._tensor({"tensor": k}) for k in arrays}
    try:
        doc = json.loads(metadata[_KEY])
        tree, version = doc["tree"], doc["version"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise SafetensorsError(f"{where}: corrupt convnet.save metadata (not the expected "
                               "JSON)") from None
    if version != _VERSION:
        raise SafetensorsError(f"{where}: written by a newer convnet.save (format {version!r}; "
                               f"this convnet reads {_VERSION})")
    try:
        return _Reader(arrays, where, weights_only is not False, remap).decode(tree)
    except SafetensorsError:
        raise
    except (TypeError, ValueError, KeyError) as e:  # a hand-edited or damaged structure
        raise SafetensorsError(f"{where}: corrupt convnet.save metadata ({e})") from None

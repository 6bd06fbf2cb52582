"""Registry of ready search spaces: ``get(name, **kwargs)`` and ``names()``.

* ``"small-cnn"``: the macro space of small CNNs (``convnet.nas.macro``);
* ``"cell"``: the NAS-Bench-201-style cell space (``convnet.nas.cell.CellSpace``).

``get(name)`` without keyword arguments returns one shared instance (spaces are immutable);
``register(name, maker)`` adds a space (``maker(**kwargs) -> SearchSpace``).
"""
from __future__ import annotations

from typing import Callable

__all__ = ["get", "names", "register"]


def _small_cnn(**kwargs):
    from .macro import SmallCNNSpace

    return SmallCNNSpace(**kwargs)


def _cell(**kwargs):
    from .cell import CellSpace  # written alongside; imported only when asked for

    return CellSpace(**kwargs)


_MAKERS: dict[str, Callable] = {"small-cnn": _small_cnn, "cell": _cell}
_CACHE: dict = {}


def register(name: str, maker: Callable) -> None:
    if not isinstance(name, str) or not name:
        raise ValueError(f"spaces.register: name must be a non-empty string, got {name!r}")
    _MAKERS[name] = maker
    _CACHE.pop(name, None)


def names() -> list[str]:
    return sorted(_MAKERS)


def get(name: str, **kwargs):
    """The space called ``name``; ValueError listing the known names otherwise."""
    if name not in _MAKERS:
        raise ValueError(f"unknown search space {name!r}; known spaces: {names()}")
    if kwargs:
        return _MAKERS[name](**kwargs)
    if name not in _CACHE:
        _CACHE[name] = _MAKERS[name]()
    return _CACHE[name]

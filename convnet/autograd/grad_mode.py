"""Switches that turn graph recording on and off (``no_grad``/``enable_grad``).

The flag is thread-local so that DataLoader worker threads cannot change what
the training thread records.
"""
from __future__ import annotations

import functools
import threading

_state = threading.local()


def is_grad_enabled() -> bool:
    """True when new operations record a graph for backward."""
    return getattr(_state, "enabled", True)


def _set(enabled: bool) -> None:
    _state.enabled = bool(enabled)


class _GradMode:
    _target = True

    def __enter__(self):
        self._prev = is_grad_enabled()
        _set(self._target)
        return self

    def __exit__(self, *exc):
        _set(self._prev)
        return False

    def __call__(self, func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with self.__class__():
                return func(*args, **kwargs)

        return wrapper


class no_grad(_GradMode):
    """Context manager / decorator: operations inside record no graph."""

    _target = False


class enable_grad(_GradMode):
    """Context manager / decorator: re-enables graph recording inside ``no_grad``."""

    _target = True


class set_grad_enabled(_GradMode):
    """``with set_grad_enabled(flag):`` records a graph only when ``flag`` is true."""

    def __init__(self, mode: bool):
        self._target = bool(mode)
        self._prev = is_grad_enabled()
        _set(self._target)

    def __enter__(self):
        return self

    def __call__(self, func):  # pragma: no cover - decorator form is rarely used
        raise TypeError("set_grad_enabled is used as a context manager")

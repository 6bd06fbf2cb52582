"""Switches that turn graph recording on and off (``no_grad``, ``enable_grad``,
``inference_mode``, ``set_grad_enabled``).

The flag is thread-local so that DataLoader worker threads cannot change what
the training thread records.
"""
from __future__ import annotations

import functools
import inspect
import threading

_state = threading.local()


def is_grad_enabled() -> bool:
    """True when new operations record a graph for backward."""
    return getattr(_state, "enabled", True)


def _set(enabled: bool) -> None:
    _state.enabled = bool(enabled)


class _GradMode:
    """Base of the switches: a context manager that is also a decorator.

    ``@no_grad()`` and bare ``@no_grad`` both work, as in torch 2.x: called with a function
    instead of no argument, the class returns that function wrapped. Generator functions
    are wrapped so that the mode holds while each item is produced, not while the caller
    consumes it.
    """

    _target = True

    def __new__(cls, orig_func=None):
        if orig_func is None:
            return super().__new__(cls)
        if not callable(orig_func):
            raise TypeError(f"{cls.__name__}: takes no arguments (or a function to decorate), "
                            f"got {type(orig_func).__name__}")
        return cls()(orig_func)

    def __enter__(self):
        self._prev = is_grad_enabled()
        _set(self._target)
        return self

    def __exit__(self, *exc):
        _set(self._prev)
        return False

    def _clone(self):
        return self.__class__()

    def __call__(self, func):
        if inspect.isgeneratorfunction(func):
            @functools.wraps(func)
            def gen_wrapper(*args, **kwargs):
                gen = func(*args, **kwargs)
                sent, thrown = None, None
                while True:
                    with self._clone():
                        try:
                            item = gen.send(sent) if thrown is None else gen.throw(thrown)
                        except StopIteration as stop:
                            return stop.value
                    sent, thrown = None, None
                    try:
                        sent = yield item
                    except GeneratorExit:
                        gen.close()
                        raise
                    except BaseException as e:  # forwarded into the wrapped generator
                        thrown = e

            return gen_wrapper

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with self._clone():
                return func(*args, **kwargs)

        return wrapper


class no_grad(_GradMode):
    """Context manager / decorator (``@no_grad()`` or ``@no_grad``): operations inside
    record no graph; results have ``requires_grad=False``."""

    _target = False


class enable_grad(_GradMode):
    """Context manager / decorator (``@enable_grad()`` or ``@enable_grad``): re-enables
    graph recording inside ``no_grad``."""

    _target = True


class inference_mode(_GradMode):
    """torch's ``inference_mode(mode=True)``: context manager / decorator (with or without
    parentheses). On convnet it is ``no_grad`` when ``mode`` is true and does nothing when
    false; torch additionally skips version-counter bookkeeping, an optimisation that a
    NumPy framework has no use for."""

    def __new__(cls, mode=True):
        if isinstance(mode, bool):
            return object.__new__(cls)
        if not callable(mode):
            raise TypeError(f"inference_mode: mode must be a bool, got {type(mode).__name__}")
        return cls()(mode)

    def __init__(self, mode: bool = True):
        self.mode = mode
        self._target = False if mode else None

    def __enter__(self):
        self._prev = is_grad_enabled()
        if self._target is not None:
            _set(self._target)
        return self

    def _clone(self):
        return self.__class__(self.mode)


def is_inference_mode_enabled() -> bool:
    """True inside ``inference_mode()`` (convnet tracks it as grad mode being off)."""
    return not is_grad_enabled()


class set_grad_enabled(_GradMode):
    """``set_grad_enabled(mode)``: sets grad mode at once (usable as a plain call, as torch),
    and as a context manager / decorator restores the previous mode on exit."""

    def __new__(cls, mode: bool = True):
        return object.__new__(cls)

    def __init__(self, mode: bool):
        self.mode = bool(mode)
        self._target = self.mode
        self._prev = is_grad_enabled()
        _set(self._target)

    def __enter__(self):
        _set(self._target)
        return self

    def _clone(self):
        # the clone's __init__ switches mode; put it back until the function runs
        prev = is_grad_enabled()
        c = self.__class__(self.mode)
        _set(prev)
        return c

    def __call__(self, func):
        _set(self._prev)  # as a decorator it must not change the mode at decoration time
        return super().__call__(func)

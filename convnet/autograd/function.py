"""``Function``: the base of every differentiable operation.

A Function subclass implements two NumPy-level methods:

* ``forward(self, *args, **kwargs) -> ndarray | tuple[ndarray, ...]`` receives the
  inputs with every Tensor replaced by its ``ndarray`` (other arguments are passed
  through unchanged) and returns the output array(s). Keep what backward needs on
  ``self`` (arrays only, never Tensors, so the graph holds no reference cycles).
* ``backward(self, *grad_outputs) -> ndarray | None | tuple`` receives one gradient
  array per output (``None`` for an output that received no gradient) and returns
  one gradient per positional input of ``forward`` (``None`` where the input is not
  a Tensor or needs no gradient; consult ``self.needs_input_grad``). Gradients must
  have the input's shape; dtype is cast to the input's if needed.

``Cls.apply(*args, **kwargs)`` runs forward and, when grad mode is on and any
Tensor input requires grad, links the outputs into the graph.
"""
from __future__ import annotations

import numpy as np

from .grad_mode import is_grad_enabled


class Function:
    # Not-differentiable outputs (e.g. argmax indices) are listed by index here.
    non_differentiable_outputs: tuple[int, ...] = ()

    __slots__ = ("parents", "needs_input_grad", "__dict__")

    def forward(self, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, *grad_outputs):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} has no backward")

    @classmethod
    def apply(cls, *args, **kwargs):
        from ..tensor import Tensor

        fn = cls()
        arrays = [a.data if isinstance(a, Tensor) else a for a in args]
        record = is_grad_enabled() and any(
            isinstance(a, Tensor) and a.requires_grad for a in args
        )
        if record:
            fn.needs_input_grad = tuple(
                isinstance(a, Tensor) and a.requires_grad for a in args
            )
        out = fn.forward(*arrays, **kwargs)
        if isinstance(out, tuple):
            results = []
            for i, o in enumerate(out):
                t = Tensor._make(o)
                if record and i not in cls.non_differentiable_outputs:
                    t.requires_grad = True
                    t._ctx = fn
                    t._out_index = i
                results.append(t)
            n_out = len(out)
        else:
            results = Tensor._make(out)
            if record:
                results.requires_grad = True
                results._ctx = fn
                results._out_index = 0
            n_out = 1
        if record:
            fn.parents = tuple(a if isinstance(a, Tensor) else None for a in args)
            fn._n_outputs = n_out
        return tuple(results) if isinstance(out, tuple) else results


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` over the axes that broadcasting added or stretched to reach ``shape``."""
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)

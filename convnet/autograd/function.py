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

# Set by convnet.onnx while it traces one forward pass: ``hook(fn, args, kwargs, outputs)`` is
# called after every Function runs. None otherwise, so the cost is one global lookup per op.
_trace_hook = None


class Function:
    # Not-differentiable outputs (e.g. argmax indices) are listed by index here.
    non_differentiable_outputs: tuple[int, ...] = ()

    __slots__ = ("parents", "edges", "needs_input_grad", "__dict__")

    def forward(self, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, *grad_outputs):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} has no backward")

    @classmethod
    def apply(cls, *args, **kwargs):
        from ..tensor import Tensor

        fn = cls()
        arrays = [a._data if isinstance(a, Tensor) else a for a in args]
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
            # The graph edge of each input as it is now: an in-place op may later give the
            # same Tensor a new history, and this Function must still reach the old one.
            fn.edges = tuple(
                (a._ctx, a._out_index) if isinstance(a, Tensor) and a._ctx is not None else None
                for a in args
            )
            fn._n_outputs = n_out
        outs = results if isinstance(out, tuple) else (results,)
        _link_versions(fn, args, outs, record)
        if _trace_hook is not None:
            _trace_hook(fn, args, kwargs, outs)
        return tuple(results) if isinstance(out, tuple) else results


def _root(a: np.ndarray):
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def _aliases(a: np.ndarray, b: np.ndarray) -> bool:
    """True when ``a`` and ``b`` are views of one allocation that overlap in memory."""
    return a is b or (_root(a) is _root(b) and np.may_share_memory(a, b))


def _saved_arrays(fn) -> list:
    """The arrays a Function kept for backward (attributes, or inside tuples/lists of them)."""
    found = []
    for v in fn.__dict__.values():
        if isinstance(v, np.ndarray):
            found.append(v)
        elif isinstance(v, (tuple, list)):
            found.extend(a for a in v if isinstance(a, np.ndarray))
    return found


def _link_versions(fn, args, outs, record: bool) -> None:
    """Version bookkeeping, as torch's version counter.

    * An output that shares memory with a Tensor input is a *view* of it: it shares that
      input's version counter, so an in-place change through either one is seen by both.
    * When recording, every input or output Tensor whose memory backs an array the Function
      saved for backward is *watched*: backward checks its version is unchanged, and raises
      (as torch does) instead of computing a gradient from overwritten values.
    """
    from ..tensor import Tensor

    inputs = [a for a in args if isinstance(a, Tensor)]
    for o in outs:
        for a in inputs:
            if _aliases(o._data, a._data):
                o._version_box = a._version_ref()
                o._is_view = True
                break
    if not record:
        return
    saved = _saved_arrays(fn)
    if not saved:
        return
    watch = []
    for t in inputs + list(outs):
        if any(_aliases(s, t._data) for s in saved):
            box = t._version_ref()
            watch.append((box, box[0], t.shape, t.dtype))
    if watch:
        fn._watch = watch


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

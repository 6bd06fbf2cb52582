"""Finite-difference check of analytic gradients (float64)."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np


class GradcheckError(AssertionError):
    """Raised when analytic and numerical gradients disagree."""


def gradcheck(
    fn: Callable,
    inputs: Sequence,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: int = 0,
    raise_exception: bool = True,
) -> bool:
    """Compare ``fn``'s backward with central differences.

    ``inputs`` are Tensors (float64 ones with ``requires_grad=True`` are checked;
    others are passed through). The scalar probed is ``sum(w * fn(*inputs))``
    with a fixed random ``w`` (a random cotangent catches errors that an all-ones
    one hides). Returns True, or raises :class:`GradcheckError` naming the input
    and the worst element.
    """
    from ..tensor import Tensor
    from .grad_mode import no_grad

    checked = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    for i in checked:
        if inputs[i].dtype != np.float64:
            raise TypeError(f"gradcheck: input {i} is {inputs[i].dtype}; use float64 inputs")
    rng = np.random.default_rng(seed)

    def outputs():
        out = fn(*inputs)
        return out if isinstance(out, (tuple, list)) else (out,)

    outs = [o for o in outputs() if isinstance(o, Tensor) and o.dtype.kind == "f"]
    weights = [rng.standard_normal(o.shape) for o in outs]

    def scalar() -> float:
        with no_grad():
            vals = [o for o in outputs() if isinstance(o, Tensor) and o.dtype.kind == "f"]
            return float(sum(np.sum(w * o._data) for w, o in zip(weights, vals)))

    for i in checked:
        inputs[i].grad = None
    loss = None
    for w, o in zip(weights, outs):
        if o.requires_grad:
            term = (o * Tensor._make(w)).sum()
            loss = term if loss is None else loss + term
    if loss is not None:
        loss.backward()
    for i in checked:
        t = inputs[i]
        analytic = np.zeros(t.shape) if t.grad is None else t.grad._data.copy()
        numeric = np.zeros(t.shape)
        flat = t._data.reshape(-1)  # a view: perturbing it perturbs the input
        for k in range(flat.size):
            orig = flat[k]
            flat[k] = orig + eps
            plus = scalar()
            flat[k] = orig - eps
            minus = scalar()
            flat[k] = orig
            numeric.reshape(-1)[k] = (plus - minus) / (2 * eps)
        bad = ~np.isclose(analytic, numeric, atol=atol, rtol=rtol)
        if bad.any():
            k = int(np.argmax(np.abs(analytic - numeric)))
            msg = (
                f"gradcheck: input {i} (shape {t.shape}): analytic and numerical gradients differ "
                f"at {bad.sum()} of {t._data.size} elements; worst at flat index {k}: "
                f"analytic {analytic.reshape(-1)[k]:.6g} vs numerical {numeric.reshape(-1)[k]:.6g}"
            )
            if raise_exception:
                raise GradcheckError(msg)
            return False
    return True

"""Flatten parameters into one vector and back (``torch.nn.utils.parameters_to_vector``)."""
from __future__ import annotations

from typing import Iterable

from ...tensor import Tensor

__all__ = ["parameters_to_vector", "vector_to_parameters"]


def parameters_to_vector(parameters: Iterable[Tensor]) -> Tensor:
    """Concatenate the flattened parameters into a 1-D tensor of ``sum(p.numel())``
    elements (differentiable: gradients flow back to the parameters)."""
    from ...creation import cat

    params = list(parameters)
    if not params:
        raise ValueError("parameters_to_vector: expected a non-empty list of parameters")
    for p in params:
        if not isinstance(p, Tensor):
            raise TypeError(f"expected Tensor, but got: {type(p).__name__}")
    return cat([p.reshape(-1) for p in params])


def vector_to_parameters(vec: Tensor, parameters: Iterable[Tensor]) -> None:
    """Copy slices of the 1-D ``vec`` into the parameters, in order. As torch (which
    assigns ``param.data``), each parameter then shares memory with ``vec``."""
    if not isinstance(vec, Tensor):
        raise TypeError(f"expected Tensor, but got: {type(vec).__name__}")
    params = list(parameters)
    total = sum(p.numel() for p in params)
    if vec.ndim != 1 or vec.numel() < total:
        raise RuntimeError(f"vector_to_parameters: vec of shape {vec.shape} cannot fill "
                           f"parameters with {total} elements")
    at = 0
    for p in params:
        n = p.numel()
        p._data = vec._data[at:at + n].reshape(p.shape)
        at += n

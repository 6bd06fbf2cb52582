"""``one_hot``: class indices to one-hot rows."""
from __future__ import annotations

import numpy as np

from ..tensor import Tensor

__all__ = ["one_hot"]


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """``out[..., c] = 1 if tensor[...] == c else 0``, int64, not differentiable.

    Args:
        tensor: int64 class indices of any shape ``(*)``, each in ``[0, num_classes)``.
        num_classes: the length of the new last axis; ``-1`` infers ``max(tensor) + 1``.

    Shape:
        ``(*)`` -> ``(*, num_classes)``.
    """
    if not isinstance(tensor, Tensor):
        raise TypeError(f"one_hot(): argument 'tensor' must be Tensor, not {type(tensor).__name__}")
    if tensor.dtype != np.int64:
        raise RuntimeError(
            f"one_hot is only applicable to index tensor of type LongTensor (got {tensor.dtype}).")
    idx = tensor._data
    if idx.size == 0 and num_classes <= 0:
        raise RuntimeError("Can not infer total number of classes from empty tensor.")
    if num_classes == -1:
        num_classes = int(idx.max()) + 1
    if idx.size:
        if idx.min() < 0:
            raise RuntimeError("Class values must be non-negative.")
        if idx.max() >= num_classes:
            raise RuntimeError(
                f"Class values must be smaller than num_classes (got {int(idx.max())} for "
                f"num_classes={num_classes}).")
    return Tensor._make((idx[..., None] == np.arange(num_classes)).astype(np.int64))

"""Quantized dtypes: ``quint8``, ``qint8``, ``qint32`` (torch's names).

A quantized dtype is not a NumPy dtype: it names an integer *storage* type together with
the range it may hold. ``x_q = clamp(round(x / scale) + zero_point, qmin, qmax)`` stores
``x_q`` in ``storage`` and means ``(x_q - zero_point) * scale``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["QDType", "quint8", "qint8", "qint32", "as_qdtype"]


@dataclass(frozen=True)
class QDType:
    """A quantized dtype: its name, integer storage and full range ``[qmin, qmax]``."""

    name: str
    storage: np.dtype
    qmin: int
    qmax: int

    @property
    def is_signed(self) -> bool:
        return self.qmin < 0

    def __repr__(self) -> str:
        return f"convnet.{self.name}"


quint8 = QDType("quint8", np.dtype(np.uint8), 0, 255)
qint8 = QDType("qint8", np.dtype(np.int8), -128, 127)
qint32 = QDType("qint32", np.dtype(np.int32), -(2 ** 31), 2 ** 31 - 1)

_BY_NAME = {d.name: d for d in (quint8, qint8, qint32)}


def as_qdtype(dtype, op: str = "quantization") -> QDType:
    """``quint8``/``qint8``/``qint32`` or their names; anything else is a clear error."""
    if isinstance(dtype, QDType):
        return dtype
    if isinstance(dtype, str) and dtype.removeprefix("convnet.").removeprefix("torch.") in _BY_NAME:
        return _BY_NAME[dtype.removeprefix("convnet.").removeprefix("torch.")]
    raise TypeError(f"{op}: dtype must be convnet.quint8, convnet.qint8 or convnet.qint32, "
                    f"got {dtype!r}")

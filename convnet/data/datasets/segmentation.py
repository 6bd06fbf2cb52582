"""Segmentation targets from a classification dataset: the object's pixels get its class.

Real segmentation data is large; an image of one centred object on a plain background (MNIST,
Fashion-MNIST) already defines a semantic-segmentation task: every pixel brighter than a
threshold belongs to the image's class, every other pixel to the background. This is what
``convnet train --model unet`` learns (``--task segment``): per-pixel classification into
``1 + num_classes`` labels, judged by pixel accuracy and mean IoU.
"""
from __future__ import annotations

import numpy as np

from ...tensor import Tensor
from ..dataset import Dataset, _raw

__all__ = ["ForegroundSegmentation"]


class ForegroundSegmentation(Dataset):
    """Wrap ``dataset`` (samples ``(image (C, H, W), label)``) into ``(image, mask (H, W))``.

    ``mask = label + 1`` where the channel mean of the *transformed* image exceeds
    ``threshold`` (so masks follow any augmentation of the image), else ``0`` (background).
    ``threshold`` is in the units of the transformed image (e.g. ``(0.1 - mean) / std`` for a
    raw intensity of 0.1 after normalisation). Batched ``__getitems__`` is kept when the wrapped
    dataset has it.
    """

    def __init__(self, dataset, threshold: float) -> None:
        self.dataset, self.threshold = dataset, float(threshold)
        if hasattr(dataset, "__getitems__"):
            self.__getitems__ = self._getitems

    def __len__(self) -> int:
        return len(self.dataset)

    def _mask(self, x: np.ndarray, label) -> np.ndarray:
        """``x`` ``(..., C, H, W)``, ``label`` ``(...)`` -> int64 mask ``(..., H, W)``."""
        fg = x.mean(axis=-3) > self.threshold
        lab = np.asarray(label, dtype=np.int64)[(...,) + (None, None)]
        return np.where(fg, lab + 1, 0).astype(np.int64)

    def __getitem__(self, index: int):
        x, y = self.dataset[index]
        x = _raw(x)
        if x.ndim != 3:
            raise ValueError(f"ForegroundSegmentation: expected images (C, H, W), got shape "
                             f"{x.shape}")
        return Tensor._make(x), Tensor._make(self._mask(x, _raw(y)))

    def _getitems(self, indices):
        x, y = self.dataset.__getitems__(indices)
        x = _raw(x)
        return x, self._mask(x, _raw(y))

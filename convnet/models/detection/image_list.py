"""``ImageList``: a padded batch of images together with each image's size before padding.

Detectors take images of different sizes; they are padded into one ``(N, C, H, W)`` batch and
the true sizes are kept beside it, as torchvision's ``ImageList`` does. Anchors are laid out on
the padded batch (``tensors.shape[-2:]``); the per-image sizes are what boxes get clipped to.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

__all__ = ["ImageList"]


class ImageList:
    """A batch ``tensors`` of shape ``(N, C, H, W)`` and ``image_sizes``, ``N`` pairs ``(h_i, w_i)``.

    Args:
        tensors: the padded batch (a convnet ``Tensor``).
        image_sizes: one ``(height, width)`` per image, each ``<= (H, W)``.
    """

    def __init__(self, tensors, image_sizes: Sequence[Sequence[int]]) -> None:
        shape = tuple(getattr(tensors, "shape", ()))
        if len(shape) < 2:
            raise ValueError(f"ImageList: tensors must have at least 2 dimensions (..., H, W), "
                             f"got shape {shape}")
        sizes: List[Tuple[int, int]] = []
        for s in image_sizes:
            if len(s) != 2:
                raise ValueError(f"ImageList: each image size must be (height, width), got {tuple(s)}")
            sizes.append((int(s[0]), int(s[1])))
        if len(shape) == 4 and len(sizes) != shape[0]:
            raise ValueError(f"ImageList: {len(sizes)} image sizes for a batch of shape {shape}")
        self.tensors = tensors
        self.image_sizes = sizes

    def to(self, device) -> "ImageList":
        return ImageList(self.tensors.to(device), self.image_sizes)

    def __repr__(self) -> str:
        return f"ImageList(tensors.shape={tuple(self.tensors.shape)}, image_sizes={self.image_sizes})"

"""Anchor boxes on the feature-map grids of a detector, placed as torchvision places them.

A feature map of size ``(H_f, W_f)`` computed from a (padded) image batch of size ``(H, W)`` has
stride ``s = (H // H_f, W // W_f)``. At every cell ``(i, j)`` it carries ``A = len(sizes) *
len(aspect_ratios)`` anchors: the zero-centred *cell anchors* shifted by ``(j s_w, i s_h)``.
With ``r`` an aspect ratio (height / width) and ``S`` a size (the square root of the area),

    h_ratio = sqrt(r),   w_ratio = 1 / h_ratio,   w = w_ratio S,   h = h_ratio S
    cell anchor = round([-w, -h, w, h] / 2)                      (round half to even)

so an anchor's corners are integers and its centre is the cell's top-left corner in image pixels
(torchvision's placement; no half-stride offset). Anchors are ordered level by level, then row by
row and column by column, then all ``A`` cell anchors of a location (ratios outer, sizes inner).
"""
from __future__ import annotations

from typing import List, Sequence

import numpy as np

from ...nn.modules.module import Module
from ...tensor import Tensor

__all__ = ["AnchorGenerator"]


def _shape_of(x, what: str) -> tuple:
    shape = getattr(x, "shape", None)
    if shape is None:
        raise TypeError(f"AnchorGenerator: {what} must be a Tensor, got {type(x).__name__}")
    return tuple(int(s) for s in shape)


class AnchorGenerator(Module):
    """Anchors for a set of feature maps (torchvision's ``AnchorGenerator``).

    Args:
        sizes: one tuple of anchor sizes (square roots of the area, in image pixels) per
            feature level. Default ``((128, 256, 512),)``. A flat tuple ``(32, 64)`` means one
            size per level, as in torchvision.
        aspect_ratios: one tuple of height / width ratios per level. Default
            ``((0.5, 1.0, 2.0),)``; a flat tuple is used for every level.

    ``forward(image_list, feature_maps)`` returns a list with one ``(sum_l H_l W_l A_l, 4)``
    Tensor of ``(x1, y1, x2, y2)`` anchors per image, in the feature maps' dtype.

    Examples:
        >>> gen = AnchorGenerator(sizes=((16,),), aspect_ratios=((1.0,),))
        >>> images = ImageList(cn.zeros(1, 1, 8, 8), [(8, 8)])
        >>> gen(images, [cn.zeros(1, 4, 2, 2)])[0].tolist()   # stride 4
        [[-8.0, -8.0, 8.0, 8.0], [-4.0, -8.0, 12.0, 8.0], [-8.0, -4.0, 8.0, 12.0], [-4.0, -4.0, 12.0, 12.0]]
    """

    def __init__(self, sizes=((128, 256, 512),), aspect_ratios=((0.5, 1.0, 2.0),)) -> None:
        super().__init__()
        sizes = tuple(sizes)
        if len(sizes) == 0:
            raise ValueError("AnchorGenerator: sizes must not be empty")
        if not isinstance(sizes[0], (list, tuple)):
            sizes = tuple((s,) for s in sizes)           # torchvision: one size per level
        aspect_ratios = tuple(aspect_ratios)
        if len(aspect_ratios) == 0:
            raise ValueError("AnchorGenerator: aspect_ratios must not be empty")
        if not isinstance(aspect_ratios[0], (list, tuple)):
            aspect_ratios = (aspect_ratios,) * len(sizes)
        if len(sizes) != len(aspect_ratios):
            raise ValueError(f"AnchorGenerator: sizes has {len(sizes)} levels but aspect_ratios has "
                             f"{len(aspect_ratios)}; give one tuple of each per feature map")
        for lvl, (s, a) in enumerate(zip(sizes, aspect_ratios)):
            if len(s) == 0 or len(a) == 0:
                raise ValueError(f"AnchorGenerator: level {lvl} has no sizes or no aspect ratios")
            if any(not np.isfinite(v) or v <= 0 for v in tuple(s) + tuple(a)):
                raise ValueError(f"AnchorGenerator: sizes and aspect ratios must be positive, got "
                                 f"sizes {tuple(s)} and aspect_ratios {tuple(a)} at level {lvl}")
        self.sizes = tuple(tuple(s) for s in sizes)
        self.aspect_ratios = tuple(tuple(a) for a in aspect_ratios)
        self.cell_anchors = [Tensor._make(self.generate_anchors(s, a))
                             for s, a in zip(self.sizes, self.aspect_ratios)]

    @staticmethod
    def generate_anchors(scales: Sequence[float], aspect_ratios: Sequence[float],
                         dtype=np.float32) -> np.ndarray:
        """Zero-centred cell anchors ``(len(aspect_ratios) * len(scales), 4)``, rounded.

        Computed in float32 by default, as torchvision builds its cell anchors, so that rounding
        lands on the same integers.
        """
        scales = np.asarray(scales, dtype=dtype)
        ratios = np.asarray(aspect_ratios, dtype=dtype)
        h_ratios = np.sqrt(ratios)
        w_ratios = (np.asarray(1, dtype=dtype) / h_ratios).astype(dtype)
        ws = (w_ratios[:, None] * scales[None, :]).reshape(-1)
        hs = (h_ratios[:, None] * scales[None, :]).reshape(-1)
        return np.round(np.stack([-ws, -hs, ws, hs], axis=1) / np.asarray(2, dtype=dtype))

    def num_anchors_per_location(self) -> List[int]:
        """``A_l = len(sizes[l]) * len(aspect_ratios[l])`` for each level."""
        return [len(s) * len(a) for s, a in zip(self.sizes, self.aspect_ratios)]

    def grid_anchors(self, grid_sizes, strides, dtype=np.float32) -> List[np.ndarray]:
        """Anchors of every level as arrays ``(H_l W_l A_l, 4)``.

        ``grid_sizes`` and ``strides`` are ``(height, width)`` pairs, one per level.
        """
        if not len(grid_sizes) == len(strides) == len(self.cell_anchors):
            raise ValueError(
                f"AnchorGenerator: got {len(grid_sizes)} feature maps but {len(self.cell_anchors)} "
                "levels of sizes / aspect ratios; there must be one tuple of sizes and one of "
                "aspect ratios per feature map")
        out = []
        for (gh, gw), (sh, sw), cell in zip(grid_sizes, strides, self.cell_anchors):
            shift_x = np.arange(gw, dtype=np.int64) * int(sw)
            shift_y = np.arange(gh, dtype=np.int64) * int(sh)
            sy, sx = np.meshgrid(shift_y, shift_x, indexing="ij")         # row-major locations
            shifts = np.stack([sx.ravel(), sy.ravel(), sx.ravel(), sy.ravel()], axis=1)
            base = cell.numpy().astype(dtype, copy=False)
            out.append((shifts[:, None, :].astype(dtype) + base[None, :, :]).reshape(-1, 4))
        return out

    def forward(self, image_list, feature_maps) -> List[Tensor]:
        # image_list: an ImageList (``.tensors``, ``.image_sizes``) or a plain (N, C, H, W) batch
        if hasattr(image_list, "tensors") and hasattr(image_list, "image_sizes"):
            batch_shape = _shape_of(image_list.tensors, "image_list.tensors")
            num_images = len(image_list.image_sizes)
        else:
            batch_shape = _shape_of(image_list, "image_list")
            if len(batch_shape) != 4:
                raise ValueError(f"AnchorGenerator: expected an ImageList or an (N, C, H, W) batch, "
                                 f"got shape {batch_shape}")
            num_images = batch_shape[0]
        if len(batch_shape) < 2:
            raise ValueError(f"AnchorGenerator: images must be (..., H, W), got shape {batch_shape}")
        if isinstance(feature_maps, Tensor) or not isinstance(feature_maps, (list, tuple)):
            raise TypeError("AnchorGenerator: feature_maps must be a list of Tensors (one per level), "
                            f"got {type(feature_maps).__name__}")
        if len(feature_maps) == 0:
            raise ValueError("AnchorGenerator: feature_maps is empty")
        image_h, image_w = batch_shape[-2:]
        grid_sizes, strides = [], []
        for lvl, fm in enumerate(feature_maps):
            shape = _shape_of(fm, f"feature_maps[{lvl}]")
            if len(shape) < 2:
                raise ValueError(f"AnchorGenerator: feature_maps[{lvl}] must be (..., H, W), "
                                 f"got shape {shape}")
            gh, gw = shape[-2:]
            if not (0 < gh <= image_h and 0 < gw <= image_w):
                raise ValueError(f"AnchorGenerator: feature_maps[{lvl}] of spatial size {(gh, gw)} "
                                 f"does not fit the images of size {(image_h, image_w)}")
            grid_sizes.append((gh, gw))
            strides.append((image_h // gh, image_w // gw))       # floor, as torchvision
        dtype = np.dtype(getattr(feature_maps[0], "dtype", np.float32))
        if dtype.kind != "f":
            dtype = np.dtype(np.float32)
        levels = self.grid_anchors(grid_sizes, strides, dtype)
        anchors = np.concatenate(levels, axis=0)
        # one Tensor per image (same anchors; separate arrays so in-place edits stay per image)
        return [Tensor._make(anchors.copy()) for _ in range(num_images)]

    def extra_repr(self) -> str:
        return f"sizes={self.sizes}, aspect_ratios={self.aspect_ratios}"

"""``ImageFolder``: one sub-folder per class, images read with Pillow."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from ..dataset import Dataset

__all__ = ["ImageFolder", "load_image", "IMG_EXTENSIONS"]

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")


def load_image(path: str | os.PathLike, mode: str = "RGB",
               size: tuple[int, int] | int | None = None) -> np.ndarray:
    """Read an image file as ``(C, H, W)`` uint8 (C = 1 for mode 'L', 3 for 'RGB').

    Transparency is composited onto white and the EXIF orientation applied
    (:func:`convnet.data.user_images.read_image`). ``size`` (h, w) resizes to exactly that
    (bilinear); an int ``size`` keeps the aspect ratio: the shorter side becomes ``size`` and the
    centre ``size x size`` is cropped (torchvision's ``Resize(size)`` + ``CenterCrop(size)``).
    Raises ValueError naming the file when it is not an image Pillow can decode.
    """
    arr = np.asarray(load_pil(path, mode, size), dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else np.ascontiguousarray(arr.transpose(2, 0, 1))


def load_pil(path: str | os.PathLike, mode: str = "RGB",
             size: tuple[int, int] | int | None = None):
    """:func:`load_image`'s picture as a PIL image (mode 'RGB' or 'L'), before the array."""
    from PIL import Image

    from ..user_images import read_image, resize_center_crop

    im = read_image(path, mode)
    if isinstance(size, int):
        im = resize_center_crop(im, size)[0]
    elif size is not None:
        im = im.resize((int(size[1]), int(size[0])), Image.BILINEAR)
    return im


class ImageFolder(Dataset):
    """Images arranged as ``root/<class name>/<file>``; classes sorted by name get labels 0..K-1.

    As torchvision's: ``ds[i]`` is ``(transform(PIL image), target_transform(int))``,
    ``.samples`` lists ``(path, class index)``, ``.targets`` the class indices (a list).

    Args:
        root: the folder of class folders.
        transform: applied to the PIL image (mode ``mode``, resized to ``size`` if given).
        mode: 'RGB' (3 channels) or 'L' (grayscale, 1 channel).
        size: needed to batch images of different sizes: an int keeps each image's aspect
            ratio (shorter side resized to it, then the centre square cropped, as torchvision's
            ``Resize(size)`` + ``CenterCrop(size)`` and as ``convnet predict`` frames images);
            ``(h, w)`` resizes to exactly that.
    """

    def __init__(self, root: str | os.PathLike, transform: Callable | None = None,
                 target_transform: Callable | None = None, mode: str = "RGB",
                 size: tuple[int, int] | int | None = None, extensions=IMG_EXTENSIONS) -> None:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"ImageFolder: {root} is not a folder (expected "
                                    "root/<class>/<image>)")
        self.classes = sorted(d.name for d in root.iterdir()
                              if d.is_dir() and not d.name.startswith("."))
        if not self.classes:
            raise FileNotFoundError(f"ImageFolder: {root} has no class sub-folders (expected "
                                    "root/<class>/<image>)")
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        exts = tuple(e.lower() for e in extensions)
        self.samples = [(p, self.class_to_idx[c]) for c in self.classes
                        for p in sorted((root / c).rglob("*"))
                        if p.is_file() and p.suffix.lower() in exts]
        if not self.samples:
            raise FileNotFoundError(f"ImageFolder: no images with extensions {exts} under {root}")
        self.targets = [s[1] for s in self.samples]
        self.imgs = self.samples  # torchvision's older name
        self.root, self.transform, self.target_transform = root, transform, target_transform
        self.mode = mode
        self.size = size

    @property
    def num_channels(self) -> int:
        return 1 if self.mode == "L" else 3

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, label = self.samples[index]
        img = load_pil(path, self.mode, self.size)
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return img, label

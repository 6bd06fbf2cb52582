"""MNIST and Fashion-MNIST from their four IDX files, and the digits bundled with convnet."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ...tensor import Tensor
from ..dataset import ArrayImageDataset, _pil_image, _raw
from .idx import IDXError, read_idx

__all__ = ["MNIST", "FashionMNIST", "BundledMNIST", "find_idx_files", "FASHION_MNIST_SYSTEM_DIR"]

FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian dataset-fashion-mnist
_FILES = {True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def default_cache_dir() -> Path:
    """``$CONVNET_DATA`` or ``~/.cache/convnet``: where ``--download`` stores files."""
    return Path(os.environ.get("CONVNET_DATA", Path.home() / ".cache" / "convnet"))


def _idx_file(folder: Path, stem: str) -> Path | None:
    alt = stem.replace("-idx", ".idx")  # some mirrors name them train-images.idx3-ubyte
    for cand in (folder / stem, folder / f"{stem}.gz", folder / alt):
        if cand.is_file():
            return cand
    return None


def find_idx_files(folders: Sequence[Path], train: bool, name: str,
                   how_to_get: str) -> tuple[Path, Path]:
    """Locate the images/labels IDX pair (``.gz`` or not) of one split.

    The pair comes from the first folder that holds all four files (both splits), so the
    training and test files of a run always come from the same copy of the dataset; the
    error names every folder searched and the files missing from the closest one.
    """
    want = _FILES[train] + _FILES[not train]
    best, best_missing = None, list(want)
    for folder in folders:
        found = {stem: _idx_file(folder, stem) for stem in want}
        missing = [stem for stem, f in found.items() if f is None]
        if not missing:
            return found[_FILES[train][0]], found[_FILES[train][1]]
        if len(missing) < len(best_missing):
            best, best_missing = folder, missing
    searched = ", ".join(str(f) for f in folders) or "(no folder)"
    partial = (f" {best} has only some of them (missing: {', '.join(best_missing)})."
               if best is not None else "")
    raise FileNotFoundError(
        f"{name}: dataset files not found. Expected {', '.join(s + '[.gz]' for s in want)} "
        f"together in one of: {searched}.{partial} {how_to_get}")


def load_idx_pair(images_path: Path, labels_path: Path, name: str, num_classes: int = 10):
    """Read and cross-check an images/labels pair; images come back as (N, 1, H, W) uint8."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3:
        raise IDXError(f"{name}: {images_path} should hold images (N, rows, cols), got shape "
                       f"{images.shape}")
    if labels.ndim != 1:
        raise IDXError(f"{name}: {labels_path} should hold labels (N,), got shape {labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise IDXError(f"{name}: {images_path.name} has {images.shape[0]} images but "
                       f"{labels_path.name} has {labels.shape[0]} labels")
    if images.dtype != np.uint8:
        raise IDXError(f"{name}: {images_path} should hold uint8 pixels, got {images.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise IDXError(f"{name}: {labels_path} has labels outside 0..{num_classes - 1}")
    return images[:, None], labels.astype(np.int64)


class _GreyDigits(ArrayImageDataset):
    """torchvision's MNIST layout: ``.data`` a uint8 Tensor ``(N, H, W)``, ``.targets`` an
    int64 Tensor ``(N,)``; ``ds[i]`` is ``(PIL image mode 'L', int)`` before transforms."""

    def _store(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.data = Tensor._make(images[:, 0])
        self.targets = Tensor._make(labels)

    def _nchw(self) -> np.ndarray:
        return _raw(self.data)[:, None]

    def _sample(self, chw: np.ndarray):
        return _pil_image(chw)


class MNIST(_GreyDigits):
    """Handwritten digits 0-9: 60,000 training and 10,000 test images (1, 28, 28) uint8.

    Looks for the four files (``train-images-idx3-ubyte[.gz]`` and so on), all in one folder:
    ``root``, ``root/<Name>/raw`` (torchvision's layout) or ``root/<name>`` when ``root`` is
    given, else the download cache. ``download=True`` fetches them into ``root`` (or the
    cache) and verifies their SHA-256.

    As torchvision: ``.data`` is a uint8 Tensor ``(N, 28, 28)``, ``.targets`` an int64 Tensor;
    ``ds[i]`` is ``(transform(PIL image, mode 'L'), target_transform(int label))``.
    ``ds.images`` views the data as ``(N, 1, 28, 28)``.
    """

    classes = [str(d) for d in range(10)]
    folder_name = "MNIST"
    how_to_get = ("Download them from https://ossci-datasets.s3.amazonaws.com/mnist/ into "
                  "--data-dir, or pass --download.")

    def __init__(self, root: str | os.PathLike | None = None, train: bool = True,
                 transform: Callable | None = None, target_transform: Callable | None = None,
                 download: bool = False) -> None:
        if download:
            from .download import download_dataset

            cache = default_cache_dir() / self.folder_name.lower()
            target = Path(root) if root is not None else cache
            download_dataset(self.folder_name.lower(), target)
        folders = self.search_folders(root)
        img_path, lbl_path = find_idx_files(folders, train, type(self).__name__, self.how_to_get)
        images, labels = load_idx_pair(img_path, lbl_path, type(self).__name__)
        self.root, self.train = root, train
        super().__init__(images, labels, transform, target_transform)

    @classmethod
    def search_folders(cls, root) -> list[Path]:
        """Where the files are looked for. With ``root`` only inside it (``root``,
        ``root/<Name>/raw`` as torchvision lays it out, ``root/<name>``): a folder the user
        named is never silently replaced by another copy. Without it, the download cache."""
        if root is not None:
            root = Path(root)
            if not root.is_dir():
                raise FileNotFoundError(f"{cls.__name__}: data folder {root} does not exist "
                                        f"(expected {', '.join(_FILES[True] + _FILES[False])} "
                                        f"in it). {cls.how_to_get}")
            return [root, root / cls.folder_name / "raw", root / cls.folder_name.lower()]
        return [default_cache_dir() / cls.folder_name.lower()]


class FashionMNIST(MNIST):
    """Zalando's Fashion-MNIST: 10 clothing classes, same format and sizes as MNIST.

    Also found automatically in ``/usr/share/datasets/fashion-mnist``
    (``apt-get install dataset-fashion-mnist`` on Debian/Ubuntu).
    """

    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
               "Bag", "Ankle boot"]
    folder_name = "FashionMNIST"
    how_to_get = ("Install them with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu, files "
                  f"in {FASHION_MNIST_SYSTEM_DIR}), download them from "
                  "https://github.com/zalandoresearch/fashion-mnist into --data-dir, or pass "
                  "--download.")

    @classmethod
    def search_folders(cls, root) -> list[Path]:
        folders = super().search_folders(root)
        if root is not None:
            return folders + [Path(root) / "fashion-mnist"]
        return folders + [default_cache_dir() / "fashion-mnist", FASHION_MNIST_SYSTEM_DIR]


BUNDLED_PATH = Path(__file__).resolve().parents[1] / "bundled" / "mnist_digits.npz"


class BundledMNIST(_GreyDigits):
    """10,000 real MNIST digits shipped inside convnet (8,000 train / 2,000 test, stratified).

    See ``convnet/data/bundled/README.md`` for provenance (CC BY-SA 3.0). No download needed.
    """

    classes = [str(d) for d in range(10)]

    def __init__(self, root=None, train: bool = True, transform: Callable | None = None,
                 target_transform: Callable | None = None, download: bool = False) -> None:
        path = BUNDLED_PATH
        if not path.is_file():
            raise FileNotFoundError(f"BundledMNIST: {path} is missing from the installation; "
                                    "rebuild it with scripts/make_bundled_mnist.py")
        split = "train" if train else "test"
        with np.load(path, allow_pickle=False) as z:
            images, labels = z[f"{split}_images"], z[f"{split}_labels"]
        self.train = train
        super().__init__(images[:, None], labels, transform, target_transform)

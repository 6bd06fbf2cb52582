"""Opt-in downloads (``--download``) with SHA-256 verification. Tests never call this."""
from __future__ import annotations

import hashlib
import urllib.request
from pathlib import Path

from ...io.atomic import atomic_open

__all__ = ["SOURCES", "download_dataset", "sha256_of"]

# file -> SHA-256 of the official gzipped IDX files.
SOURCES = {
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/", {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    }),
    "fashionmnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/", {
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    }),
}


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download_dataset(name: str, folder: Path) -> None:
    """Fetch the files of ``name`` into ``folder`` unless present with the right digest."""
    base, files = SOURCES[name]
    folder.mkdir(parents=True, exist_ok=True)
    for fname, digest in files.items():
        target = folder / fname
        if target.is_file() and sha256_of(target) == digest:
            continue
        print(f"downloading {base + fname} -> {target}")
        h = hashlib.sha256()
        try:
            with urllib.request.urlopen(base + fname, timeout=60) as resp, \
                    atomic_open(target) as out:
                for chunk in iter(lambda: resp.read(1 << 20), b""):
                    h.update(chunk)
                    out.write(chunk)
                if h.hexdigest() != digest:  # raising inside atomic_open discards the bad file
                    raise ValueError(f"download of {fname}: SHA-256 {h.hexdigest()} does not "
                                     f"match the expected {digest}")
        except OSError as e:  # URLError, timeouts, refused connections: no network here
            reason = getattr(e, "reason", None) or e
            raise ConnectionError(
                f"could not download {base + fname} ({reason}). Without network access, get "
                f"the files by hand from {base} ({', '.join(files)}) and copy them into "
                f"{folder} (or pass that folder as --data-dir)") from None

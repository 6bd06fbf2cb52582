"""--download: files are fetched once, SHA-256 checked, and a bad download leaves nothing behind.
The network is replaced by an in-memory server; tests never download."""
import hashlib
import io

import numpy as np
import pytest

from convnet.data import datasets as D
from convnet.data.datasets import download as dl
from convnet.data.datasets import mnist as mnist_mod


def fake_files(tmp_path):
    rng = np.random.default_rng(0)
    blobs = {}
    for prefix, n in (("train", 10), ("t10k", 4)):
        for kind, arr in (("images-idx3", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)),
                          ("labels-idx1", rng.integers(0, 10, n).astype(np.uint8))):
            p = tmp_path / "src" / f"{prefix}-{kind}-ubyte.gz"
            p.parent.mkdir(exist_ok=True)
            D.write_idx(p, arr)
            blobs[p.name] = p.read_bytes()
    return blobs


@pytest.fixture
def server(tmp_path, monkeypatch):
    blobs = fake_files(tmp_path)
    calls = []

    def urlopen(url, timeout=None):
        calls.append(url)
        return io.BytesIO(blobs[url.rsplit("/", 1)[1]])

    monkeypatch.setattr(dl.urllib.request, "urlopen", urlopen)
    digests = {k: hashlib.sha256(v).hexdigest() for k, v in blobs.items()}
    monkeypatch.setitem(dl.SOURCES, "mnist", ("https://example.invalid/mnist/", digests))
    monkeypatch.setenv("CONVNET_DATA", str(tmp_path / "cache"))
    monkeypatch.setattr(mnist_mod, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "system")
    return calls, digests


def test_download_fetches_verifies_and_caches(tmp_path, server, capsys):
    calls, _ = server
    ds = D.MNIST(train=True, download=True)
    assert len(ds) == 10 and len(calls) == 4
    assert (tmp_path / "cache" / "mnist" / "train-images-idx3-ubyte.gz").is_file()
    D.MNIST(train=False, download=True)  # already there with the right digest: no refetch
    assert len(calls) == 4
    assert "downloading" in capsys.readouterr().out


def test_checksum_mismatch_keeps_nothing(tmp_path, server, monkeypatch):
    _, digests = server
    bad = dict(digests, **{"t10k-images-idx3-ubyte.gz": "0" * 64})
    monkeypatch.setitem(dl.SOURCES, "mnist", ("https://example.invalid/mnist/", bad))
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz: SHA-256 .* does not match"):
        D.MNIST(tmp_path / "d", train=True, download=True)
    assert not (tmp_path / "d" / "t10k-images-idx3-ubyte.gz").exists()
    assert not [p for p in (tmp_path / "d").iterdir() if p.name.endswith(".tmp")]


def test_official_digests_are_well_formed():
    for name, (base, files) in dl.SOURCES.items():
        assert base.startswith("http") and len(files) == 4
        assert all(len(h) == 64 and int(h, 16) >= 0 for h in files.values())

"""safetensors read/write: round trips, compatibility with the reference package, corrupt files,
atomic writes."""
import json
import os
import struct

import numpy as np
import pytest
import safetensors.numpy as reference

from convnet import io
from convnet.io import SafetensorsError


def sample():
    rng = np.random.default_rng(0)
    return {
        "w": rng.standard_normal((3, 4)).astype(np.float32), "b": rng.standard_normal(5),
        "n": np.arange(7, dtype=np.int64), "m": rng.integers(0, 255, (2, 2, 2)).astype(np.uint8),
        "flag": np.array([True, False]), "h": np.ones(3, np.float16), "empty": np.zeros((0, 3), np.float32),
    }


def test_roundtrip_file_and_metadata(tmp_path):
    d = sample()
    io.save_file(d, tmp_path / "a.safetensors", {"k": "v"})
    back, meta = io.load_file(tmp_path / "a.safetensors", with_metadata=True)
    assert meta == {"k": "v"} and set(back) == set(d)
    for k in d:
        assert back[k].dtype == d[k].dtype and back[k].shape == d[k].shape
        np.testing.assert_array_equal(back[k], d[k])
        assert back[k].flags.writeable
    assert io.read_metadata(tmp_path / "a.safetensors") == {"k": "v"}


def test_compatible_with_reference_implementation(tmp_path):
    d = sample()
    ours = reference.load(io.save(d))
    for k in d:
        np.testing.assert_array_equal(ours[k], d[k])
    theirs = io.load(reference.save(d, metadata={"x": "y"}))
    for k in d:
        np.testing.assert_array_equal(theirs[k], d[k])


def test_non_contiguous_and_big_endian_inputs():
    a = np.arange(12, dtype=">f8").reshape(3, 4).T
    back = io.load(io.save({"a": a}))["a"]
    np.testing.assert_array_equal(back, a)
    assert back.dtype == np.float64


@pytest.mark.parametrize("cut", [0, 5, 12, 60, -1, -13])
def test_truncated_files_raise_clear_errors(tmp_path, cut):
    blob = io.save(sample())
    p = tmp_path / "t.safetensors"
    p.write_bytes(blob[:cut])
    with pytest.raises(SafetensorsError, match=r"t\.safetensors: (truncated|corrupt)"):
        io.load_file(p)


def _with_header(header: dict, data: bytes) -> bytes:
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data


@pytest.mark.parametrize("header,data,pattern", [
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4, "needs 8 bytes"),
    ({"a": {"dtype": "X99", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4, "corrupt safetensors header entry"),
    ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
      "b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4, "overlapping"),
    ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 8, "unexpected bytes"),
    ({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4, "corrupt"),
    ({"__metadata__": {"k": 3}}, b"", "__metadata__"),
])
def test_corrupt_headers(header, data, pattern):
    with pytest.raises(SafetensorsError, match=pattern):
        io.load(_with_header(header, data))


def test_garbage_and_implausible_header():
    with pytest.raises(SafetensorsError, match="not JSON"):
        io.load(struct.pack("<Q", 4) + b"\xff\xfe{x" + b"")
    with pytest.raises(SafetensorsError, match="implausible"):
        io.load(b"\xff" * 64)


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="no such file"):
        io.load_file("/nonexistent/x.safetensors")


def test_save_validation():
    with pytest.raises(SafetensorsError, match="unsupported dtype"):
        io.save({"c": np.zeros(2, np.complex64)})
    with pytest.raises(SafetensorsError, match="metadata must map str to str"):
        io.save({"a": np.zeros(1)}, {"k": 1})


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    p = tmp_path / "ckpt.safetensors"
    io.save_file({"a": np.ones(3)}, p)
    with pytest.raises(RuntimeError):
        with io.atomic_open(p) as f:
            f.write(b"half of a new file")
            raise RuntimeError("killed mid-write")
    np.testing.assert_array_equal(io.load_file(p)["a"], np.ones(3))
    assert os.listdir(tmp_path) == ["ckpt.safetensors"]  # no temporary left behind
    with pytest.raises(KeyboardInterrupt):
        with io.atomic_open(p) as f:
            f.write(b"x")
            raise KeyboardInterrupt
    assert os.listdir(tmp_path) == ["ckpt.safetensors"]


def test_atomic_write_replaces_and_keeps_permissions(tmp_path):
    p = tmp_path / "x.txt"
    io.atomic_write_text(p, "one")
    io.atomic_write_text(p, "two")
    assert p.read_text() == "two"
    mask = os.umask(0)
    os.umask(mask)
    assert p.stat().st_mode & 0o777 == 0o666 & ~mask


def test_zero_dim_tensors_keep_their_shape(tmp_path):
    d = {"count": np.array(7, dtype=np.int64), "scale": np.array(0.5, dtype=np.float32)}
    back = io.load(io.save(d))
    assert back["count"].shape == () and back["count"] == 7 and back["scale"].shape == ()
    assert reference.load(io.save(d))["count"].shape == ()

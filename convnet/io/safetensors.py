"""The safetensors format, written and read with NumPy and ``json`` (no pickle, no code runs).

Layout of a ``.safetensors`` file::

    [8 bytes]  N, the header length, unsigned 64-bit little endian
    [N bytes]  JSON header: {"name": {"dtype": "F32", "shape": [2, 3],
                                      "data_offsets": [begin, end]}, ...,
                             "__metadata__": {"key": "string value", ...}}
               (padded with spaces so the data start on an 8-byte boundary)
    [rest]     the tensors' bytes, little endian, C order; offsets are relative to here

Files written here are byte-compatible with the reference ``safetensors`` package. Loads
validate everything (sizes, offsets, dtypes, overlaps) and raise :class:`SafetensorsError`
(a ``ValueError``) naming the file and the problem, so a truncated download or a corrupt
checkpoint never surfaces as a NumPy error. Writes go through :mod:`convnet.io.atomic`.
"""
from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Mapping

import numpy as np

from .atomic import atomic_write_bytes

__all__ = ["SafetensorsError", "save", "load", "save_file", "load_file", "read_metadata"]

# safetensors dtype codes <-> NumPy dtypes (little endian).
_CODES = {
    "BOOL": np.dtype(np.bool_), "U8": np.dtype("u1"), "I8": np.dtype("i1"),
    "U16": np.dtype("<u2"), "I16": np.dtype("<i2"), "F16": np.dtype("<f2"),
    "U32": np.dtype("<u4"), "I32": np.dtype("<i4"), "F32": np.dtype("<f4"),
    "U64": np.dtype("<u8"), "I64": np.dtype("<i8"), "F64": np.dtype("<f8"),
}
_NAMES = {dt.newbyteorder("<") if dt.itemsize > 1 else dt: code for code, dt in _CODES.items()}
_MAX_HEADER = 100_000_000  # the reference implementation's limit; guards against garbage lengths


class SafetensorsError(ValueError):
    """A safetensors file or buffer is truncated, corrupt, or cannot be written."""


def _as_array(name: str, value) -> np.ndarray:
    arr = value._data if hasattr(value, "_data") and not isinstance(value, np.ndarray) else value
    arr = np.asarray(arr)
    key = arr.dtype.newbyteorder("<") if arr.dtype.itemsize > 1 else arr.dtype
    if key not in _NAMES:
        raise SafetensorsError(f"safetensors: tensor {name!r} has unsupported dtype {arr.dtype}")
    # not np.ascontiguousarray: it turns 0-d arrays (e.g. BatchNorm's num_batches_tracked) into 1-d
    return np.require(arr, dtype=key, requirements="C")


def save(tensors: Mapping[str, object], metadata: Mapping[str, str] | None = None) -> bytes:
    """Serialise named arrays (NumPy arrays or convnet Tensors) to safetensors bytes.

    ``metadata`` is a flat ``str -> str`` mapping stored under ``__metadata__``.
    """
    if metadata is not None:
        bad = [k for k, v in metadata.items() if not isinstance(k, str) or not isinstance(v, str)]
        if bad:
            raise SafetensorsError(f"safetensors: metadata must map str to str; bad keys {bad}")
    arrays = {}
    for name, value in tensors.items():
        if not isinstance(name, str) or not name or name == "__metadata__":
            raise SafetensorsError(f"safetensors: invalid tensor name {name!r}")
        arrays[name] = _as_array(name, value)
    # Largest alignment first, then by name (what the reference writer does), so every
    # tensor starts aligned to its itemsize.
    order = sorted(arrays, key=lambda k: (-arrays[k].dtype.itemsize, k))
    header: dict = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    for name in order:
        a = arrays[name]
        header[name] = {"dtype": _NAMES[a.dtype], "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    head += b" " * (-len(head) % 8)
    parts = [struct.pack("<Q", len(head)), head]
    parts.extend(arrays[name].tobytes() for name in order)
    return b"".join(parts)


def save_file(tensors: Mapping[str, object], path: str | os.PathLike,
              metadata: Mapping[str, str] | None = None) -> None:
    """Write ``tensors`` to ``path`` atomically (temporary file, fsync, rename)."""
    atomic_write_bytes(path, save(tensors, metadata))


def _parse_header(buf: bytes | memoryview, where: str) -> tuple[dict, dict, int]:
    if len(buf) < 8:
        raise SafetensorsError(f"{where}: truncated safetensors file ({len(buf)} bytes; "
                               "a valid file has at least an 8-byte header length)")
    (n,) = struct.unpack("<Q", bytes(buf[:8]))
    if n > _MAX_HEADER:
        raise SafetensorsError(f"{where}: not a safetensors file (header length {n} is "
                               "implausible)")
    if 8 + n > len(buf):
        raise SafetensorsError(f"{where}: truncated safetensors file (header claims {n} bytes, "
                               f"only {len(buf) - 8} follow)")
    try:
        header = json.loads(bytes(buf[8:8 + n]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SafetensorsError(f"{where}: corrupt safetensors header (not JSON: {e})") from None
    if not isinstance(header, dict):
        raise SafetensorsError(f"{where}: corrupt safetensors header (not a JSON object)")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise SafetensorsError(f"{where}: corrupt safetensors header (__metadata__ must map str "
                               "to str)")
    return header, metadata, 8 + n


def _validate_entries(header: dict, data_len: int,
                      where: str) -> list[tuple[str, np.dtype, tuple, int, int]]:
    entries = []
    for name, info in header.items():
        try:
            dtype = _CODES[info["dtype"]]
            shape = tuple(info["shape"])
            begin, end = info["data_offsets"]
            ok = all(isinstance(s, int) and s >= 0 for s in shape) and \
                isinstance(begin, int) and isinstance(end, int) and 0 <= begin <= end
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise SafetensorsError(f"{where}: corrupt safetensors header entry for {name!r}: "
                                   f"{info!r}")
        expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if end - begin != expected:
            raise SafetensorsError(f"{where}: tensor {name!r} of shape {shape} {info['dtype']} "
                                   f"needs {expected} bytes but its offsets span {end - begin}")
        if end > data_len:
            raise SafetensorsError(f"{where}: truncated safetensors file (tensor {name!r} ends "
                                   f"at byte {end} of the data, which has only {data_len} bytes)")
        entries.append((name, dtype, shape, begin, end))
    # Tensors must tile the data exactly: no overlaps, no gaps, no trailing bytes.
    pos = 0
    for name, _, _, begin, end in sorted(entries, key=lambda e: (e[3], e[4])):
        if begin != pos:
            raise SafetensorsError(f"{where}: corrupt safetensors file (tensor {name!r} starts at "
                                   f"{begin}, expected {pos}: overlapping or missing data)")
        pos = end
    if pos != data_len:
        raise SafetensorsError(f"{where}: corrupt safetensors file ({data_len - pos} unexpected "
                               "bytes after the last tensor)")
    return entries


def load(buf: bytes, where: str = "safetensors") -> dict[str, np.ndarray]:
    """Parse safetensors bytes into ``{name: ndarray}`` (writable copies, native byte order)."""
    return _load(buf, where)[0]


def _load(buf: bytes, where: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    header, metadata, start = _parse_header(buf, where)
    data = memoryview(buf)[start:]
    out = {}
    for name, dtype, shape, begin, end in _validate_entries(header, len(data), where):
        arr = np.frombuffer(data[begin:end], dtype=dtype).reshape(shape)
        out[name] = arr.astype(dtype.newbyteorder("="), copy=True)
    return out, metadata


def load_file(path: str | os.PathLike, *, with_metadata: bool = False):
    """Read a ``.safetensors`` file: ``{name: ndarray}``, or ``(tensors, metadata)`` with
    ``with_metadata=True``. Raises FileNotFoundError or :class:`SafetensorsError`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"safetensors: no such file: {path}")
    tensors, metadata = _load(path.read_bytes(), str(path))
    return (tensors, metadata) if with_metadata else tensors


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """Only the ``__metadata__`` map of a file (reads just the header)."""
    path = Path(path)
    with open(path, "rb") as f:
        first = f.read(8)
        if len(first) == 8:
            (n,) = struct.unpack("<Q", first)
            first += f.read(min(n, _MAX_HEADER + 1))
    return _parse_header(first, str(path))[1]

"""The IDX format of MNIST and Fashion-MNIST, gzipped or raw.

An IDX file is: two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
0x0D float32, 0x0E float64), the number of dimensions ``d``, then ``d`` big-endian uint32
sizes and the values in C order, big endian. Images are ``idx3`` (N, rows, cols), labels
``idx1`` (N,).
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

__all__ = ["IDXError", "read_idx", "write_idx"]

_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
          0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_CODES = {v.newbyteorder("=") if v.itemsize > 1 else v: k for k, v in _TYPES.items()}


class IDXError(ValueError):
    """An IDX file is truncated, corrupt, or not an IDX file."""


def _read_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":  # gzip magic, whatever the file is called
        try:
            return gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as e:
            raise IDXError(f"{path}: corrupt or truncated gzip data ({e})") from None
    return raw


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (``.gz`` or raw, detected from its bytes) into a native-endian array."""
    path = Path(path)
    buf = _read_bytes(path)
    if len(buf) < 4:
        raise IDXError(f"{path}: truncated IDX file ({len(buf)} bytes, the header alone needs 4)")
    zero, code, ndim = struct.unpack(">HBB", buf[:4])
    if zero != 0 or code not in _TYPES:
        raise IDXError(f"{path}: not an IDX file (magic number 0x{buf[:4].hex()}; expected "
                       "0x0000 then a type code 08/09/0B/0C/0D/0E and the number of dimensions)")
    if not 1 <= ndim <= 8:
        raise IDXError(f"{path}: implausible IDX header ({ndim} dimensions)")
    head = 4 + 4 * ndim
    if len(buf) < head:
        raise IDXError(f"{path}: truncated IDX file (header cut short)")
    shape = struct.unpack(f">{ndim}I", buf[4:head])
    dtype = _TYPES[code]
    need = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    have = len(buf) - head
    if have < need:
        raise IDXError(f"{path}: truncated IDX file: shape {shape} needs {need} bytes of data, "
                       f"found {have}")
    if have > need:
        raise IDXError(f"{path}: corrupt IDX file: {have - need} unexpected bytes after the data "
                       f"of shape {shape}")
    arr = np.frombuffer(buf, dtype=dtype, count=need // dtype.itemsize, offset=head).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=True) if dtype.itemsize > 1 else arr.copy()


def write_idx(path: str | os.PathLike, array: np.ndarray, compress: bool | None = None) -> None:
    """Write ``array`` as IDX (gzipped when ``compress``, default: when the name ends ``.gz``)."""
    array = np.asarray(array)
    key = array.dtype.newbyteorder("=") if array.dtype.itemsize > 1 else array.dtype
    if key not in _CODES:
        raise IDXError(f"write_idx: dtype {array.dtype} has no IDX type code")
    code = _CODES[key]
    data = struct.pack(f">HBB{array.ndim}I", 0, code, array.ndim, *array.shape)
    data += np.ascontiguousarray(array, dtype=_TYPES[code]).tobytes()
    path = Path(path)
    if compress if compress is not None else path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)

"""Reader for the IDX format (MNIST, Fashion-MNIST), plain or gzip-compressed."""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from robustcv.core.errors import InputError

__all__ = ["read_idx", "write_idx"]

_MAX_BYTES = 8 << 30  # a decompressed IDX file larger than this is refused, not read

_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _read_bytes(path: Path) -> bytes:
    if path.is_dir():
        raise InputError(f"IDX file {path} is a folder; give the images file (or idx:DIR)")
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
        if head != b"\x1f\x8b":
            with open(path, "rb") as fh:
                return fh.read()
        with gzip.open(path, "rb") as fh:
            data = fh.read(_MAX_BYTES + 1)
    except (OSError, EOFError, zlib.error) as err:
        raise InputError(
            f"cannot read IDX file {path}: {type(err).__name__}: {err}; the file is truncated "
            "or corrupt - re-download it"
        ) from err
    if len(data) > _MAX_BYTES:
        raise InputError(f"{path} decompresses to more than {_MAX_BYTES >> 30} GiB; refused")
    return data


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (``.gz`` or not) into a numpy array.

    Raises:
        InputError: bad magic number, unknown type code, or a truncated file.

    Example:
        >>> import tempfile, numpy as np, os
        >>> p = os.path.join(tempfile.mkdtemp(), "a-idx1-ubyte")
        >>> write_idx(p, np.arange(3, dtype=np.uint8))
        >>> read_idx(p).tolist()
        [0, 1, 2]
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise InputError(f"{path} is not an IDX file (bad magic number)")
    code, ndim = data[2], data[3]
    if code not in _DTYPES:
        raise InputError(f"{path} has unknown IDX type code 0x{code:02x}")
    if ndim == 0:
        raise InputError(f"{path} declares 0 dimensions; an IDX file holds an array")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise InputError(f"{path} is truncated (header incomplete); re-download it")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = _DTYPES[code]
    expected = math.prod(shape) * dtype.itemsize
    if len(data) - header != expected:
        raise InputError(
            f"{path} holds {len(data) - header} bytes of data but its header promises "
            f"{expected} for shape {shape}; the file is truncated or corrupt - re-download it"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=False)


def write_idx(path: str | Path, arr: np.ndarray) -> None:
    """Write ``arr`` as an IDX file (uncompressed; used by tests and tools)."""
    arr = np.asarray(arr)
    codes = {np.dtype(v).newbyteorder("=").str: k for k, v in _DTYPES.items()}
    key = arr.dtype.newbyteorder("=").str
    if key not in codes:
        raise InputError(f"IDX cannot store dtype {arr.dtype}")
    big = arr.astype(_DTYPES[codes[key]], copy=False)
    header = bytes([0, 0, codes[key], arr.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in arr.shape
    )
    Path(path).write_bytes(header + big.tobytes())

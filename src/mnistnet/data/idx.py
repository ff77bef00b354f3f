"""Reader for the IDX format that MNIST was published in (``*-idx3-ubyte``, ``*-idx1-ubyte``).

Layout: two zero bytes, a type code (0x08 = unsigned byte), the number of dimensions, then one
big-endian uint32 per dimension, then the data in C order. The reader checks the magic number
and the dimensions *before* allocating, and reads at most the number of bytes the header
promises plus one: a header that claims more data than the file holds, or a file with trailing
bytes, is a ``DataError``, never a crash or a multi-gigabyte allocation.
"""

from __future__ import annotations

import gzip
import math
import os
from pathlib import Path
from typing import BinaryIO

import numpy as np

from mnistnet.pipeline.errors import DataError

UBYTE = 0x08
MAX_DIMS = 4
MAX_BYTES = 1 << 30  # far above MNIST's 47 MB; anything larger is not a dataset we read


def read_idx(stream: BinaryIO, name: str = "<stream>", max_bytes: int = MAX_BYTES) -> np.ndarray:
    """Parse one IDX file of unsigned bytes from ``stream``, if its header promises at most
    ``max_bytes`` of data (checked before any is read or allocated).

    Returns a read-only-safe ``uint8`` array whose shape is the dimensions in the header,
    e.g. ``(n, 28, 28)`` for images and ``(n,)`` for labels.
    """
    header = stream.read(4)
    if len(header) < 4 or header[:2] != b"\0\0":
        raise DataError(f"{name}: not an IDX file (magic number {header.hex() or 'missing'}).")
    dtype_code, ndim = header[2], header[3]
    if dtype_code != UBYTE:
        raise DataError(f"{name}: IDX type code 0x{dtype_code:02x}; only 0x08 (uint8) is read.")
    if not 1 <= ndim <= MAX_DIMS:
        raise DataError(f"{name}: IDX header claims {ndim} dimensions; expected 1 to {MAX_DIMS}.")
    dims_raw = stream.read(4 * ndim)
    if len(dims_raw) < 4 * ndim:
        raise DataError(f"{name}: truncated IDX header.")
    shape = tuple(int(d) for d in np.frombuffer(dims_raw, dtype=">u4"))
    size = math.prod(shape)  # Python ints: a hostile header cannot overflow the check
    if size > max_bytes or math.prod(max(d, 1) for d in shape) > max_bytes:
        # (the second test: a zero among huge dimensions holds no data, yet no array has
        # that shape either)
        raise DataError(
            f"{name}: IDX header claims dimensions {shape}, over the {max_bytes:,} bytes left "
            f"for this dataset; refusing to read it."
        )
    data = stream.read(size + 1)  # one byte more than promised reveals trailing garbage
    if len(data) < size:
        raise DataError(
            f"{name}: truncated: header promises {size} bytes of data, file has {len(data)}."
        )
    if len(data) > size:
        raise DataError(f"{name}: trailing bytes after the {size} bytes the header promises.")
    return np.frombuffer(data, dtype=np.uint8).reshape(shape).copy()


def read_idx_file(path: str | os.PathLike, max_bytes: int = MAX_BYTES) -> np.ndarray:
    """Read an IDX file from disk, gunzipping it when its name ends in ``.gz``; at most
    ``max_bytes`` of data."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            return read_idx(f, path.name, max_bytes)
    except (OSError, EOFError) as e:  # gzip raises BadGzipFile (an OSError) and EOFError
        raise DataError(f"{path.name}: unreadable ({e}).") from e

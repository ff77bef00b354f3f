"""Reading files from outside the pipeline (a download, your own image or model) without
trusting what they say of themselves: regular files only, no pickle, bounded memory.

``open_regular`` refuses a FIFO, a device or a folder before it can block or stream without
end. ``load_npz`` and ``load_npy`` are NumPy's loader (``allow_pickle=False``) behind two
checks made before anything is expanded: the members' declared sizes (``zipfile``'s
``ZipInfo.file_size``) together fit a budget (a 2 MB deflated file can declare 2 GB of
zeros), and each ``.npy`` header claims exactly the bytes its member holds. Every problem is
a ``DataError`` naming the file, ending with the caller's ``fix``.
"""

from __future__ import annotations

import contextlib
import difflib
import math
import os
import stat
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

import numpy as np

from mnistnet.pipeline.errors import DataError
from mnistnet.pipeline.storage import check_arrays

# What a file may hold, by default: the arrays the reader allocates (and the file itself).
# The Keras MNIST download expands to 55 MB, a model file to a few MB.
MAX_BYTES = 128 * 2**20
# An .npz's zip directory: about 60 bytes per array. zipfile turns each entry into an object
# of ~600 bytes, so a 60 MB archive of 700,000 empty members would cost 450 MB and seconds.
_MAX_ZIP_DIRECTORY = 2**20

# What a path is, when it is not a regular file
_NOT_REGULAR = {
    stat.S_IFDIR: "a folder",
    stat.S_IFIFO: "a FIFO or pipe",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


def open_regular(path: str | os.PathLike, fix: str = "") -> BinaryIO:
    """``path`` opened for reading in binary, if it is a regular file.

    Anything else (a folder, a FIFO or pipe, a socket, a device) is a ``DataError`` that
    says what it is and ends with ``fix``, raised without reading a byte: a FIFO would block
    until something writes to it, and a pipe or a device can stream without end. It is
    checked twice: by name first, so a device is never opened (opening one can have effects),
    then on the open descriptor, so what is read is what was checked; the open does not wait
    (``O_NONBLOCK``), so a FIFO put in its place in between cannot block either. A missing or
    unreadable file raises ``OSError``, for the caller to word.
    """
    mode = os.stat(path).st_mode
    if stat.S_ISREG(mode):
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
        mode = os.fstat(fd).st_mode
        if stat.S_ISREG(mode):
            try:
                return open(fd, "rb")
            except BaseException:
                os.close(fd)
                raise
        os.close(fd)
    kind = _NOT_REGULAR.get(stat.S_IFMT(mode), "an unknown kind of file")
    message = f"{path}: {kind}, not a regular file; only regular files are read. {fix}"
    raise DataError(message.rstrip())


def missing_file(path: str | os.PathLike, fix: str) -> DataError:
    """The error for a file that is not there, with the advice that fits why.

    A near-miss of a file that exists beside it is a typo ("did you mean …?"); a missing
    folder is a wrong path; a missing file in a folder that exists is a pipeline output
    not made yet, and ``fix`` says which stage makes it.
    """
    path = Path(path)
    if not path.parent.is_dir():
        return DataError(
            f"{path}: no such file, and no folder {path.parent}/. Check the path; "
            f"if it is this pipeline's output, run it first: dvc repro"
        )
    names = [p.name for p in path.parent.iterdir()]
    near = difflib.get_close_matches(path.name, names, n=1, cutoff=0.75)
    if near:
        return DataError(f"{path}: no such file; did you mean {path.parent / near[0]}?")
    return DataError(f"{path}: file not found. {fix}")


def load_npz(
    path: str | os.PathLike,
    schema: Mapping[str, tuple[np.dtype | type | None, int]],
    fix: str,
    max_bytes: int = MAX_BYTES,
) -> dict[str, np.ndarray]:
    """Load the arrays named in ``schema`` from an ``.npz`` file from outside the pipeline (a
    download, a user's file), without pickle, and without trusting what it says of itself.

    ``schema`` maps each required member to ``(dtype, ndim)``; a dtype of None accepts any
    non-object dtype, an ndim of None any rank. Any problem (missing file, not a regular file,
    not an .npz as NumPy writes it, missing member, wrong dtype or rank, a header that claims
    more data than its member declares, a file or arrays larger than ``max_bytes``) raises
    ``DataError`` naming the file and ending with ``fix``, the sentence that says how to repair
    it. Nothing is expanded before it is checked: the members' declared sizes (zipfile's
    ``ZipInfo.file_size``) together must fit in ``max_bytes`` (a 2 MB deflated file can declare
    2 GB of zeros), and zipfile reads a member up to its declared size and no further.
    """
    path = Path(path)
    try:
        with open_regular(path, fix) as f, _npz_archive(f, path, max_bytes, fix) as zf:
            names = {n.removesuffix(".npy"): n for n in zf.namelist() if n.endswith(".npy")}
            missing = sorted(set(schema) - set(names))
            if missing:
                raise DataError(f"{path}: missing arrays {missing}. {fix}")
            members = {name: zf.getinfo(names[name]) for name in schema}
            expanded = sum(info.file_size for info in members.values())
            if expanded > max_bytes:
                raise DataError(
                    f"{path}: its arrays {list(schema)} expand to {expanded:,} bytes; at "
                    f"most {max_bytes:,} are read. {fix}"
                )
            arrays = {name: _read_member(zf, info) for name, info in members.items()}
    except FileNotFoundError:
        raise missing_file(path, fix) from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise DataError(f"{path}: not a readable .npz file ({e}). {fix}") from e
    check_arrays(path, arrays, schema, fix)
    return arrays


@contextlib.contextmanager
def _npz_archive(f: BinaryIO, path: Path | str, max_bytes: int, fix: str):
    """The open file ``f`` as a ``zipfile.ZipFile``, if it is no larger than ``max_bytes`` and
    its zip directory no larger than ``_MAX_ZIP_DIRECTORY`` (zipfile makes an object of ~600
    bytes of each ~50-byte entry). The directory's size is read from the end record, which
    np.savez writes as the file's last 22 bytes: an archive with a comment is not an .npz."""
    size = _capped_size(f, Path(path), max_bytes, fix)
    f.seek(max(size - 22, 0))
    end = f.read(22)
    if len(end) < 22 or end[:4] != b"PK\x05\x06":
        raise DataError(f"{path}: not an .npz as NumPy writes it (no zip end record). {fix}")
    directory = int.from_bytes(end[12:16], "little")
    if directory > _MAX_ZIP_DIRECTORY:
        raise DataError(
            f"{path}: its zip directory is {directory:,} bytes, too many members for an .npz "
            f"(one per array); at most {_MAX_ZIP_DIRECTORY:,} are read. {fix}"
        )
    f.seek(0)
    with zipfile.ZipFile(f) as zf:
        yield zf


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    """One ``.npy`` member, stored or deflated as np.savez writes it (zipfile would hand a
    bzip2 or LZMA member's whole expansion over in one piece)."""
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or info.flag_bits & 1:
        raise ValueError(
            f"{info.filename}: compression method {info.compress_type}; only stored and "
            f"deflated members are read (what np.savez and np.savez_compressed write)"
        )
    with zf.open(info) as f:
        return _read_npy(f, info.file_size, info.filename)


def _read_npy(f: BinaryIO, size: int, name: str) -> np.ndarray:
    """The array in the ``size``-byte ``.npy`` stream ``f``, read by NumPy once its header
    is checked against ``size``: nothing is allocated for a header that lies."""
    try:
        version = np.lib.format.read_magic(f)
        read_header = getattr(np.lib.format, f"read_array_header_{version[0]}_0")
        shape, _, dtype = read_header(f)
    except Exception as e:  # NumPy's parser of the header text raises several kinds
        raise ValueError(f"{name} has a malformed .npy header ({e!r})") from e
    if dtype.hasobject:
        raise ValueError(f"{name} holds Python objects, which would need pickle")
    nbytes = math.prod(shape) * dtype.itemsize  # Python ints: cannot overflow
    if nbytes != size - f.tell():
        raise ValueError(f"{name} header claims {nbytes} bytes of data, it holds {size - f.tell()}")
    f.seek(0)
    return np.lib.format.read_array(f, allow_pickle=False)


def _capped_size(f: BinaryIO, path: Path, max_bytes: int, fix: str) -> int:
    """The size of the open file ``f``, or ``DataError`` when over ``max_bytes`` (unread)."""
    size = os.fstat(f.fileno()).st_size
    if size > max_bytes:
        raise DataError(f"{path}: {size:,} bytes; at most {max_bytes:,} are read. {fix}")
    return size


def load_npy(path: str | os.PathLike, fix: str, max_bytes: int = MAX_BYTES) -> np.ndarray:
    """The array in a ``.npy`` file, without pickle and checked as ``load_npz`` checks a
    member: a header claiming more than the file holds, a file over ``max_bytes``, or a path
    that is not a regular file, is a ``DataError``, never an allocation or a wait."""
    path = Path(path)
    try:
        with open_regular(path, fix) as f:
            size = _capped_size(f, path, max_bytes, fix)
            return _read_npy(f, size, path.name)
    except FileNotFoundError:
        raise missing_file(path, fix) from None
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"{path}: not a readable .npy file ({e}). {fix}") from e


def npz_names(path: str | os.PathLike, fix: str) -> list[str]:
    """The arrays an ``.npz`` file holds, by name (without ``.npy``)."""
    path = Path(path)
    try:
        with open_regular(path, fix) as f, _npz_archive(f, path, MAX_BYTES, fix) as zf:
            return [n.removesuffix(".npy") for n in zf.namelist() if n.endswith(".npy")]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: not a readable .npz file ({e}). {fix}") from e

"""Atomic, byte-deterministic file output, and array loading that checks what it reads.

Every file a stage writes goes through ``atomic_path``: it is written to a temporary file in
the destination folder, flushed to disk and renamed over the target. An interrupted or failed
run therefore never leaves a half-written file under the final name, and the previous output
stays as it was. Inside ``all_or_nothing()`` the renames wait until the block ends and then
happen together with Ctrl-C and SIGTERM held back, so a stage that writes several files
replaces all of them or none.

``save_npz`` writes ``.npz`` archives with fixed zip timestamps (``np.savez`` stamps the
current time into every member), so the same arrays always give the same bytes and DVC never
sees a change that is not there.
"""

from __future__ import annotations

import contextlib
import difflib
import errno
import io
import json
import math
import os
import signal
import stat
import tempfile
import threading
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

import numpy as np

from mnistnet.pipeline.errors import DataError, OutputError

# The earliest date a zip header can hold; any fixed value makes the archive reproducible.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
# What an untrusted .npz or .npy may hold, by default: the arrays the reader allocates (and
# the file itself). The Keras MNIST download expands to 55 MB, a model file to a few MB.
MAX_UNTRUSTED_BYTES = 128 * 2**20
# An .npz's zip directory: about 60 bytes per array. zipfile turns each entry into an object
# of ~600 bytes, so a 60 MB archive of 700,000 empty members would cost 450 MB and seconds.
_MAX_ZIP_DIRECTORY = 2**20
_READ_SLICE = 16 * 2**20  # bytes read from a zip member at a time


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


class _Pending:
    """The files written inside one ``all_or_nothing`` block, waiting to be renamed."""

    def __init__(self) -> None:
        self.moves: list[tuple[Path, Path]] = []  # (temporary, final)
        self.committed = False


_pending: _Pending | None = None
_SIGNALS = {signal.SIGINT, signal.SIGTERM}


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``.

    On any exception (KeyboardInterrupt and SystemExit included) the temporary file is
    removed and ``path`` is left untouched; an ``OSError`` while writing (disk full, no
    permission) becomes an ``OutputError`` that names ``path``. Inside ``all_or_nothing()``
    the rename waits for the end of that block.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as e:
        raise unwritable(path, e) from e
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; outputs should read like normal files
        if _pending is not None:
            _pending.moves.append((tmp, path))
        else:
            os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise unwritable(path, e) from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


_ADVICE = {
    errno.ENOSPC: "Free some disk space and rerun.",
    errno.EDQUOT: "Free some of your disk quota and rerun.",
    errno.EACCES: "Check the folder's permissions.",
    errno.EPERM: "Check the folder's permissions.",
    errno.EROFS: "The file system is read-only; write somewhere else.",
}


def unwritable(path: Path | str, error: OSError) -> OutputError:
    """The error for an output that could not be written: the file, the reason, the fix."""
    reason = error.strerror or str(error)
    advice = _ADVICE.get(error.errno, "Nothing was replaced; fix the cause and rerun.")
    return OutputError(f"{path}: could not write it ({reason}). {advice}")


@contextlib.contextmanager
def all_or_nothing() -> Iterator[_Pending]:
    """Hold back the renames of every ``atomic_path`` inside the block until it ends.

    If the block raises (an error, Ctrl-C, SIGTERM), every file it wrote is deleted and no
    output is touched. If it finishes, all files are renamed into place one after the other
    with SIGINT and SIGTERM held back, so a signal cannot land between two renames; it is
    delivered right after. The yielded object's ``committed`` tells which happened. (Should
    a rename itself fail, the files already renamed stay and the rest are deleted.)
    """
    global _pending
    if _pending is not None:
        raise RuntimeError("all_or_nothing() blocks cannot be nested")
    pending = _pending = _Pending()
    try:
        yield pending
    except BaseException:
        for tmp, _ in pending.moves:
            tmp.unlink(missing_ok=True)
        raise
    finally:
        _pending = None
    with _signals_held():
        for i, (tmp, path) in enumerate(pending.moves):
            try:
                os.replace(tmp, path)
            except BaseException as e:
                for rest, _ in pending.moves[i:]:
                    rest.unlink(missing_ok=True)
                if isinstance(e, OSError):
                    raise unwritable(path, e) from e
                raise
        pending.committed = True


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Record SIGINT and SIGTERM during the block and deliver them when it ends.

    Python runs signal handlers in the main thread whichever thread the signal reached, so
    swapping the handlers holds a signal back where a thread's signal mask would not (the
    BLAS threads NumPy starts could still take it).
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # handlers can only be changed from the main thread; nothing to hold there
        return
    caught: list[int] = []

    def hold(signum: int, frame: object) -> None:
        caught.append(signum)

    previous = {sig: signal.signal(sig, hold) for sig in _SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        for sig in caught:
            signal.raise_signal(sig)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Atomically write ``text`` (UTF-8, ``\\n`` line endings) to ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="\n")


def write_json(path: str | os.PathLike, data: dict) -> None:
    """Atomically write ``data`` as indented JSON; a NaN or infinity is a ``ValueError``, not
    a file that no JSON reader accepts."""
    write_text(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


def save_npz(path: str | os.PathLike, arrays: Mapping[str, np.ndarray]) -> None:
    """Atomically write ``arrays`` as an uncompressed ``.npz`` with reproducible bytes.

    Members are written in the mapping's order; object arrays are refused, so the file
    never needs pickle to load. Each member's size is given to ``zipfile`` up front, so
    zip64 records appear only for members that need them (over ~2 GB): Python releases
    disagree on how they write forced zip64 headers (3.11.2 and 3.11.7 differ), and forcing
    them would tie the file's bytes, and so every DVC hash downstream, to the Python release.
    """
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        for name, array in arrays.items():
            array = np.asarray(array, order="C")  # (ascontiguousarray would make 0-d 1-d)
            if array.dtype.hasobject:
                raise ValueError(f"array {name!r} holds Python objects, which need pickle")
            header = io.BytesIO()
            fmt = np.lib.format
            fmt.write_array_header_1_0(header, fmt.header_data_from_array_1_0(array))
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            info.file_size = header.tell() + array.nbytes
            with zf.open(info, "w") as member:
                member.write(header.getvalue())
                member.write(array.reshape(-1).view(np.uint8))


def load_npz(
    path: str | os.PathLike, schema: Mapping[str, tuple[np.dtype | type | None, int]], fix: str
) -> dict[str, np.ndarray]:
    """The arrays named in ``schema`` from an ``.npz`` file this pipeline wrote.

    DVC has checked its bytes, so it is loaded as it is, without pickle; ``schema`` maps each
    array to ``(dtype, ndim)`` (None: any dtype) and a mismatch is a ``DataError`` naming the
    file and ending with ``fix``, the sentence that says how to rebuild it.
    """
    path = Path(path)
    if not path.is_file():
        raise missing_file(path, fix)
    try:
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in schema if name in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: not a readable .npz file ({e}). {fix}") from e
    _check_arrays(path, arrays, schema, fix)
    return arrays


def _check_arrays(
    path: Path, arrays: dict[str, np.ndarray], schema: Mapping[str, tuple], fix: str
) -> None:
    """Raise ``DataError`` unless ``arrays`` holds each array of ``schema`` with its dtype and
    number of dimensions (None: any)."""
    for name, (dtype, ndim) in schema.items():
        a = arrays.get(name)
        if (
            a is None
            or (dtype is not None and a.dtype != np.dtype(dtype))
            or ndim not in (None, a.ndim)
        ):
            got = "missing" if a is None else f"{a.dtype} with shape {a.shape}"
            wanted = "any dtype" if dtype is None else np.dtype(dtype)
            rank = "any rank" if ndim is None else f"{ndim} dimensions"
            raise DataError(
                f"{path}: array {name!r} is {got}, expected {wanted} with {rank}. {fix}"
            )


def load_untrusted_npz(
    path: str | os.PathLike,
    schema: Mapping[str, tuple[np.dtype | type | None, int]],
    fix: str,
    max_bytes: int = MAX_UNTRUSTED_BYTES,
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
    _check_arrays(path, arrays, schema, fix)
    return arrays


def npz_shape(path: str | os.PathLike, member: str) -> tuple[int, ...] | None:
    """The shape of array ``member`` in an ``.npz`` file, read from its header alone; None
    if the file or the member is missing or unreadable."""
    fmt = np.lib.format
    try:
        with zipfile.ZipFile(path) as zf, zf.open(f"{member}.npy") as f:
            version = fmt.read_magic(f)
            read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            return tuple(read(f)[0])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # a peek: unknown
        return None


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
    """The array in the ``size``-byte ``.npy`` stream ``f``; its header is checked against
    ``size`` before anything is allocated. Raises ``ValueError`` for any malformation."""
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(f)
    except Exception as e:  # NumPy's parser of the header text raises several kinds
        raise ValueError(f"{name} has a malformed .npy header ({e!r})") from e
    if dtype.hasobject:
        raise ValueError(f"{name} holds Python objects, which would need pickle")
    nbytes = math.prod(shape) * dtype.itemsize  # Python ints: cannot overflow
    stored = size - f.tell()
    if nbytes != stored:
        raise ValueError(f"{name} header claims {nbytes} bytes of data, it holds {stored}")
    buffer = bytearray(nbytes)
    view = memoryview(buffer)
    # In slices: ZipExtFile.readinto reads into a new bytes object first, so one call
    # would hold the array twice
    for start in range(0, nbytes, _READ_SLICE):
        if f.readinto(view[start : start + _READ_SLICE]) != min(_READ_SLICE, nbytes - start):
            raise ValueError(f"{name} is truncated")
    order = "F" if fortran_order else "C"
    return np.frombuffer(buffer, dtype=dtype).reshape(shape, order=order)


def _capped_size(f: BinaryIO, path: Path, max_bytes: int, fix: str) -> int:
    """The size of the open file ``f``, or ``DataError`` when over ``max_bytes`` (unread)."""
    size = os.fstat(f.fileno()).st_size
    if size > max_bytes:
        raise DataError(f"{path}: {size:,} bytes; at most {max_bytes:,} are read. {fix}")
    return size


def load_npy(path: str | os.PathLike, fix: str, max_bytes: int = MAX_UNTRUSTED_BYTES) -> np.ndarray:
    """The array in a ``.npy`` file, without pickle and checked as ``load_untrusted_npz`` checks a
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
        with open_regular(path, fix) as f, _npz_archive(f, path, MAX_UNTRUSTED_BYTES, fix) as zf:
            return [n.removesuffix(".npy") for n in zf.namelist() if n.endswith(".npy")]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: not a readable .npz file ({e}). {fix}") from e

"""Atomic, byte-deterministic file output, and loading what the pipeline wrote.

Every file a stage writes goes through ``atomic_path``: it is written to a temporary file in
the destination folder, flushed to disk and renamed over the target. An interrupted or failed
run therefore never leaves a half-written file under the final name, and the previous output
stays as it was. Inside ``all_or_nothing()`` the renames wait until the block ends and then
happen together with Ctrl-C and SIGTERM held back, so a stage that writes several files
replaces all of them or none.

``save_npz`` writes ``.npz`` archives with fixed zip timestamps (``np.savez`` stamps the
current time into every member), so the same arrays always give the same bytes and DVC never
sees a change that is not there. ``load_npz`` reads them back (files from outside the
pipeline go through ``untrusted.py`` instead).
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import signal
import tempfile
import threading
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from mnistnet.pipeline.errors import DataError, OutputError

# The earliest date a zip header can hold; any fixed value makes the archive reproducible.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


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

    DVC has checked its bytes, so it is loaded as it is, without pickle, and checked once:
    ``schema`` maps each array to ``(dtype, ndim)`` (None: any). A file that cannot be read
    or does not match is a ``DataError`` naming it and ending with ``fix``, the sentence that
    says how to rebuild it.
    """
    try:
        # the file is opened here: given a path, NumPy 2.4 leaks it when the zip is broken
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in schema if name in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: not a readable .npz file ({e}). {fix}") from e
    check_arrays(path, arrays, schema, fix)
    return arrays


def check_arrays(
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

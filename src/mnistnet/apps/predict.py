"""``mnistnet predict``: classify your own digit images with a trained model.

Each input is read and normalized the way MNIST was made (``data.images``), classified on its
own (so its probabilities are the same whatever else is in the command, and the same as
``mnistnet serve`` gives), and answered in one line, as the answers come: files are read and
classified in chunks, in worker processes for many files, and memory stays flat in the file
count. A file name is printed escaped (``printable``), so every answer stays one line.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from mnistnet.data import untrusted
from mnistnet.data.images import ARRAY_SUFFIXES, IMAGE_SUFFIXES, load_inputs
from mnistnet.data.mnist import PIXELS
from mnistnet.nn import checkpoint
from mnistnet.nn.model import Params, predict_proba
from mnistnet.pipeline.errors import DataError

PARALLEL_FROM = 64  # files; below this, starting worker processes costs more than it saves
CHUNK_FILES = 32  # files per task for a worker, and per batch of answers written out…
CHUNK_BYTES = 4 * 2**20  # …or fewer, once their sizes add up to this: a big file is much work
AHEAD = 2  # chunks queued per worker: it never waits for work, and memory stays bounded


def load_model(path: str | os.PathLike) -> Params:
    """The network in a model file from anywhere (a teammate's, one fetched with ``dvc
    artifacts get``): read as untrusted input, its size capped, its layers checked."""
    arrays = untrusted.load_npz(path, checkpoint.SCHEMA, checkpoint.FIX)
    return checkpoint.from_arrays(arrays, path, PIXELS)[0]


def walk(paths: Iterable[str]) -> Iterator[str]:
    """Each of ``paths`` in turn, a folder replaced by its image and array files, sorted by
    name. A generator: only one folder's names are held at a time, never the files."""
    suffixes = IMAGE_SUFFIXES | ARRAY_SUFFIXES
    for path in paths:
        if not Path(path).is_dir():
            yield path
            continue
        try:
            names = sorted(
                n for n in os.listdir(path) if os.path.splitext(n)[1].lower() in suffixes
            )
        except OSError:  # an unreadable folder: load_inputs says why, in its line
            names = []
        if not names:
            yield path  # an empty folder: load_inputs says so
        folder = str(Path(path))
        yield from (os.path.join(folder, name) for name in names)


def load_or_error(path: str | os.PathLike) -> np.ndarray | str:
    """``load_inputs(path)``, or the problem as one line of text (without the path, which
    the caller prints in front of it; the array loaders name it themselves)."""
    try:
        return load_inputs(path)
    except DataError as e:  # the loaders name the path as they got it, or as a Path
        return str(e).removeprefix(f"{path}: ").removeprefix(f"{Path(path)}: ")


# A file's answer: its images' best digits (n, top) and their probabilities (n, top), or
# the line that says why it has none
Answer = tuple[np.ndarray, np.ndarray] | str


def answer_chunk(params: dict, paths: list[str]) -> list[Answer]:
    """Each path's images classified (``top_classes``), or the problem as one line of text.

    A file of many images is classified as soon as it is read, so one such file's images are
    held at a time; the files of one image each (photos, scans) are classified together at
    the end, in one call, which gives the same answers (``probabilities`` takes one image at
    a time) for less overhead per file.
    """
    out: list = []  # per path: an Answer, or for now its one image (1, 784)
    singles = []  # where in ``out`` the one-image files are
    for path in paths:
        x = load_or_error(path)  # (n, 784), or the error
        if not isinstance(x, str) and len(x) == 1:
            singles.append(len(out))
        elif not isinstance(x, str):
            x = top_classes(params, x)
        out.append(x)
    if singles:
        digits, probs = top_classes(params, np.concatenate([out[i] for i in singles]))
        for row, i in enumerate(singles):
            out[i] = (digits[row : row + 1], probs[row : row + 1])
    return out


def answers(params: dict, paths: Iterable[str]) -> Iterator[list[tuple[str, Answer]]]:
    """``(path, answer)`` for every path, in order, in chunks (``_chunks``); each chunk
    as soon as it and those before it are done, so the first answers come out while later
    files are still being read, and memory does not grow with the number of files.

    Reading, normalizing and classifying is per-image Python and NumPy work that threads
    cannot share (the GIL), so from ``PARALLEL_FROM`` files on it runs in one process per
    core, ``AHEAD`` chunks queued per process. A worker sends back only the answers (a few
    numbers per image), never the images.
    """
    paths = iter(paths)
    first = list(itertools.islice(paths, PARALLEL_FROM))
    workers = os.cpu_count() or 1
    chunks = _chunks(itertools.chain(first, paths))
    if len(first) < PARALLEL_FROM or workers < 2:
        for chunk in chunks:
            yield list(zip(chunk, answer_chunk(params, chunk), strict=True))
        return
    with ProcessPoolExecutor(workers, initializer=_keep_params, initargs=(params,)) as pool:
        queued = deque()
        try:
            for chunk in chunks:
                queued.append((chunk, pool.submit(_answer_all, chunk)))
                if len(queued) >= AHEAD * workers:
                    chunk, done = queued.popleft()
                    yield list(zip(chunk, done.result(), strict=True))
            while queued:
                chunk, done = queued.popleft()
                yield list(zip(chunk, done.result(), strict=True))
        finally:  # the reader stopped early (a closed pipe, a full disk): drop the queue
            pool.shutdown(cancel_futures=True)


def _chunks(paths: Iterator[str]) -> Iterator[list[str]]:
    """``paths`` in lists of ``CHUNK_FILES``, or fewer whose sizes add up to ``CHUNK_BYTES``."""
    chunk, size = [], 0
    for path in paths:
        chunk.append(path)
        with contextlib.suppress(OSError):  # a missing file: its worker says so
            size += os.stat(path).st_size
        if len(chunk) == CHUNK_FILES or size >= CHUNK_BYTES:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


_worker_params: dict = {}  # the model, in a worker process of ``answers``


def _keep_params(params: dict) -> None:
    _worker_params.update(params)


def _answer_all(paths: list[str]) -> list[Answer]:
    return answer_chunk(_worker_params, paths)


def probabilities(params: dict, X: np.ndarray) -> np.ndarray:
    """Class probabilities (n, k) of X (n, 784), one image at a time: a product of a whole
    batch may add in another order (BLAS splits it by size), and an image's answer must not
    depend on what else was sent with it."""
    X = X.astype(params["W1"].dtype, copy=False)
    return np.concatenate([predict_proba(params, X[i : i + 1]) for i in range(len(X))])


def top_classes(params: dict, X: np.ndarray, top: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """The ``top`` most likely digits of each row of X (n, 784), most likely first:
    digits int64 (n, top) and their probabilities float64 (n, top)."""
    probs = probabilities(params, X)  # (n, k)
    order = np.argsort(-probs, axis=1, kind="stable")[:, :top]  # (n, top)
    return order, np.take_along_axis(probs, order, axis=1).astype(np.float64)


def record(digits: np.ndarray, probs: np.ndarray) -> dict:
    """One image's answer from its row of ``top_classes``: the digit, its probability and
    the best ``top``, probabilities rounded to 6 places."""
    pairs = zip(digits, probs, strict=True)
    top = [{"digit": int(d), "probability": round(float(p), 6)} for d, p in pairs]
    return {"digit": top[0]["digit"], "probability": top[0]["probability"], "top": top}


def classify(params: dict, X: np.ndarray, top: int = 3) -> list[dict]:
    """One record per row of X (n, 784): the digit, its probability and the ``top`` best."""
    return [record(d, p) for d, p in zip(*top_classes(params, X, top), strict=True)]

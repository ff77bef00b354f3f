"""Classify your own digit images with a trained model, normalized the way MNIST was made.

MNIST's digits were size-normalized to fit a 20×20 box (keeping the aspect ratio,
anti-aliased) and centred by centre of mass in a 28×28 field, light ink on black. A photo or
scan goes through the same steps here:

1. grayscale (transparent pixels count as paper); a large image is first shrunk by a whole
   factor to about 100 px, which loses nothing the 20 px result could show;
2. polarity: if the border is lighter than the middle of the range, the ink is dark on
   light, and the image is inverted;
3. the paper's level (the border's median) is subtracted, so a grey page becomes black;
4. crop to the bounding box of the ink (pixels above 20% of the brightest);
5. scale the longer side to 20 px, anti-aliased (Lanczos);
6. paste into a 28×28 field so the centre of mass lands on the centre;
7. scale to [0, 1] with ``preprocess.normalize``, the same code the pipeline trains on.

Arrays (``.npy``/``.npz`` of 28×28 images) are taken as already MNIST-shaped: ``uint8``
0–255 goes through ``normalize``; floats must already be in [0, 1].
"""

from __future__ import annotations

import io
import math
import os
import warnings
import zipfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from mnistnet.errors import DataError
from mnistnet.mnist import SHAPE, SIDE
from mnistnet.model import predict_proba
from mnistnet.preprocess import normalize

BOX = 20  # MNIST fits each digit in a 20×20 box inside the 28×28 field
INK_FRACTION = 0.2  # a pixel is ink above this share of the brightest pixel
MIN_CONTRAST = 16  # on a 0–255 scale: less than this between paper and ink is a blank image
WORK_SIDE = 96  # larger images are first shrunk by an integer factor to about this size
PARALLEL_FROM = 64  # files; below this, starting worker processes costs more than it saves
MAX_PIXELS = (
    40_000_000  # larger declared images are refused before decoding (a 12 MP photo is fine)
)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
ARRAY_SUFFIXES = {".npy", ".npz"}


def mnist_style(image: Image.Image) -> np.ndarray:
    """A PIL image of any size and colour → uint8 (28, 28), light ink on black, centred."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        paper = Image.new("RGBA", image.size, "white")
        image = Image.alpha_composite(paper, image.convert("RGBA"))
    if image.mode != "L":
        image = image.convert("L")
    factor = max(image.size) // WORK_SIDE
    if factor > 1:  # a box-filtered shrink first: the digit ends up 20 px tall anyway
        image = image.reduce(factor)
    gray = np.asarray(image)  # uint8 (H, W)
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    paper_level = int(np.partition(border, len(border) // 2)[len(border) // 2])  # median
    if paper_level > 127:  # dark ink on light paper: make it MNIST's light on dark
        gray = 255 - gray
        paper_level = 255 - paper_level
    ink = np.subtract(gray, paper_level, dtype=np.int16)  # the paper becomes 0
    peak = int(ink.max())
    if peak < MIN_CONTRAST:
        raise DataError("no ink found: the image is blank or has almost no contrast")
    mask = ink > INK_FRACTION * peak
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    ink = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]  # (h, w) bounding box
    ink = np.maximum(ink, 0).astype(np.float32) * np.float32(255 / peak)

    h, w = ink.shape
    scale = BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))  # PIL wants (width, height)
    boxed = np.asarray(Image.fromarray(ink).resize(size, Image.LANCZOS))
    boxed = np.clip(boxed, 0, 255)  # Lanczos rings slightly below 0 and above 255

    total = boxed.sum()
    cy = boxed.sum(axis=1) @ np.arange(boxed.shape[0]) / total  # centre of mass
    cx = boxed.sum(axis=0) @ np.arange(boxed.shape[1]) / total
    top = min(max(round(SIDE / 2 - cy), 0), SIDE - boxed.shape[0])
    left = min(max(round(SIDE / 2 - cx), 0), SIDE - boxed.shape[1])
    field = np.zeros(SHAPE, np.uint8)
    field[top : top + boxed.shape[0], left : left + boxed.shape[1]] = np.round(boxed)
    return field


def expand_folders(paths: list[str]) -> list[str]:
    """Each folder in ``paths`` replaced by its image and array files, sorted by name."""
    suffixes = IMAGE_SUFFIXES | ARRAY_SUFFIXES
    expanded = []
    for path in paths:
        if Path(path).is_dir():
            found = sorted(p for p in Path(path).iterdir() if p.suffix.lower() in suffixes)
            expanded += [str(p) for p in found] or [path]  # an empty folder: say so below
        else:
            expanded.append(path)
    return expanded


def load_inputs(path: str | os.PathLike) -> np.ndarray:
    """Images in ``path`` as float32 (n, 784) in [0, 1], ready for the network.

    PNG/JPEG files give one image; ``.npy``/``.npz`` give a batch. Raises ``DataError``
    naming the problem for a missing, unreadable, blank or wrongly shaped input.
    """
    path = Path(path)
    if path.is_dir():
        raise DataError("a folder with no PNG, JPEG, .npy or .npz file in it")
    if not path.is_file():
        raise DataError("no such file")
    if path.suffix.lower() in ARRAY_SUFFIXES:
        return _load_array(path)
    return decode_image(path.read_bytes())


def decode_image(data: bytes) -> np.ndarray:
    """A PNG or JPEG file's bytes → float32 (1, 784) in [0, 1], normalized like MNIST.

    Raises ``DataError`` for bytes that are not a readable PNG/JPEG, a truncated file, an
    image over ``MAX_PIXELS`` (checked from the header, before any pixel is decoded: a small
    file can declare a huge image), or a blank one.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=("PNG", "JPEG"))
        with image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise DataError(
                    f"the image declares {width}×{height} pixels; at most {MAX_PIXELS:,} are "
                    f"read. Scale it down first"
                )
            image.load()
            return normalize(mnist_style(image)[None])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DataError(f"the image declares too many pixels ({e})") from e
    except (UnidentifiedImageError, OSError) as e:
        kind = type(e).__name__
        raise DataError(f"not a readable image ({kind}); expected a PNG or JPEG") from e


def _load_array(path: Path) -> np.ndarray:
    try:
        with open(path, "rb") as f:
            loaded = np.load(f, allow_pickle=False)
            if isinstance(loaded, np.lib.npyio.NpzFile):
                with loaded:
                    names = loaded.files
                    key = next((k for k in ("x", "images") if k in names), None)
                    if key is None and len(names) != 1:
                        raise DataError(f"holds arrays {names}; name the images 'x' or 'images'")
                    loaded = loaded[key or names[0]]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"not a readable array file ({e})") from e
    images = loaded[None] if loaded.ndim == 2 else loaded
    if images.ndim != 3 or images.shape[1:] != SHAPE or len(images) == 0:
        raise DataError(f"array of shape {loaded.shape}; expected (28, 28) or (n, 28, 28)")
    if images.dtype == np.uint8:
        x = normalize(images)
    elif images.dtype.kind == "f" and np.isfinite(images).all():
        if images.min() < 0 or images.max() > 1:
            raise DataError(f"{images.dtype} pixels must be uint8 0-255 or floats in [0, 1]")
        x = images.reshape(len(images), -1).astype(np.float32)
    else:
        raise DataError(f"{images.dtype} pixels must be uint8 0-255 or floats in [0, 1]")
    blank = np.flatnonzero(x.max(axis=1) < MIN_CONTRAST / 255)  # as a blank photo is refused
    if len(blank):
        which = "the image is" if len(x) == 1 else f"images {blank[:5].tolist()} of {len(x)} are"
        raise DataError(f"no ink found: {which} blank or almost without contrast")
    return x


def load_or_error(path: str | os.PathLike) -> np.ndarray | str:
    """``load_inputs(path)``, or the problem as one line of text."""
    try:
        return load_inputs(path)
    except DataError as e:
        return str(e)


def load_many(paths: list[str]) -> list[np.ndarray | str]:
    """``load_or_error`` for each path, in order; in one process per core for long lists.

    Decoding and normalizing is per-image Python and NumPy work that threads cannot share
    (the GIL), so a long list is split across processes.
    """
    workers = os.cpu_count() or 1
    if len(paths) < PARALLEL_FROM or workers < 2:
        return [load_or_error(p) for p in paths]
    chunk = math.ceil(len(paths) / (4 * workers))
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(load_or_error, paths, chunksize=chunk))


def classify(params: dict, X: np.ndarray, top: int = 3) -> list[dict]:
    """One record per row of X (n, 784): the digit, its probability and the ``top`` best."""
    probs = predict_proba(params, X.astype(params["W1"].dtype, copy=False))  # (n, k)
    order = np.argsort(-probs, axis=1, kind="stable")[:, :top]
    return [
        {
            "digit": int(best[0]),
            "probability": round(float(p[best[0]]), 6),
            "top": [{"digit": int(d), "probability": round(float(p[d]), 6)} for d in best],
        }
        for p, best in zip(probs, order, strict=True)
    ]

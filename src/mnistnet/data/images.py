"""Reading a digit image (or an array of them) the way MNIST was made: untrusted input.

MNIST's digits were size-normalized to fit a 20×20 box (keeping the aspect ratio,
anti-aliased) and centred by centre of mass in a 28×28 field, light ink on black. A photo or
scan goes through the same steps here:

1. read as a person sees it: turned upright by its EXIF orientation (phones save portraits
   sideways), palette and CMYK colours resolved, 16-bit depth kept until the end;
2. shrunk while still in its own mode: a JPEG decodes at a reduced scale, anything else is
   box-reduced by a whole factor to about 100 px, which loses nothing the 20 px result could
   show; then transparent pixels count as white paper, and colour becomes gray;
3. polarity: if the border is lighter than the middle of the range, the ink is dark on
   light, and the image is inverted;
4. the paper's level (the border's median) is subtracted, so a grey page becomes black;
5. crop to the bounding box of the ink (pixels above 20% of the brightest);
6. scale the longer side to 20 px, anti-aliased (Lanczos);
7. paste into a 28×28 field so the centre of mass lands on the centre;
8. scale to [0, 1] with ``preprocess.normalize``, the same code the pipeline trains on.

Arrays (``.npy``/``.npz`` of 28×28 images) are taken as already MNIST-shaped: ``uint8``
0–255 goes through ``normalize``; floats must already be in [0, 1]. Every file is read
through checks first (only a regular file is read; its first bytes say what it is; its size,
and what an archive expands to, are bounded; an array's header must match its size),.
``mnistnet predict`` and the robustness stage's ``own`` variant (your own digits,
``read_labelled_folder``) read images through here; the site's page does the same steps in
JavaScript (``site/mnistnet.js``).
"""

from __future__ import annotations

import io
import os
import re
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from mnistnet.data.mnist import SHAPE, SIDE
from mnistnet.data.preprocess import normalize
from mnistnet.data.untrusted import load_npy, load_npz, npz_names, open_regular
from mnistnet.pipeline.errors import DataError, one_line, printable

BOX = 20  # MNIST fits each digit in a 20×20 box inside the 28×28 field
INK_FRACTION = 0.2  # a pixel is ink above this share of the brightest pixel
MIN_CONTRAST = 16  # on a 0–255 scale: less than this between paper and ink is a blank image
WORK_SIDE = 96  # larger images are first shrunk by an integer factor to about this size
MAX_PIXELS = 40_000_000  # larger declared images are refused before decoding (12 MP is fine)
# A phone photo is a few MB; larger files are not read at all, nor is an array file whose
# arrays would expand to more (a small deflated .npz can declare gigabytes)
MAX_FILE_BYTES = 64 * 2**20
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
ARRAY_SUFFIXES = {".npy", ".npz"}
MAGIC = {  # what a file's first bytes say it is
    b"\x89PNG\r\n\x1a\n": "image",
    b"\xff\xd8\xff": "image",
    b"\x93NUMPY": "npy",
    b"PK\x03\x04": "npz",
    b"PK\x05\x06": "npz",
}
OBJECT_REPR = re.compile(r" ?<[^<>]* at 0x[0-9a-fA-F]+>")  # in Pillow's "cannot identify"
# What Pillow raises for bytes that are not a sound PNG or JPEG (caught around its calls only)
PILLOW_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    TypeError,
    struct.error,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)


def mnist_style(image: Image.Image) -> np.ndarray:
    """A PIL image of any size and colour → uint8 (28, 28), light ink on black, centred."""
    return centred(gray_pixels(small_gray(image)))


def small_gray(image: Image.Image) -> Image.Image:
    """A PIL image of any mode → gray as a person sees it ("L", or "I" for 16 bits), about
    ``WORK_SIDE`` pixels a side or less: shrunk in its own mode (8 or 16 bits, alpha kept),
    then put on white paper. Pillow calls only."""
    mode = work_mode(image)
    if mode != image.mode:
        image = image.convert(mode)
    factor = max(image.size) // WORK_SIDE
    if factor > 1:  # a box-filtered shrink: the digit ends up 20 px tall anyway
        image = image.reduce(factor)
    if image.mode in ("I", "F"):
        return image
    if image.mode in ("LA", "RGBA"):
        paper = Image.new("RGBA", image.size, "white")
        image = Image.alpha_composite(paper, image.convert("RGBA"))
    return image.convert("L")


def work_mode(image: Image.Image) -> str:
    """The mode ``small_gray`` shrinks ``image`` in: its own, or one that says what a
    person sees and that Image.reduce takes."""
    if image.mode in ("P", "PA"):  # a palette: its colours, and its transparency
        transparent = image.mode == "PA" or "transparency" in image.info
        return "RGBA" if transparent else "RGB"
    if image.mode in ("L", "RGB") and "transparency" in image.info:
        return "RGBA"  # a single transparent colour (PNG tRNS)
    if image.mode.startswith("I;16"):
        return "I"  # 16-bit gray, kept whole: convert("L") clips at 255
    if image.mode == "1":
        return "L"  # black and white: as read through RGB, at a quarter of the memory
    if image.mode not in ("L", "LA", "RGB", "RGBA", "I", "F"):
        return "RGB"  # CMYK, YCbCr, …
    return image.mode


def gray_pixels(image: Image.Image) -> np.ndarray:
    """``small_gray``'s image as uint8 (H, W); 16 bits become 8 (65,535 is white)."""
    if image.mode in ("I", "F"):
        return np.clip(np.rint(np.asarray(image, np.float64) / 257), 0, 255).astype(np.uint8)
    return np.asarray(image)


def centred(gray: np.ndarray) -> np.ndarray:
    """uint8 gray (H, W) of a digit → uint8 (28, 28) MNIST-style: light ink on black,
    boxed into 20×20 and centred by mass. Raises ``DataError`` for a blank image."""
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


def load_inputs(path: str | os.PathLike) -> np.ndarray:
    """Images in ``path`` as float32 (n, 784) in [0, 1], ready for the network.

    What the file is comes from its first bytes, not its name: a PNG or JPEG gives one
    image, a ``.npy``/``.npz`` array a batch. Raises ``DataError`` naming the problem for a
    missing, unreadable, oversized, blank, corrupt or wrongly shaped input, and for anything
    but a regular file (a folder, a FIFO, a socket, a device), which is refused unread.
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(_folder_problem(path))
    kind, data = _sniff(path)
    if kind is None:
        raise DataError(f"not a PNG, JPEG, .npy or .npz file (it starts {data!r})")
    return decode_image(data) if kind == "image" else _load_array(path, kind)


def _sniff(path: Path) -> tuple[str | None, bytes]:
    """What the regular file at ``path`` is, from its first bytes (``file_kind``), and its
    bytes where it is an image (else the first 8). Raises ``DataError`` for a missing,
    unreadable or oversized file, or anything but a regular file, which is refused unread."""
    try:
        with open_regular(path) as f:
            head = f.read(8)
            kind = file_kind(head)
            if kind is None:
                return None, head
            size = os.fstat(f.fileno()).st_size
            if size > MAX_FILE_BYTES:
                raise DataError(f"{size:,} bytes; at most {MAX_FILE_BYTES:,} are read")
            # never more than the cap, even from a file that grows while it is read
            data = head + f.read(MAX_FILE_BYTES + 1 - len(head)) if kind == "image" else head
    except FileNotFoundError:
        raise DataError("no such file") from None
    except OSError as e:
        raise DataError(f"cannot read it ({e.strerror or e})") from None
    if len(data) > MAX_FILE_BYTES:
        raise DataError(f"more than {MAX_FILE_BYTES:,} bytes; at most that many are read")
    return kind, data


def _folder_problem(folder: Path) -> str:
    """Why a folder given where a file is needed gives no images."""
    suffixes = IMAGE_SUFFIXES | ARRAY_SUFFIXES
    if any(Path(name).suffix.lower() in suffixes for name in os.listdir(folder)):
        return "a folder, not a file; name the folder itself to classify the files in it"
    return "a folder with no PNG, JPEG, .npy or .npz file in it"


def file_kind(head: bytes) -> str | None:
    """What a file's first 8 bytes say it is: "image", "npy", "npz", or None."""
    return next((kind for magic, kind in MAGIC.items() if head.startswith(magic)), None)


def decode_image(data: bytes):
    """A PNG or JPEG file's bytes → float32 (1, 784) in [0, 1], normalized like MNIST.

    Raises ``DataError`` for bytes that are not a readable PNG/JPEG, a truncated file, an
    image over ``MAX_PIXELS`` (checked from the header, before any pixel is decoded: a small
    file can declare a huge image), or a blank one. A JPEG decodes at a reduced scale.
    """
    if file_kind(data[:8]) != "image":
        raise DataError(f"not a PNG or JPEG image (it starts {data[:8]!r})")
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
            if image.format == "JPEG":  # the decoder scales by 1/2 to 1/8 as it reads
                image.draft("CMYK" if image.mode == "CMYK" else "L", (2 * WORK_SIDE,) * 2)
            image.load()
            ImageOps.exif_transpose(image, in_place=True)  # a phone's portrait, upright
            small = small_gray(image)
    except DataError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DataError(f"the image declares too many pixels ({_short(e)})") from e
    except PILLOW_ERRORS as e:
        kind = type(e).__name__
        raise DataError(f"not a readable PNG or JPEG ({kind}: {_short(e)})") from e
    return normalize(centred(gray_pixels(small))[None])


def _short(error: BaseException) -> str:
    """One line of ``error``'s message, without object reprs (``<_io.BytesIO object at
    0x7f…>``): an address tells a person nothing and differs every run."""
    text = " ".join(OBJECT_REPR.sub("", str(error)).split()) or "no detail"
    return text if len(text) <= 80 else text[:77] + "..."


def _load_array(path: Path, kind: str) -> np.ndarray:
    """The 28×28 images in a ``.npy`` or ``.npz`` file, through the hardened loaders."""
    if kind == "npy":
        loaded = load_npy(path, fix="", max_bytes=MAX_FILE_BYTES)
    else:
        names = npz_names(path, fix="")
        key = next((k for k in ("x", "images") if k in names), None)
        if key is None and len(names) != 1:
            raise DataError(f"holds arrays {names[:10]}; name the images 'x' or 'images'")
        key = key or names[0]
        arrays = load_npz(path, {key: (None, None)}, fix="", max_bytes=MAX_FILE_BYTES)
        loaded = arrays[key]
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


def read_labelled_folder(folder: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Images in ``folder/0`` … ``folder/9``, each labelled by its folder's digit: float32
    (n, 784) in [0, 1] and int64 labels (n,). Only what the folder is documented to hold is
    read: PNG and JPEG photos (by their first bytes), one image each, through the same checks
    as ``mnistnet predict``. Anything else in it (another folder, a loose file, a file that is
    not a PNG or JPEG photo) is a ``DataError`` naming it, rather than a smaller score; hidden
    files (``.gitignore``) are left alone."""
    folder = Path(folder)
    images, labels, others = [], [], []
    for entry in sorted(os.listdir(folder)) if folder.is_dir() else []:
        if entry.startswith("."):
            continue
        if entry not in DIGITS or not (folder / entry).is_dir():
            others.append(f"{printable(entry)} (not a folder named 0 to 9)")
            continue
        for name in sorted(os.listdir(folder / entry)):
            path = folder / entry / name
            if name.startswith("."):
                continue
            try:
                images.append(_read_photo(path))
                labels.append(int(entry))
            except DataError as e:
                reason = one_line(str(e).removeprefix(f"{path}: "))
                others.append(f"{printable(f'{entry}/{name}')} ({reason})")
    if others:
        raise DataError(
            f"{folder}: holds what the own variant does not read: {'; '.join(others[:5])}"
            f"{f'; and {len(others) - 5} more' if len(others) > 5 else ''}. It reads PNG and "
            f"JPEG photos in folders 0 to 9: move or delete the rest"
        )
    if not images:
        raise DataError(
            f"{folder}: no PNG or JPEG images in its folders 0 to 9. Put each image of a digit "
            f"in the folder named after it, e.g. {folder / '7' / 'photo.jpg'}"
        )
    return np.concatenate(images), np.array(labels, np.int64)


DIGITS = {str(d) for d in range(10)}


def _read_photo(path: Path) -> np.ndarray:
    """One PNG or JPEG photo as float32 (1, 784): anything else is a ``DataError``."""
    kind, data = _sniff(path)
    if kind != "image":
        raise DataError("not a PNG or JPEG photo")
    return decode_image(data)

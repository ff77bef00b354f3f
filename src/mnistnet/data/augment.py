"""Distorted copies of the training images: affine warps and Simard's elastic distortion.

A small network learns more from more shapes of each digit than from more epochs on the same
ones. ``make_pool`` writes ``copies`` distorted versions of every training image, each with
its own random rotation, zoom, translation and elastic displacement field (Simard,
Steinkraus & Platt, 2003: uniform noise smoothed by a Gaussian of width σ, scaled by α).
The augment stage makes the pool once and DVC caches it, so the warping is paid once per
augmentation setting, not once per epoch or per experiment; training then picks, every epoch
and for every image, the original or one of its copies (``batches.Batches``).

Pure NumPy: inverse mapping with bilinear interpolation, zero outside the image, and the
Gaussian smoothing as two small matrix products. Labels are untouched and pixels stay uint8.
Each copy draws from its own random stream, image by image, so the pool's bytes depend on the
settings and the seed alone: not on how many images are warped at once, nor on how many
threads make the copies.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from pydantic import Field

from mnistnet.data.mnist import PIXELS, SHAPE, SIDE
from mnistnet.data.preprocess import to_uint8
from mnistnet.pipeline.config import Section, require_memory
from mnistnet.pipeline.storage import save_npz

CENTRE = (SIDE - 1) / 2  # warps turn and zoom about the middle of the 28×28 field
PAD = 2  # zero border of the padded images a warp samples from; see ``warp``
CHUNK = 64  # images warped at once: its ~25 arrays of (64, 784) stay in the CPU's cache
THREADS = min(os.cpu_count() or 1, 4)  # copies made at once; NumPy releases the GIL


class AugmentConfig(Section):
    """Section ``augment``: the distorted copies of the training images."""

    copies: int = Field(
        0,
        ge=0,
        le=1000,
        description="distorted copies of the training set made by augment; 0 = off",
    )
    translate: float = Field(
        2.0, ge=0, le=8, description="largest translation of a copy, pixels (any fraction)"
    )
    rotate: float = Field(10.0, ge=0, le=90, description="largest rotation of a copy, degrees")
    scale: float = Field(
        0.1, ge=0, lt=1, description="largest zoom change of a copy, fraction (0.1 = x0.9 to x1.1)"
    )
    elastic_alpha: float = Field(
        0.0, ge=0, le=100, description="elastic distortion strength alpha, pixels (Simard); 0 = off"
    )
    elastic_sigma: float = Field(
        4.0, gt=0, le=SIDE, description="elastic distortion smoothness sigma, pixels"
    )
    seed: int = Field(
        0,
        ge=0,
        description="seeds the distortions: each copy draws from its own stream, so copy k is "
        "the same whatever the number of copies",
    )


def gaussian_matrix(sigma: float, size: int = SIDE) -> np.ndarray:
    """``G`` float32 (size, size) such that ``G @ f`` smooths ``f`` along its first axis.

    Each row holds the weights of a Gaussian of width ``sigma`` centred on that row, scaled
    to unit area as the untruncated kernel is, so values beyond the edge count as zero.
    """
    offsets = np.arange(size)[:, None] - np.arange(size)[None, :]  # (size, size)
    weights = np.exp(-0.5 * (offsets / sigma) ** 2)
    return (weights / (sigma * math.sqrt(2 * math.pi))).astype(np.float32)


def smooth_fields(noise: np.ndarray, alpha: float, sigma: float) -> np.ndarray:
    """Displacement fields float32 (n, 2, 28, 28) in pixels from uniform noise in [-1, 1].

    One 28×28 product per field and side, so a field never depends on its neighbours in
    the batch.
    """
    G = gaussian_matrix(sigma)
    fields = G @ noise @ G.T  # smooth along rows, then columns
    fields *= np.float32(alpha)
    return fields


def elastic_fields(rng: np.random.Generator, n: int, alpha: float, sigma: float) -> np.ndarray:
    """Random smooth displacement fields float32 (n, 2, 28, 28), in pixels (rows, columns),
    made ``CHUNK`` at a time (the same values as all at once: see ``uniform_noise``)."""
    fields = np.empty((n, 2, *SHAPE), np.float32)
    for start in range(0, n, CHUNK):
        noise = uniform_noise(rng, min(CHUNK, n - start))
        fields[start : start + CHUNK] = smooth_fields(noise, alpha, sigma)
    return fields


def uniform_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """float32 (n, 2, 28, 28) uniform in [-1, 1); ``k`` then ``n - k`` images draw the
    same values as ``n`` at once."""
    noise = rng.random((n, 2, *SHAPE), dtype=np.float32)
    noise *= 2
    noise -= 1
    return noise


def warp(
    images: np.ndarray,
    angle: np.ndarray,
    zoom: np.ndarray,
    shift: np.ndarray,
    displacement: np.ndarray | None = None,
) -> np.ndarray:
    """Warp uint8 images (n, 28, 28); returns uint8 (n, 28, 28).

    Per image: ``angle`` (n,) radians, clockwise on screen, ``zoom`` (n,) factor (> 1 enlarges),
    ``shift`` (n, 2) pixels (down, right), ``displacement`` (n, 2, 28, 28) extra per-pixel
    offsets of where each output pixel samples from. Each output pixel reads the input by
    bilinear interpolation at its inverse-mapped position (r, c); pixels outside the image
    are 0. Works ``CHUNK`` images at a time, which changes no byte: each image is warped
    on its own, and the chunk's arrays stay in the CPU's cache (10,000 images at once run
    2–6× slower).
    """
    out = np.empty(images.shape, np.uint8)
    for start in range(0, len(images), CHUNK):
        part = slice(start, start + CHUNK)
        field = None if displacement is None else displacement[part]
        out[part] = warp_chunk(images[part], angle[part], zoom[part], shift[part], field)
    return out


def warp_chunk(
    images: np.ndarray,
    angle: np.ndarray,
    zoom: np.ndarray,
    shift: np.ndarray,
    displacement: np.ndarray | None,
) -> np.ndarray:
    """``warp`` of a few images at once: every array here is (n, 784) or smaller."""
    n = len(images)
    grid = np.mgrid[0:SIDE, 0:SIDE].reshape(2, PIXELS).astype(np.float32) - np.float32(CENTRE)
    rows, cols = grid  # (784,) each, relative to the centre
    cos = (np.cos(angle) / zoom).astype(np.float32)[:, None]  # (n, 1)
    sin = (np.sin(angle) / zoom).astype(np.float32)[:, None]
    # where each output pixel comes from: undo the translation, then the rotation and zoom
    dy, dx = shift[:, 0:1].astype(np.float32), shift[:, 1:2].astype(np.float32)
    r = cos * rows - sin * cols + (np.float32(CENTRE) - cos * dy + sin * dx)  # (n, 784)
    c = sin * rows + cos * cols + (np.float32(CENTRE) - sin * dy - cos * dx)
    if displacement is not None:
        r += displacement[:, 0].reshape(n, PIXELS)
        c += displacement[:, 1].reshape(n, PIXELS)

    # The four neighbours of (r, c) are rows r0, r0 + 1 and columns c0, c0 + 1 of the image
    # padded by PAD = 2 zeros. Clipping r0 to [-2, 28] keeps every neighbour inside the
    # padding, and one clipped beyond the image reads two zero rows: r = -2.5 gives 0, not
    # half of row 0. Clipping r0 + 1 on its own instead would leak the edge outward.
    r0, c0 = np.floor(r), np.floor(c)
    r -= r0  # now the fractions, in [0, 1)
    c -= c0
    width = SIDE + 2 * PAD
    base = np.clip(r0, -PAD, SIDE, out=r0).astype(np.intp)
    base += PAD
    base *= width
    base += np.clip(c0, -PAD, SIDE, out=c0).astype(np.intp)
    base += PAD + np.arange(n)[:, None] * (width * width)  # (n, 784) flat index of (r0, c0)

    padded = np.zeros((n, width, width), np.float32)
    padded[:, PAD:-PAD, PAD:-PAD] = images
    flat = padded.reshape(-1)
    top, top_right = flat.take(base), flat.take(base + 1)
    bottom, bottom_right = flat.take(base + width), flat.take(base + width + 1)
    top += c * (top_right - top)  # interpolate along the rows, then between them
    bottom += c * (bottom_right - bottom)
    top += r * (bottom - top)
    return np.rint(top, out=top).astype(np.uint8).reshape(n, *SHAPE)


def distortions(
    rng: np.random.Generator, n: int, cfg: AugmentConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The affine draws of ``n`` images: angle (n,) radians, zoom (n,), shift (n, 2) px."""
    angle = np.deg2rad(rng.uniform(-cfg.rotate, cfg.rotate, n))
    zoom = rng.uniform(1 - cfg.scale, 1 + cfg.scale, n)
    shift = rng.uniform(-cfg.translate, cfg.translate, (n, 2))
    return angle, zoom, shift


def distort(images: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """One random distortion of each uint8 image (n, 28, 28), drawn from ``rng``."""
    angle, zoom, shift = distortions(rng, len(images), cfg)
    displacement = None
    if cfg.elastic_alpha > 0:
        displacement = elastic_fields(rng, len(images), cfg.elastic_alpha, cfg.elastic_sigma)
    return warp(images, angle, zoom, shift, displacement)


def copy_streams(seed: int, copies: int) -> list[np.random.Generator]:
    """One independent generator per copy, spawned from ``seed``."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(copies)]


def make_pool(
    x_train: np.ndarray,
    cfg: AugmentConfig,
    log: Callable[[str], None] = lambda line: None,
    chunk: int = CHUNK,
    threads: int = THREADS,
) -> np.ndarray:
    """``cfg.copies`` distorted copies of the training images: uint8 (copies, n, 784).

    ``x_train`` is the preprocessed float32 (n, 784) in [0, 1]; it holds exact multiples of
    1/255, so rounding ``x * 255`` recovers the original bytes. Copy k draws from its own
    stream: first every image's rotation, zoom and translation, then, with elastic distortion on,
    every image's noise in order. The copies are made ``threads`` at a time (NumPy releases
    the GIL), each ``chunk`` images at a time; neither changes a byte.
    """
    images = to_uint8(x_train).reshape(-1, *SHAPE)  # (n, 28, 28)
    pool = np.empty((cfg.copies, len(images), PIXELS), np.uint8)
    streams = copy_streams(cfg.seed, cfg.copies)

    def make_copy(copy: int) -> None:
        distort_into(pool[copy], images, cfg, streams[copy], chunk)

    with ThreadPoolExecutor(threads) as workers:
        for done, _ in enumerate(workers.map(make_copy, range(cfg.copies)), 1):
            log(f"copy {done}/{cfg.copies} of {len(images)} images")
    return pool


def distort_into(
    out: np.ndarray, images: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator, chunk: int
) -> None:
    """One distorted copy of uint8 images (n, 28, 28) into ``out`` (n, 784), drawn from
    ``rng``: the affine draws of all n images first, then each chunk's noise in order, so
    ``chunk`` changes nothing but the speed (small chunks stay in the CPU's cache)."""
    n = len(images)
    angle, zoom, shift = distortions(rng, n, cfg)
    for start in range(0, n, chunk):
        end = min(start + chunk, n)
        fields = None
        if cfg.elastic_alpha > 0:
            noise = uniform_noise(rng, end - start)
            fields = smooth_fields(noise, cfg.elastic_alpha, cfg.elastic_sigma)
        warped = warp(
            images[start:end], angle[start:end], zoom[start:end], shift[start:end], fields
        )
        out[start:end] = warped.reshape(end - start, PIXELS)


def check_memory(cfg: AugmentConfig, n: int) -> None:
    """Raise ``ConfigError`` if this machine cannot hold the pool of ``n`` images' copies."""
    require_memory(
        f"augment.copies: {cfg.copies:,} copies of {n:,} images",
        memory_parts(cfg, n),
        "Choose fewer augment.copies.",
    )


def memory_parts(cfg: AugmentConfig, n: int) -> dict[str, int]:
    """Bytes the augment stage holds to make ``cfg.copies`` copies of ``n`` images."""
    return {
        "the pool": cfg.copies * n * PIXELS,
        "the training split": n * PIXELS * 5,  # float32 as loaded, and its uint8 images
        "the warps": THREADS * CHUNK * PIXELS * 4 * 40,  # ~40 float32 arrays per chunk
    }


def save_pool(path: str | os.PathLike, pool: np.ndarray, cfg: AugmentConfig, data: dict) -> None:
    """Atomically write the pool (copies, n, 784) with the settings that made it and
    ``data``, the metadata of the split it copies (``preprocess.split_meta``)."""
    # Only what shaped the pool: with no copies the other settings change nothing, and
    # leaving them out keeps the file's bytes, so DVC does not retrain for them.
    settings = cfg.model_dump() if cfg.copies else {"copies": 0}
    meta = {"augment": settings, "data": data}
    save_npz(path, {"pool": pool, "meta": np.array(json.dumps(meta, sort_keys=True))})

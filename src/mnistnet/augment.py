"""Distorted copies of the training images: affine warps and Simard's elastic distortion.

A small network learns more from more shapes of each digit than from more epochs on the same
ones. ``make_pool`` writes ``copies`` distorted versions of every training image, each with
its own random rotation, zoom, translation and elastic displacement field (Simard,
Steinkraus & Platt, 2003: uniform noise smoothed by a Gaussian of width σ, scaled by α).
The augment stage makes the pool once and DVC caches it, so the warping is paid once per
augmentation setting, not once per epoch or per experiment; training then picks, every epoch
and for every image, the original or one of its copies (``train.Batches``).

Pure NumPy: inverse mapping with bilinear interpolation, zero outside the image, and the
Gaussian smoothing as two small matrix products. Labels are untouched and pixels stay uint8.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
from pydantic import Field

from mnistnet.config import Section
from mnistnet.storage import DataError, load_npz, save_npz

SIDE = 28
SIDE_2D = (SIDE, SIDE)
CENTRE = (SIDE - 1) / 2  # warps turn and zoom about the middle of the 28×28 field
CHUNK = 4096  # images warped at once; bounds the temporary arrays to ~100 MB


class AugmentConfig(Section):
    """Section ``augment``: the distorted copies, and the shift drawn every epoch."""

    copies: int = Field(
        0, ge=0, description="distorted copies of the training set made by augment; 0 = off"
    )
    shift: float = Field(2.0, ge=0, le=8, description="largest translation of a copy, pixels")
    rotate: float = Field(10.0, ge=0, le=90, description="largest rotation of a copy, degrees")
    scale: float = Field(
        0.1, ge=0, lt=1, description="largest zoom change of a copy, fraction (0.1 = x0.9 to x1.1)"
    )
    elastic_alpha: float = Field(
        0.0, ge=0, le=100, description="elastic distortion strength alpha, pixels (Simard); 0 = off"
    )
    elastic_sigma: float = Field(
        4.0, gt=0, le=28, description="elastic distortion smoothness sigma, pixels"
    )
    seed: int = Field(0, ge=0, description="seeds every distortion")
    epoch_shift: int = Field(
        1, ge=0, le=4,
        description="whole-pixel translation in +-epoch_shift per axis, drawn afresh every "
        "epoch by train (free: a moved window over a padded image); 0 = off",
    )  # fmt: skip


def gaussian_matrix(sigma: float, size: int = SIDE) -> np.ndarray:
    """``G`` float32 (size, size) such that ``G @ f`` smooths ``f`` along its first axis.

    Each row holds the weights of a Gaussian of width ``sigma`` centred on that row, scaled
    to unit area as the untruncated kernel is, so values beyond the edge count as zero.
    """
    offsets = np.arange(size)[:, None] - np.arange(size)[None, :]  # (size, size)
    weights = np.exp(-0.5 * (offsets / sigma) ** 2)
    return (weights / (sigma * math.sqrt(2 * math.pi))).astype(np.float32)


def elastic_fields(rng: np.random.Generator, n: int, alpha: float, sigma: float) -> np.ndarray:
    """Random smooth displacement fields float32 (n, 2, 28, 28), in pixels (rows, columns)."""
    noise = rng.uniform(-1, 1, (n, 2, SIDE, SIDE)).astype(np.float32)
    G = gaussian_matrix(sigma)
    return alpha * (G @ noise @ G.T)  # smooth along rows, then columns


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
    bilinear interpolation at its inverse-mapped position; outside the image is 0.
    """
    n = len(images)
    rows, cols = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32) - np.float32(CENTRE)  # (28, 28)
    cos = (np.cos(angle) / zoom).astype(np.float32)[:, None, None]  # (n, 1, 1)
    sin = (np.sin(angle) / zoom).astype(np.float32)[:, None, None]
    shift = shift.astype(np.float32)
    # where each output pixel comes from: undo the shift, then the rotation and zoom
    r = CENTRE + cos * (rows - shift[:, 0, None, None]) - sin * (cols - shift[:, 1, None, None])
    c = CENTRE + sin * (rows - shift[:, 0, None, None]) + cos * (cols - shift[:, 1, None, None])
    if displacement is not None:
        r += displacement[:, 0]
        c += displacement[:, 1]  # (n, 28, 28) each

    # one zero pixel of padding all round: every position outside reads zeros
    padded = np.zeros((n, SIDE + 2, SIDE + 2), np.float32)
    padded[:, 1:-1, 1:-1] = images
    flat = padded.reshape(n, -1)  # (n, 900)
    r0 = np.floor(r)
    c0 = np.floor(c)
    fr, fc = (r - r0).reshape(n, -1), (c - c0).reshape(n, -1)  # (n, 784) weights in [0, 1)
    r0 = np.clip(r0, -1, SIDE).astype(np.intp).reshape(n, -1) + 1  # padded coordinates
    c0 = np.clip(c0, -1, SIDE).astype(np.intp).reshape(n, -1) + 1
    r1, c1 = np.minimum(r0 + 1, SIDE + 1), np.minimum(c0 + 1, SIDE + 1)
    width = SIDE + 2

    def at(ri: np.ndarray, ci: np.ndarray) -> np.ndarray:
        return np.take_along_axis(flat, ri * width + ci, axis=1)  # (n, 784)

    top = at(r0, c0) * (1 - fc) + at(r0, c1) * fc
    bottom = at(r1, c0) * (1 - fc) + at(r1, c1) * fc
    out = top * (1 - fr) + bottom * fr
    return np.rint(out).astype(np.uint8).reshape(n, SIDE, SIDE)


def distort(images: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """One random distortion of each uint8 image (n, 28, 28), drawn from ``rng``."""
    n = len(images)
    angle = np.deg2rad(rng.uniform(-cfg.rotate, cfg.rotate, n))
    zoom = rng.uniform(1 - cfg.scale, 1 + cfg.scale, n)
    shift = rng.uniform(-cfg.shift, cfg.shift, (n, 2))
    displacement = None
    if cfg.elastic_alpha > 0:
        displacement = elastic_fields(rng, n, cfg.elastic_alpha, cfg.elastic_sigma)
    return warp(images, angle, zoom, shift, displacement)


def make_pool(x_train: np.ndarray, cfg: AugmentConfig, log=lambda line: None) -> np.ndarray:
    """``cfg.copies`` distorted copies of the training images: uint8 (copies, n, 784).

    ``x_train`` is the preprocessed float32 (n, 784) in [0, 1]; it holds exact multiples of
    1/255, so rounding ``x * 255`` recovers the original bytes.
    """
    images = to_uint8(x_train).reshape(-1, SIDE, SIDE)  # (n, 28, 28)
    n = len(images)
    pool = np.empty((cfg.copies, n, SIDE * SIDE), np.uint8)
    rng = np.random.default_rng(cfg.seed)
    for copy in range(cfg.copies):
        for start in range(0, n, CHUNK):
            chunk = images[start : start + CHUNK]
            pool[copy, start : start + len(chunk)] = distort(chunk, cfg, rng).reshape(
                len(chunk), -1
            )
        log(f"copy {copy + 1}/{cfg.copies} of {n} images")
    return pool


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Preprocessed pixels float32 (n, 784) in [0, 1] back to their uint8 values (n, 784)."""
    return np.rint(x * 255).astype(np.uint8)


POOL_SCHEMA = {"pool": (np.uint8, 3), "meta": (None, 0)}


def save_pool(path: str | os.PathLike, pool: np.ndarray, cfg: AugmentConfig, data: dict) -> None:
    """Atomically write the pool (copies, n, 784) with the settings that made it and
    ``data``, the metadata of the split it copies (``preprocess.split_meta``)."""
    # Only what shaped the pool: with no copies the other settings change nothing, and
    # leaving them out keeps the file's bytes, so DVC does not retrain for them.
    settings = {"copies": 0}
    if cfg.copies:  # epoch_shift is the train stage's, not the pool's
        settings = cfg.model_dump(exclude={"epoch_shift"})
    meta = {"augment": settings, "data": data}
    save_npz(path, {"pool": pool, "meta": np.array(json.dumps(meta, sort_keys=True))})


def load_pool(path: str | os.PathLike, n: int, data: dict) -> tuple[np.ndarray, dict]:
    """Load the augment stage's pool: uint8 (copies, n, 784) and its metadata.

    Checks that it copies the training split the caller has: ``n`` images, preprocessed as
    ``data`` says (``preprocess.split_meta``), so no image is paired with another's label.
    """
    fix = "Rerun the augment stage: dvc repro augment"
    arrays = load_npz(path, POOL_SCHEMA, fix)
    pool = arrays["pool"]
    if pool.shape[1:] != (n, SIDE * SIDE):
        raise DataError(f"{path}: pool {pool.shape} is not (copies, {n}, {SIDE * SIDE}). {fix}")
    try:
        meta = json.loads(str(arrays["meta"]))
    except ValueError as e:
        raise DataError(f"{path}: unreadable metadata ({e}). {fix}") from e
    if len(pool) and meta.get("data") != data:
        raise DataError(
            f"{path}: made from a training split preprocessed as {meta.get('data')}, not as "
            f"this one ({data}). {fix}"
        )
    return pool, meta

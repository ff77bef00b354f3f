"""How robust is the model? Its accuracy on variants of the test set.

Each variant changes every test image one way, with draws from its own fixed seed, so its
images, and its score, are the same on every run:

- ``clean``: the test set as it is;
- ``shifted``: every image moved ``pixels`` in a random direction;
- ``rotated``: turned by ``degrees``, clockwise or not;
- ``scaled``: zoomed by 1 - ``factor`` or 1 + ``factor``;
- ``elastic``: Simard's elastic distortion (as the augment stage draws it);
- ``noisy``: Gaussian noise of ``std`` added to every pixel, clipped to [0, 1];
- ``own``: your own digits, a folder of images per digit (``data.images``), instead of the
  test set.

The robustness stage runs once per variant (a ``matrix`` in dvc.yaml): each writes its own
metrics file, so ``dvc exp show`` has a column per variant, and changing one variant's
settings reruns that variant alone.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from pydantic import Field

from mnistnet.data.augment import elastic_fields, warp
from mnistnet.data.mnist import SHAPE
from mnistnet.data.preprocess import normalize, to_uint8
from mnistnet.pipeline.config import Section


class Clean(Section):
    """The test set as it is."""


class Shifted(Section):
    pixels: float = Field(2.0, gt=0, le=8, description="how far each image moves, pixels")
    seed: int = Field(0, ge=0, description="seeds each image's direction")


class Rotated(Section):
    degrees: float = Field(15.0, gt=0, le=90, description="how far each image turns")
    seed: int = Field(0, ge=0, description="seeds each image's sense of turn")


class Scaled(Section):
    factor: float = Field(0.2, gt=0, lt=1, description="each image zoomed by 1 -/+ factor")
    seed: int = Field(0, ge=0, description="seeds which images shrink")


class Elastic(Section):
    alpha: float = Field(34.0, gt=0, le=100, description="displacement strength, pixels")
    sigma: float = Field(4.0, gt=0, le=28, description="displacement smoothness, pixels")
    seed: int = Field(0, ge=0, description="seeds the displacement fields")


class Noisy(Section):
    std: float = Field(0.3, gt=0, le=1, description="standard deviation of the pixel noise")
    seed: int = Field(0, ge=0, description="seeds the noise")


class Own(Section):
    """Your own digits: the folder given to the stage (``data/own-digits``), one folder per
    digit, read as ``mnistnet predict`` reads images (``data.images``)."""


class RobustnessConfig(Section):
    """Section ``robustness``: one subsection per variant of the test set."""

    clean: Clean = Field(default_factory=Clean, description="the test set as it is")
    shifted: Shifted = Field(default_factory=Shifted, description="moved in a random direction")
    rotated: Rotated = Field(default_factory=Rotated, description="turned either way")
    scaled: Scaled = Field(default_factory=Scaled, description="zoomed in or out")
    elastic: Elastic = Field(default_factory=Elastic, description="elastically distorted")
    noisy: Noisy = Field(default_factory=Noisy, description="with Gaussian pixel noise")
    own: Own = Field(default_factory=Own, description="your own digits, a folder per digit")


def shifted(images: np.ndarray, cfg: Shifted, rng: np.random.Generator) -> np.ndarray:
    direction = rng.uniform(0, 2 * np.pi, len(images))
    moves = cfg.pixels * np.stack([np.sin(direction), np.cos(direction)], axis=1)  # (n, 2)
    return warp(images, np.zeros(len(images)), np.ones(len(images)), moves)


def rotated(images: np.ndarray, cfg: Rotated, rng: np.random.Generator) -> np.ndarray:
    angle = np.deg2rad(cfg.degrees) * rng.choice([-1.0, 1.0], len(images))
    return warp(images, angle, np.ones(len(images)), np.zeros((len(images), 2)))


def scaled(images: np.ndarray, cfg: Scaled, rng: np.random.Generator) -> np.ndarray:
    zoom = 1 + cfg.factor * rng.choice([-1.0, 1.0], len(images))
    return warp(images, np.zeros(len(images)), zoom, np.zeros((len(images), 2)))


def elastic(images: np.ndarray, cfg: Elastic, rng: np.random.Generator) -> np.ndarray:
    n = len(images)
    fields = elastic_fields(rng, n, cfg.alpha, cfg.sigma)
    return warp(images, np.zeros(n), np.ones(n), np.zeros((n, 2)), fields)


TRANSFORMS: dict[str, Callable] = {
    "shifted": shifted,
    "rotated": rotated,
    "scaled": scaled,
    "elastic": elastic,
}


def vary(x: np.ndarray, variant: str, cfg: RobustnessConfig) -> np.ndarray:
    """The test images x float32 (n, 784) in [0, 1] as variant ``variant`` changes them:
    float32 (n, 784), pixels as ``normalize`` makes them."""
    settings = getattr(cfg, variant)
    rng = np.random.default_rng(getattr(settings, "seed", 0))
    if variant == "noisy":
        noise = rng.normal(0, settings.std, x.shape).astype(np.float32)
        return np.clip(x + noise, 0, 1)
    if variant not in TRANSFORMS:  # clean
        return x
    images = to_uint8(x).reshape(-1, *SHAPE)  # (n, 28, 28): warps work on pixels
    return normalize(TRANSFORMS[variant](images, settings, rng))


def scores(result: dict, variant: str) -> dict:
    """The variant's metrics file: ``robustness.<variant>.accuracy`` and ``.loss``, named so
    that each variant is a column of its own in ``dvc exp show``."""
    rounded = {name: round(float(result[name]), 6) for name in ("accuracy", "loss")}
    return {"robustness": {variant: rounded}}

"""Turn raw MNIST into training arrays: flatten, scale to [0, 1], one-hot, validation split.

Pure array functions plus the loader for the raw file; ``normalize`` is the one place pixels
are scaled, shared by anything that feeds images to the network.
"""

from __future__ import annotations

import json
import os

import numpy as np
from pydantic import Field

from mnistnet.data.mnist import CLASSES, PIXELS
from mnistnet.pipeline.config import Section
from mnistnet.pipeline.errors import ConfigError
from mnistnet.pipeline.storage import load_npz

# The download stage's output; download.decode_keras_npz repeats it (see there for why)
RAW_SCHEMA = {
    "x_train": (np.uint8, 3),
    "y_train": (np.uint8, 1),
    "x_test": (np.uint8, 3),
    "y_test": (np.uint8, 1),
}


class PreprocessConfig(Section):
    """Section ``preprocess``: the validation split."""

    val_size: int = Field(
        5000, ge=0, description="training images held out for validation; 0 = none (the notebook)"
    )
    seed: int = Field(0, ge=0, description="seeds the permutation that picks the validation images")


def normalize(images: np.ndarray) -> np.ndarray:
    """Flatten uint8 images (n, 28, 28) to float32 (n, 784) in [0, 1] by dividing by 255."""
    flat = images.reshape(len(images), PIXELS)  # (n, d)
    return flat.astype(np.float32) / np.float32(255)


def to_uint8(x: np.ndarray) -> np.ndarray:
    """``normalize`` undone: pixels (n, 784) in [0, 1] back to their uint8 values (n, 784).

    Exact for what ``normalize`` made: each value is a multiple of 1/255. Converted 4,096
    rows at a time, so the float temporaries stay small beside a 60,000-image split.
    """
    out = np.empty(x.shape, np.uint8)
    for start in range(0, len(x), 4096):
        out[start : start + 4096] = np.rint(x[start : start + 4096] * 255)
    return out


def one_hot(labels: np.ndarray, num_classes: int = CLASSES) -> np.ndarray:
    """Labels (n,) of ints in [0, k) → uint8 (n, k) with a single 1 per row."""
    out = np.zeros((len(labels), num_classes), dtype=np.uint8)
    out[np.arange(len(labels)), labels] = 1
    return out


def split_indices(n: int, val_size: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Pick ``val_size`` of ``n`` rows for validation with ``rng``; both index sets sorted.

    Sorting keeps the original order within each split, so the split depends only on the seed.
    """
    perm = rng.permutation(n)
    return np.sort(perm[val_size:]), np.sort(perm[:val_size])


def check_val_size(val_size: int, n_train: int) -> None:
    """Raise ``ConfigError`` unless ``val_size`` leaves training images out of ``n_train``."""
    if val_size >= n_train:
        raise ConfigError(
            f"preprocess.val_size: got {val_size}, but the training set has only {n_train:,} "
            f"images; choose fewer than {n_train} (0 = no validation split)."
        )


def load_raw(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The download stage's arrays: uint8 images (n, 28, 28) and labels (n,) of each split."""
    return load_npz(path, RAW_SCHEMA, "Rerun the download stage: dvc repro -f download")


def preprocess(raw: dict[str, np.ndarray], cfg: PreprocessConfig) -> dict[str, dict]:
    """Split, flatten, scale and one-hot the raw arrays.

    Returns ``{"train": …, "val": …, "test": …}``, each ``{"x": float32 (n, 784) in [0, 1],
    "y": uint8 (n, 10) one-hot, "meta": JSON text}``; ``val`` has zero rows when
    ``cfg.val_size`` is 0. ``meta`` records the split's name and the preprocess settings (the
    pool and the model file keep the training split's).
    """
    n_train = len(raw["x_train"])
    check_val_size(cfg.val_size, n_train)
    train_idx, val_idx = split_indices(n_train, cfg.val_size, np.random.default_rng(cfg.seed))
    x, y = raw["x_train"], raw["y_train"]
    splits = {
        "train": {"x": normalize(x[train_idx]), "y": one_hot(y[train_idx])},
        "val": {"x": normalize(x[val_idx]), "y": one_hot(y[val_idx])},
        "test": {"x": normalize(raw["x_test"]), "y": one_hot(raw["y_test"])},
    }
    for name, arrays in splits.items():
        meta = {"split": name, **cfg.model_dump()}
        arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
    return splits

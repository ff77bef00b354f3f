"""The files training reads: a processed split (the preprocess stage's) and the pool of
distorted copies (the augment stage's), each loaded with a dtype and rank check alone: DVC
hashed them, and the stage that wrote them is the one to rerun."""

from __future__ import annotations

import json
import os

import numpy as np

from mnistnet.pipeline.storage import load_npz

SPLIT_SCHEMA = {"x": (np.float32, 2), "y": (np.uint8, 2), "meta": (None, 0)}
POOL_SCHEMA = {"pool": (np.uint8, 3), "meta": (None, 0)}
REDO_SPLITS = "Rerun the preprocess stage: dvc repro -f preprocess"


def load_split(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """One processed split: x float32 (n, 784) in [0, 1], labels int64 (n,)."""
    arrays = load_npz(path, SPLIT_SCHEMA, REDO_SPLITS)
    return arrays["x"], arrays["y"].argmax(axis=1)


def split_meta(path: str | os.PathLike) -> dict:
    """The settings a processed split was made with: ``split``, ``val_size``, ``seed``."""
    return json.loads(str(load_npz(path, {"meta": (None, 0)}, REDO_SPLITS)["meta"]))


def load_pool(path: str | os.PathLike) -> tuple[np.ndarray, dict]:
    """The augment stage's pool, uint8 (copies, n, 784), and its metadata."""
    arrays = load_npz(path, POOL_SCHEMA, "Rerun the augment stage: dvc repro augment")
    return arrays["pool"], json.loads(str(arrays["meta"]))

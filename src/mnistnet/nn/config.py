"""The train stage's side of ``nn/``: the ``train`` params section (``TrainConfig``), the
memory a run plans for before it starts (``check_memory``), and the progress lines
(``format_epoch``). The loop in ``train.py`` imports none of this: read that first.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import Field

from mnistnet.nn.train import EVAL_CHUNK, EpochStats
from mnistnet.pipeline.config import Section, require_memory


class TrainConfig(Section):
    """Section ``train``: the network's size and how it is trained."""

    hidden_size: int = Field(128, ge=1, le=65_536, description="units in the hidden layer (h)")
    epochs: int = Field(30, ge=1, le=100_000, description="passes over the training set")
    batch_size: int = Field(128, ge=0, le=1_000_000, description="samples per update; 0 = all")
    lr: float = Field(0.2, gt=0, allow_inf_nan=False, description="learning rate (its peak)")
    optimizer: Literal["sgd", "momentum", "adam"] = Field("momentum", description="update rule")
    momentum: float = Field(0.9, ge=0, lt=1, description="velocity decay of optimizer momentum")
    beta1: float = Field(0.9, ge=0, lt=1, description="first-moment decay of optimizer adam")
    weight_decay: float = Field(
        0.001,
        ge=0,
        allow_inf_nan=False,
        description="each update shrinks the weight matrices (not biases) by lr * weight_decay",
    )
    lr_schedule: Literal["constant", "cosine"] = Field(
        "cosine", description="learning rate over the run: constant, or cosine decay to 0"
    )
    init: Literal["normal", "he"] = Field(
        "he", description="weights: he = N(0, 2/fan_in); normal = N(0, 1) * init_scale"
    )
    init_scale: float = Field(
        0.01, gt=0, allow_inf_nan=False, description="standard deviation of init normal"
    )
    dtype: Literal["float32", "float64"] = Field("float32", description="arithmetic precision")
    shift: int = Field(
        1, ge=0, le=4, description="each epoch, move every image by up to +-shift pixels per axis"
    )
    seed: int = Field(0, ge=0, description="seeds initial weights, shuffles, augmentation draws")


def check_memory(cfg: TrainConfig, n: int, n_val: int, copies: int, d: int, k: int) -> None:
    """Raise ``ConfigError`` if this machine cannot hold what training ``n`` images of ``d``
    pixels in ``k`` classes needs, with ``n_val`` validation images and a pool of ``copies``
    distorted copies of each."""
    require_memory(
        f"train: {n:,} images (and {copies} distorted copies of each), hidden_size "
        f"{cfg.hidden_size}, batch_size {cfg.batch_size}",
        memory_parts(cfg, n, n_val, copies, d, k),
        "Use fewer augment.copies, or a smaller train.hidden_size or train.batch_size.",
    )


def memory_parts(cfg: TrainConfig, n: int, n_val: int, copies: int, d: int, k: int) -> dict:
    """Bytes the train stage holds, by what holds them."""
    item = np.dtype(cfg.dtype).itemsize
    h, moved = cfg.hidden_size, (math.isqrt(d) + 2 * cfg.shift) ** 2  # a padded image
    batch = n if cfg.batch_size == 0 else min(cfg.batch_size, n)
    state = {"sgd": 1, "momentum": 2, "adam": 3}[cfg.optimizer]  # gradients, averages
    return {
        "the training images": n * d * 4,
        "their float64 copy": n * d * 8 if cfg.dtype == "float64" else 0,
        "their moved views": n * moved * item if copies or cfg.shift else 0,
        "the pool": copies * n * d,
        "the validation images": n_val * d * 4,
        "the weights and optimizer": ((d + 1) * h + (h + 1) * k) * item * (1 + state),
        "a step": batch * (2 * d + 4 * h + 3 * k) * item,
        "scoring": min(EVAL_CHUNK, max(n, n_val)) * (h + k) * item * 3,
    }


def format_epoch(s: EpochStats, epochs: int, elapsed: float) -> str:
    """One progress line of at most 80 characters, counting epochs from 1: the training and
    validation loss and accuracy, time so far and left (from the mean epoch so far)."""
    done = s.epoch + 1
    line = f"epoch {done:>{len(str(epochs))}}/{epochs}"
    line += f"  loss {s.train_loss:.4f} acc {s.train_accuracy:.2%}"
    if s.val_loss is not None:
        line += f"  val {s.val_loss:.4f} {s.val_accuracy:.2%}"
    left = elapsed / done * (epochs - done)
    return line + f"  {format_duration(elapsed)}, {format_duration(left)} left"


def format_duration(seconds: float) -> str:
    """``9.8s``, ``2m05s`` or ``1h02m``: short, and one format for every length."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"

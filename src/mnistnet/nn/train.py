"""Mini-batch training of the two-layer network, and the ``train`` params section.

Every step is the textbook's three: ``model.forward``, ``model.softmax_cross_entropy`` and
``model.backward``, then the optimizer's update; this file has no matrix products of its own.
Randomness comes from three generators spawned from ``cfg.seed`` (``streams.Streams``): the
initial weights, each epoch's shuffle, each epoch's augmentation draws. So switching
augmentation on changes what the images look like and nothing else, and the same config and
data give the same bytes, run after run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import Field

from mnistnet.data.mnist import CLASSES, PIXELS, SIDE
from mnistnet.nn import model
from mnistnet.nn.batches import Batches
from mnistnet.nn.optim import Optimizer, learning_rate, make_optimizer
from mnistnet.nn.streams import Streams
from mnistnet.pipeline.config import Section, require_memory
from mnistnet.pipeline.errors import TrainingDiverged

EVAL_CHUNK = 8192  # rows per forward pass when scoring a whole split; bounds memory


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


@dataclass
class EpochStats:
    epoch: int  # counted from 0, as DVC's charts count steps
    train_loss: float  # mean over the epoch's samples, each measured before its update
    train_accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    lr: float  # learning rate of the epoch's last update


def check_memory(cfg: TrainConfig, n: int, n_val: int, copies: int) -> None:
    """Raise ``ConfigError`` if this machine cannot hold what training ``n`` images needs,
    with ``n_val`` validation images and a pool of ``copies`` distorted copies of each."""
    require_memory(
        f"train: {n:,} images (and {copies} distorted copies of each), hidden_size "
        f"{cfg.hidden_size}, batch_size {cfg.batch_size}",
        memory_parts(cfg, n, n_val, copies),
        "Use fewer augment.copies, or a smaller train.hidden_size or train.batch_size.",
    )


def memory_parts(cfg: TrainConfig, n: int, n_val: int, copies: int) -> dict[str, int]:
    """Bytes the train stage holds, by what holds them."""
    item = np.dtype(cfg.dtype).itemsize
    h, side = cfg.hidden_size, SIDE + 2 * cfg.shift
    batch = n if cfg.batch_size == 0 else min(cfg.batch_size, n)
    weights = (PIXELS + 1) * h + (h + 1) * CLASSES
    state = {"sgd": 1, "momentum": 2, "adam": 3}[cfg.optimizer]  # gradients, averages
    return {
        "the training images": n * PIXELS * 4,
        "their float64 copy": n * PIXELS * 8 if cfg.dtype == "float64" else 0,
        "their moved views": n * side * side * item if copies or cfg.shift else 0,
        "the pool": copies * n * PIXELS,
        "the validation images": n_val * PIXELS * 4,
        "the weights and optimizer": weights * item * (1 + state),
        "a step": batch * (2 * PIXELS + 4 * h + 3 * CLASSES) * item,
        "scoring": min(EVAL_CHUNK, max(n, n_val)) * (h + CLASSES) * item * 3,
    }


def evaluate(params: model.Params, X: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``params`` on X (n, d), labels (n,), in chunks so
    that memory stays bounded: the validation pass of every epoch."""
    loss_sum, correct = 0.0, 0
    for start in range(0, len(X), EVAL_CHUNK):
        _, Z2 = model.forward(params, X[start : start + EVAL_CHUNK])
        y = labels[start : start + EVAL_CHUNK]
        loss_sum += model.softmax_cross_entropy(Z2, y)[0] * len(y)
        correct += int(np.count_nonzero(Z2.argmax(axis=1) == y))
    return loss_sum / len(X), correct / len(X)


def step(
    params: model.Params,
    grads: model.Params,
    optimizer: Optimizer,
    X: np.ndarray,
    labels: np.ndarray,
    lr: float,
) -> tuple[float, np.ndarray]:
    """One update on batch X (m, d), labels (m,): forward, loss, backward, optimizer step.
    Returns the batch's mean loss and its logits Z2 (m, k), both from before the update."""
    H, Z2 = model.forward(params, X)
    loss, dZ2 = model.softmax_cross_entropy(Z2, labels)
    model.backward(params, X, H, dZ2, grads)  # into grads: one set, reused every step
    optimizer.step(params, grads, lr)
    return loss, Z2


def train(
    cfg: TrainConfig,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    log: Callable[[str], None] = lambda line: None,
    pool: np.ndarray | None = None,
    on_epoch: Callable[[EpochStats], None] = lambda stats: None,
) -> tuple[model.Params, list[EpochStats]]:
    """Train from scratch and return the parameters and one ``EpochStats`` per epoch.

    Inputs: x_train (n, d) in [0, 1], y_train (n,) integer labels; x_val/y_val likewise, or
    None/empty for no validation; ``pool`` uint8 (copies, n, d), distorted copies of x_train
    (``augment.make_pool``): each epoch then shows every image as itself or as one of its
    copies, drawn afresh; ``cfg.shift`` > 0 also moves every image by a whole number of
    pixels in ±``shift`` per axis, drawn afresh each epoch. ``on_epoch`` is called with each
    epoch's ``EpochStats`` as it ends (the train stage logs them with DVCLive). Raises
    ``TrainingDiverged`` if the loss stops being finite.
    """
    dtype = np.dtype(cfg.dtype)
    X = np.ascontiguousarray(x_train, dtype=dtype)  # (n, d)
    Xv = None if x_val is None or len(x_val) == 0 else np.ascontiguousarray(x_val, dtype=dtype)
    n = len(X)
    batch = n if cfg.batch_size == 0 else min(cfg.batch_size, n)
    steps_per_epoch = math.ceil(n / batch)

    streams = Streams.from_seed(cfg.seed)
    params = model.init_params(
        streams.init, PIXELS, cfg.hidden_size, CLASSES, cfg.init, cfg.init_scale, dtype
    )
    grads = {name: np.empty_like(p) for name, p in params.items()}
    optimizer = make_optimizer(cfg.optimizer, params, cfg.momentum, cfg.beta1, cfg.weight_decay)
    batches = Batches(X, y_train, batch, pool, cfg.shift)

    history = []
    began = time.perf_counter()
    for epoch in range(cfg.epochs):
        order = streams.shuffle.permutation(n) if batch < n else None
        where = batches.draw(streams.augment, n)  # which version of each image, how moved
        loss_sum, correct = 0.0, 0
        with np.errstate(over="ignore", invalid="ignore"):  # divergence is checked below
            for i, (xb, yb) in enumerate(batches.epoch(order, where)):
                t = epoch * steps_per_epoch + i
                lr = learning_rate(cfg.lr_schedule, cfg.lr, t, steps_per_epoch * cfg.epochs)
                loss, Z2 = step(params, grads, optimizer, xb, yb, lr)
                if not math.isfinite(loss):
                    raise TrainingDiverged(
                        f"training diverged in epoch {epoch + 1}/{cfg.epochs}: the loss "
                        f"became {loss}. Lower train.lr (now {cfg.lr}) and rerun."
                    )
                loss_sum += loss * len(yb)
                correct += int(np.count_nonzero(Z2.argmax(axis=1) == yb))
        val_loss = val_acc = None
        if Xv is not None:
            val_loss, val_acc = evaluate(params, Xv, y_val)
        stats = EpochStats(epoch, loss_sum / n, correct / n, val_loss, val_acc, lr)
        history.append(stats)
        on_epoch(stats)
        log(format_epoch(stats, cfg.epochs, time.perf_counter() - began))
    log(f"trained {cfg.epochs} epochs in {format_duration(time.perf_counter() - began)}")
    return params, history


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

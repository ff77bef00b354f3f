"""Mini-batch training of the two-layer network: ``train`` is the loop, ``step`` one update,
``evaluate`` the validation pass. (The ``train`` params section, the memory a run needs and
the progress lines are the stage's wiring: ``nn/config.py``.)

Every step is the textbook's three: ``model.forward``, ``model.softmax_cross_entropy`` and
``model.backward``, then the optimizer's update; this file has no matrix products of its own.
Randomness comes from three generators spawned from ``cfg.seed`` (``streams.Streams``): the
initial weights, each epoch's shuffle, each epoch's augmentation draws. So switching
augmentation on changes what the images look like and nothing else, and the same config and
data give the same bytes, run after run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mnistnet.nn import model
from mnistnet.nn.batches import Batches
from mnistnet.nn.optim import Optimizer, learning_rate, make_optimizer
from mnistnet.nn.streams import Streams
from mnistnet.pipeline.errors import TrainingDiverged

if TYPE_CHECKING:  # the params section, for the annotations alone
    from mnistnet.nn.config import TrainConfig

EVAL_CHUNK = 8192  # rows per forward pass when scoring a whole split; bounds memory


@dataclass
class EpochStats:
    epoch: int  # counted from 0, as DVC's charts count steps
    train_loss: float  # mean over the epoch's samples, each measured before its update
    train_accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    lr: float  # learning rate of the epoch's last update


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
    pool: np.ndarray | None = None,
    on_epoch: Callable[[EpochStats], None] = lambda stats: None,
    classes: int = 10,
) -> tuple[model.Params, list[EpochStats]]:
    """Train from scratch and return the parameters and one ``EpochStats`` per epoch.

    Inputs: x_train (n, d) in [0, 1], y_train (n,) integer labels; x_val/y_val likewise, or
    None/empty for no validation; ``pool`` uint8 (copies, n, d), distorted copies of x_train
    (``augment.make_pool``): each epoch then shows every image as itself or as one of its
    copies, drawn afresh; ``cfg.shift`` > 0 also moves every image by a whole number of
    pixels in ±``shift`` per axis, drawn afresh each epoch. ``on_epoch`` is called with each
    epoch's ``EpochStats`` as it ends (the train stage prints and logs them). ``cfg`` is the
    ``train`` params section (``nn/config.py``). Raises
    ``TrainingDiverged`` if the loss stops being finite. ``classes``: how many labels there
    are (the network's outputs, k).
    """
    dtype = np.dtype(cfg.dtype)
    X = np.ascontiguousarray(x_train, dtype=dtype)  # (n, d)
    Xv = None if x_val is None or len(x_val) == 0 else np.ascontiguousarray(x_val, dtype=dtype)
    n = len(X)
    batch = n if cfg.batch_size == 0 else min(cfg.batch_size, n)
    steps_per_epoch = math.ceil(n / batch)

    streams = Streams.from_seed(cfg.seed)
    params = model.init_params(
        streams.init, X.shape[1], cfg.hidden_size, classes, cfg.init, cfg.init_scale, dtype
    )
    grads = {name: np.empty_like(p) for name, p in params.items()}
    optimizer = make_optimizer(cfg.optimizer, params, cfg.momentum, cfg.beta1, cfg.weight_decay)
    batches = Batches(X, y_train, batch, pool, cfg.shift)

    history = []
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
    return params, history

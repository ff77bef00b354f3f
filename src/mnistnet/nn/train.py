"""Mini-batch training of the two-layer network, fast and reproducible.

``Trainer`` runs ``model.forward``/``model.backward`` with every buffer allocated once: each
batch is gathered into a reused array (``batches.Batches``), every matrix product writes
into its output with ``out=``, and the softmax–cross-entropy gradient is computed in place as
``probs − one_hot``. What remains per step is five matrix products and the update, which keeps
an epoch close to the cost of its matrix multiplications (see ``bench/``).

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

from mnistnet.data.mnist import CLASSES, PIXELS
from mnistnet.nn import model
from mnistnet.nn.batches import Batches
from mnistnet.nn.optim import learning_rate, make_optimizer
from mnistnet.nn.streams import Streams
from mnistnet.pipeline.config import Section, require_memory
from mnistnet.pipeline.errors import TrainingDiverged

EVAL_CHUNK = 8192  # rows per forward pass when scoring a whole split; bounds memory


class TrainConfig(Section):
    """Section ``train``: the network's size and how it is trained."""

    hidden_size: int = Field(128, ge=1, le=65_536, description="units in the hidden layer (h)")
    epochs: int = Field(30, ge=1, le=100_000, description="passes over the training set")
    batch_size: int = Field(
        128, ge=0, le=1_000_000,
        description="samples per update; 0 = the whole training set (full batch)",
    )  # fmt: skip
    lr: float = Field(
        0.2, gt=0, allow_inf_nan=False,
        description="learning rate (the peak, when lr_schedule decays it)",
    )  # fmt: skip
    optimizer: Literal["sgd", "momentum", "adam"] = Field("momentum", description="update rule")
    momentum: float = Field(
        0.9, ge=0, lt=1, description="velocity decay for momentum; beta1 for adam; unused by sgd"
    )
    weight_decay: float = Field(
        0.001, ge=0, allow_inf_nan=False,
        description="each update shrinks the weight matrices (not biases) by lr * weight_decay",
    )  # fmt: skip
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
        1, ge=0, le=4,
        description="whole-pixel translation in +-shift per axis, drawn afresh for every image "
        "every epoch (free: a moved window over a padded image); 0 = off",
    )  # fmt: skip
    seed: int = Field(
        0, ge=0,
        description="spawns three independent streams: initial weights, per-epoch shuffle, "
        "per-epoch augmentation draws",
    )  # fmt: skip


@dataclass
class EpochStats:
    epoch: int  # counted from 0, as DVC's charts count steps
    train_loss: float  # mean over the epoch's samples, each measured before its update
    train_accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    lr: float  # learning rate of the epoch's last update


def check_memory(cfg: TrainConfig, n: int, n_val: int, copies: int) -> None:
    """Raise ``ConfigError`` if this machine cannot hold what training needs."""
    require_memory(
        f"train: {n:,} images (and {copies} distorted copies of each), hidden_size "
        f"{cfg.hidden_size}, batch_size {cfg.batch_size}", memory_parts(cfg, n, n_val, copies),
        "Use fewer augment.copies, or a smaller train.hidden_size or train.batch_size.",
    )  # fmt: skip


def memory_parts(cfg: TrainConfig, n: int, n_val: int, copies: int) -> dict[str, int]:
    """Bytes the train stage holds for ``n`` training and ``n_val`` validation images and a
    pool of ``copies`` distorted copies (see ``Trainer``, ``Batches`` and ``evaluate``)."""
    item = np.dtype(cfg.dtype).itemsize
    h = cfg.hidden_size
    batch = n if cfg.batch_size == 0 else min(cfg.batch_size, n)
    weights = (PIXELS + 1) * h + (h + 1) * CLASSES
    state = {"sgd": 2, "momentum": 3, "adam": 4}[cfg.optimizer]  # grads, scratch, moments
    augmented = copies or cfg.shift
    return {
        "the training images": n * PIXELS * 4 + (n * PIXELS if augmented else 0),
        "the pool": copies * n * PIXELS,
        "the validation images": n_val * PIXELS * 4,
        "the weights and optimizer": weights * item * (1 + state),
        "the batches": batch * (PIXELS + 3 * h + CLASSES) * item + batch * h,
        "scoring": min(EVAL_CHUNK, max(n, n_val)) * (h + CLASSES) * item * 2,
    }


class Trainer:
    """Forward, backward and update for one batch at a time, in preallocated buffers."""

    def __init__(self, params: model.Params, cfg: TrainConfig, max_batch: int) -> None:
        self.params = params
        d, h = params["W1"].shape
        k = params["W2"].shape[1]
        dtype = params["W1"].dtype
        self.grads = {name: np.empty_like(p) for name, p in params.items()}
        self.H = np.empty((max_batch, h), dtype)  # hidden activations
        self.P = np.empty((max_batch, k), dtype)  # logits, then probs, then dlogits
        self.dH = np.empty((max_batch, h), dtype)
        self.active = np.empty((max_batch, h), bool)  # where ReLU passed its input
        self.rows = np.arange(max_batch)
        # The optimizer moves params and grads into flat buffers and rebinds the dict entries.
        self.optimizer = make_optimizer(
            cfg.optimizer, params, self.grads, cfg.momentum, cfg.weight_decay
        )

    def step(self, X: np.ndarray, labels: np.ndarray, lr: float) -> tuple[float, int]:
        """One update on batch X (m, d), labels (m,); returns (summed loss, correct count)."""
        m = len(X)
        W1, b1, W2, b2 = (self.params[name] for name in model.PARAM_NAMES)
        gW1, gb1, gW2, gb2 = (self.grads[name] for name in model.PARAM_NAMES)
        H, P, dH, active, rows = self.H[:m], self.P[:m], self.dH[:m], self.active[:m], self.rows[:m]

        # forward
        np.matmul(X, W1, out=H)
        H += b1
        np.greater(H, 0, out=active)
        H *= active  # ReLU (m, h); cheaper than np.maximum, and backward reuses the mask
        np.matmul(H, W2, out=P)
        P += b2  # logits (m, k)
        correct = int(np.count_nonzero(P.argmax(axis=1) == labels))

        # loss and fused softmax–cross-entropy gradient, in place in P
        P -= P.max(axis=1, keepdims=True)  # max-subtracted: exp cannot overflow
        loss_sum = -float(P[rows, labels].sum())
        np.exp(P, out=P)
        sums = P.sum(axis=1, keepdims=True)  # (m, 1), each >= 1
        loss_sum += float(np.log(sums).sum())
        P /= sums  # probs
        P[rows, labels] -= 1
        P *= 1 / m  # dlogits of the mean loss (m, k)

        # backward: dW = X.T @ dZ, db = dZ.sum(0), dX = dZ @ W.T per layer (no dX for layer 1)
        np.matmul(H.T, P, out=gW2)
        P.sum(axis=0, out=gb2)
        np.matmul(P, W2.T, out=dH)
        dH *= active  # ReLU passes gradient only where it was active (m, h)
        np.matmul(X.T, dH, out=gW1)
        dH.sum(axis=0, out=gb1)

        self.optimizer.step(lr)
        return loss_sum, correct


def evaluate(params: model.Params, X: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``params`` on X (n, d), labels (n,).

    The validation pass of every epoch: chunked, so memory stays bounded, and only these two
    numbers. ``metrics.evaluate_model`` scores the test set once and needs every logit for
    its confusion matrix and confidences; both take the loss from ``model.cross_entropy``.
    """
    loss_sum, correct = 0.0, 0
    for start in range(0, len(X), EVAL_CHUNK):
        _, logits = model.forward(params, X[start : start + EVAL_CHUNK])
        y = labels[start : start + EVAL_CHUNK]
        loss_sum += model.cross_entropy(logits, y) * len(y)
        correct += int(np.count_nonzero(logits.argmax(axis=1) == y))
    return loss_sum / len(X), correct / len(X)


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
    copies, drawn afresh; ``cfg.shift`` > 0 also translates every image by a whole number of
    pixels in ±``shift`` per axis, drawn afresh each epoch. ``on_epoch`` is called with each
    epoch's ``EpochStats`` as it ends (the train stage logs them with DVCLive). Raises
    ``TrainingDiverged`` if the loss stops being finite.
    """
    dtype = np.dtype(cfg.dtype)
    X = np.ascontiguousarray(x_train, dtype=dtype)  # (n, d)
    Xv = None if x_val is None or len(x_val) == 0 else np.ascontiguousarray(x_val, dtype=dtype)
    n, d = X.shape
    batch = n if cfg.batch_size == 0 else min(cfg.batch_size, n)
    steps_per_epoch = math.ceil(n / batch)
    total_steps = steps_per_epoch * cfg.epochs

    streams = Streams.from_seed(cfg.seed)
    params = model.init_params(
        streams.init, d, cfg.hidden_size, CLASSES, cfg.init, cfg.init_scale, dtype
    )
    trainer = Trainer(params, cfg, batch)
    batches = Batches(X, y_train, batch, pool, cfg.shift)

    history = []
    began = time.perf_counter()
    for epoch in range(cfg.epochs):
        order = streams.shuffle.permutation(n) if batch < n else None
        where = batches.draw(streams.augment, n)  # which version of each image, how moved
        loss_sum, correct = 0.0, 0
        with np.errstate(over="ignore", invalid="ignore"):  # divergence is checked below
            for i, (xb, yb) in enumerate(batches.epoch(order, where)):
                lr = learning_rate(
                    cfg.lr_schedule, cfg.lr, epoch * steps_per_epoch + i, total_steps
                )
                batch_loss, batch_correct = trainer.step(xb, yb, lr)
                if not math.isfinite(batch_loss):
                    raise TrainingDiverged(
                        f"training diverged in epoch {epoch + 1}/{cfg.epochs}: the loss "
                        f"became {batch_loss}. Lower train.lr (now {cfg.lr}) and rerun."
                    )
                loss_sum += batch_loss
                correct += batch_correct
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
    """One progress line, counting epochs from 1: losses, accuracies, learning rate, and
    time so far and left (from the mean epoch so far)."""
    width = len(str(epochs))
    done = s.epoch + 1
    line = f"epoch {done:>{width}}/{epochs}"
    line += f"  train loss {s.train_loss:.4f} acc {s.train_accuracy:.2%}"
    if s.val_loss is not None:
        line += f"  val loss {s.val_loss:.4f} acc {s.val_accuracy:.2%}"
    left = elapsed / done * (epochs - done)
    return (
        line + f"  lr {s.lr:.2e}  {format_duration(elapsed)} elapsed, {format_duration(left)} left"
    )


def format_duration(seconds: float) -> str:
    """``9.8s``, ``2m05s`` or ``1h02m``: short, and one format for every length."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"

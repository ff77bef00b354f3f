"""The pictures: training curves, confusion heatmaps, confident mistakes, learned weights.

Each function takes arrays and returns a matplotlib ``Figure`` of a fixed size; ``save_png``
writes one atomically. Figures are built with the object API (no ``pyplot``), so nothing
depends on a display or on global state, and the same inputs give the same PNG bytes.
Matplotlib is imported by the functions that draw, not with the module: ``PlotConfig`` lives
here, and `mnistnet check` should not wait a second for a library it does not use.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import Field

from mnistnet.data.mnist import SHAPE, SIDE
from mnistnet.evaluation.history import METRICS
from mnistnet.nn.batches import Batches
from mnistnet.nn.model import init_params
from mnistnet.nn.streams import Streams
from mnistnet.pipeline.config import Section
from mnistnet.pipeline.errors import ConfigError
from mnistnet.pipeline.storage import atomic_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _figure(**kwargs) -> Figure:
    from matplotlib.figure import Figure

    return Figure(**kwargs)


MAX_UNITS_SHOWN = 256  # weight images in one figure: 16 rows of 16


class PlotConfig(Section):
    """Section ``plot``: the PNG figures of the plot stage."""

    # The bounds keep every figure near 100 million pixels at the largest dpi: whatever
    # `mnistnet check` accepts, the plot stage can draw.
    dpi: int = Field(100, ge=20, le=600, description="pixels per inch of every PNG")
    misclassified: int = Field(36, ge=1, le=100, description="most confident test mistakes to show")
    hidden_units: int = Field(
        0,
        ge=0,
        le=MAX_UNITS_SHOWN,
        description=f"first-layer weight images to show; 0 = the first {MAX_UNITS_SHOWN} units",
    )


def save_png(fig: Figure, path: str | os.PathLike, dpi: int) -> None:
    """Write ``fig`` as PNG atomically; no software version stamped in, so bytes are stable."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, metadata={"Software": None})


EXAMPLES = 8  # training images shown as the network sees them
EPOCHS_SHOWN = 8  # successive epochs of each
UNLEARNED = 0.9  # a unit whose weights keep this much of their start learned nothing


def figures(
    cfg: PlotConfig,
    params: dict,
    meta: dict,
    folders: dict[str, str],
    variants: list[str],
    x_test: np.ndarray,
    train: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> dict[str, Figure]:
    """Every figure of the plot stage by file name: the trained ``params`` (``meta``: the
    model file's), the stages' ``folders`` (``live``: DVCLive's log, ``eval``,
    ``robustness`` with its ``variants``), the test images, and ``train``: the training
    images, their labels and the pool of distorted copies."""
    hidden = params["W1"].shape[1]
    if cfg.hidden_units > hidden:
        raise ConfigError(
            f"plot.hidden_units: got {cfg.hidden_units}, but the model has {hidden} hidden "
            f"units; choose at most {hidden}, or 0 for all."
        )
    cm = load_confusion(Path(folders["eval"]) / "classes.json")
    mistakes = load_misclassified(Path(folders["eval"]) / "misclassified.csv", cfg.misclassified)
    trained = meta["train"]  # the settings that made the model
    x_train, y_train, pool = train
    x, y = x_train[:EXAMPLES], y_train[:EXAMPLES]
    views = epoch_views(x, y, pool[:, :EXAMPLES], trained["shift"], EPOCHS_SHOWN)
    # its start, redrawn: a unit whose weights stayed near it learned nothing
    init = Streams.from_seed(trained["seed"]).init
    k, W1 = params["W2"].shape[1], params["W1"]
    start = init_params(init, len(W1), hidden, k, trained["init"], trained["init_scale"], W1.dtype)
    unlearned = cosine_to_start(W1, start["W1"]) >= UNLEARNED
    units = slice(0, cfg.hidden_units or MAX_UNITS_SHOWN)
    robustness = load_robustness(folders["robustness"], variants)
    x_wrong = x_test[mistakes["index"]].reshape(-1, *SHAPE)
    return {
        "training_curves.png": training_curves(read_log(folders["live"])),
        "confusion_matrix.png": confusion_heatmaps(cm),
        "misclassified.png": misclassified_grid(
            x_wrong, mistakes["true"], mistakes["predicted"], mistakes["confidence"]
        ),
        "first_layer_weights.png": weight_images(W1[:, units], unlearned[units], hidden),
        "per_class_accuracy.png": per_class_accuracy(cm),
        "augmented_examples.png": augmented_examples(views, len(pool), trained["shift"]),
        "robustness.png": robustness_bars({v: s["accuracy"] for v, s in robustness.items()}),
    }


def robustness_table(folder: str | os.PathLike, variants: list[str]) -> str:
    """Accuracy and loss per variant as CSV, for ``dvc plots``."""
    rows = [
        f"{v},{s['accuracy']},{s['loss']}\n" for v, s in load_robustness(folder, variants).items()
    ]
    return "variant,accuracy,loss\n" + "".join(rows)


def read_log(folder: str | os.PathLike) -> dict[str, list]:
    """The train stage's DVCLive log in ``folder`` as columns: ``epoch`` and each
    ``history.METRICS`` field, a value per epoch (None for a metric not logged, such as
    val/ without a validation split)."""
    folder = Path(folder) / "plots" / "metrics"
    columns: dict[str, list] = {}
    for field, name in METRICS.items():
        path = folder / f"{name}.tsv"
        if path.is_file():
            with open(path, encoding="utf-8", newline="") as f:
                rows = list(csv.DictReader(f, delimiter="\t"))
            columns["epoch"] = [int(row["step"]) for row in rows]
            columns[field] = [float(row[os.path.basename(name)]) for row in rows]
    epochs = len(columns["epoch"])
    return {"epoch": columns["epoch"], **{f: columns.get(f, [None] * epochs) for f in METRICS}}


def training_curves(history: dict[str, list]) -> Figure:
    """Loss (log scale) and accuracy per epoch, train and validation side by side.

    ``history`` maps ``epoch`` and each metric to a list (``read_log``); validation
    values are None where there was no validation split.
    """
    fig = _figure(figsize=(11, 4.2), layout="constrained")
    loss_ax, acc_ax = fig.subplots(1, 2)
    epochs = history["epoch"]
    for split, style in (("train", "-"), ("val", "--")):
        loss, acc = history[f"{split}_loss"], history[f"{split}_accuracy"]
        if all(v is None for v in loss):
            continue
        label = "training" if split == "train" else "validation"
        loss_ax.plot(epochs, loss, style, marker="o", markersize=3, label=label)
        acc_ax.plot(epochs, [100 * a for a in acc], style, marker="o", markersize=3, label=label)
    loss_ax.set(
        title="Cross-entropy loss",
        xlabel="epoch (counted from 0)",
        ylabel="loss (log scale)",
        yscale="log",
    )
    acc_ax.set(title="Accuracy", xlabel="epoch (counted from 0)", ylabel="accuracy (%)")
    for ax in (loss_ax, acc_ax):  # epochs are whole numbers: no 2.5 on the axis
        ax.xaxis.set_major_locator(_integer_ticks())
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("Training curves")
    return fig


def confusion_heatmaps(cm: np.ndarray) -> Figure:
    """The confusion matrix twice: raw counts, and each row as a percentage of its class."""
    fig = _figure(figsize=(14, 6.4), layout="constrained")
    count_ax, pct_ax = fig.subplots(1, 2)
    totals = cm.sum(axis=1, keepdims=True)
    percent = np.divide(100 * cm, totals, out=np.zeros(cm.shape), where=totals > 0)
    _heatmap(count_ax, cm, [str(v) for v in cm.ravel()], "Counts")
    _heatmap(pct_ax, percent, [f"{v:.1f}" for v in percent.ravel()], "Row-normalized (% of class)")
    fig.suptitle(f"Confusion matrix on {int(cm.sum())} test images (rows: true digit)")
    return fig


def _heatmap(ax, values: np.ndarray, labels: list[str], title: str) -> None:
    k = len(values)
    # A log-like stretch: the diagonal is ~1000x the off-diagonal cells, which would
    # otherwise all look white.
    shade = np.sqrt(values / values.max()) if values.max() > 0 else values
    ax.imshow(shade, cmap="Blues", vmin=0, vmax=1)
    for (i, j), text in zip(np.ndindex(values.shape), labels, strict=True):
        # in_layout=False: inside the axes, so the layout need not measure all 100 of them
        ax.text(
            j,
            i,
            text,
            ha="center",
            va="center",
            fontsize=8,
            in_layout=False,
            color="white" if shade[i, j] > 0.6 else "black",
        )
    ax.set(
        title=title, xlabel="predicted digit", ylabel="true digit", xticks=range(k), yticks=range(k)
    )


def misclassified_grid(
    images: np.ndarray, true: np.ndarray, predicted: np.ndarray, confidence: np.ndarray
) -> Figure:
    """Mistakes as a grid of digits, each titled ``true → predicted (confidence)``.

    ``images`` (m, 28, 28) in [0, 1]; ``true``, ``predicted`` (m,) ints; ``confidence`` (m,).
    One mosaic and one ``imshow``, the titles drawn as text above each tile.
    """
    cols, gap = 6, 10
    rows = max(1, math.ceil(len(images) / cols))
    side = SIDE + gap
    mosaic = np.pad(_mosaic(images, rows, cols, gap), ((gap, 0), (0, 0)), constant_values=np.nan)
    width = cols * 1.6  # inches; the height follows the mosaic's shape, plus the title
    fig = _figure(
        figsize=(width, round(width * mosaic.shape[0] / mosaic.shape[1] + 0.6, 1)),
        layout="constrained",
    )
    ax = fig.subplots()
    ax.imshow(mosaic, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    for i, (t, p, c) in enumerate(zip(true, predicted, confidence, strict=True)):
        r, col = divmod(i, cols)
        ax.text(
            col * side + SIDE / 2,
            r * side + gap - 1.5,
            f"{t} → {p} ({c:.1%})",
            ha="center",
            va="bottom",
            fontsize=9,
            color="firebrick",
            in_layout=False,
        )
    ax.axis("off")
    fig.suptitle("Most confident mistakes on the test set: true → predicted (confidence)")
    return fig


def cosine_to_start(W: np.ndarray, W_start: np.ndarray) -> np.ndarray:
    """float (h,): per unit (column), the cosine between its weights and its initial ones.

    Near 1: the unit's weights are still their random start, at most shrunk by weight decay,
    so it learned nothing (typically a ReLU that gradients rarely reach); a unit that learned
    has a pattern of its own and a much lower cosine.
    """
    dot = (W * W_start).sum(axis=0, dtype=np.float64)
    norms = np.linalg.norm(W, axis=0) * np.linalg.norm(W_start, axis=0)
    return np.divide(dot, norms, out=np.zeros_like(dot), where=norms > 0)


def weight_images(
    W1: np.ndarray, unlearned: np.ndarray | None = None, total: int | None = None
) -> Figure:
    """Each hidden unit's 784 input weights (d, h) as a 28×28 image: red +, blue −.

    Each tile is scaled by its unit's largest absolute weight (the colour bar's unit), so
    white is exactly zero. ``unlearned`` (h,) bool marks the units whose weights are still
    their random start (``cosine_to_start``): they get a black frame and are counted in the
    title; ``total`` is the layer's unit count when W1 shows only its first units. The tiles
    form one mosaic drawn by a single ``imshow`` (one axes per unit would
    make this the slowest figure by far).
    """
    units = W1.shape[1]
    cols = 16 if units > 32 else 8
    rows = math.ceil(units / cols)
    limits = np.abs(W1).max(axis=0)  # per unit, symmetric: white is exactly zero
    tiles = (W1 / np.where(limits > 0, limits, 1)).T.reshape(units, *SHAPE)  # in [-1, 1]
    gap = 2
    mosaic = _mosaic(tiles, rows, cols, gap)
    fig = _figure(figsize=(cols * 0.9 + 1.0, rows * 0.9 + 0.9), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(mosaic, cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
    ax.axis("off")
    bar = fig.colorbar(image, ax=ax, shrink=min(1.0, 3 / rows + 0.2), pad=0.01)
    bar.set_label("weight ÷ the unit's largest |weight|")
    title = f"First-layer weights of {units} hidden units (red: excites, blue: inhibits)"
    if total is not None and total > units:
        title = title.replace(f"of {units} hidden", f"of the first {units} of {total} hidden")
    if unlearned is not None:
        for i in np.flatnonzero(unlearned):
            r, c = divmod(int(i), cols)
            corner = (c * (SIDE + gap) - 1, r * (SIDE + gap) - 1)  # in the gap round the tile
            ax.add_patch(
                _rectangle(
                    corner,
                    SIDE + 1,
                    SIDE + 1,
                    fill=False,
                    edgecolor="black",
                    linewidth=1.5,
                    clip_on=False,
                )
            )
        title += (
            f"\n{int(unlearned.sum())} of {units} never learned (framed): their weights are "
            f"still their random start"
        )
    fig.suptitle(title)
    return fig


def _mosaic(tiles: np.ndarray, rows: int, cols: int, gap: int) -> np.ndarray:
    """Tiles (m, s, s) laid out row by row with ``gap`` pixels between; gaps are NaN."""
    side = tiles.shape[1] + gap
    mosaic = np.full((rows * side - gap, cols * side - gap), np.nan)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        mosaic[r * side : r * side + tile.shape[0], c * side : c * side + tile.shape[1]] = tile
    return mosaic


def per_class_accuracy(cm: np.ndarray) -> Figure:
    """Bar per digit: the share of its test images classified correctly."""
    totals = cm.sum(axis=1)
    accuracy = 100 * np.divide(np.diag(cm), totals, out=np.zeros(len(cm)), where=totals > 0)
    fig = _figure(figsize=(8, 4.2), layout="constrained")
    ax = fig.subplots()
    bars = ax.bar(range(len(cm)), accuracy, color="steelblue")
    ax.bar_label(bars, labels=[f"{a:.1f}" for a in accuracy], fontsize=8, padding=2)
    low = max(0.0, math.floor(accuracy.min() / 5) * 5 - 5)
    ax.set(
        title="Per-class accuracy on the test set (recall)",
        xlabel="digit",
        ylabel=f"accuracy (%), axis from {low:.0f}",
        xticks=range(len(cm)),
        ylim=(low, 101),
    )
    ax.grid(axis="y", alpha=0.3)
    return fig


def robustness_bars(accuracy: dict[str, float]) -> Figure:
    """A bar per variant of the test set (``evaluation.robustness``): the model's accuracy
    on it, in percent, in the order given."""
    names = list(accuracy)
    values = [100 * accuracy[name] for name in names]
    fig = _figure(figsize=(8, 0.45 * len(names) + 1.2), layout="constrained")
    ax = fig.subplots()
    bars = ax.barh(names, values, color="steelblue")
    ax.bar_label(bars, labels=[f"{v:.1f} %" for v in values], fontsize=9, padding=3)
    ax.invert_yaxis()  # the first variant (clean) on top
    ax.set(
        title="Accuracy on variants of the test set, and on your own digits",
        xlabel="accuracy (%)",
        xlim=(0, 109),
    )
    ax.grid(axis="x", alpha=0.3)
    return fig


def load_robustness(folder: str | os.PathLike, variants: list[str]) -> dict[str, dict]:
    """Each variant's ``accuracy`` and ``loss`` from the robustness stage's files."""
    scores = {}
    for variant in variants:
        path = Path(folder) / f"{variant}.json"
        scores[variant] = json.loads(path.read_text(encoding="utf-8"))["robustness"][variant]
    return scores


# --- reading the files the pictures are drawn from ----------------------------------------


def load_confusion(path: str | os.PathLike) -> np.ndarray:
    """The (k, k) confusion counts from the evaluate stage's ``classes.json``."""
    return np.array(json.loads(Path(path).read_text(encoding="utf-8"))["confusion_matrix"])


def load_misclassified(path: str | os.PathLike, limit: int) -> dict[str, np.ndarray]:
    """The first ``limit`` rows of ``misclassified.csv`` as arrays (index, true, predicted…)."""
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(itertools.islice(csv.DictReader(f), limit))
    return {
        "index": np.array([int(r["index"]) for r in rows], dtype=np.int64),
        "true": np.array([int(r["true"]) for r in rows], dtype=np.int64),
        "predicted": np.array([int(r["predicted"]) for r in rows], dtype=np.int64),
        "confidence": np.array([float(r["confidence"]) for r in rows]),
    }


def epoch_views(
    x: np.ndarray, labels: np.ndarray, pool: np.ndarray | None, shift: int, epochs: int
) -> np.ndarray:
    """Images x (m, d) as ``nn.batches.Batches`` shows them in ``epochs`` successive epochs: float
    (m, epochs, d). Drawn with a fixed seed: a picture of what training sees, not a replay."""
    batches = Batches(x, labels, len(x), pool, shift)
    rng = np.random.default_rng(0)
    order = np.arange(len(x))
    views = [next(batches.epoch(order, batches.draw(rng, len(x))))[0].copy() for _ in range(epochs)]
    return np.stack(views, axis=1)  # (m, epochs, d)


def augmented_examples(views: np.ndarray, copies: int, shift: int) -> Figure:
    """What the network sees: each training image (row) as shown in successive epochs.

    ``views`` (m, epochs, 784) in [0, 1], from ``epoch_views`` over a pool of ``copies``
    distorted copies with per-epoch shifts up to ``shift`` pixels.
    """
    m, epochs = views.shape[:2]
    gap = 2
    mosaic = _mosaic(views.reshape(-1, *SHAPE), m, epochs, gap)
    fig = _figure(figsize=(epochs * 0.8 + 0.4, m * 0.8 + 1.2), layout="constrained")
    ax = fig.subplots()
    ax.imshow(mosaic, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks(
        [e * (SIDE + gap) + SIDE / 2 for e in range(epochs)],
        [f"epoch {e + 1}" for e in range(epochs)],
        fontsize=8,
    )
    ax.xaxis.set_ticks_position("top")
    ax.tick_params(length=0)
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    moved = f"moved by up to ±{shift} px" if shift else "unmoved"
    if copies:
        what = f"each as itself or one of {copies} distorted copies, {moved}"
    else:
        what = f"each {moved}" if shift else "augmentation is off"
    fig.suptitle(f"Training images in {epochs} successive epochs\n({what})", fontsize=10)
    return fig


def _integer_ticks():
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def _rectangle(*args, **kwargs):
    from matplotlib.patches import Rectangle

    return Rectangle(*args, **kwargs)

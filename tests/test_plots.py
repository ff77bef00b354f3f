"""Every plot is a valid PNG of the expected size, reproducible, from realistic inputs."""

import struct

import numpy as np
import pytest

from mnistnet.evaluation import plots
from mnistnet.pipeline.config import from_mapping
from mnistnet.pipeline.errors import ConfigError


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.fixture
def cm():
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 5, (10, 10))
    np.fill_diagonal(counts, rng.integers(900, 1100, 10))
    return counts


def test_each_figure_is_a_png_of_its_fixed_size(tmp_path, cm):
    history = {
        "epoch": [0, 1, 2],
        "train_loss": [0.5, 0.2, 0.1],
        "train_accuracy": [0.9, 0.95, 0.97],
        "val_loss": [None, None, None],
        "val_accuracy": [None, None, None],
        "lr": [0.1] * 3,
    }
    rng = np.random.default_rng(0)
    figures = {
        "curves.png": (plots.training_curves(history), (1100, 420)),
        "cm.png": (plots.confusion_heatmaps(cm), (1400, 640)),
        "mistakes.png": (
            plots.misclassified_grid(
                rng.random((8, 28, 28)), np.arange(8), np.arange(8)[::-1], np.full(8, 0.9)
            ),
            (960, 390),  # height follows the mosaic: 2 rows of 6
        ),
        "weights.png": (plots.weight_images(rng.standard_normal((784, 20))), (820, 360)),
        "per_class.png": (plots.per_class_accuracy(cm), (800, 420)),
    }
    for name, (fig, size) in figures.items():
        plots.save_png(fig, tmp_path / name, dpi=100)
        assert png_size(tmp_path / name) == size, name
    plots.save_png(plots.per_class_accuracy(cm), tmp_path / "again.png", dpi=100)
    assert (tmp_path / "again.png").read_bytes() == (tmp_path / "per_class.png").read_bytes()


def test_plot_config_ranges():
    with pytest.raises(ConfigError, match=r"plot\.dpi: .* \(got 5\)"):
        from_mapping(plots.PlotConfig, {"dpi": 5}, "plot")
    with pytest.raises(ConfigError, match=r"plot\.misclassified: .* \(got 0\)"):
        from_mapping(plots.PlotConfig, {"misclassified": 0}, "plot")


def test_the_weights_figure_counts_and_frames_the_units_that_never_learned():
    W1 = np.random.default_rng(0).standard_normal((784, 20))
    unlearned = np.zeros(20, bool)
    unlearned[[3, 17]] = True
    fig = plots.weight_images(W1, unlearned)
    assert "2 of 20 never learned (framed)" in fig._suptitle.get_text()
    (ax, bar) = fig.axes  # the mosaic and its colour scale
    assert len(ax.patches) == 2 and "largest |weight|" in bar.get_ylabel()


def test_the_augmentation_figure_labels_each_column_with_its_epoch():
    views = np.random.default_rng(0).random((3, 5, 784))
    fig = plots.augmented_examples(views, copies=4, shift=1)
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels == [f"epoch {e}" for e in range(1, 6)]


def test_cosine_to_start_tells_a_unit_that_never_learned():
    rng = np.random.default_rng(0)
    start = rng.standard_normal((784, 3))
    now = np.stack([0.3 * start[:, 0], rng.standard_normal(784), start[:, 2] + 5], axis=1)
    kept = plots.cosine_to_start(now, start)
    assert kept[0] == pytest.approx(1.0)  # only shrunk (weight decay): learned nothing
    assert abs(kept[1]) < 0.2  # a pattern of its own
    assert 0 < kept[2] < 0.5


def test_whatever_check_accepts_the_largest_figures_stay_bounded():
    """plot.* at their limits (600 dpi, 100 mistakes, 256 weight images of a wider layer):
    each figure stays near 100 million pixels (400 MB as RGBA), so the plot stage cannot run
    out of memory after the training time was spent."""
    rng = np.random.default_rng(0)
    biggest = {
        "weights": plots.weight_images(rng.standard_normal((784, 256)), total=65_536),
        "mistakes": plots.misclassified_grid(
            rng.random((100, 28, 28)), np.zeros(100, int), np.ones(100, int), np.ones(100)
        ),
    }
    for name, fig in biggest.items():
        width, height = fig.get_size_inches() * 600
        assert width * height < 120e6, (name, width, height)
    assert "first 256 of 65536 hidden units" in biggest["weights"]._suptitle.get_text()

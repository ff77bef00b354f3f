"""Stage `plot`: draw the training curves, confusion matrix, mistakes and learned weights."""

import _venv  # noqa: F401  a clear error when run outside .venv
from mnistnet.pipeline.numerics import pin

pin()  # before NumPy loads: the same bytes on every AVX2 x86-64 CPU (pipeline/numerics.py)

import argparse
from pathlib import Path

from mnistnet.data.augment import load_pool
from mnistnet.data.mnist import CLASSES, PIXELS, SHAPE
from mnistnet.data.preprocess import load_split
from mnistnet.evaluation import history, plots
from mnistnet.nn.checkpoint import load_model
from mnistnet.nn.model import init_params
from mnistnet.nn.streams import Streams
from mnistnet.pipeline.config import load_section
from mnistnet.pipeline.errors import ConfigError
from mnistnet.pipeline.stage import run
from mnistnet.pipeline.storage import write_text

EXAMPLES = 8  # training images shown as the network sees them
EPOCHS_SHOWN = 8  # successive epochs of each
UNLEARNED = 0.9  # a unit whose weights keep this much of their start learned nothing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml", help="params file")
    parser.add_argument("--live", required=True, help="DVCLive's log from the train stage")
    parser.add_argument("--eval", required=True, help="folder written by the evaluate stage")
    parser.add_argument("--test", required=True, help="processed test split (.npz)")
    parser.add_argument("--train", required=True, help="processed training split (.npz)")
    parser.add_argument("--model", required=True, help="model file from the train stage")
    parser.add_argument("--pool", required=True, help="distorted copies from the augment stage")
    parser.add_argument("--robustness", required=True, help="the robustness stage's folder")
    parser.add_argument("--variant", nargs="+", required=True, help="the variants dvc.yaml runs")
    parser.add_argument("--table", required=True, help="accuracy per variant (.csv) to write")
    parser.add_argument("--out", required=True, help="folder for the PNG files")
    args = parser.parse_args()

    cfg = load_section(args.params, "plot", plots.PlotConfig)
    params, meta = load_model(args.model, trusted=True)  # the train stage's
    hidden = params["W1"].shape[1]
    if cfg.hidden_units > hidden:
        raise ConfigError(
            f"plot.hidden_units: got {cfg.hidden_units}, but the model has {hidden} hidden "
            f"units; choose at most {hidden}, or 0 for all."
        )
    cm = plots.load_confusion(Path(args.eval) / "classes.json")
    mistakes = plots.load_misclassified(Path(args.eval) / "misclassified.csv", cfg.misclassified)
    x_test, _ = load_split(args.test)
    x_train, y_train = load_split(args.train)
    pool, _ = load_pool(args.pool, len(x_train))
    shift = meta["train"].get("shift", 0)  # what the model was trained with
    # what the network sees: a few training images in successive epochs
    views = plots.epoch_views(
        x_train[:EXAMPLES], y_train[:EXAMPLES], pool[:, :EXAMPLES], shift, EPOCHS_SHOWN
    )
    trained = meta["train"]  # the settings that made the model: its start can be redrawn
    start = init_params(
        Streams.from_seed(trained["seed"]).init,
        PIXELS,
        hidden,
        CLASSES,
        trained["init"],
        trained["init_scale"],
        params["W1"].dtype,
    )
    unlearned = plots.cosine_to_start(params["W1"], start["W1"]) >= UNLEARNED
    units = slice(0, cfg.hidden_units or plots.MAX_UNITS_SHOWN)

    figures = {
        "training_curves.png": plots.training_curves(history.read(args.live)),
        "confusion_matrix.png": plots.confusion_heatmaps(cm),
        "misclassified.png": plots.misclassified_grid(
            x_test[mistakes["index"]].reshape(-1, *SHAPE),
            mistakes["true"],
            mistakes["predicted"],
            mistakes["confidence"],
        ),
        "first_layer_weights.png": plots.weight_images(
            params["W1"][:, units], unlearned[units], hidden
        ),
        "per_class_accuracy.png": plots.per_class_accuracy(cm),
        "augmented_examples.png": plots.augmented_examples(views, len(pool), shift),
    }
    robustness = plots.load_robustness(args.robustness, args.variant)
    figures["robustness.png"] = plots.robustness_bars(
        {variant: s["accuracy"] for variant, s in robustness.items()}
    )
    rows = [f"{v},{s['accuracy']},{s['loss']}\n" for v, s in robustness.items()]
    write_text(args.table, "variant,accuracy,loss\n" + "".join(rows))  # for dvc plots
    for name, fig in figures.items():
        plots.save_png(fig, Path(args.out) / name, cfg.dpi)


if __name__ == "__main__":
    run(main)

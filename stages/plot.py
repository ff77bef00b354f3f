"""Stage `plot`: draw the training curves, confusion matrix, mistakes and learned weights."""

import _venv  # noqa: F401  a clear error when run outside .venv
from mnistnet.pipeline.numerics import pin

pin()  # before NumPy loads: the same bytes on every AVX2 x86-64 CPU (pipeline/numerics.py)

import argparse
from pathlib import Path

from mnistnet.data.splits import load_pool, load_split
from mnistnet.evaluation import plots
from mnistnet.nn import checkpoint
from mnistnet.pipeline.config import load_section
from mnistnet.pipeline.stage import run
from mnistnet.pipeline.storage import load_npz, write_text


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
    arrays = load_npz(args.model, checkpoint.SCHEMA, checkpoint.FIX)  # the train stage's
    params, meta = checkpoint.from_arrays(arrays, args.model)
    train = (*load_split(args.train), load_pool(args.pool)[0])
    folders = {"live": args.live, "eval": args.eval, "robustness": args.robustness}
    x_test, _ = load_split(args.test)
    for name, fig in plots.figures(cfg, params, meta, folders, args.variant, x_test, train).items():
        plots.save_png(fig, Path(args.out) / name, cfg.dpi)
    write_text(args.table, plots.robustness_table(args.robustness, args.variant))  # dvc plots


if __name__ == "__main__":
    run(main)

"""Stage `robustness`: score the trained model on one variant of the test set (dvc.yaml runs
it once per variant, a `matrix`)."""

import _venv  # noqa: F401  a clear error when run outside .venv
from mnistnet.pipeline.numerics import pin

pin()  # before NumPy loads: the same bytes on every AVX2 x86-64 CPU (pipeline/numerics.py)

import argparse

from mnistnet.data.images import read_labelled_folder
from mnistnet.data.splits import load_split
from mnistnet.evaluation.metrics import evaluate_model
from mnistnet.evaluation.robustness import RobustnessConfig, scores, vary
from mnistnet.nn import checkpoint
from mnistnet.pipeline.config import load_section
from mnistnet.pipeline.stage import log, run
from mnistnet.pipeline.storage import load_npz, write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml", help="params file")
    parser.add_argument("--variant", required=True, choices=list(RobustnessConfig.model_fields))
    parser.add_argument("--model", required=True, help="model file from the train stage")
    parser.add_argument("--test", required=True, help="processed test split (.npz)")
    parser.add_argument("--own", required=True, help="your own digits: a folder per digit")
    parser.add_argument("--out", required=True, help="metrics file (.json) to write")
    args = parser.parse_args()

    cfg = load_section(args.params, "robustness", RobustnessConfig)
    arrays = load_npz(args.model, checkpoint.SCHEMA, checkpoint.FIX)  # the train stage's
    params, _ = checkpoint.from_arrays(arrays, args.model)
    if args.variant == "own":
        x, y = read_labelled_folder(args.own)
    else:
        x, y = load_split(args.test)
        x = vary(x, args.variant, cfg)
    result = evaluate_model(params, x, y)
    write_json(args.out, scores(result, args.variant))
    log(f"{args.variant}: accuracy {result['accuracy']:.2%} on {len(y):,} images")


if __name__ == "__main__":
    run(main)

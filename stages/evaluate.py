"""Stage `evaluate`: score the trained model on the test split; write metrics and mistakes."""

import _venv  # noqa: F401  a clear error when run outside .venv
from mnistnet.pipeline.numerics import pin

pin()  # before NumPy loads: the same bytes on every AVX2 x86-64 CPU (pipeline/numerics.py)

import argparse
from pathlib import Path

from mnistnet.data.splits import load_split
from mnistnet.evaluation.metrics import (
    classes_report,
    confusion_rows_csv,
    evaluate_model,
    metrics_json,
    misclassified_csv,
)
from mnistnet.nn import checkpoint
from mnistnet.pipeline.errors import DataError
from mnistnet.pipeline.stage import log, run
from mnistnet.pipeline.storage import load_npz, write_json, write_text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="model file from the train stage")
    parser.add_argument("--test", required=True, help="processed test split (.npz)")
    parser.add_argument("--out", required=True, help="folder for the evaluation files")
    args = parser.parse_args()

    arrays = load_npz(args.model, checkpoint.SCHEMA, checkpoint.FIX)  # the train stage's
    params, _ = checkpoint.from_arrays(arrays, args.model)
    x_test, y_test = load_split(args.test)
    try:
        result = evaluate_model(params, x_test, y_test)
    except DataError as e:
        raise DataError(f"{args.model}: {e}") from e

    out = Path(args.out)
    write_json(out / "metrics.json", metrics_json(result))
    write_json(out / "classes.json", classes_report(result))
    write_text(out / "confusion.csv", confusion_rows_csv(y_test, result["predicted"]))
    write_text(out / "misclassified.csv", misclassified_csv(y_test, result))
    log(f"test accuracy {result['accuracy']:.2%}, loss {result['loss']:.4f}")


if __name__ == "__main__":
    run(main)

"""Stage `preprocess`: flatten, scale to [0, 1], one-hot, and hold out a validation split."""

import _venv  # noqa: F401  a clear error when run outside .venv
from mnistnet.pipeline.numerics import pin

pin()  # before NumPy loads: the same bytes on every AVX2 x86-64 CPU (pipeline/numerics.py)

import argparse
from pathlib import Path

from mnistnet.data.preprocess import PreprocessConfig, load_raw, preprocess
from mnistnet.pipeline.config import load_section
from mnistnet.pipeline.stage import log, run
from mnistnet.pipeline.storage import save_npz


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml", help="params file")
    parser.add_argument("--raw", required=True, help="raw arrays from the download stage")
    parser.add_argument("--out", required=True, help="folder for train/val/test .npz files")
    args = parser.parse_args()

    cfg = load_section(args.params, "preprocess", PreprocessConfig)
    splits = preprocess(load_raw(args.raw), cfg)
    for name, arrays in splits.items():
        save_npz(Path(args.out) / f"{name}.npz", arrays)
        log(f"{name}: {len(arrays['x'])} images")


if __name__ == "__main__":
    run(main)

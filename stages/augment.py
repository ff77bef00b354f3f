"""Stage `augment`: distorted copies of the training images, made once and cached by DVC."""

import _venv  # noqa: F401  a clear error when run outside .venv
from mnistnet.pipeline.numerics import pin

pin()  # before NumPy loads: the same bytes on every AVX2 x86-64 CPU (pipeline/numerics.py)

import argparse

from mnistnet.data.augment import AugmentConfig, check_memory, make_pool, save_pool
from mnistnet.data.splits import load_split, split_meta
from mnistnet.pipeline.config import load_section
from mnistnet.pipeline.stage import log, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml", help="params file")
    parser.add_argument("--train", required=True, help="processed training split (.npz)")
    parser.add_argument("--out", required=True, help="pool of distorted copies (.npz) to write")
    args = parser.parse_args()

    cfg = load_section(args.params, "augment", AugmentConfig)
    x_train, _ = load_split(args.train)
    check_memory(cfg, len(x_train))
    log(f"{cfg.copies} distorted copies of {len(x_train)} training images")
    pool = make_pool(x_train, cfg, log)
    save_pool(args.out, pool, cfg, split_meta(args.train))


if __name__ == "__main__":
    run(main)

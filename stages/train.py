"""Stage `train`: fit the network on the processed training split; save the model, and log
every epoch with DVCLive."""

import _venv  # noqa: F401  a clear error when run outside .venv
from mnistnet.pipeline.numerics import pin

pin()  # before NumPy loads: the same bytes on every AVX2 x86-64 CPU (pipeline/numerics.py)

import argparse
import time
from pathlib import Path

from mnistnet.data.mnist import CLASSES
from mnistnet.data.splits import load_pool, load_split, split_meta
from mnistnet.evaluation import history
from mnistnet.nn import checkpoint
from mnistnet.nn.config import TrainConfig, check_memory, format_duration, format_epoch
from mnistnet.nn.train import train
from mnistnet.pipeline.config import load_section
from mnistnet.pipeline.stage import log, run
from mnistnet.pipeline.storage import npz_shape, save_npz


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml", help="params file")
    parser.add_argument("--data", required=True, help="folder with train.npz and val.npz")
    parser.add_argument("--pool", required=True, help="distorted copies from the augment stage")
    parser.add_argument("--model", required=True, help="model file (.npz) to write")
    parser.add_argument("--live", required=True, help="folder for DVCLive's per-epoch log")
    args = parser.parse_args()

    cfg = load_section(args.params, "train", TrainConfig)
    x_train, y_train = load_split(Path(args.data) / "train.npz")
    x_val, y_val = load_split(Path(args.data) / "val.npz")
    copies = (npz_shape(args.pool, "pool") or (0,))[0]  # from its header, before loading it
    check_memory(cfg, len(x_train), len(x_val), copies, x_train.shape[1], CLASSES)
    pool, pool_meta = load_pool(args.pool)
    log(
        f"training on {len(x_train)} images{augmentation(len(pool), cfg.shift)}, "
        f"validating on {len(x_val)}"
    )
    began = time.perf_counter()

    def epoch_done(stats):  # a progress line, and DVCLive's log
        log(format_epoch(stats, cfg.epochs, time.perf_counter() - began))
        history.log_epoch(live, stats)

    with history.logging_to(args.live) as live:
        params, _ = train(
            cfg, x_train, y_train, x_val, y_val, pool, on_epoch=epoch_done, classes=CLASSES
        )
    log(f"trained {cfg.epochs} epochs in {format_duration(time.perf_counter() - began)}")
    meta = {"train": cfg.model_dump(), "data": split_meta(Path(args.data) / "train.npz")}
    save_npz(args.model, checkpoint.to_arrays(params, {**meta, "augment": pool_meta["augment"]}))


def augmentation(copies: int, shift: int) -> str:
    """How each epoch shows an image, for the first log line."""
    parts = [f"as itself or one of {copies} distorted copies"] if copies else []
    parts += [f"moved by up to {shift} px"] if shift else []
    return ", each " + " and ".join(parts) if parts else ""


if __name__ == "__main__":
    run(main)

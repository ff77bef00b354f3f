"""Training speed: an epoch of the default recipe against the matmul-only bound.

Run with `make bench` (or `python bench/bench_train.py --json`). On the processed training
split when `data/processed` exists (run `make run` first), else on synthetic digits with
MNIST's blank border (what makes some gradients exactly zero); batch 128, hidden 128, float32.
Each number comes from a process of its own, the variants taking turns, and is the median
epoch after the first few (a weight's subnormal floats build up over epochs):

- bound:   the five matrix products of every step and nothing else (the floor);
- train:   ``train()`` with the default params, as the train stage runs it: shuffled and
           shifted batches, forward, loss, backward, update, the validation pass;
- train, unshifted: the same with ``train.shift=0`` (no augmentation);
- plain:   the same math written the obvious way: fancy-indexed batches and
           ``model.loss_and_grads``, a new array for everything, momentum in a dict.

`--against REV` also times the train variants of another git revision (checked out into a
temporary worktree), so a before and an after come from one run on one machine. `--json`
prints one JSON object instead of a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data/processed"

# One measurement in a fresh process: argv = mode, epochs, data folder, overrides as JSON.
# Prints the seconds of each epoch as a JSON list.
CHILD = r"""
import json, sys, time
try:
    from mnistnet.pipeline.numerics import pin
except ImportError:  # a revision from before the folders: importing the package pins
    import mnistnet
else:
    pin()
import numpy as np

mode, epochs, data, overrides = sys.argv[1], int(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
try:
    from mnistnet.nn import model
    from mnistnet.nn.train import TrainConfig, train
    from mnistnet.pipeline.numerics import apply
except ImportError:
    from mnistnet import model
    from mnistnet.train import TrainConfig, train
    from mnistnet.numerics import apply
apply()  # the pinned thread count, as every stage sets it


def load(name):
    with np.load(f"{data}/{name}.npz") as f:
        return f["x"], f["y"].argmax(axis=1).astype(np.uint8)


if data == "synthetic":
    rng = np.random.default_rng(0)
    x = np.zeros((55_000, 28, 28), np.float32)  # strokes in the middle, a blank border
    x[:, 4:24, 4:24] = (rng.random((55_000, 20, 20)) < 0.2) * rng.random((55_000, 20, 20))
    x, y = x.reshape(-1, 784), rng.integers(0, 10, 55_000).astype(np.uint8)
    xv, yv = x[:5000], y[:5000]
else:
    (x, y), (xv, yv) = load("train"), load("val")
cfg = TrainConfig(epochs=epochs, **overrides)
batch, n = cfg.batch_size, len(x)
times = []

if mode == "train":
    last = [time.perf_counter()]
    def tick(stats):
        now = time.perf_counter()
        times.append(now - last[0])
        last[0] = now
    train(cfg, x, y, xv, yv, on_epoch=tick)
elif mode == "bound":
    rng = np.random.default_rng(0)
    W1 = rng.standard_normal((784, cfg.hidden_size), np.float32)
    W2 = rng.standard_normal((cfg.hidden_size, 10), np.float32)
    H, dH = np.empty((2, batch, cfg.hidden_size), np.float32)
    P = np.empty((batch, 10), np.float32)
    gW1, gW2 = np.empty_like(W1), np.empty_like(W2)
    for _ in range(epochs):
        began = time.perf_counter()
        for start in range(0, n, batch):
            xb = x[start : start + batch]
            m = len(xb)
            np.matmul(xb, W1, out=H[:m])
            np.matmul(H[:m], W2, out=P[:m])
            np.matmul(H[:m].T, P[:m], out=gW2)
            np.matmul(P[:m], W2.T, out=dH[:m])
            np.matmul(xb.T, dH[:m], out=gW1)
        times.append(time.perf_counter() - began)
elif mode == "plain":
    rng = np.random.default_rng(0)
    params = model.init_params(rng, 784, cfg.hidden_size, 10)
    velocity = {k: np.zeros_like(v) for k, v in params.items()}
    for epoch in range(epochs):
        began = time.perf_counter()
        order = rng.permutation(n)
        for start in range(0, n, batch):
            idx = order[start : start + batch]
            _, grads = model.loss_and_grads(params, x[idx], y[idx])
            lr = cfg.lr * 0.5
            for name in params:  # the default rule: decoupled decay on matrices, momentum
                decay = 1 - lr * cfg.weight_decay if params[name].ndim > 1 else 1.0
                velocity[name] = cfg.momentum * velocity[name] + grads[name]
                params[name] = params[name] * decay - lr * velocity[name]
        times.append(time.perf_counter() - began)
print(json.dumps(times))
"""

VARIANTS = {  # name: (mode, params overrides)
    "bound": ("bound", {}),
    "train": ("train", {}),
    "train_unshifted": ("train", {"shift": 0}),
    "plain": ("plain", {}),
}


def epoch_seconds(src: Path, mode: str, epochs: int, overrides: dict) -> list[float]:
    data = str(DATA) if (DATA / "train.npz").exists() else "synthetic"
    args = [sys.executable, "-c", CHILD, mode, str(epochs), data, json.dumps(overrides)]
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run(args, env=env, check=True, capture_output=True, text=True)
    return json.loads(done.stdout)


def median(values: list[float]) -> float:
    values = sorted(values)
    return values[len(values) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8, help="per process; the first 3 warm up")
    parser.add_argument("--rounds", type=int, default=2, help="processes per variant, in turn")
    parser.add_argument("--against", metavar="REV", help="also time this git revision")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    runs = {name: (ROOT / "src", *spec) for name, spec in VARIANTS.items()}
    with tempfile.TemporaryDirectory() as scratch:
        if args.against:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach",
                            scratch + "/rev", args.against], check=True)  # fmt: skip
            for name in ("train", "train_unshifted"):
                runs[f"{name}@{args.against}"] = (Path(scratch) / "rev/src", *VARIANTS[name])
        try:
            epochs: dict[str, list[float]] = {name: [] for name in runs}
            for _ in range(args.rounds):  # in turn: drift on a shared machine hits all alike
                for name, (src, mode, overrides) in runs.items():
                    epochs[name] += epoch_seconds(src, mode, args.epochs, overrides)[3:]
        finally:
            if args.against:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                                scratch + "/rev"], check=True)  # fmt: skip

    seconds = {f"{name}_s": round(median(times), 4) for name, times in epochs.items()}
    result = {
        "data": "data/processed" if (DATA / "train.npz").exists() else "synthetic",
        "cpu": cpu_model(),
        **seconds,
        "train_over_bound": round(seconds["train_s"] / seconds["bound_s"], 3),
        "unshifted_over_bound": round(seconds["train_unshifted_s"] / seconds["bound_s"], 3),
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['cpu']}; {result['data']}, batch 128, hidden 128, float32")
    print(f"median epoch of {args.rounds} processes × {args.epochs - 3} epochs each")
    print(f"{'variant':<28}{'s/epoch':>9}{'× bound':>9}")
    for name in epochs:
        s = seconds[f"{name}_s"]
        print(f"{name:<28}{s:>9.3f}{s / seconds['bound_s']:>9.2f}")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            return next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    main()

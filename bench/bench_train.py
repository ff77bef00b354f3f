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
temporary worktree), so a before and an after come from one run on one machine.

`--busy N` also times the train variant on a busy machine: N CPU-bound processes (started and
stopped by this script) run beside it, as other programs do on a laptop. The JSON then has
``quiet_s``, ``loaded_s``, ``busy_processes`` and ``loaded_over_quiet``. `--threads 1 2` times
each variant with those BLAS thread counts instead of the pinned one (every other setting
pinned), side by side. `--json` prints one JSON object instead of a table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from revision import source_of

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data/processed"

# One measurement in a fresh process: argv = mode, epochs, data folder, overrides as JSON.
# Prints the seconds of each epoch as a JSON list.
CHILD = r"""
import json, sys, time
mode, epochs, data, overrides = sys.argv[1], int(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
threads = int(sys.argv[5])
try:
    from mnistnet.pipeline import numerics
except ImportError:  # a revision from before the folders: importing the package pins
    from mnistnet import numerics
else:
    numerics.THREADS = threads or numerics.THREADS  # 0: the pin's own count
    numerics.pin()
import numpy as np

try:
    from mnistnet.nn import model
    from mnistnet.nn.train import train
    from mnistnet.pipeline.numerics import apply
except ImportError:  # a revision from before the folders
    from mnistnet import model
    from mnistnet.train import TrainConfig, train
    from mnistnet.numerics import apply
try:
    from mnistnet.nn.config import TrainConfig
except ImportError:  # a revision from before the train stage's wiring moved out of nn/
    from mnistnet.nn.train import TrainConfig
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


def epoch_seconds(
    src: Path, mode: str, epochs: int, overrides: dict, threads: int = 0
) -> list[float]:
    data = str(DATA) if (DATA / "train.npz").exists() else "synthetic"
    args = [sys.executable, "-c", CHILD, mode, str(epochs), data, json.dumps(overrides)]
    args.append(str(threads))
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run(args, env=env, check=True, capture_output=True, text=True)
    return json.loads(done.stdout)


@contextlib.contextmanager
def busy(processes: int):
    """Run ``processes`` CPU-bound Python loops until the block ends."""
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(processes)]
    try:
        time.sleep(0.5)  # let the scheduler see them
        yield
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()


def median(values: list[float]) -> float:
    values = sorted(values)
    return values[len(values) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8, help="per process; the first 3 warm up")
    parser.add_argument("--rounds", type=int, default=2, help="processes per variant, in turn")
    parser.add_argument("--against", metavar="REV", help="also time this git revision")
    parser.add_argument("--busy", type=int, metavar="N", help="also time train, N busy")
    parser.add_argument("--threads", type=int, nargs="+", metavar="T", help="BLAS threads to time")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    counts = args.threads or [0]  # 0: the pinned count
    runs = {
        name + (f"@{t}thr" if args.threads else ""): (ROOT / "src", *spec, t)
        for t in counts
        for name, spec in VARIANTS.items()
    }
    with source_of(args.against) as other:
        for name in ("train", "train_unshifted") if other else ():
            runs[f"{name}@{args.against}"] = (other, *VARIANTS[name], 0)
        # the default recipe on a busy machine: each train variant but the unshifted one
        loaded = {n: run for n, run in runs.items() if args.busy and n.split("@")[0] == "train"}
        epochs: dict[str, list[float]] = {name: [] for name in runs}
        epochs.update({f"{name}_loaded": [] for name in loaded})
        for _ in range(args.rounds):  # in turn: drift on a shared machine hits all alike
            for name, (src, mode, overrides, threads) in runs.items():
                epochs[name] += epoch_seconds(src, mode, args.epochs, overrides, threads)[3:]
            with busy(args.busy or 0):
                for name, (src, mode, overrides, threads) in loaded.items():
                    times = epoch_seconds(src, mode, args.epochs, overrides, threads)
                    epochs[f"{name}_loaded"] += times[3:]

    seconds = {f"{name}_s": round(median(times), 4) for name, times in epochs.items()}
    result = {
        "data": "data/processed" if (DATA / "train.npz").exists() else "synthetic",
        "cpu": cpu_model(),
        **seconds,
    }
    for t in counts:  # the ratios, per thread count
        tag = f"@{t}thr" if args.threads else ""
        bound = seconds[f"bound{tag}_s"]
        result[f"train_over_bound{tag}"] = round(seconds[f"train{tag}_s"] / bound, 3)
        result[f"unshifted_over_bound{tag}"] = round(seconds[f"train_unshifted{tag}_s"] / bound, 3)
        if args.busy:
            quiet, busy_s = seconds[f"train{tag}_s"], seconds[f"train{tag}_loaded_s"]
            result[f"loaded_over_quiet{tag}"] = round(busy_s / quiet, 3)
    if args.busy:
        result["busy_processes"] = args.busy
        if not args.threads:
            result["quiet_s"], result["loaded_s"] = seconds["train_s"], seconds["train_loaded_s"]
    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['cpu']}; {result['data']}, batch 128, hidden 128, float32")
    print(f"median epoch of {args.rounds} processes × {args.epochs - 3} epochs each")
    if args.busy:
        print(f"*_loaded: beside {args.busy} busy processes")
    print(f"{'variant':<28}{'s/epoch':>9}{'× bound':>9}")
    for name in epochs:
        s = seconds[f"{name}_s"]
        tag = name[name.index("@") :].split("_")[0] if "@" in name and "thr" in name else ""
        print(f"{name:<28}{s:>9.3f}{s / seconds[f'bound{tag}_s']:>9.2f}")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            return next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    main()

"""Training throughput against the matmul-only bound, a plain NumPy loop and PyTorch.

Run with `make bench`. One epoch of 60,000 float32 samples at batch 128 (hidden 128), each
variant timed over several epochs in this same process, best epoch reported:

- matmul only: the five matrix products a step needs and nothing else (the floor);
- mnistnet: ``train.Trainer`` with the default optimizer, as the train stage runs it;
- plain NumPy: the same math written the obvious way (fancy-indexed batches, new arrays);
- PyTorch: the same MLP and batch, momentum SGD with the same rate, on the CPU with the same
  thread count. Not quite the same update: its weight decay is coupled (added to the
  gradient, so it passes through the momentum) and reaches the biases too; the cost per
  epoch is what is compared
  (only when torch is installed; it is not a dependency: `pip install torch==2.13.0`).

Also reports the cost of scoring a 5,000-image validation split, and the peak memory of the
real train stage when `data/processed` exists (run `make run` first).
"""

from __future__ import annotations

from mnistnet.pipeline.numerics import pin

pin()  # first, before NumPy loads, as the stages do

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from mnistnet.nn import model
from mnistnet.nn.batches import Batches
from mnistnet.nn.train import TrainConfig, Trainer, evaluate

ROOT = Path(__file__).resolve().parents[1]


def best_times(variants: dict, repeats: int) -> dict[str, float]:
    """Best wall time of each variant's epoch, timed round-robin so drift hits all alike."""
    for run_epoch in variants.values():
        run_epoch()  # warm-up: page in buffers, spin up BLAS threads
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(repeats):
        for name, run_epoch in variants.items():
            started = time.perf_counter()
            run_epoch()
            best[name] = min(best[name], time.perf_counter() - started)
    return best


def matmul_only(X, cfg, batch):
    d, h, k = X.shape[1], cfg.hidden_size, 10
    rng = np.random.default_rng(0)
    W1, W2 = rng.standard_normal((d, h), np.float32), rng.standard_normal((h, k), np.float32)
    H, P, dH = (
        np.empty((batch, h), np.float32),
        np.empty((batch, k), np.float32),
        np.empty((batch, h), np.float32),
    )
    gW1, gW2 = np.empty_like(W1), np.empty_like(W2)

    def epoch():
        for start in range(0, len(X), batch):
            xb = X[start : start + batch]
            m = len(xb)
            np.matmul(xb, W1, out=H[:m])
            np.matmul(H[:m], W2, out=P[:m])
            np.matmul(H[:m].T, P[:m], out=gW2)
            np.matmul(P[:m], W2.T, out=dH[:m])
            np.matmul(xb.T, dH[:m], out=gW1)

    return epoch


def mnistnet_trainer(X, y, cfg, batch):
    rng = np.random.default_rng(0)
    params = model.init_params(rng, X.shape[1], cfg.hidden_size, 10, cfg.init, dtype=np.float32)
    trainer, batches = Trainer(params, cfg, batch), Batches(X, y, batch)

    def epoch():
        for xb, yb in batches.epoch(rng.permutation(len(X))):
            trainer.step(xb, yb, cfg.lr * 0.5)

    return epoch


def mnistnet_augmented(X, y, cfg, batch, copies, shift):
    """The trainer fed from a pool of distorted copies and shifted every epoch, as the train
    stage runs `make accurate`: a fresh pick of copy and shift per image each epoch."""
    rng = np.random.default_rng(0)
    params = model.init_params(rng, X.shape[1], cfg.hidden_size, 10, cfg.init, dtype=np.float32)
    pool = rng.integers(0, 256, (copies, *X.shape), dtype=np.uint8)
    trainer, batches = Trainer(params, cfg, batch), Batches(X, y, batch, pool, shift)

    def epoch():
        n = len(X)
        for xb, yb in batches.epoch(rng.permutation(n), batches.draw(rng, n)):
            trainer.step(xb, yb, cfg.lr * 0.5)

    return epoch


def plain_numpy(X, y, cfg, batch):
    rng = np.random.default_rng(0)
    params = model.init_params(rng, X.shape[1], cfg.hidden_size, 10, cfg.init, dtype=np.float32)
    velocity = {k: np.zeros_like(v) for k, v in params.items()}

    def epoch():
        order = rng.permutation(len(X))
        for start in range(0, len(X), batch):
            idx = order[start : start + batch]
            _, grads = model.loss_and_grads(params, X[idx], y[idx])
            lr = cfg.lr * 0.5
            for name in params:  # the trainer's rule: decoupled decay on matrices, momentum
                decay = 1 - lr * cfg.weight_decay if params[name].ndim > 1 else 1.0
                velocity[name] = cfg.momentum * velocity[name] + grads[name]
                params[name] = params[name] * decay - lr * velocity[name]

    return epoch


def pytorch(X, y, cfg, batch, threads):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(X.shape[1], cfg.hidden_size),
        torch.nn.ReLU(),
        torch.nn.Linear(cfg.hidden_size, 10),
    )
    opt = torch.optim.SGD(
        net.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y.astype(np.int64))
    loss_fn = torch.nn.CrossEntropyLoss()

    def epoch():
        order = torch.randperm(len(X))
        for start in range(0, len(X), batch):
            idx = order[start : start + batch]
            opt.zero_grad(set_to_none=True)
            loss_fn(net(Xt[idx]), yt[idx]).backward()
            opt.step()

    return epoch


def blas_threads() -> int:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return os.cpu_count() or 1
    return max((p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"), default=1)


POOL_FILE = """
import sys, json
from mnistnet.pipeline.numerics import pin; pin()
import numpy as np
from mnistnet.data.augment import AugmentConfig, save_pool
from mnistnet.data.preprocess import split_meta
copies, train, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
meta = split_meta(train)
n = len(np.load(train)["y"])
pool = np.random.default_rng(0).integers(0, 256, (copies, n, 784), dtype=np.uint8)
save_pool(out, pool, AugmentConfig(copies=copies), meta)
"""


def train_stage_peak_rss_mb(copies: int) -> float | None:
    """Run the real train stage on data/processed, for one epoch with a pool of ``copies``
    random distorted copies (0: the committed pool), and return its peak resident memory.

    Children's peak memory is a running maximum, so call this with increasing ``copies``.
    """
    if not (ROOT / "data/processed/train.npz").exists():
        return None
    out = Path("/tmp/mnistnet-bench")
    out.mkdir(exist_ok=True)
    pool = ROOT / "data/augmented/pool.npz"
    if copies:  # made in a child too: this process stays small (a child counts its pages)
        pool = out / "pool.npz"
        train = str(ROOT / "data/processed/train.npz")
        subprocess.run([sys.executable, "-c", POOL_FILE, str(copies), train, str(pool)], check=True)
    params = out / "params.yaml"
    params.write_text((ROOT / "params.yaml").read_text().replace("  epochs: 30", "  epochs: 1"))
    command = [
        sys.executable, str(ROOT / "stages/train.py"), "--params", str(params),
        "--data", str(ROOT / "data/processed"), "--pool", str(pool),
        "--model", str(out / "model.npz"),
        "--live", str(out / "live"),
    ]  # fmt: skip
    subprocess.run(command, check=True, stderr=subprocess.DEVNULL)
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=60_000)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--copies", type=int, default=16, help="pool size of the augmented run")
    parser.add_argument("--shift", type=int, default=1, help="train.shift of the augmented run")
    parser.add_argument("--skip-stage", action="store_true", help="skip the peak-memory run")
    args = parser.parse_args()

    # First, while this process is small: a child's peak memory counts the parent's pages
    # it starts with, and the variants below hold ~2 GB.
    peaks = {} if args.skip_stage else {c: train_stage_peak_rss_mb(c) for c in (0, args.copies)}
    cfg = TrainConfig()  # the default recipe's optimizer, hidden size and dtype
    rng = np.random.default_rng(0)
    X = rng.random((args.samples, 784), dtype=np.float32)
    y = rng.integers(0, 10, args.samples).astype(np.uint8)
    threads = blas_threads()
    print(f"{args.samples} samples/epoch, batch {args.batch}, hidden {cfg.hidden_size}, "
          f"float32, {cfg.optimizer}, BLAS threads {threads}; best of {args.repeats}")  # fmt: skip

    best = best_times(
        {
            "matmul only (bound)": matmul_only(X, cfg, args.batch),
            "mnistnet Trainer": mnistnet_trainer(X, y, cfg, args.batch),
            "  augmented (pool)": mnistnet_augmented(
                X, y, cfg, args.batch, args.copies, args.shift
            ),
            "plain NumPy loop": plain_numpy(X, y, cfg, args.batch),
        },
        args.repeats,
    )
    # PyTorch last and on its own: its OpenMP threads keep spinning after each call, which
    # would slow whichever NumPy variant ran next in the round.
    torch_epoch = pytorch(X, y, cfg, args.batch, threads)
    missing = ["PyTorch (CPU)"] if torch_epoch is None else []
    if torch_epoch is not None:
        best |= best_times({"PyTorch (CPU)": torch_epoch}, args.repeats)
    bound = best["matmul only (bound)"]
    print(f"{'variant':<22}{'s/epoch':>9}{'samples/s':>12}{'× bound':>9}")
    for name, seconds in best.items():
        print(f"{name:<22}{seconds:>9.3f}{args.samples / seconds:>12,.0f}{seconds / bound:>9.2f}")
    for name in missing:
        print(f"{name:<22}  not installed (pip install torch==2.13.0)")

    ratio = best["  augmented (pool)"] / best["mnistnet Trainer"]
    print(f"augmented epoch / plain epoch ({args.copies} copies, ±{args.shift} px): {ratio:.2f}")
    params = model.init_params(rng, 784, cfg.hidden_size, 10)
    Xv, yv = X[:5000], y[:5000]
    val = best_times({"val": lambda: evaluate(params, Xv, yv)}, args.repeats)["val"]
    print(f"validation pass over 5,000 images: {val:.4f} s ({val / bound:.1%} of the bound epoch)")
    for copies, peak in peaks.items():
        if peak is None:
            print("train stage peak memory: run `make run` first (needs data/processed)")
            break
        pool = f"a pool of {copies} copies" if copies else "the committed (empty) pool"
        print(f"train stage peak memory, real data and {pool}: {peak:.0f} MB")


if __name__ == "__main__":
    main()

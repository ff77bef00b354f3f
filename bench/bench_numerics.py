"""What the pinned numerics cost: seconds per training epoch, pinned against native.

Run with `make bench`. Each mode runs in its own process, because OpenBLAS reads its settings
when NumPy loads:

- pinned: the default (OpenBLAS Haswell kernel, 1 thread, NumPy's AVX2 loops);
- native: ``MNISTNET_NUMERICS=native`` with the machine's ``OPENBLAS_CORETYPE`` and
  ``OPENBLAS_L2_SIZE`` removed, so OpenBLAS picks the CPU's own kernel and uses every core.

One epoch is 60,000 random samples through ``train.step`` at batch 128 and hidden 128 with
the default optimizer, best of ``--repeats``, in float32 (the default) and float64.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from mnistnet.pipeline import numerics

numerics.pin()  # first, before NumPy loads, as the stages do


def child(samples: int, repeats: int) -> dict:
    import numpy as np

    from mnistnet.nn import model
    from mnistnet.nn.batches import Batches
    from mnistnet.nn.config import TrainConfig
    from mnistnet.nn.optim import make_optimizer
    from mnistnet.nn.train import step

    numerics.apply()  # sets the pinned thread count, as every stage does
    running = numerics.describe()
    result = {"running": running}
    for dtype in ("float32", "float64"):
        cfg = TrainConfig(dtype=dtype)
        rng = np.random.default_rng(0)
        X = rng.random((samples, 784)).astype(dtype)
        y = rng.integers(0, 10, samples)
        params = model.init_params(rng, 784, cfg.hidden_size, 10, cfg.init, dtype=np.dtype(dtype))
        grads = {name: np.empty_like(p) for name, p in params.items()}
        optimizer = make_optimizer(cfg.optimizer, params, cfg.momentum, cfg.beta1)
        batches = Batches(X, y, 128)
        best = float("inf")
        for _ in range(repeats + 1):  # the first epoch warms up caches and threads
            started = time.perf_counter()
            for xb, yb in batches.epoch(rng.permutation(samples)):
                step(params, grads, optimizer, xb, yb, 0.1)
            best = min(best, time.perf_counter() - started)
        result[dtype] = best
    return result


def measure(mode: str, samples: int, repeats: int) -> dict:
    env = dict(os.environ)
    env.pop(numerics.OPT_OUT, None)
    if mode == "native":
        env[numerics.OPT_OUT] = "native"
        # this process pinned its own environment on import: undo that as well
        for name in (
            "OPENBLAS_CORETYPE",
            "OPENBLAS_L2_SIZE",
            "OPENBLAS_NUM_THREADS",
            "NPY_DISABLE_CPU_FEATURES",
        ):
            env.pop(name, None)
    command = [sys.executable, __file__, "--child", "--samples", str(samples)]
    output = subprocess.run(
        [*command, "--repeats", str(repeats)], env=env, capture_output=True, text=True, check=True
    ).stdout
    return json.loads(output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=60_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.samples, args.repeats)))
        return

    print(f"{args.samples} samples/epoch, batch 128, hidden 128, best of {args.repeats}")
    rows = {mode: measure(mode, args.samples, args.repeats) for mode in ("pinned", "native")}
    print(f"{'mode':<8}{'float32 s/epoch':>17}{'float64 s/epoch':>17}  what ran")
    for mode, row in rows.items():
        print(f"{mode:<8}{row['float32']:>17.3f}{row['float64']:>17.3f}  {row['running']}")
    for dtype in ("float32", "float64"):
        ratio = rows["pinned"][dtype] / rows["native"][dtype]
        print(f"pinned / native, {dtype}: {ratio:.2f}")


if __name__ == "__main__":
    main()

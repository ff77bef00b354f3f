"""The augment stage's speed: seconds per distorted copy of 60,000 images.

Run with `make bench`. Each setting makes four copies (`augment.make_pool`, as the augment
stage does) of random digits, with one thread and with the stage's own thread count (one copy
per thread at a time), affine only and with Simard's elastic distortion (the `make accurate`
recipe's settings). The bytes are the same in every row: threads and chunk size change only
the speed (tests/test_augment.py).

`--against REV` also times the `make_pool` of another git revision (checked out into a
temporary worktree), each measurement in a fresh process, the two trees taking turns, so a
busy machine slows both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from revision import source_of

ROOT = Path(__file__).resolve().parents[1]
COPIES = 4
RECIPES = {
    "affine (default ranges)": {},
    "affine + elastic (make accurate)": dict(
        translate=1, rotate=10, scale=0.1, elastic_alpha=15, elastic_sigma=4
    ),
}
# One measurement, in a process of its own: argv = samples, settings as JSON, threads or "".
TIMING = """
from mnistnet.pipeline.numerics import pin; pin()
import json, sys, time
import numpy as np
from mnistnet.data.augment import AugmentConfig, make_pool
samples, settings, threads = int(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
rng = np.random.default_rng(0)
x = (rng.random((samples, 784)) < 0.25) * rng.integers(0, 256, (samples, 784))
x = x.astype(np.uint8) / np.float32(255)  # digit-like; the warp's cost ignores content
cfg = AugmentConfig(copies=COPIES, **settings)
kwargs = {"threads": int(threads)} if threads else {}
started = time.perf_counter()
make_pool(x, cfg, **kwargs)
print((time.perf_counter() - started) / cfg.copies)
""".replace("COPIES", str(COPIES))


def seconds_per_copy(src: Path, samples: int, settings: dict, threads: int | None) -> float:
    env = {**os.environ, "PYTHONPATH": str(src)}
    args = [sys.executable, "-c", TIMING, str(samples), json.dumps(settings), str(threads or "")]
    return float(subprocess.run(args, env=env, check=True, capture_output=True, text=True).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=60_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--against", metavar="REV", help="also time this git revision's warp")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT / "src"))
    from mnistnet.data.augment import THREADS

    trees = {"1 thread": (ROOT / "src", 1), f"{THREADS} threads": (ROOT / "src", THREADS)}
    with source_of(args.against) as other:
        if other:
            trees[args.against] = (other, None)
        best = {(r, t): float("inf") for r in RECIPES for t in trees}
        for _ in range(args.repeats):  # round-robin: drift on a shared machine hits all
            for recipe, settings in RECIPES.items():
                for tree, (src, threads) in trees.items():
                    s = seconds_per_copy(src, args.samples, settings, threads)
                    best[recipe, tree] = min(best[recipe, tree], s)

    print(
        f"seconds per distorted copy of {args.samples} images ({COPIES} copies made), "
        f"best of {args.repeats}"
    )
    print(f"{'distortion':<34}" + "".join(f"{tree:>14}" for tree in trees))
    for recipe in RECIPES:
        print(f"{recipe:<34}" + "".join(f"{best[recipe, tree]:>14.2f}" for tree in trees))
    if args.against:
        for recipe in RECIPES:
            speedup = best[recipe, args.against] / best[recipe, f"{THREADS} threads"]
            print(f"{recipe}: {speedup:.1f}x faster than {args.against}")


if __name__ == "__main__":
    main()

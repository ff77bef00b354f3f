"""Sweeps side by side: the same kind of sweep through DVC's queue with one worker, then two.

Run after `make run` (it needs the pipeline's outputs in this repository's DVC cache). In a
scratch clone whose DVC remote is this repository's cache, it queues `--runs` short
experiments (`train.epochs=3`, one seed each) with `dvc exp run --queue` and times
`dvc exp run --run-all --jobs J` until every run has finished: the workers of
`dvc queue start -j J`, and a wait for their results. Each `--jobs` value gets seeds of its
own, so no run is served from the other's run-cache. Each run is the whole pipeline after
`augment`: train, evaluate, the robustness matrix, plot.

With one BLAS thread per process (the pin), two workers keep both cores of a 2-core machine
busy. `--json` prints one JSON object: the seconds for each `--jobs` and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv's dvc and python, as the stages need them


def run(*args: str, cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env["DVC_NO_ANALYTICS"] = "1"
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"error: {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def sweep(clone: Path, seeds: list[int], jobs: int) -> float:
    """Queue one 3-epoch run per seed, run the queue with ``jobs`` workers: the seconds."""
    grid = ",".join(map(str, seeds))
    run(
        "dvc",
        "exp",
        "run",
        "--queue",
        "-S",
        "train.epochs=3",
        "-S",
        f"train.seed={grid}",
        cwd=clone,
    )
    began = time.perf_counter()
    run("dvc", "exp", "run", "--run-all", "--jobs", str(jobs), cwd=clone)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4, help="experiments per sweep")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if not (ROOT / "data/augmented/pool.npz").exists():
        sys.exit("error: no pipeline outputs here; run `make run` first")

    with tempfile.TemporaryDirectory() as scratch:
        clone = Path(scratch) / "clone"
        run("git", "clone", "-q", str(ROOT), str(clone), cwd=ROOT)
        run("git", "config", "user.email", "bench@example.com", cwd=clone)
        run("git", "config", "user.name", "bench", cwd=clone)
        run("dvc", "remote", "add", "--local", "-d", "here", str(ROOT / ".dvc/cache"), cwd=clone)
        run("dvc", "pull", "-q", cwd=clone)
        seconds = {}
        for jobs in (1, 2):
            seeds = [100 * jobs + i for i in range(args.runs)]
            seconds[jobs] = sweep(clone, seeds, jobs)
        status = run("dvc", "queue", "status", cwd=clone)
        run("dvc", "queue", "stop", cwd=clone)
    if status.count("Success") != 2 * args.runs:
        sys.exit(f"error: not every run succeeded:\n{status}")

    result = {
        "runs": args.runs,
        "jobs_1_s": round(seconds[1], 1),
        "jobs_2_s": round(seconds[2], 1),
        "jobs_2_over_jobs_1": round(seconds[2] / seconds[1], 3),
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"{args.runs} experiments of 3 epochs each, the whole pipeline after augment")
    print(f"dvc exp run --run-all --jobs 1: {result['jobs_1_s']:6.1f} s")
    print(f"dvc exp run --run-all --jobs 2: {result['jobs_2_s']:6.1f} s")
    print(f"jobs 2 / jobs 1: {result['jobs_2_over_jobs_1']:.2f}")


if __name__ == "__main__":
    main()

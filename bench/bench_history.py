"""What logging one epoch through DVCLive costs, with the train stage's logger (plain Live).

DVCLive 3.49 prepares a Studio update at every step, Studio or not, by reading back every
metric file it has written, so a step costs more the longer the run (quadratic in total).
This logs the five metrics of an epoch for the default run's 30 steps and the notebook
recipe's 1000, in a folder outside any git repository, and prints the total and the cost of
the last steps (an epoch of the default recipe trains in ~0.35 s, the notebook's in ~0.6 s).

    python bench/bench_history.py
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from mnistnet.evaluation import history  # noqa: E402


def log(make, steps: int) -> tuple[float, float]:
    """(seconds for all steps, mean ms of the last 100)"""
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        times = []
        with make(Path(tmp) / "live") as live:
            for step in range(steps):
                started = time.perf_counter()
                for name in history.METRICS.values():
                    live.log_metric(name, 1.0 / (step + 1))
                live.next_step()
                times.append(time.perf_counter() - started)
    return sum(times), 1000 * sum(times[-100:]) / min(100, len(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[30, 1000], help="epochs")
    args = parser.parse_args()
    for steps in args.steps:
        total, last = log(history.open_log, steps)
        print(f"{steps:5} steps: {total:6.2f} s in all, {last:5.2f} ms a step over the last 100")


if __name__ == "__main__":
    main()

"""What logging one epoch through DVCLive costs: the train stage's logger against plain Live.

DVCLive 3.49 prepares a Studio update at every step, Studio or not, by reading back every
metric file it has written, so a step costs more the longer the run (quadratic in total).
``history.open_log`` skips that work when Studio is off. This logs the five metrics of an
epoch for N steps with each, in a folder outside any git repository, and prints the total
and the cost of the last 100 steps.

    python bench/bench_history.py [--steps 1000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from dvclive import Live  # noqa: E402

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
    parser.add_argument("--steps", type=int, default=1000, help="epochs (the notebook: 1000)")
    args = parser.parse_args()
    plain = lambda folder: Live(str(folder), dvcyaml=False, save_dvc_exp=False, report=None)  # noqa: E731
    for label, make in (("history.open_log", history.open_log), ("dvclive.Live", plain)):
        total, last = log(make, args.steps)
        print(f"{label:17} {args.steps} steps: {total:6.2f} s in all, {last:5.2f} ms a step "
              "over the last 100")  # fmt: skip


if __name__ == "__main__":
    main()

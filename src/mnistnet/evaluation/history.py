"""The per-epoch training log: what the train stage logs through DVCLive (``plots.read_log``
reads it back).

DVCLive (``Live(folder)``) writes, as each epoch ends, ``folder/metrics.json`` (the latest
value of each metric, nested by the ``/`` in its name, and ``"step"``, the epoch counted from
0) and one ``folder/plots/metrics/NAME.tsv`` per metric (a ``step<TAB>NAME`` row per epoch).
DVC reads them as the train stage's metrics and plots; ``dvc exp show`` reads them while a run
is still going, and the VS Code extension refreshes its plots on DVCLive's step signal. They
are written as training goes, so a run watched in ``dvc exp show`` shows its epochs; a run
that fails or is interrupted removes what it wrote (``logging_to``), as it writes no model, so
no half-written log is left for DVC to record. No timestamps are logged, so the same run
writes the same bytes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# EpochStats field → DVCLive metric name (train/loss → "train.loss" in dvc exp show)
METRICS = {
    "train_loss": "train/loss",
    "train_accuracy": "train/accuracy",
    "val_loss": "val/loss",
    "val_accuracy": "val/accuracy",
    "lr": "lr",
}


def open_log(folder: str | os.PathLike) -> Any:
    """A DVCLive logger writing into ``folder``, as a pipeline stage must use one: it neither
    edits dvc.yaml (dvc.yaml declares its files) nor saves experiments, and writes no report."""
    from dvclive import Live  # imported here: only the train stage logs

    return Live(str(folder), dvcyaml=False, save_dvc_exp=False, report=None)


@contextlib.contextmanager
def logging_to(folder: str | os.PathLike) -> Iterator[Any]:
    """``open_log(folder)`` for the length of a block; if the block fails or is interrupted,
    the files it logged are removed."""
    try:
        with open_log(folder) as live:
            yield live
    except BaseException:
        shutil.rmtree(Path(folder) / "plots", ignore_errors=True)
        (Path(folder) / "metrics.json").unlink(missing_ok=True)
        raise


def log_epoch(live: Any, stats: Any) -> None:
    """Log one ``train.EpochStats`` and end DVCLive's step (its files are written now)."""
    for field, name in METRICS.items():
        value = getattr(stats, field)
        if value is not None:  # no validation split: no val/ metrics
            live.log_metric(name, _shown(field, value))
    # the learning rate's curve stays (plots/metrics/lr.tsv); its last value, ~0 at the end
    # of a cosine schedule, is nothing to compare runs by: out of metrics.json and the tables
    live.summary.pop("lr", None)
    live.next_step()


def _shown(field: str, value: float) -> float:
    # six decimals for losses and accuracies, six significant digits for the learning
    # rate (it decays to ~1e-9): readable files and tables, the same digits every run
    return float(f"{value:.6g}") if field == "lr" else round(value, 6)

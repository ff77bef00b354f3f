"""``mnistnet experiments``: every experiment in a table that fits the terminal.

``dvc exp show`` prints every param and metric, and cuts cells to fit (at 80 columns every
cell is ``…``). This reads its JSON and prints what runs are compared by: each experiment's
name, its test and validation accuracy, its accuracy on each robustness variant (where
``--robustness`` asks), and the params it changed from the commit it started from, wrapped
onto more lines rather than cut.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path
from typing import Any

from mnistnet.apps.report import dvc_json
from mnistnet.pipeline.errors import DataError, printable

METRICS = {  # column: (metrics file, dotted key)
    "test": ("data/eval/metrics.json", "test.accuracy"),
    "val": ("data/dvclive/metrics.json", "val.accuracy"),
}


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}``."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat |= flatten(value, f"{prefix}.{key}" if prefix else str(key))
    return flat


def row_data(entry: dict) -> tuple[dict[str, Any], dict[str, Any]]:
    """(params, metrics) of one revision of ``dvc exp show --json``, flattened; params keyed
    as in params.yaml (``train.lr``), metrics as ``file:key``."""
    data = entry.get("data") or {}
    params = flatten((data.get("params") or {}).get("params.yaml", {}).get("data") or {})
    metrics = {}
    for path, content in (data.get("metrics") or {}).items():
        metrics |= {f"{path}:{k}": v for k, v in flatten(content.get("data") or {}).items()}
    return params, metrics


def rows(shown: list[dict], robustness: bool) -> list[tuple[str, list[str], str]]:
    """One (name, metric cells, changed params) per revision and experiment, in dvc's order."""
    columns = dict(METRICS)
    if robustness:
        columns |= {
            v: (f"data/robustness/{v}.json", f"robustness.{v}.accuracy") for v in variants()
        }
    table = []
    for baseline in shown:
        base_params, metrics = row_data(baseline)
        name = baseline.get("name") or baseline["rev"]
        name = name[:7] if len(name) == 40 else name  # a commit without a branch: its hash
        table.append((printable(name), cells(metrics, columns), ""))
        runs = [run for exp in baseline.get("experiments") or [] for run in exp.get("revs", [])]
        for i, run in enumerate(runs):
            params, metrics = row_data(run)
            # escaped: a teammate's param value reaches this terminal, control characters too
            changed = [printable(f"{k}={v}") for k, v in params.items() if base_params.get(k) != v]
            branch = "└─" if i == len(runs) - 1 else "├─"
            table.append(
                (
                    f"{branch} {printable(run.get('name') or run['rev'][:7])}",
                    cells(metrics, columns),
                    " ".join(changed),
                )
            )
    return table


def variants() -> list[str]:
    """The robustness variants shown: all but ``clean``, whose accuracy is the test column."""
    from mnistnet.evaluation.robustness import RobustnessConfig

    return [v for v in RobustnessConfig.model_fields if v != "clean"]


def cells(metrics: dict[str, Any], columns: dict[str, tuple[str, str]]) -> list[str]:
    values = [metrics.get(f"{path}:{key}") for path, key in columns.values()]
    return [f"{v:.2%}" if isinstance(v, int | float) else "-" for v in values]


def render(shown: list[dict], width: int, robustness: bool = False) -> str:
    """The table as text no wider than ``width`` (at least 60) columns: at 80, every column
    with ``robustness`` (the cells close up to one space apart where two do not fit)."""
    table = rows(shown, robustness)
    headers = ["experiment", *METRICS, *(variants() if robustness else ())]
    name_width = max(len(headers[0]), *(len(name) for name, _, _ in table))
    cell_width = max(7, *(len(h) for h in headers[1:]))
    gap = 2 if name_width + (cell_width + 2) * (len(headers) - 1) <= width else 1
    left = name_width + (cell_width + gap) * (len(headers) - 1) + 2
    if width - left >= 30:  # changed params in a column of their own
        indent, room, header = left, width - left, "  changed params"
    else:  # too narrow: on lines of their own, under the row
        indent, room, header = 4, max(width - 4, 20), ""
    lines = [
        f"{headers[0]:<{name_width}}"
        + "".join(f"{'':{gap}}{h:>{cell_width}}" for h in headers[1:])
        + header
    ]
    for name, metric_cells, changed in table:
        cells = "".join(f"{'':{gap}}{c:>{cell_width}}" for c in metric_cells)
        start = f"{name:<{name_width}}{cells}"
        wrapped = textwrap.wrap(changed, room, break_on_hyphens=False, break_long_words=False)
        if indent == left and wrapped:
            lines.append(f"{start}  {wrapped.pop(0)}")
        else:
            lines.append(start)
        lines += [" " * indent + more for more in wrapped]
    return "\n".join(lines)


def show(robustness: bool = False, commits: int = 1) -> str:
    """Run ``dvc exp show --json`` here (for the last ``commits`` commits and their
    experiments) and render it for this terminal's width."""
    shown = dvc_json(Path.cwd(), "exp", "show", *(["-n", str(commits)] if commits > 1 else []))
    if not shown:  # dvc shows nothing in a repository without a commit
        raise DataError("no commit here yet: commit the pipeline (git commit), then dvc exp run")
    return render(shown, shutil.get_terminal_size().columns, robustness)

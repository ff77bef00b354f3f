"""``mnistnet report --base REV --out DIR``: the workspace against a git revision, in Markdown.

What a reviewer of a change wants on one page: which params changed, every metric of both
revisions with its change, and the loss, accuracy and confusion charts of both, overlaid.
All of it is DVC's own answer (``dvc params diff``, ``dvc metrics diff --all`` and
``dvc plots diff``, as JSON); the charts are DVC's Vega-Lite specs drawn to PNG offline by
vl-convert, so the report needs no browser and no network. ``DIR`` receives ``report.md``
and one PNG per chart. CI posts the Markdown on each pull request (.github/workflows).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from mnistnet.pipeline.errors import ConfigError, Error
from mnistnet.pipeline.storage import all_or_nothing, atomic_path, write_text

# dvc.yaml's top-level plots (by title) → the PNG each becomes
CHARTS = {
    "Loss per epoch": "loss.png",
    "Accuracy per epoch": "accuracy.png",
    "Confusion matrix (test set)": "confusion.png",
}
MARKER = "<!-- mnistnet-report -->"  # lets CI find and update its own comment
HEADLINE = ("data/eval/metrics.json", "test.accuracy")
# Names and values come from the change under review (params.yaml, metrics files, branch
# names): written into Markdown they must stay text, one table cell each.
PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")  # every ASCII punctuation character
PLAIN = re.compile(r"[^\s`|\\@#]+(?: [^\s`|\\@#]+)*")  # shows as typed in a code span
ZWSP = "\u200b"  # after @ and #: no @mention, no #123 or owner/repo#123 link


def escape(value: Any) -> str:
    """``value`` as Markdown text that renders as itself, on one line: each ASCII punctuation
    character backslash-escaped (no emphasis, code, link, image, HTML, autolink or cell
    boundary), and @ and # followed by a zero-width space (GitHub links them after rendering)."""
    line = " ".join(str(value).splitlines())
    escaped = PUNCTUATION.sub(r"\\\1", line)
    return escaped.replace("@", "@" + ZWSP).replace("#", "#" + ZWSP)


def code(value: Any) -> str:
    """``value`` as a code span when it shows there as typed (one line; no backtick, pipe,
    backslash, @ or #), else as escaped text."""
    value = str(value)
    return f"`{value}`" if PLAIN.fullmatch(value) else escape(value)


class DvcFailed(Error):
    """A ``dvc`` command the report needs failed."""


def dvc_json(root: Path, *args: str) -> Any:
    """Run ``dvc ARGS --json`` in ``root`` and parse what it prints."""
    cmd = [sys.executable, "-m", "dvc", *args, "--json"]
    done = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise DvcFailed(f"`dvc {' '.join(args)}` failed: {last}")
    return json.loads(done.stdout or "{}")


def resolve(root: Path, rev: str) -> str:
    """The commit ``rev`` names, or a ConfigError that says how to get it."""
    done = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise ConfigError(
            f"--base {rev!r}: no such commit in this repository. Name a branch, tag or commit; "
            "in a shallow CI checkout, fetch it first (git fetch origin main)."
        )
    return done.stdout.strip()


def number(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    return escape(text if len(text) <= 40 else text[:39] + "…")  # a table cell, not a dump


def change(entry: dict) -> str:
    diff = entry.get("diff")
    if not isinstance(diff, (int, float)) or isinstance(diff, bool):
        return "–"
    return "0" if diff == 0 else f"{diff:+.6g}"


def percent(value: Any) -> str:
    return f"{100 * value:.2f} %" if isinstance(value, (int, float)) else "–"


def headline(metrics: dict, base: str) -> str:
    entry = metrics.get(HEADLINE[0], {}).get(HEADLINE[1])
    if not entry:
        return "Test accuracy: not measured (no data/eval/metrics.json)."
    old, new = entry.get("old"), entry.get("new")
    text = f"Test accuracy: **{percent(new)}** ({base}: {percent(old)}"
    if isinstance(old, (int, float)) and isinstance(new, (int, float)):
        text += f", {100 * (new - old):+.2f} points"
    return text + ")."


def params_table(params: dict, base: str) -> list[str]:
    rows = [
        f"| {code(name)} | {number(entry.get('old'))} | {number(entry.get('new'))} |"
        for path in sorted(params)
        for name, entry in sorted(params[path].items())
    ]
    if not rows:
        return ["No param changed."]
    return [f"| Param | {base} | this change |", "|---|---:|---:|", *rows]


def metrics_table(metrics: dict, base: str) -> list[str]:
    # test metrics first (what the change is judged on), then the training log's
    order = sorted(metrics, key=lambda path: (path != HEADLINE[0], path))
    rows = [
        f"| {code(path)} | {code(name)} | {number(entry.get('old'))} | {number(entry.get('new'))} "
        f"| {change(entry)} |"
        for path in order
        for name, entry in sorted(metrics[path].items())
    ]
    if not rows:
        return ["No metrics in either revision."]
    return [f"| File | Metric | {base} | this change | Change |", "|---|---|---:|---:|---:|", *rows]


def draw_charts(plots: dict) -> dict[str, bytes]:
    """Each chart of ``CHARTS`` that ``dvc plots diff`` returned, as PNG bytes by file name."""
    import vl_convert  # imported here: only the report draws charts

    drawn = {}
    for title, name in CHARTS.items():
        specs = [p for p in plots.get(title, []) if p.get("type") == "vega"]
        if specs:
            drawn[name] = vl_convert.vegalite_to_png(specs[0]["content"], scale=2)
    return drawn


def report(
    base: str, out: str | os.PathLike, root: str | os.PathLike = ".", charts_url: str | None = None
) -> Path:
    """Write ``out/report.md`` (and the chart PNGs) comparing the workspace with ``base``.

    With ``charts_url`` the Markdown links the charts there instead of embedding the PNGs:
    a pull-request comment cannot show files that live in a CI artifact."""
    root, out = Path(root), Path(out)
    sha = resolve(root, base)
    rev = sha[:7] if sha.startswith(base.lower()) else base  # DVC labels charts with it
    label = rev if rev == sha[:7] else f"{rev} ({sha[:7]})"
    params = dvc_json(root, "params", "diff", rev)
    metrics = dvc_json(root, "metrics", "diff", rev, "--all")
    with tempfile.TemporaryDirectory() as tmp:  # where dvc plots diff puts its image copies
        plots = dvc_json(root, "plots", "diff", rev, "-o", tmp).get("data", {})
    drawn = draw_charts(plots)
    titles = {name: title for title, name in CHARTS.items() if name in drawn}

    shown = escape(label)  # a branch name may hold Markdown: ` | @ # < > ( ) !
    lines = [MARKER, f"## This change against {code(label)}", "", headline(metrics, shown), ""]
    lines += ["### Params", "", *params_table(params, shown), ""]
    lines += ["### Metrics", "", *metrics_table(metrics, shown), ""]
    lines += ["### Charts", ""]
    if not drawn:
        lines.append("No chart data in either revision.")
    elif charts_url:
        lines.append(f"{', '.join(titles.values())}: PNGs in [this run's artifacts]({charts_url}).")
    else:
        lines += [f"![{title}]({name})" for name, title in titles.items()]
    lines += [
        "",
        f"Both revisions overlaid; {code(f'dvc plots diff {rev}')} draws them interactively.",
    ]
    with all_or_nothing():  # the Markdown and its charts together, or none of them
        for name, png in drawn.items():
            with atomic_path(out / name) as tmp:
                tmp.write_bytes(png)
        write_text(out / "report.md", "\n".join(lines) + "\n")
    for name in set(CHARTS.values()) - set(drawn):  # no stale chart from an earlier report
        (out / name).unlink(missing_ok=True)
    return out / "report.md"

"""`mnistnet report`: a real two-commit repository, compared the way CI compares a pull request."""

from __future__ import annotations

import json
import sys

import pytest
import yaml
from PIL import Image

from conftest import run

pytestmark = pytest.mark.cli  # real dvc: `make test-fast` skips these


@pytest.fixture(scope="module")
def two_commits(finished_template, tmp_path_factory):
    """The tiny pipeline committed twice: the template's run, then hidden_size 24."""
    project = finished_template.copy(tmp_path_factory.mktemp("report") / "repo")
    project.set_params("train", hidden_size=24)
    project.dvc("repro")
    project.git("commit", "-qam", "wider")
    return project


def report(project, out, *args, check=True):
    return run(
        [sys.executable, "-m", "mnistnet.apps.cli", "report", "--out", str(out), *args],
        project.root,
        check,
        env=project.env,
    )


def accuracy(text: str) -> str:
    return f"{100 * json.loads(text)['test']['accuracy']:.2f} %"


def test_the_report_holds_both_revisions_and_their_charts(two_commits, tmp_path):
    report(two_commits, tmp_path / "r", "--base", "HEAD~1")
    text = (tmp_path / "r/report.md").read_text()
    before = accuracy(two_commits.git("show", "HEAD~1:data/eval/metrics.json").stdout)
    after = accuracy((two_commits.root / "data/eval/metrics.json").read_text())
    assert f"Test accuracy: **{after}** (HEAD\\~1 \\(" in text and f"\\): {before}" in text
    assert "| `train.hidden_size` | 16 | 24 |" in text
    assert "| `data/eval/metrics.json` | `test.accuracy` |" in text
    assert "`train.loss`" in text and "`val.accuracy`" in text  # the DVCLive log too
    for name in ("loss.png", "accuracy.png", "confusion.png"):
        assert f"]({name})" in text
        with Image.open(tmp_path / "r" / name) as png:
            assert png.format == "PNG" and png.width >= 400 and png.height >= 300
            colours = png.convert("RGB").getcolors(maxcolors=1 << 20)
            assert len(colours) > 50  # drawn lines, text and cells, not a blank canvas


def test_with_a_charts_url_the_markdown_links_instead_of_embedding(two_commits, tmp_path):
    url = "https://github.com/o/r/actions/runs/1"
    report(two_commits, tmp_path / "r", "--base", "HEAD~1", "--charts-url", url)
    text = (tmp_path / "r/report.md").read_text()
    assert f"]({url})" in text and "![" not in text
    assert text.startswith("<!-- mnistnet-report -->")  # what CI finds its comment by
    assert (tmp_path / "r/loss.png").is_file()


def test_an_unknown_base_is_refused_and_writes_nothing(two_commits, tmp_path):
    result = report(two_commits, tmp_path / "r", "--base", "no-such-branch", check=False)
    assert result.returncode == 1
    assert "--base 'no-such-branch': no such commit" in result.stderr
    assert "git fetch origin main" in result.stderr
    assert not (tmp_path / "r").exists()


# What a change under review can put in its params, metrics and branch names, aimed at the
# Markdown of the report: a new line, a table cell's end, code, a heading, links, an image,
# HTML, a bare URL, a mention, an issue link, and an escaped pipe.
HOSTILE = [
    "a\n# Injected heading",
    "b|c",
    "d`e",
    "[click](https://evil.example)",
    "![pixel](https://evil.example/p.png)",
    "<img src=x onerror=alert(1)>",
    "www.evil.example",
    "@someone",
    "owner/repo#1",
    "x\\|y",
]


def cells(row: str) -> list[str]:
    """A Markdown table row's cells: split at each pipe that no backslash escapes."""
    out, cell, chars = [], "", iter(row.strip()[1:-1])
    for char in chars:
        if char == "\\":
            cell += char + next(chars, "")
        elif char == "|":
            out, cell = [*out, cell], ""
        else:
            cell += char
    return [*out, cell]


def test_hostile_names_values_and_branch_names_stay_text_one_cell_each(two_commits, tmp_path):
    project = two_commits.copy(tmp_path / "repo")
    params = yaml.safe_load((project.root / "params.yaml").read_text())
    metrics = json.loads((project.root / "data/eval/metrics.json").read_text())
    for i, text in enumerate(HOSTILE):
        params["train"][f"p{i} {text}"] = f"v{i} {text}"
        metrics[f"m{i} {text}"] = {"number": 0.5, "text": f"v{i} {text}"}
    (project.root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (project.root / "data/eval/metrics.json").write_text(json.dumps(metrics))
    branch = "base`|@someone<b>#1!"  # a valid git branch name
    project.git("branch", branch, "HEAD~1")
    url = "https://github.com/o/r/actions/runs/1"
    report(project, tmp_path / "r", "--base", branch, "--charts-url", url)
    lines = (tmp_path / "r/report.md").read_text().splitlines()

    headings = [line.split(" ", 1)[0] for line in lines if line.startswith("#")]
    assert headings == ["##", "###", "###", "###"]  # the report's own, no injected one
    text = "\n".join(lines)
    tables = [block.splitlines() for block in text.split("\n\n") if block.startswith("|")]
    params_rows, metrics_rows = (table[2:] for table in tables)
    assert len(params_rows) == 1 + len(HOSTILE)  # hidden_size, then one row per hostile key
    assert sum(f"m{i} " in row for row in metrics_rows for i in range(len(HOSTILE))) == 20
    for table in tables:  # every row a row, with its header's number of cells
        assert all(row.startswith("|") for row in table), table
        assert {len(cells(row)) for row in table} == {len(cells(table[0]))}, table
    assert "@someone" not in text and "#1" not in text  # no mention, no issue link
    assert r"\[click\]\(https\:\/\/evil\.example\)" in text  # shown, escaped

    # rendered as CommonMark with tables (markdown-it-py, which dvc's rich brings)
    markdown_it = pytest.importorskip("markdown_it")
    html = markdown_it.MarkdownIt("commonmark").enable("table").render(text)
    assert html.count("<a ") == 1 and f'<a href="{url}">' in html  # the charts link only
    assert "<img" not in html and "<h1" not in html and html.count("<h2>") == 1
    assert html.count("<table>") == 2 and "<tr>\n<td>" in html

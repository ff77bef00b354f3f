"""`mnistnet report`: a real two-commit repository, compared the way CI compares a pull request."""

from __future__ import annotations

import json
import sys

import pytest
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
    return run([sys.executable, "-m", "mnistnet.apps.cli", "report", "--out", str(out), *args],
               project.root, check, env=project.env)  # fmt: skip


def accuracy(text: str) -> str:
    return f"{100 * json.loads(text)['test']['accuracy']:.2f} %"


def test_the_report_holds_both_revisions_and_their_charts(two_commits, tmp_path):
    report(two_commits, tmp_path / "r", "--base", "HEAD~1")
    text = (tmp_path / "r/report.md").read_text()
    before = accuracy(two_commits.git("show", "HEAD~1:data/eval/metrics.json").stdout)
    after = accuracy((two_commits.root / "data/eval/metrics.json").read_text())
    assert f"Test accuracy: **{after}** (HEAD~1 (" in text and f"): {before}" in text
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

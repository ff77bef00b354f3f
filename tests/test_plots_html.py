"""`dvc plots show` renders offline: Vega inlined, no CDN script, charts visible in Chromium."""

import re
import shutil
import subprocess

import numpy as np
import pytest
from matplotlib import image

from cdp import HEADLESS
from mnistnet.apps.plots_html import offline_template, write_offline_template

CDN_SCRIPT = re.compile(r"<script[^>]*\bsrc\s*=\s*[\"']?https?:", re.IGNORECASE)


def test_template_inlines_vega_and_keeps_dvc_placeholder():
    html = offline_template()
    assert "{plot_divs}" in html and "{scripts}" not in html
    assert not CDN_SCRIPT.search(html)
    assert "vegaEmbed" in html and len(html) > 500_000  # the bundle, not a stub


@pytest.fixture(scope="module")
def shown_plots(finished_template, tmp_path_factory):
    """`dvc plots show` output of the tiny pipeline, with the project's offline template."""
    dvc_project = finished_template.copy(tmp_path_factory.mktemp("plots") / "repo")
    write_offline_template(dvc_project.root / ".dvc/offline-plots.html")
    dvc_project.dvc("config", "plots.html_template", "offline-plots.html")
    dvc_project.dvc("plots", "show", "-o", "shown")
    return dvc_project.root / "shown/index.html"


@pytest.mark.cli
def test_plots_page_has_no_cdn_script(shown_plots):
    html = shown_plots.read_text()
    assert not CDN_SCRIPT.search(html)
    assert html.count("vegaEmbed(") >= 3  # loss, accuracy, confusion
    assert "training_curves.png" in html


def chromium(*args: str, profile) -> subprocess.CompletedProcess:
    flags = [
        *HEADLESS,
        f"--user-data-dir={profile}",
        "--virtual-time-budget=5000",
        "--window-size=1200,900",
    ]
    return subprocess.run(
        ["chromium", *flags, *args], check=True, capture_output=True, text=True, timeout=120
    )


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium not installed")
@pytest.mark.cli
def test_headless_chromium_draws_the_charts_offline(shown_plots, tmp_path):
    # After the page's scripts ran, each Vega chart is a canvas of class "marks"; with the
    # libraries missing (DVC's CDN page offline) there are none.
    dom = chromium("--dump-dom", shown_plots.as_uri(), profile=tmp_path / "p1").stdout
    assert dom.count('class="marks"') >= 3, "Vega did not render: the charts are blank"
    shot = tmp_path / "shot.png"
    chromium(f"--screenshot={shot}", shown_plots.as_uri(), profile=tmp_path / "p2")
    pixels = image.imread(shot)[:, :, :3]  # (900, 1200, 3) floats in [0, 1]
    assert pixels.shape == (900, 1200, 3)
    assert np.mean(pixels.min(axis=2) < 0.9) > 0.02, "the screenshot is empty"

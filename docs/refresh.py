"""`make docs`: refresh the pictures the README shows, from the committed run.

Copies the plot stage's PNGs from data/plots (run `make run` first), and takes the
screenshot of the draw-a-digit page: the site stage's data/site/index.html opened from disk in
Debian's headless Chromium (driven over the DevTools protocol by tests/cdp.py), a 3 drawn on
the pad.
(docs/augmented_examples.png shows the `make accurate` recipe's copies: copy it from that
experiment's data/plots after `dvc exp apply accurate-seed0`.)
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from cdp import Browser, find_chromium  # noqa: E402  (tests/ is not a package)

PLOTS = [
    "training_curves",
    "confusion_matrix",
    "misclassified",
    "first_layer_weights",
    "robustness",
]
PAD_BOX = "(() => { const r = pad.getBoundingClientRect(); return [r.left, r.top, r.width]; })()"
THREE = [
    [(95, 70), (150, 50), (190, 80), (150, 135)],
    [(150, 135), (200, 175), (180, 225), (110, 235), (85, 210)],
]


def interpolate(points: list[tuple[float, float]], steps: int = 10) -> list[tuple[float, float]]:
    """Points every 1/``steps`` of each segment: a mouse moves in small steps."""
    return [
        (a[0] + (b[0] - a[0]) * t / steps, a[1] + (b[1] - a[1]) * t / steps)
        for a, b in zip(points, points[1:], strict=False)
        for t in range(steps)
    ]


def copy_plots() -> None:
    for name in PLOTS:
        shutil.copyfile(ROOT / "data/plots" / f"{name}.png", ROOT / "docs" / f"{name}.png")
        print(f"docs/{name}.png")


def screenshot() -> None:
    chromium = find_chromium()
    if chromium is None:
        sys.exit("no chromium: apt-get install -y chromium")
    with Browser(chromium) as browser:
        page = (ROOT / "data/site/index.html").as_uri()
        browser.open(page, "document.querySelector('#facts dd') !== null")
        left, top, width = browser.evaluate(PAD_BOX)
        for line in THREE:
            points = [(left + x * width / 280, top + y * width / 280) for x, y in line]
            browser.drag([*interpolate(points), points[-1]])
        browser.wait_for("digit.textContent !== '–'")
        browser.screenshot(ROOT / "docs/site.png")
        print(f"docs/site.png (the page reads {browser.evaluate('digit.textContent')})")


if __name__ == "__main__":
    copy_plots()
    screenshot()

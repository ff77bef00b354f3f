"""The site stage's page: the network and MNIST's normalization run in the browser.

A model trained here on drawn strokes (1s, 7s and 0s rendered with Pillow the way the page
draws) is built into a site, which Debian's headless Chromium opens from disk with the
network switched off. The page's answers are compared with NumPy's (``model.predict_proba``)
and its 28×28 inputs with ``data/images.py``'s, on the same images.
"""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from cdp import Browser, find_chromium
from conftest import ROOT, load_model, make_tiny_mnist, save_model
from mnistnet.data.images import load_inputs, mnist_style
from mnistnet.data.preprocess import normalize
from mnistnet.nn import model
from mnistnet.nn.config import TrainConfig
from mnistnet.nn.train import train
from mnistnet.site.build import PAGE, build_site

PAD = 280  # the page's drawing area, in canvas pixels
CHROMIUM = find_chromium()
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium not installed")
# The page's 28×28 input against data/images.py's, in byte values (0-255): the JavaScript
# follows Pillow's gray conversion, box reduction and Lanczos filter step by step, so a pixel
# may differ by one where a sum lands on a rounding boundary (measured here: no pixel
# differed, for drawings and for data/samples/ alike). Pillow decodes a large JPEG at a
# reduced scale, the browser at full size: a photo of several megapixels may differ more.
MOST, MEAN = 1, 0.05  # the largest difference of a pixel, and the mean one


def strokes(digit: int, rng: np.random.Generator) -> list[list[tuple[float, float]]]:
    """Polylines of a hand-drawn ``digit`` (0, 1 or 7) on the 280 px pad, jittered."""
    j = lambda spread: rng.uniform(-spread, spread)  # noqa: E731
    if digit == 1:
        x = 140 + j(40)
        return [[(x + j(6), 50 + j(20)), (x + j(12), 230 + j(20))]]
    if digit == 7:
        left, right, top = 70 + j(20), 210 + j(20), 60 + j(15)
        return [[(left, top + j(5)), (right, top + j(5)), (130 + j(25), 235 + j(15))]]
    cx, cy, rx, ry = 140 + j(20), 140 + j(20), 55 + j(15), 85 + j(15)
    t = np.linspace(0, 2 * np.pi, 40)
    return [[(cx + rx * np.cos(a), cy + ry * np.sin(a)) for a in t]]


def png_of(lines: list[list[tuple[float, float]]], width: int = 20) -> bytes:
    image = Image.new("L", (PAD, PAD), 255)
    draw = ImageDraw.Draw(image)
    for line in lines:
        draw.line(line, fill=0, width=width, joint="curve")
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A site for a model trained on drawn 0s, 1s and 7s."""
    folder = tmp_path_factory.mktemp("site")
    rng = np.random.default_rng(0)
    labels = np.tile([0, 1, 7], 120)
    images = np.stack(
        [mnist_style(Image.open(io.BytesIO(png_of(strokes(d, rng))))) for d in labels]
    )
    cfg = TrainConfig(hidden_size=32, epochs=15, batch_size=32, lr=0.1)
    params, _ = train(cfg, normalize(images), labels)
    save_model(folder / "model.npz", params, cfg, data={"split": "train"})
    (folder / "metrics.json").write_text(json.dumps({"test": {"accuracy": 0.9876}}))
    build_site(folder / "model.npz", folder / "metrics.json", folder / "site")
    return folder


def payload(site: Path) -> dict:
    text = (site / "site/model.js").read_text()
    return json.loads(re.search(r"window\.MNISTNET_MODEL = (\{.*\});", text).group(1))


def test_the_site_carries_the_weights_exactly_and_the_models_facts(site):
    params, meta = load_model(site / "model.npz")
    written = payload(site)
    weights = np.frombuffer(base64.b64decode(written["weights"]), "<f4")
    expected = np.concatenate([params[name].ravel() for name in model.PARAM_NAMES])
    assert weights.tobytes() == expected.astype("<f4").tobytes()
    facts = written["facts"]
    assert facts["hidden_size"] == 32 and facts["test_accuracy"] == 0.9876
    assert facts["train"] == meta["train"]
    assert re.fullmatch(r"[0-9a-f]{32}", facts["model_md5"])


def test_the_site_loads_nothing_from_outside_itself(site):
    files = sorted(p.name for p in (site / "site").iterdir())
    assert files == sorted([*PAGE, "model.js"])
    for name in PAGE:
        text = (site / "site" / name).read_text()
        assert not re.search(r"(src|href)=\"(/|https?:)|https?://|fetch\(", text), name


def test_building_twice_gives_the_same_bytes(site, tmp_path):
    build_site(site / "model.npz", site / "metrics.json", tmp_path / "again")
    for name in (*PAGE, "model.js"):
        assert (tmp_path / "again" / name).read_bytes() == (site / "site" / name).read_bytes()


@pytest.mark.cli
def test_mnistnet_serve_serves_the_folder_on_loopback_and_says_where(site, tmp_path):
    command = [sys.executable, "-m", "mnistnet.apps.cli", "serve", "--port", "0"]
    server = subprocess.Popen(
        [*command, "--site", str(site / "site")], stdout=subprocess.PIPE, text=True
    )
    try:
        line = server.stdout.readline()
        url = re.search(r"at (http://127\.0\.0\.1:\d+/) ", line).group(1)
        with urllib.request.urlopen(url + "model.js", timeout=10) as response:
            assert response.read() == (site / "site/model.js").read_bytes()
    finally:
        server.terminate()
        server.wait(timeout=10)
        server.stdout.close()
    missing = subprocess.run([*command, "--site", str(tmp_path)], capture_output=True, text=True)
    assert missing.returncode == 1
    assert (
        missing.stderr
        == f"error: {tmp_path}/index.html: no site there. Build it with: dvc repro site\n"
    )


# --- in the browser ---------------------------------------------------------------------------

ANSWERED = "Number(pad.dataset.answered || 0)"  # how many images the page has read
SEEN = "Array.from(seen.getImageData(0, 0, 28, 28).data.filter((_, i) => i % 4 == 0))"


@pytest.fixture(scope="module")
def page(site):
    """The site opened from disk in headless Chromium, with the network off."""
    if CHROMIUM is None:
        pytest.skip("Debian chromium not installed")
    with Browser(CHROMIUM) as browser:
        browser.send("Network.enable")
        offline = {"offline": True, "latency": 0, "downloadThroughput": -1}
        browser.send("Network.emulateNetworkConditions", **offline, uploadThroughput=-1)
        browser.send("DOM.enable")
        browser.open(
            (site / "site/index.html").as_uri(), "document.querySelector('#facts dd') !== null"
        )
        yield browser


def test_the_pages_probabilities_equal_numpys(site, page):
    params, _ = load_model(site / "model.npz")
    tiny = make_tiny_mnist(n_train=0, n_test=200)
    x = normalize(tiny["x_test"])  # (200, 784) float32, as the preprocess stage scales them
    expected = model.predict_proba(params, x)
    got = np.array(page.evaluate(f"{json.dumps(x.tolist())}.map(mnistnet.predict)"))
    assert got.shape == (200, 10)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    with pytest.raises(RuntimeError, match="784 pixels"):
        page.evaluate("mnistnet.predict([0.5, 0.5])")


def seen_by_page(page) -> np.ndarray:
    return np.array(page.evaluate(SEEN), np.uint8).reshape(28, 28)


def pad_box(page) -> tuple[float, float, float]:
    return page.evaluate(
        "(() => { const r = pad.getBoundingClientRect(); return [r.left, r.top, r.width]; })()"
    )


def draw(page, lines) -> str:
    """Draw ``lines`` on the pad with the mouse (pointer events); the digit the page shows."""
    left, top, width = pad_box(page)
    page.evaluate("document.getElementById('clear').click()")
    before = page.evaluate(ANSWERED)
    for line in lines:
        pairs = zip(line, line[1:], strict=False)
        points = np.concatenate([np.linspace(a, b, 12) for a, b in pairs])
        page.drag([(left + x * width / PAD, top + y * width / PAD) for x, y in points])
    page.wait_for(f"{ANSWERED} > {before}")
    return page.evaluate("digit.textContent")


def close_to(page_input: np.ndarray, python_input: np.ndarray) -> None:
    diff = np.abs(page_input.astype(int) - python_input.astype(int))
    assert diff.max() <= MOST and diff.mean() <= MEAN, (diff.max(), diff.mean())


def test_a_person_draws_digits_and_the_page_reads_them_as_python_would(site, page, tmp_path):
    params, _ = load_model(site / "model.npz")
    text = page.evaluate("document.body.innerText")
    assert "784 → 32 (ReLU) → 10" in text and "98.76 %" in text
    rng = np.random.default_rng(7)
    for digit in (1, 7, 0, 7, 1):
        shown = draw(page, strokes(digit, rng))
        # the pad as the browser drew it, through data/images.py
        data_url = page.evaluate("pad.toDataURL('image/png')")
        (tmp_path / "pad.png").write_bytes(base64.b64decode(data_url.split(",")[1]))
        python_input = load_inputs(tmp_path / "pad.png")  # (1, 784) in [0, 1]
        close_to(seen_by_page(page), np.rint(python_input * 255).reshape(28, 28))
        assert shown == str(model.predict(params, python_input)[0]) == str(digit)
    assert page.evaluate("document.querySelectorAll('#bars li').length") == 10
    assert "% sure" in page.evaluate("message.textContent")


@pytest.mark.parametrize("sample", sorted(p.name for p in (ROOT / "data/samples").iterdir()))
def test_an_opened_photo_is_normalized_as_predict_does(site, page, sample):
    path = ROOT / "data/samples" / sample
    before = page.evaluate(ANSWERED)
    document = page.send("DOM.getDocument")["root"]["nodeId"]
    node = page.send("DOM.querySelector", nodeId=document, selector="#file")["nodeId"]
    page.send("DOM.setFileInputFiles", files=[str(path)], nodeId=node)
    page.wait_for(f"{ANSWERED} > {before}")
    python_input = np.rint(load_inputs(path) * 255).reshape(28, 28)
    page_input = seen_by_page(page)
    close_to(page_input, python_input)
    params, _ = load_model(site / "model.npz")
    assert page.evaluate("digit.textContent") == str(
        model.predict(params, python_input.reshape(1, 784) / 255)[0]
    )


def test_a_blank_image_is_refused_with_the_reason(page):
    page.evaluate("document.getElementById('clear').click()")
    assert page.evaluate("message.textContent").startswith("Draw a digit in the white box")
    with pytest.raises(RuntimeError, match="no ink found"):
        page.evaluate("mnistnet.normalize(new Uint8ClampedArray(4 * 100).fill(255), 10, 10)")

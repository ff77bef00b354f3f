"""`mnistnet serve`: the API against a real server on a free loopback port, a real browser,
and a load of 500 requests.

The model is trained here on drawn strokes (1s, 7s and 0s rendered with Pillow the way the
page draws), so the browser test can check what a person would: draw a 1, see 1.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import http.client
import io
import json
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import psutil
import pytest
from PIL import Image, ImageDraw

from cdp import Browser, find_chromium
from conftest import ROOT
from mnistnet.data.images import mnist_style
from mnistnet.data.preprocess import normalize
from mnistnet.nn.checkpoint import save_model
from mnistnet.nn.train import TrainConfig, train

pytestmark = pytest.mark.cli  # real dvc / subprocesses: `make test-fast` skips these

PAD = 280  # the page's drawing area, in canvas pixels


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
def model_files(tmp_path_factory):
    """A model trained on drawn 0s, 1s and 7s, and a metrics file for its facts."""
    folder = tmp_path_factory.mktemp("serve")
    rng = np.random.default_rng(0)
    labels = np.tile([0, 1, 7], 120)
    images = np.stack(
        [mnist_style(Image.open(io.BytesIO(png_of(strokes(d, rng))))) for d in labels]
    )
    cfg = TrainConfig(hidden_size=32, epochs=15, batch_size=32, lr=0.1)
    params, _ = train(cfg, normalize(images), labels)
    save_model(folder / "model.npz", params, cfg, data={"split": "train"})
    (folder / "metrics.json").write_text(json.dumps({"test": {"accuracy": 0.9876}}))
    return folder


class Server:
    """``mnistnet serve`` in a subprocess on a free port; stopped by PID."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mnistnet.apps.cli", "serve", "--port", "0", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        line = self.process.stdout.readline()  # "serving … at http://127.0.0.1:PORT/ …"
        if "http://" not in line:
            raise AssertionError(f"no URL printed: {line!r} {self.stop()}")
        self.url = line.split("at ", 1)[1].split()[0]
        self.host, port = self.url.removeprefix("http://").strip("/").split(":")
        self.port = int(port)

    def request(self, method: str, path: str, body: bytes | None = None, headers=None):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def predict(self, body: bytes, content_type: str = "image/png"):
        status, _, data = self.request("POST", "/api/predict", body, {"Content-Type": content_type})
        return status, json.loads(data)

    def stop(self) -> str:
        """Stop the server; return what it printed to stderr."""
        self.process.terminate()
        try:
            _, stderr = self.process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, stderr = self.process.communicate()
        return stderr


def aimed(raw: bytes, port: int) -> bytes:
    """A raw request whose ``Host: HOST`` line names the server on ``port``, as a browser's
    would (the server answers any other Host with 421)."""
    return raw.replace(b"Host: HOST", f"Host: 127.0.0.1:{port}".encode())


@pytest.fixture(scope="module")
def server(model_files):
    running = Server(
        "--quiet", "--model", str(model_files / "model.npz"),
        "--metrics", str(model_files / "metrics.json"),
    )  # fmt: skip
    yield running
    running.stop()


def test_health_and_model_facts(server):
    status, _, body = server.request("GET", "/healthz")
    assert status == 200 and json.loads(body) == {"status": "ok"}
    status, _, body = server.request("GET", "/api/model")
    facts = json.loads(body)
    assert status == 200 and facts["hidden_size"] == 32 and facts["test_accuracy"] == 0.9876
    assert facts["train"]["epochs"] == 15


def test_the_page_and_its_assets_are_served_from_the_package(server):
    status, headers, page = server.request("GET", "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b'<canvas id="pad"' in page and b"/app.js" in page
    for asset in ("/app.js", "/style.css"):
        assert server.request("GET", asset)[0] == 200
    assert b"http" not in page.replace(b"http-equiv", b"")  # nothing fetched from elsewhere


SECURITY = {
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


@pytest.mark.parametrize(
    "raw",
    [
        b"GET / HTTP/1.1\r\nHost: HOST\r\n\r\n",
        b"GET /app.js HTTP/1.1\r\nHost: HOST\r\n\r\n",
        b"GET /api/model HTTP/1.1\r\nHost: HOST\r\n\r\n",
        b"GET /nothing-here HTTP/1.1\r\nHost: HOST\r\n\r\n",
        b"GARBAGE\r\n\r\n",  # waitress's own 400
        b"GET / HTTP/1.1\r\nHost: HOST\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",  # its 431
    ],
    ids=["page", "script", "api", "404", "waitress-400", "waitress-431"],
)
def test_every_response_carries_the_security_headers(server, raw):
    with socket.create_connection((server.host, server.port), timeout=10) as s:
        s.sendall(aimed(raw, server.port))
        head = s.recv(65536).split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in head[1:])
    assert {k: headers.get(k) for k in SECURITY} == SECURITY, head[0]
    csp = headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp


def test_predict_matches_mnistnet_predict_on_the_same_file(server, model_files, tmp_path):
    image = png_of(strokes(1, np.random.default_rng(9)))
    status, reply = server.predict(image)
    assert status == 200
    assert reply["digit"] == 1
    assert len(reply["probabilities"]) == 10 and abs(sum(reply["probabilities"]) - 1) < 1e-4
    assert len(reply["normalized"]) == 784
    assert 0 <= min(reply["normalized"]) and max(reply["normalized"]) == 1
    (tmp_path / "one.png").write_bytes(image)
    cli = subprocess.run(
        [sys.executable, "-m", "mnistnet.apps.cli", "predict", "--json", "--model",
         str(model_files / "model.npz"), str(tmp_path / "one.png")],
        capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )  # fmt: skip
    record = json.loads(cli.stdout)
    assert record["digit"] == reply["digit"]
    assert record["probability"] == pytest.approx(max(reply["probabilities"]), abs=1e-6)


def test_jpeg_and_multipart_uploads(server):
    image = Image.open(io.BytesIO(png_of(strokes(7, np.random.default_rng(3)))))
    jpeg = io.BytesIO()
    image.convert("RGB").save(jpeg, format="JPEG", quality=90)
    status, reply = server.predict(jpeg.getvalue(), "image/jpeg")
    assert status == 200 and reply["digit"] == 7
    boundary = "xYzZy"
    form = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="7.jpg"'
            f"\r\nContent-Type: image/jpeg\r\n\r\n"
        ).encode()
        + jpeg.getvalue()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    status, reply = server.predict(form, f"multipart/form-data; boundary={boundary}")
    assert status == 200 and reply["digit"] == 7


def test_a_form_of_thousands_of_parts_is_refused_after_a_few(server):
    """~41,000 empty parts before the file fill the 2 MB limit; parsing stops at the 8th."""
    part = b'--b\r\nContent-Disposition: form-data; name="x"\r\n\r\n\r\n'
    form = part * (2_000_000 // len(part)) + b"--b--\r\n"
    process = psutil.Process(server.process.pid)
    before = sum(process.cpu_times()[:2])
    status, reply = server.predict(form, "multipart/form-data; boundary=b")
    used = sum(process.cpu_times()[:2]) - before
    assert status == 400 and reply["error"].startswith("the form has 8 parts and no file yet")
    assert used < 0.2, f"{used:.2f} s of server CPU"  # parsing it all took 0.5 s


def png_declaring(width: int, height: int) -> bytes:
    """A tiny, valid-looking PNG whose header claims ``width`` × ``height`` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1000)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


BLANK = png_of([])
GOOD = png_of(strokes(1, np.random.default_rng(1)))


@pytest.mark.parametrize(
    ("body", "content_type", "status", "says"),
    [
        (b"hello, not an image", "image/png", 400, "not a PNG or JPEG image (it starts"),
        (GOOD[: len(GOOD) // 2], "image/png", 400, "not a readable PNG or JPEG (OSError"),
        (
            b"\x89PNG\r\n\x1a\n<html>",
            "image/png",
            400,
            "(UnidentifiedImageError: cannot identify image file)",
        ),
        (b"", "image/png", 400, "the body is empty"),
        (png_declaring(60_000, 60_000), "image/png", 400, "declares"),
        (png_declaring(7_000, 7_000), "image/png", 400, "at most 40,000,000 are read"),
        (BLANK, "image/png", 400, "no ink found"),
        (GOOD, "text/plain", 415, "content type text/plain"),
        (
            b"--b\r\n\r\nno file\r\n--b--\r\n",
            "multipart/form-data; boundary=b",
            400,
            "not a readable form",
        ),
        (
            b'--b\r\nContent-Disposition: form-data; name="x"\r\n\r\nno file\r\n--b--\r\n',
            "multipart/form-data; boundary=b",
            400,
            "the form holds no image file",
        ),
    ],
)
def test_bad_uploads_get_a_json_reason_and_the_server_keeps_serving(
    server, body, content_type, status, says
):
    got, reply = server.predict(body, content_type)
    assert got == status and says in reply["error"] and "\n" not in reply["error"]
    assert " at 0x" not in reply["error"]  # no object repr with its memory address
    assert server.predict(GOOD)[0] == 200


def test_an_oversized_body_is_refused_before_it_is_read(server):
    with socket.create_connection((server.host, server.port), timeout=10) as s:
        s.sendall(
            aimed(
                b"POST /api/predict HTTP/1.1\r\nHost: HOST\r\nContent-Type: image/png\r\n",
                server.port,
            )
            + b"Content-Length: 50000000\r\n\r\n"
            + b"\0" * 1000  # 50 MB announced, 1 KB sent
        )
        started = time.monotonic()
        reply = b""
        while chunk := s.recv(4096):  # the server answers, then closes the connection
            reply += chunk
    reply = reply.decode("latin-1")
    assert reply.startswith("HTTP/1.1 413")
    assert time.monotonic() - started < 5
    assert "at most 2,097,152" in reply
    assert server.request("GET", "/healthz")[0] == 200


def test_a_body_of_exactly_the_limit_is_read_and_one_byte_more_is_refused(server):
    limit = 2 * 1024 * 1024
    status, reply = server.predict(b"\0" * limit)  # read, and found not to be an image
    assert status == 400 and reply["error"].startswith("not a PNG or JPEG image")
    # One byte more is refused on its Content-Length, before the body: only the headers are
    # sent, as a client sending the body could see the connection reset mid-upload instead
    # of the answer (the server closes a connection whose body it will not read).
    with socket.create_connection((server.host, server.port), timeout=10) as s:
        s.sendall(
            aimed(
                b"POST /api/predict HTTP/1.1\r\nHost: HOST\r\nContent-Type: image/png\r\n",
                server.port,
            )
            + f"Content-Length: {limit + 1}\r\n\r\n".encode()
        )
        reply = b""
        while chunk := s.recv(4096):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert (
        json.loads(body)["error"] == "the body is 2,097,153 bytes; at most 2,097,152 are accepted"
    )


def test_a_body_is_never_parsed_as_a_request_even_when_the_app_ignores_it(server):
    with socket.create_connection((server.host, server.port), timeout=10) as s:
        body = aimed(
            b"GET /healthz HTTP/1.1\r\nHost: HOST\r\n\r\n", server.port
        )  # a request if parsed
        request = b"POST /nothing-here HTTP/1.1\r\nHost: HOST\r\nContent-Type: image/png\r\n"
        s.sendall(
            aimed(request, server.port) + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
        )
        assert responses_within(s, seconds=1.5) == [404]  # the 404, and no 200 after it


def responses_within(s: socket.socket, seconds: float) -> list[int]:
    """The status of every response that arrives on ``s`` within ``seconds``."""
    s.settimeout(0.2)
    reply, deadline = b"", time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(65536)
        except TimeoutError:
            continue
        if not chunk:
            break
        reply += chunk
    return [int(part[:3]) for part in reply.split(b"HTTP/1.1 ")[1:]]


def test_a_body_without_length_is_refused(server):
    with socket.create_connection((server.host, server.port), timeout=10) as s:
        request = b"POST /api/predict HTTP/1.1\r\nHost: HOST\r\nContent-Type: image/png\r\n\r\n"
        s.sendall(aimed(request, server.port))
        assert s.recv(4096).startswith(b"HTTP/1.1 411")


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/nothing-here", 404),
        ("GET", "/../../../etc/passwd", 404),
        ("GET", "/web/index.html", 404),
        ("GET", "/src/mnistnet/apps/serve.py", 404),
        ("GET", "/api/predict", 405),
        ("POST", "/api/model", 405),
        ("DELETE", "/", 405),
        ("PUT", "/healthz", 405),
    ],
)
def test_unknown_paths_and_wrong_methods(server, method, path, status):
    got, headers, body = server.request(method, path)
    assert got == status and "error" in json.loads(body)
    if status == 405:
        assert headers["Allow"] in ("GET, HEAD", "POST")


def test_a_missing_or_corrupt_model_is_a_clear_error_at_start_up(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    (tmp_path / "corrupt.npz").write_bytes(b"PK\x03\x04 not really a zip")
    for model in ("missing.npz", "corrupt.npz"):
        result = subprocess.run(
            [sys.executable, "-m", "mnistnet.apps.cli", "serve", "--port", "0", "--model", model],
            cwd=tmp_path, capture_output=True, text=True, env=env, timeout=30,
        )  # fmt: skip
        assert result.returncode == 1
        assert (
            result.stderr.startswith(f"error: model: {model}") and "Traceback" not in result.stderr
        )


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("127.0.0.1:{port}", 200),
        ("localhost:{port}", 200),
        ("[::1]:{port}", 200),
        ("rebound.example:{port}", 421),  # DNS rebinding: another site's name for 127.0.0.1
        ("127.0.0.1:1", 421),  # another port
        ("127.0.0.1", 421),  # no port: port 80
        (None, 400),  # HTTP/1.1 requires a Host
    ],
)
def test_only_a_host_header_that_names_the_server_is_answered(server, host, status):
    with socket.create_connection((server.host, server.port), timeout=10) as s:
        line = f"Host: {host.format(port=server.port)}\r\n" if host else ""
        s.sendall(f"GET /api/model HTTP/1.1\r\n{line}Connection: close\r\n\r\n".encode())
        reply = b"".join(iter(lambda: s.recv(65536), b""))
    assert reply.startswith(f"HTTP/1.1 {status} ".encode())
    if status == 421:
        assert b"does not name this server" in reply
        assert f"open http://127.0.0.1:{server.port}/".encode() in reply
    with socket.create_connection((server.host, server.port), timeout=10) as s:
        s.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")  # HTTP/1.0 without Host: a script
        assert s.recv(4096).startswith(b"HTTP/1.0 200")


@pytest.mark.parametrize(
    ("option", "says", "status"),
    [
        (["--port", "70000"], "argument --port: '70000' is not a port: give 0 to 65535", 2),
        (["--port", "-5"], "argument --port: '-5' is not a port", 2),
        (["--host="], "argument --host: empty: give an address", 2),
        # an address not on this machine: bind fails here, with no name to look up
        (["--host", "192.0.2.1"], "error: cannot listen on 192.0.2.1:8000 (Cannot assign", 1),
    ],
)
def test_a_bad_port_or_host_is_one_line_and_no_traceback(model_files, option, says, status):
    result = subprocess.run(
        [sys.executable, "-m", "mnistnet.apps.cli", "serve", *option,
         "--model", str(model_files / "model.npz")],
        capture_output=True, text=True, timeout=30,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )  # fmt: skip
    assert result.returncode == status and result.stdout == ""
    assert says in result.stderr.splitlines()[-1] and "Traceback" not in result.stderr


def test_listening_beyond_loopback_warns(model_files):
    exposed = Server("--host", "0.0.0.0", "--quiet", "--model", str(model_files / "model.npz"))
    try:
        assert exposed.request("GET", "/healthz")[0] == 200
        # on every interface: any IP address names it (a rebinding page can only send a name)
        for host, status in [("192.0.2.7", 200), ("[2001:db8::7]", 200), ("rebound.example", 421)]:
            got, _, body = exposed.request(
                "GET", "/healthz", headers={"Host": f"{host}:{exposed.port}"}
            )
            assert got == status, body
    finally:
        stderr = exposed.stop()
    assert "warning: listening on 0.0.0.0: the page is reachable from the network" in stderr


def test_500_requests_from_8_clients_all_succeed_and_memory_stays_flat(server):
    bodies = [png_of(strokes(d, np.random.default_rng(i))) for i, d in enumerate([0, 1, 7] * 4)]
    process = psutil.Process(server.process.pid)
    for body in bodies:  # warm up: first requests allocate buffers and caches
        server.predict(body)
    before = process.memory_info().rss
    latencies, failures = [], []

    def client(worker: int) -> None:
        conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
        for i in range(worker, 500, 8):
            started = time.perf_counter()
            conn.request("POST", "/api/predict", body=bodies[i % len(bodies)],
                         headers={"Content-Type": "image/png"})  # fmt: skip
            response = conn.getresponse()
            data = response.read()
            latencies.append(time.perf_counter() - started)
            if response.status != 200 or "digit" not in json.loads(data):
                failures.append((response.status, data[:200]))
        conn.close()

    threads = [threading.Thread(target=client, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    grown = (process.memory_info().rss - before) / 2**20
    assert not failures and len(latencies) == 500
    assert grown < 20, f"server memory grew by {grown:.1f} MB"
    p50, p99 = np.percentile(latencies, [50, 99]) * 1000
    print(f"\n500 requests, 8 clients: p50 {p50:.1f} ms, p99 {p99:.1f} ms, RSS +{grown:.1f} MB")


CHROMIUM = find_chromium()
# per bar: [rendered fill width / bar width, the probability printed beside it]
BAR_FILLS = """[...document.querySelectorAll('#bars li')].map((li) => {
  const width = (selector) => li.querySelector(selector).getBoundingClientRect().width;
  return [width('.fill') / width('.bar'), parseFloat(li.querySelector('.pct').textContent) / 100];
})"""
# every answer in (so the last request's is the one shown), then the digit on the page
ANSWERED = (
    "(() => { const d = digit.textContent;"
    " return pad.dataset.pending === '0' && d !== '–' && d; })()"
)


# every Content-Security-Policy violation on the page, collected from its first script on
CSP_VIOLATIONS = """window.violations = [];
document.addEventListener('securitypolicyviolation',
  (e) => violations.push(`${e.violatedDirective} ${e.blockedURI}`));"""


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium not installed")
def test_a_person_draws_a_1_and_a_7_in_a_real_browser(server, tmp_path):
    with Browser(CHROMIUM) as browser:
        browser.send("Page.enable")
        browser.send("Page.addScriptToEvaluateOnNewDocument", source=CSP_VIOLATIONS)
        browser.open(server.url, "document.querySelector('#facts dd') !== null")
        assert "784 → 32 (ReLU) → 10" in browser.evaluate("document.body.innerText")
        hint = "Draw a digit in the white box"  # before anything is drawn, what to do
        assert browser.evaluate("message.textContent").startswith(hint)
        box = browser.evaluate(
            "(() => { const r = pad.getBoundingClientRect(); return [r.left, r.top, r.width]; })()"
        )
        left, top, width = box

        def on_pad(x: float, y: float) -> tuple[float, float]:  # 280 px pad → page pixels
            return left + x * width / PAD, top + y * width / PAD

        def draw(lines) -> str:
            browser.evaluate("document.getElementById('clear').click()")
            for line in lines:
                points = np.concatenate(
                    [np.linspace(a, b, 12) for a, b in zip(line, line[1:], strict=False)]
                )
                browser.drag([on_pad(x, y) for x, y in points])
            return browser.wait_for(ANSWERED)

        assert draw([[(140, 50), (140, 230)]]) == "1"
        assert browser.evaluate("document.querySelectorAll('#bars li').length") == 10
        # each bar is filled as far as its probability says, as rendered on the screen
        bars = browser.evaluate(BAR_FILLS)
        for filled, shown in bars:
            assert filled == pytest.approx(shown, abs=0.015)  # a pixel of a ~160 px bar
        assert max(filled for filled, _ in bars) > 0.5  # the answer's bar is visibly full
        assert draw([[(70, 60), (210, 60), (125, 235)]]) == "7"
        # two strokes sent one after the other: the page shows the answer to the second,
        # even when the first one's answer arrives later
        assert draw([[(70, 60), (210, 60)], [(210, 60), (125, 235)]]) == "7"
        assert "%" in browser.evaluate("message.textContent")

        browser.evaluate("document.getElementById('clear').click(); window.blank = pad.toDataURL()")
        assert browser.evaluate("message.textContent").startswith(hint)  # cleared: the hint again
        picked = tmp_path / "one.png"  # the file picker: a PNG of a drawn 1
        picked.write_bytes(png_of(strokes(1, np.random.default_rng(4))))
        document = browser.send("DOM.getDocument")["root"]["nodeId"]
        node = browser.send("DOM.querySelector", nodeId=document, selector="#file")["nodeId"]
        browser.send("DOM.setFileInputFiles", files=[str(picked)], nodeId=node)
        assert browser.wait_for(ANSWERED) == "1"
        # the picked image is drawn on the pad (an img from a blob: URL, which the CSP allows)
        assert browser.wait_for("pad.toDataURL() !== blank")
        browser.screenshot(tmp_path / "serve.png")
        assert (tmp_path / "serve.png").stat().st_size > 10_000
        assert browser.evaluate("violations") == []  # the page keeps its own CSP


# --- what an attacker sends ----------------------------------------------------------------

SMUGGLED = b"GET /healthz HTTP/1.1\r\nHost: HOST\r\n\r\n"
NESTED_FORM = (
    b'--b0\r\nContent-Disposition: form-data; name="x"\r\n'
    b"Content-Type: multipart/mixed; boundary=b1\r\n\r\n"
    + b"".join(
        f"--b{i}\r\nContent-Type: multipart/mixed; boundary=b{i + 1}\r\n\r\n".encode()
        for i in range(1, 1200)
    )  # fmt: skip
    + b"\r\n--b0--\r\n"
)
HOSTILE = {  # name: (raw request, the status of its one JSON answer)
    "two Content-Lengths": (
        b"POST /api/predict HTTP/1.1\r\nHost: HOST\r\nContent-Type: image/png\r\nContent-Length: 1"
        + f"\r\nContent-Length: {1 + len(SMUGGLED)}\r\n\r\nx".encode() + SMUGGLED, 400),
    "a Unicode digit": ("POST /api/predict HTTP/1.1\r\nHost: HOST\r\nContent-Length: ²\r\n\r\nab"
                        .encode(), 400),  # fmt: skip
    "5,000 digits": (b"POST /api/predict HTTP/1.1\r\nHost: HOST\r\nContent-Length: " + b"9" * 5000
                     + b"\r\n\r\n", 400),  # fmt: skip
    "100 KB of headers": (b"GET /healthz HTTP/1.1\r\nHost: HOST\r\nX-Big: " + b"a" * 100_000
                          + b"\r\n\r\n", 431),  # fmt: skip
    "a body over 2 MB": (b"POST /api/predict HTTP/1.1\r\nHost: HOST\r\nContent-Type: image/png\r\n"
                         b"Content-Length: 3000000\r\n\r\n" + b"\0" * 1000, 413),  # fmt: skip
    "a form nested 1,200 deep": (
        b"POST /api/predict HTTP/1.1\r\nHost: HOST\r\nContent-Type: multipart/form-data; "
        + f"boundary=b0\r\nContent-Length: {len(NESTED_FORM)}\r\n\r\n".encode() + NESTED_FORM,
        400),
    "a chunked body": (b"POST /api/predict HTTP/1.1\r\nHost: HOST\r\nTransfer-Encoding: chunked"
                       b"\r\n\r\n" + f"{len(SMUGGLED):x}\r\n".encode() + SMUGGLED
                       + b"\r\n0\r\n\r\n" + SMUGGLED, 411),
    "a garbage request line": (b"GARBAGE\r\n\r\n", 400),
    "OPTIONS": (b"OPTIONS / HTTP/1.1\r\nHost: HOST\r\n\r\n", 405),
    "PATCH": (b"PATCH /healthz HTTP/1.1\r\nHost: HOST\r\nContent-Length: 0\r\n\r\n", 405),
}  # fmt: skip


def one_exchange(server: Server, raw: bytes) -> tuple[list[int], list[dict]]:
    """Send ``raw`` on a fresh connection; every response's status and JSON body."""
    with socket.create_connection((server.host, server.port), timeout=10) as s:
        try:
            s.sendall(aimed(raw, server.port))
        except OSError:  # the server may answer and close before all of a huge body is sent
            pass
        s.settimeout(0.2)
        reply, deadline = b"", time.monotonic() + 1.5
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                break
            if not chunk:
                break
            reply += chunk
    parts = reply.split(b"HTTP/1.")[1:]
    statuses = [int(part[2:5]) for part in parts]
    bodies = [json.loads(part.split(b"\r\n\r\n", 1)[1] or b"{}") for part in parts]
    return statuses, bodies


def test_hostile_requests_get_one_json_error_each_and_leave_no_traceback(model_files):
    hostile = Server("--quiet", "--model", str(model_files / "model.npz"))
    try:
        for name, (raw, status) in HOSTILE.items():
            statuses, bodies = one_exchange(hostile, raw)
            assert statuses == [status], name  # one answer: the smuggled GET never ran
            assert set(bodies[0]) == {"error"} and "\n" not in bodies[0]["error"], name
        status, headers, body = hostile.request("HEAD", "/healthz")
        assert status == 200 and body == b"" and headers["Content-Type"] == "application/json"
        assert hostile.request("GET", "/healthz")[0] == 200  # and it still serves
    finally:
        log = hostile.stop()
    assert "Traceback" not in log and "Error" not in log, log


def test_the_log_has_one_escaped_line_per_request(model_files):
    """Percent-encoded or raw, an ESC, CR or LF in a request reaches the log only escaped."""
    logged = Server("--model", str(model_files / "model.npz"))  # not --quiet
    asked = [
        b"GET /%1b[2J HTTP/1.1",  # decoded, ESC [2J would clear the operator's terminal
        b"GET /%0d%0aforged HTTP/1.1",  # decoded, a line of the client's own in the log
        b"GET /\x1b[31mred HTTP/1.1",  # a raw ESC in the request line
        b"GARBAGE\x1b[2J",  # waitress's own 400
    ]
    try:
        for line in asked:
            statuses, _ = one_exchange(
                logged, line + b"\r\nHost: HOST\r\nConnection: close\r\n\r\n"
            )
            assert statuses in ([404], [400])
    finally:
        log = logged.stop()
    lines = log.splitlines()
    assert "\x1b" not in log and "\r" not in log and len(lines) == len(asked), log
    for line in lines:
        assert re.fullmatch(r"\d\d:\d\d:\d\d 127\.0\.0\.1 [A-Z-]+ [\x21-\x7e]+ \d{3}", line), line
    assert [line.split(" ", 2)[2] for line in lines] == [
        "GET /%1b[2J 404", "GET /%0d%0aforged 404", "GET /%1B[31mred 404", "- - 400"
    ]  # fmt: skip


SERVE_WITH = """
import json, sys
from mnistnet.apps.serve import (App, Classifier, DecodeBudget, Limits, make_server,
                                 return_freed_memory)
settings = json.loads(sys.argv[2])
budget = DecodeBudget(**settings.pop("decode", {}))
return_freed_memory()  # as `mnistnet serve` does
server = make_server(App(Classifier(sys.argv[1], "none.json", budget), quiet=True), port=0,
                     limits=Limits(**settings))
print(server.effective_port, flush=True)
server.run()
"""


@contextlib.contextmanager
def serving_with(model_files, nofile: int | None = None, **settings):
    """A server with ``Limits(**settings)`` in a subprocess (``decode``: the
    DecodeBudget's arguments; ``nofile``: its file limit); yields its psutil.Process and
    port, and checks that it logged no traceback."""
    import resource

    limit = (
        (lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))) if nofile else None
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE_WITH, str(model_files / "model.npz"), json.dumps(settings)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, preexec_fn=limit,
    )  # fmt: skip
    try:
        port = int(process.stdout.readline())
        yield psutil.Process(process.pid), port
    finally:
        process.kill()
        _, log = process.communicate()
    assert "Traceback" not in log, log


@pytest.mark.parametrize("nofile", [None, 64], ids=["idle", "idle-beyond-the-file-limit"])
def test_the_server_closes_idle_connections_itself_and_serves_again(model_files, nofile):
    """A second's timeout here (30 s by default). Beyond the file limit (64 descriptors: a
    connection limit of 16), the rest wait in the backlog, not in descriptors, and each one
    that comes makes room by closing the idle connection that has waited longest."""
    with serving_with(model_files, nofile, idle_timeout=1) as (_, port):
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(40)]
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
            s.sendall(
                aimed(b"GET /healthz HTTP/1.1\r\nHost: HOST\r\nConnection: close\r\n\r\n", port)
            )
            assert s.recv(4096).startswith(b"HTTP/1.1 200")
        waited = time.monotonic() - started
        closed = 0
        for s in idle:
            s.settimeout(5)
            try:
                closed += s.recv(1) == b""
            except TimeoutError:
                pass  # still open after 5 s: not closed by the server
            except ConnectionResetError:
                closed += 1
            s.close()
        assert closed == 40  # every idle connection was closed by the server
        assert waited < 1  # behind 24 idle ones in the backlog: each closed an older one


class Tricklers:
    """``n`` connections that each send a request's first byte, then one more byte every
    ``period`` seconds (a thread does it), as a slow-client attack does."""

    def __init__(self, port: int, n: int, period: float, first: bytes = b"G") -> None:
        self.sockets = []
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(first)
            s.setblocking(False)
            self.sockets.append(s)
        self.period, self.stopped = period, threading.Event()
        self.thread = threading.Thread(target=self.trickle)
        self.thread.start()

    def trickle(self) -> None:
        while not self.stopped.is_set():
            for s in self.sockets:
                with contextlib.suppress(OSError):  # closed by the server
                    s.send(b"E")
                if self.stopped.wait(self.period / len(self.sockets)):
                    return

    def outcomes(self) -> dict[str, int]:
        """Stop, and count what each connection got: its status ("503"), "open", "closed"
        (without a word: closed before its first byte was read, as an idle one), "reset"."""
        self.stopped.set()
        self.thread.join()
        counts: dict[str, int] = {}
        for s in self.sockets:
            try:
                reply = s.recv(4096)
                outcome = reply[9:12].decode() if reply.startswith(b"HTTP/1.1 ") else "closed"
            except BlockingIOError:
                outcome = "open"
            except ConnectionResetError:
                outcome = "reset"
            counts[outcome] = counts.get(outcome, 0) + 1
            s.close()
        return counts


def timed_request(port: int, method: str, path: str, body: bytes | None = None):
    """(status, seconds) of one request on a new connection."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "image/png"})
        response = conn.getresponse()
        response.read()
    finally:
        conn.close()
    return response.status, time.perf_counter() - started


def test_slow_clients_on_every_slot_cannot_shut_out_a_legitimate_one(model_files):
    """200 clients trickle a header byte each (400 bytes/s in all) at a server that holds
    50 connections: each new connection closes the one that has waited longest for its
    request (503), so a legitimate request is answered at once. (bench_serve.py: 1,000.)"""
    with serving_with(model_files, connections=50) as (process, port):
        slow = Tricklers(port, 200, period=0.5)
        time.sleep(1.5)  # every slot taken, the rest of the 200 waiting in the backlog
        answers = [timed_request(port, "GET", "/healthz") for _ in range(3)]
        answers += [timed_request(port, "POST", "/api/predict", GOOD) for _ in range(3)]
        open_files = process.num_fds()
        outcomes = slow.outcomes()
    worst = max(seconds for _, seconds in answers)
    print(f"\n200 slow clients, 50 connections: worst answer {worst * 1e3:.1f} ms; {outcomes}")
    assert [status for status, _ in answers] == [200] * 6
    assert worst < 1, answers
    assert open_files < 100  # 48 connections, 32 refused ones closing, the model's files
    assert outcomes.get("open", 0) <= 48 and set(outcomes) <= {"503", "closed", "open"}
    assert outcomes["503"] >= 140, outcomes  # made room: told why, and read it


def test_a_request_must_arrive_whole_within_its_deadline(model_files):
    """Headers trickled a byte at a time, or a body that stalls halfway: 408 at the
    deadline (1 s here, checked every second), while other requests are answered."""
    upload = b"POST /api/predict HTTP/1.1\r\nHost: HOST\r\nContent-Type: image/png\r\n"
    with serving_with(model_files, request_deadline=1) as (_, port):
        started = time.monotonic()
        slow = Tricklers(port, 1, period=0.2, first=b"GET /healthz HTTP/1.1\r\nX-Slow: ")
        with socket.create_connection(("127.0.0.1", port), timeout=5) as stalled:
            stalled.sendall(aimed(upload, port) + b"Content-Length: 100000\r\n\r\n" + GOOD[:999])
            assert timed_request(port, "POST", "/api/predict", GOOD)[0] == 200
            reply = stalled.recv(4096)
            waited = time.monotonic() - started
        time.sleep(max(0.0, started + 2.5 - time.monotonic()))  # the trickler's turn too
        outcomes = slow.outcomes()
    assert reply.startswith(b"HTTP/1.1 408 Request Timeout") and 1 <= waited < 3
    assert b"the request did not arrive whole within 1 s of its first byte" in reply
    assert b"X-Content-Type-Options: nosniff" in reply
    assert outcomes == {"408": 1}


def spooled_bytes(pid: int) -> int:
    """Bytes in the files ``pid`` holds open that are already deleted (temporary files)."""
    total = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # closed meanwhile
            if os.readlink(fd).endswith(" (deleted)"):
                total += os.stat(fd).st_size
    return total


def test_stalled_uploads_stay_in_memory_within_the_budget_until_the_deadline(model_files):
    """30 uploads announce 1 MB, send 600 KB (past waitress's 512 KB spool threshold) and
    stall. Nothing goes to disk; over the upload budget (8 MiB here) the longest-arriving
    are dropped (503), the rest get 408 at the deadline (2 s); a good upload is answered."""
    budget, upload = 8 * 2**20, b"POST /api/predict HTTP/1.1\r\nHost: HOST\r\n"
    with serving_with(model_files, upload_budget=budget, request_deadline=2) as (process, port):
        assert timed_request(port, "POST", "/api/predict", GOOD)[0] == 200  # warm up
        base, started = process.memory_info().rss, time.monotonic()
        stalled = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(30)]
        for s in stalled:
            with contextlib.suppress(OSError):  # dropped before all of it was sent
                s.sendall(
                    aimed(upload, port) + b"Content-Length: 1000000\r\n\r\n" + b"\0" * 600_000
                )
        time.sleep(0.5)
        spooled, grown = spooled_bytes(process.pid), process.memory_info().rss - base
        assert timed_request(port, "POST", "/api/predict", GOOD)[0] == 200
        replies = []
        for s in stalled:
            with s:
                replies.append(s.recv(4096)[:12].decode())
        ended = time.monotonic() - started
    counts = {reply: replies.count(reply) for reply in set(replies)}
    print(
        f"\n30 stalled uploads of 600 KB, budget 8 MiB: RSS +{grown / 2**20:.1f} MiB, "
        f"{spooled} bytes spooled; {counts}; all answered by {ended:.1f} s"
    )
    assert spooled == 0 and grown < budget + 3 * 2**20  # 600 KB past it, checked each turn
    assert set(counts) == {"HTTP/1.1 503", "HTTP/1.1 408"} and counts["HTTP/1.1 408"] <= 14
    assert ended < 4.5  # the deadline, checked every second, and the test's own sending


def hostile_png(kind: str, side: int) -> bytes:
    """A PNG of a few KB that decodes to side² pixels of a narrow mode, which the decoder
    widens: "1" (1-bit), "P" (palette), "P+transparency", "I;16" (16-bit gray)."""
    mode = kind.split("+")[0]
    white, black = {"1": (1, 0), "P": (0, 1), "I;16": (65535, 0)}[mode]
    image = Image.new(mode, (side, side), white)
    if mode == "P":
        image.putpalette([255, 255, 255, 0, 0, 0])
    ImageDraw.Draw(image).line(
        [(side * 0.45, side * 0.1), (side / 2, side * 0.9)], black, side // 12
    )
    out = io.BytesIO()
    image.save(out, format="PNG", **({"transparency": 0} if "transparency" in kind else {}))
    return out.getvalue()


def test_16_hostile_pngs_at_once_stay_within_the_decode_budget(model_files):
    """1-bit, palette and 16-bit PNGs are converted to 4 bytes a pixel as they are read (a
    palette with a transparent colour holds 9 bytes a pixel at its peak): the budget must
    count that. 100 MiB and 16 slots here, so the budget alone bounds them."""
    budget = 100 * 2**20
    kinds = ["1", "P", "P+transparency", "I;16"]
    bodies = [hostile_png(kind, 3000) for kind in kinds] * 4  # 9 Mpx each, 7 to 60 KB
    with serving_with(model_files, decode={"budget": budget, "slots": 16}) as (process, port):
        url = ("127.0.0.1", port)
        post = lambda body: post_image(url, body)  # noqa: E731
        assert post(GOOD)[0] == 200  # warm up: the model and the decoder are loaded
        base, peak, done = process.memory_info().rss, [0], threading.Event()

        def watch() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], process.memory_info().rss - base)
                time.sleep(0.002)

        watcher = threading.Thread(target=watch)
        watcher.start()
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(post, bodies))
        done.set()
        watcher.join()
    assert [status for status, _ in answers] == [200] * 16
    print(f"\n16 hostile PNGs, budget {budget / 2**20:.0f} MiB: peak +{peak[0] / 2**20:.0f} MiB")
    assert peak[0] < budget + 16 * 2**20, f"peak {peak[0] / 2**20:.0f} MiB over the budget"


def post_image(url: tuple[str, int], body: bytes) -> tuple[int, dict]:
    conn = http.client.HTTPConnection(*url, timeout=60)
    try:
        conn.request("POST", "/api/predict", body=body, headers={"Content-Type": "image/png"})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


@pytest.mark.parametrize(("each", "most_at_once"), [(10, 2), (60, 1), (500, 1)])
def test_the_decode_budget_bounds_memory_and_cores(each, most_at_once):
    """Budget 100, two cores: images of 10 decode two at a time, of 60 one at a time, and
    one larger than the whole budget still runs (alone)."""
    from mnistnet.apps.serve import DecodeBudget

    budget, running, seen, lock = DecodeBudget(budget=100, slots=2), [0], [], threading.Lock()

    def decode() -> None:
        with budget.reserve(each):
            with lock:
                running[0] += 1
                seen.append(running[0])
            time.sleep(0.02)
            with lock:
                running[0] -= 1

    threads = [threading.Thread(target=decode) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert len(seen) == 8 and max(seen) == most_at_once

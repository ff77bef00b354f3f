"""`mnistnet serve` under load and under attack, on loopback: the figures in the README.

Run with `make bench` (after `make run`: it serves data/model/model.npz). Each part starts its
own server in a subprocess and reads its resident memory with psutil:

1. 16 clients at once each POST a 169 KB PNG that declares 6,324 × 6,324 RGBA pixels (under
   both the 2 MB body and the 40 Mpx limits): peak and final memory, every answer JSON; then
   the same with 1-bit, palette and 16-bit PNGs of that size, which Pillow widens as it reads;
2. 1,100 connections opened and left silent under `ulimit -n 1024`: when the server has
   closed them all, and when /healthz answers again; then, with 300 silent, how long other
   clients wait;
3. latency: /api/predict of a canvas drawing on one keep-alive connection (p50), and 16
   clients × 50 new connections each (p99);
4. 1,000 slow clients each trickling a header byte every 10 s (100 bytes/s in all), each
   reconnecting when the server closes it, for 30 s: how long a legitimate request takes
   meanwhile (one a second), what the slow ones got, and the server's peak memory;
5. 300 uploads that announce 2 MiB, send all but one byte and stall: bytes spooled to disk,
   the server's memory, and when each was answered.

Every request loop is bounded and goes to 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "data/model/model.npz"


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def huge_rgba() -> bytes:
    """6,324² RGBA, nearly all transparent: compresses to ~170 KB, decodes to 160 MB."""
    image = Image.new("RGBA", (6324, 6324), (0, 0, 0, 0))
    ImageDraw.Draw(image).line([(3000, 800), (3200, 5600)], fill=(0, 0, 0, 255), width=500)
    return png(image)


def narrow_mode(kind: str) -> bytes:
    """6,324² in a mode Pillow widens as it decodes: "1" (1-bit), "P" (palette),
    "P+transparency", "I;16" (16-bit gray); 10 to 90 KB each."""
    mode = kind.split("+")[0]
    white, black = {"1": (1, 0), "P": (0, 1), "I;16": (65535, 0)}[mode]
    image = Image.new(mode, (6324, 6324), white)
    if mode == "P":
        image.putpalette([255, 255, 255, 0, 0, 0])
    ImageDraw.Draw(image).line([(3000, 800), (3200, 5600)], fill=black, width=500)
    out = io.BytesIO()
    image.save(out, format="PNG", **({"transparency": 0} if "transparency" in kind else {}))
    return out.getvalue()


def canvas_drawing() -> bytes:
    """What the page sends after a stroke: a 280 px pad with a 7 on it."""
    image = Image.new("RGB", (280, 280), "white")
    ImageDraw.Draw(image).line([(70, 60), (210, 60), (125, 235)], fill="black", width=20)
    return png(image)


class Server:
    def __init__(self, nofile: int | None = None) -> None:
        def limit() -> None:
            if nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mnistnet.apps.cli", "serve", "--port", "0", "--quiet",
             "--model", str(MODEL)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, preexec_fn=limit,
        )  # fmt: skip
        line = self.process.stdout.readline()
        self.port = int(line.split("http://127.0.0.1:", 1)[1].split("/")[0])
        self.ps = psutil.Process(self.process.pid)

    def rss_mb(self) -> float:
        return self.ps.memory_info().rss / 2**20

    def stop(self) -> str:
        self.process.terminate()
        _, err = self.process.communicate(timeout=30)
        return err


def post(port: int, body: bytes, conn: http.client.HTTPConnection | None = None, timeout=60):
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request("POST", "/api/predict", body=body, headers={"Content-Type": "image/png"})
    response = conn.getresponse()
    data = response.read()
    if own:
        conn.close()
    return response.status, json.loads(data)


def big_images_at_once(name: str, bodies: list[bytes]) -> None:
    """16 clients POST ``bodies`` at once: time, the server's peak and final memory."""
    server = Server()
    post(server.port, canvas_drawing())  # warm up: the model and the decoder are loaded
    start = server.rss_mb()
    peak, answers, done = start, [], threading.Event()

    def watch() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, server.rss_mb())
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    clients = [threading.Thread(target=lambda b=body: answers.append(post(server.port, b)))
               for body in bodies]  # fmt: skip
    started = time.perf_counter()
    for c in clients:
        c.start()
    for c in clients:
        c.join()
    took = time.perf_counter() - started
    done.set()
    watcher.join()
    time.sleep(1)
    after = server.rss_mb()
    log = server.stop()
    sizes = sorted({round(len(b) / 1e3) for b in bodies})
    print(f"16 at once, {name} ({sizes[0]}-{sizes[-1]} KB): {took:.1f} s, server RSS "
          f"{start:.0f} MB at start, peak {peak:.0f} MB (+{peak - start:.0f}), after "
          f"{after:.0f} MB; {sum(s == 200 for s, _ in answers)}/16 answered 200; "
          f"log lines: {len(log.splitlines())}")  # fmt: skip


def silent_connections() -> None:
    resource.setrlimit(
        resource.RLIMIT_NOFILE, (4096, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    )
    server = Server(nofile=1024)
    silent = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(1100)]
    opened = time.monotonic()
    healthz = socket.create_connection(("127.0.0.1", server.port), timeout=120)
    host = f"127.0.0.1:{server.port}"
    healthz.sendall(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    answered = healthz.recv(4096).startswith(b"HTTP/1.1 200") and time.monotonic() - opened
    healthz.close()
    closed_at = []
    for s in silent:
        s.settimeout(120)
        try:
            s.recv(1)
        except OSError:
            pass
        closed_at.append(time.monotonic() - opened)
        s.close()
    print(f"1,100 silent connections, ulimit -n 1024: /healthz answered after {answered:.1f} s; "
          f"the server had closed every silent one by {max(closed_at):.1f} s "
          f"(idle timeout 30 s)")  # fmt: skip

    silent = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(300)]
    waits = []
    for _ in range(50):
        started = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request("GET", "/healthz")
        conn.getresponse().read()
        conn.close()
        waits.append(time.perf_counter() - started)
    for s in silent:
        s.close()
    log = server.stop()
    print(f"with 300 silent connections open, 50 other requests: worst {max(waits) * 1e3:.1f} ms; "
          f"log: {' | '.join(log.splitlines()[:2]) or 'nothing'}")  # fmt: skip


def latency() -> None:
    body = canvas_drawing()
    server = Server()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    post(server.port, body, conn)
    times = []
    for _ in range(200):
        started = time.perf_counter()
        post(server.port, body, conn)
        times.append(time.perf_counter() - started)
    conn.close()
    print(f"keep-alive /api/predict of a canvas drawing: p50 {statistics.median(times) * 1e3:.2f} "
          f"ms over 200")  # fmt: skip

    times, failures = [], []

    def client() -> None:
        for _ in range(50):
            started = time.perf_counter()
            try:
                status, reply = post(server.port, body)
                if status != 200 or "digit" not in reply:
                    failures.append(status)
            except OSError as e:
                failures.append(repr(e))
            times.append(time.perf_counter() - started)

    clients = [threading.Thread(target=client) for _ in range(16)]
    for c in clients:
        c.start()
    for c in clients:
        c.join()
    server.stop()
    p50, p99 = np.percentile(times, [50, 99]) * 1e3
    print(f"16 clients x 50 new connections: {len(times)} requests, {len(failures)} failed, "
          f"p50 {p50:.1f} ms, p99 {p99:.1f} ms")  # fmt: skip


def raise_own_file_limit() -> None:
    """Room for this process's 1,000+ client sockets (the server keeps its own limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(4096, hard)), hard))


def watch_rss(server: Server, done: threading.Event, peak: list[float]) -> None:
    while not done.wait(0.2):
        peak[0] = max(peak[0], server.rss_mb())


def slow_clients(n: int = 1000, period: float = 10, seconds: float = 30) -> None:
    """``n`` connections, each sending one header byte every ``period`` s and reconnecting
    when closed (what it got is counted); a legitimate request every second meanwhile."""
    raise_own_file_limit()
    server, body = Server(), canvas_drawing()
    start_rss, peak, done = server.rss_mb(), [0.0], threading.Event()
    watcher = threading.Thread(target=watch_rss, args=(server, done, peak))
    watcher.start()

    def connect() -> socket.socket:
        s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        s.sendall(b"G")  # a request's first byte; the rest follows a byte at a time
        s.setblocking(False)
        return s

    slow = [connect() for _ in range(n)]
    outcomes: dict[str, int] = {}

    def trickle() -> None:
        while not done.is_set():
            for i, s in enumerate(slow):
                try:
                    reply = s.recv(4096)
                    outcome = reply[9:12].decode() if reply else "closed"
                except BlockingIOError:
                    s.send(b"E")  # still open: one more byte
                    outcome = None
                except OSError:
                    outcome = "reset"
                if outcome:
                    outcomes[outcome] = outcomes.get(outcome, 0) + 1
                    s.close()
                    with contextlib.suppress(OSError):  # the backlog full: try next round
                        slow[i] = connect()
                if done.wait(period / n):
                    return

    trickler = threading.Thread(target=trickle)
    trickler.start()
    times, failed, started = [], [], time.monotonic()
    while time.monotonic() - started < seconds:
        time.sleep(1)
        begun = time.perf_counter()
        try:
            if len(times) % 2:
                status, _ = post(server.port, body, timeout=15)
            else:
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=15)
                conn.request("GET", "/healthz")
                status = conn.getresponse().status
                conn.close()
        except OSError as e:
            status = type(e).__name__
        times.append(time.perf_counter() - begun)
        if status != 200:
            failed.append(status)
    done.set()
    trickler.join()
    watcher.join()
    for s in slow:
        s.close()
    log = server.stop()
    ms = np.array(times) * 1e3
    print(f"{n:,} slow clients (a header byte every {period:g} s each: {n / period:.0f} bytes/s), "
          f"reconnecting when closed, {seconds:g} s: {len(times)} legitimate requests "
          f"(/healthz, /api/predict), {len(failed)} failed {failed[:3]}, median "
          f"{np.median(ms):.1f} ms, worst {ms.max():.1f} ms; the slow ones got {outcomes}; "
          f"server RSS {start_rss:.0f} MB at start, peak {peak[0]:.0f} MB; "
          f"log: {' | '.join(log.splitlines()[:2]) or 'nothing'}")  # fmt: skip


def spooled_mb(pid: int) -> float:
    """MB in files that ``pid`` holds open but are already deleted: spooled uploads."""
    total = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            if os.readlink(fd).endswith(" (deleted)"):
                total += os.stat(fd).st_size
    return total / 1e6


def stalled_uploads(n: int = 300) -> None:
    """``n`` uploads announce 2 MiB, send all but its last byte, and wait."""
    raise_own_file_limit()
    server = Server()
    start_rss, announced = server.rss_mb(), 2 * 2**20
    head = (f"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"Content-Type: image/png\r\nContent-Length: {announced}\r\n\r\n").encode()  # fmt: skip
    uploads, started = [], time.monotonic()
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        with contextlib.suppress(OSError):  # dropped (503) before all of it was sent
            s.sendall(head + b"\0" * (announced - 1))
        uploads.append(s)
    time.sleep(2)
    spooled, rss = spooled_mb(server.process.pid), server.rss_mb()
    answers, last = {}, 0.0
    for s in uploads:
        s.settimeout(60)
        try:
            reply = s.recv(4096)[9:12].decode() or "closed"
        except OSError as e:
            reply = type(e).__name__
        answers[reply] = answers.get(reply, 0) + 1
        last = max(last, time.monotonic() - started)
        s.close()
    server.stop()
    print(f"{n} uploads announcing 2 MiB, all but a byte sent, then stalled: after 2 s "
          f"{spooled:.0f} MB spooled to disk, server RSS {rss:.0f} MB ({start_rss:.0f} at "
          f"start); answers {answers}, the last {last:.1f} s after the first was sent")  # fmt: skip


def main() -> None:
    if not MODEL.exists():
        sys.exit(f"no {MODEL}: run `make run` first")
    latency()
    big_images_at_once("PNGs declaring 6324x6324 RGBA", [huge_rgba()] * 16)
    kinds = ["1", "P", "P+transparency", "I;16"]
    narrow = [narrow_mode(kind) for kind in kinds] * 4
    big_images_at_once("6324x6324 PNGs: 1-bit, palette (+transparency), 16-bit", narrow)
    silent_connections()
    slow_clients()
    stalled_uploads()


if __name__ == "__main__":
    main()

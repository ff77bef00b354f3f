"""A small driver for Debian's headless Chromium over the Chrome DevTools Protocol.

Starts the system browser (nothing is downloaded), opens one page, and offers what the
tests need: evaluate JavaScript, press and drag the mouse (Chromium turns those into pointer
events, as a real mouse does), wait for a condition, and take a screenshot.
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

# A quiet headless browser: no GPU, no first-run screens, no traffic of its own
HEADLESS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CHROMIUM_FLAGS = [*HEADLESS, "--remote-debugging-port=0", "--window-size=1100,900"]


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    """One headless Chromium with one page; use as a context manager."""

    def __init__(self, executable: str, timeout: float = 30) -> None:
        import websocket  # websocket-client, a dev dependency

        self.profile = tempfile.mkdtemp(prefix="mnistnet-chromium-")
        self.process = subprocess.Popen(
            [executable, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not port_file.exists() or not port_file.read_text().strip():
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.close()
                raise RuntimeError("Chromium did not open its DevTools port")
            time.sleep(0.05)
        port = port_file.read_text().split()[0]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
                page = next(t for t in json.load(r) if t["type"] == "page")
            # no Origin header: Chromium refuses DevTools connections from other origins
            self.ws = websocket.create_connection(
                page["webSocketDebuggerUrl"], timeout=timeout, suppress_origin=True
            )
        except BaseException:
            self.close()
            raise
        self.ids = itertools.count(1)

    def send(self, method: str, **params) -> dict:
        """Call a DevTools method and return its result (events in between are skipped)."""
        call_id = next(self.ids)
        self.ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == call_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def evaluate(self, expression: str):
        result = self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, url: str, ready: str, timeout: float = 15) -> None:
        self.send("Page.navigate", url=url)
        self.wait_for(ready, timeout)

    def wait_for(self, condition: str, timeout: float = 15):
        """Poll a JavaScript expression until it is truthy; return its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(condition)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"still false after {timeout} s: {condition}")
            time.sleep(0.05)

    def drag(self, points: list[tuple[float, float]]) -> None:
        """Press at the first point, move through the rest, release at the last."""
        mouse = {"button": "left", "clickCount": 1}
        self.send(
            "Input.dispatchMouseEvent",
            type="mousePressed",
            x=points[0][0],
            y=points[0][1],
            buttons=1,
            **mouse,
        )
        for x, y in points[1:]:
            self.send(
                "Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y, buttons=1, button="left"
            )
        self.send(
            "Input.dispatchMouseEvent",
            type="mouseReleased",
            x=points[-1][0],
            y=points[-1][1],
            buttons=0,
            **mouse,
        )

    def screenshot(self, path: Path) -> None:
        data = self.send("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        if getattr(self, "ws", None) is not None:
            self.ws.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

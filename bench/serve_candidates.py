"""How candidate HTTP servers for `mnistnet serve` treat hostile clients: the measurements
behind choosing waitress (README, "Draw a digit").

Each candidate serves a minimal app (/healthz, and an endpoint that reads its body) on
127.0.0.1 with a 10 s idle timeout where it has one, and gets the cases of issue 17: a
connection that never sends, one that trickles its headers, two Content-Lengths (request
smuggling), a Unicode digit, 5,000 digits, 100 KB of headers, a garbage request line, the
keep-alive latency, and 300 silent connections under a file limit of 256. The candidates
are not this project's dependencies; try them in a scratch environment:

    python -m venv /tmp/candidates
    /tmp/candidates/bin/pip install waitress uvicorn hypercorn
    /tmp/candidates/bin/python bench/serve_candidates.py

Every request goes to 127.0.0.1, and every loop is bounded in count and time.
"""

from __future__ import annotations

import importlib.util
import json
import resource
import socket
import statistics
import subprocess
import sys
import time

HOST = "127.0.0.1"
SERVE = """
import asyncio, json, sys
which, port = sys.argv[1], int(sys.argv[2])

def wsgi(environ, start_response):
    data = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    body = json.dumps({"got": len(data)}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]

async def asgi(scope, receive, send):
    if scope["type"] != "http":
        return
    got = 0
    while True:
        message = await receive()
        got += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = json.dumps({"got": got}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})

if which == "waitress":
    import waitress
    waitress.serve(wsgi, host="127.0.0.1", port=port, channel_timeout=10, cleanup_interval=1,
                   connection_limit=200, max_request_header_size=16384)
elif which == "uvicorn":
    import uvicorn
    uvicorn.run(asgi, host="127.0.0.1", port=port, timeout_keep_alive=10, http="h11",
                log_level="warning")
else:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config
    config = Config()
    config.bind, config.keep_alive_timeout, config.read_timeout = [f"127.0.0.1:{port}"], 10, 10
    asyncio.run(serve(asgi, config))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start(which: str, nofile: int | None = None) -> tuple[subprocess.Popen, int]:
    def limit() -> None:
        if nofile:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", SERVE, which, str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               preexec_fn=limit)  # fmt: skip
    for _ in range(200):
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return process, port
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{which} did not start")


def exchange(port: int, data: bytes, seconds: float = 3) -> str:
    """The status lines and body kinds of what comes back for ``data``, or why nothing did."""
    reply = b""
    with socket.create_connection((HOST, port), timeout=seconds) as s:
        try:
            s.sendall(data)
            while chunk := s.recv(65536):
                reply += chunk
        except TimeoutError:
            pass
        except OSError as e:
            return f"{type(e).__name__}" + (f" after {reply[:12]!r}" if reply else "")
    answers = []
    for part in reply.split(b"HTTP/1.")[1:]:
        head, _, body = part.partition(b"\r\n\r\n")
        kind = "json" if body.startswith(b"{") else "empty" if not body else "text"
        answers.append(f"{head[2:5].decode()} {kind}")
    return ", ".join(answers) or "no answer"


def closed_after(port: int, first: bytes, trickle: bool, limit: float = 25) -> str:
    s = socket.create_connection((HOST, port))
    s.settimeout(0.5)
    started = last = time.monotonic()
    if first:
        s.sendall(first)
    try:
        while time.monotonic() - started < limit:
            if trickle and time.monotonic() - last > 2:
                s.sendall(b"X")
                last = time.monotonic()
            try:
                s.recv(100)
                return f"closed after {time.monotonic() - started:.0f} s"
            except TimeoutError:
                continue
    except OSError:
        return f"closed after {time.monotonic() - started:.0f} s"
    finally:
        s.close()
    return f"open after {limit:.0f} s"


def keep_alive_ms(port: int) -> float:
    times = []
    with socket.create_connection((HOST, port)) as s:
        for _ in range(50):
            started = time.perf_counter()
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            reply = b""
            while b"}" not in reply:
                reply += s.recv(4096)
            times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def file_limit(which: str) -> str:
    process, port = start(which, nofile=256)
    silent = [socket.create_connection((HOST, port), timeout=5) for _ in range(300)]
    started = time.monotonic()
    answer = exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                      seconds=40)  # fmt: skip
    took = time.monotonic() - started
    for s in silent:
        s.close()
    process.kill()
    _, err = process.communicate()
    traces = err.decode(errors="replace").count("Traceback")
    return f"{answer} after {took:.0f} s, {traces} tracebacks in its log"


def probe(which: str) -> dict[str, str]:
    process, port = start(which)
    smuggled = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    post = b"POST /api HTTP/1.1\r\nHost: x\r\n"
    results = {
        "a connection that never sends": closed_after(port, b"", trickle=False),
        "headers trickled a byte at a time": closed_after(port, b"GET / HTTP/1.1\r\nX: ", True),
        "two Content-Lengths (1, then 1 + a request)": exchange(
            port,
            post
            + f"Content-Length: 1\r\nContent-Length: {1 + len(smuggled)}\r\n\r\nx".encode()
            + smuggled,
        ),  # fmt: skip
        "Content-Length: ² (a Unicode digit)": exchange(
            port, post + "Content-Length: ²\r\n\r\nab".encode()
        ),
        "Content-Length of 5,000 digits": exchange(
            port, post + b"Content-Length: " + b"9" * 5000 + b"\r\n\r\n"
        ),
        "100 KB of headers": exchange(port, post + b"X: " + b"a" * 100_000 + b"\r\n\r\n"),
        "a garbage request line": exchange(port, b"GARBAGE\r\n\r\n"),
        "keep-alive request, p50": f"{keep_alive_ms(port):.2f} ms",
    }
    process.kill()
    _, err = process.communicate()
    results["tracebacks in its log"] = str(err.decode(errors="replace").count("Traceback"))
    results["300 silent connections, file limit 256, then /healthz"] = file_limit(which)
    return results


def main() -> None:
    found = [
        name for name in ("waitress", "uvicorn", "hypercorn") if importlib.util.find_spec(name)
    ]
    if not found:
        sys.exit(__doc__)
    results = {name: probe(name) for name in found}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

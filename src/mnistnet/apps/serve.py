"""``mnistnet serve``: a local web page to draw a digit and watch the trained model read it.

The HTTP server is waitress (the Pylons project's WSGI server): it parses requests strictly
(a second Content-Length, a non-ASCII digit or an oversized header is refused, never
guessed at), answers an oversized body with 413 before reading it, closes a connection that
stays silent for ``IDLE_TIMEOUT`` seconds, stops accepting beyond a connection limit that
fits the process's file limit (the rest wait in the kernel's backlog instead of exhausting
descriptors), sets TCP_NODELAY, and runs the app in a small thread pool (compared with
uvicorn and hypercorn in docs/predict-and-serve.md). This module adds the app, makes even
waitress's own errors JSON, and keeps slow clients from filling the server: a request must
arrive whole within ``REQUEST_DEADLINE`` seconds of its first byte (408), a connection
waiting in the backlog makes room by closing the one that has waited longest on its client
(503), and request bodies are held in memory, never on disk, within ``UPLOAD_BUDGET`` bytes
together.

The page (``web/``: plain HTML, CSS and JavaScript, no build step, nothing fetched from
elsewhere) sends each drawing as a PNG to ``POST /api/predict``, which runs the same decoding,
normalization and model code as ``mnistnet predict``; at most one decode per core runs at a
time, within ``DECODE_BUDGET`` bytes together, so a burst of large images queues instead of
adding up.

Routes: ``GET /`` and its two assets, ``GET /api/model``, ``GET /healthz`` (each also
``HEAD``), ``POST /api/predict``. Anything else is 404 (unknown path) or 405 (known path,
wrong method). Errors are JSON ``{"error": "..."}`` with one line of reason, and the server
keeps serving. Request paths only ever select from the fixed table ``PAGES``: nothing a client
sends reaches the file system.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import ctypes.util
import functools
import ipaddress
import json
import logging
import os
import re
import resource
import select
import socket
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus
from importlib import resources
from pathlib import Path

import numpy as np
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser, ParsingError
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask, ThreadedTaskDispatcher
from waitress.utilities import Error

from mnistnet.apps.predict import probabilities
from mnistnet.data.images import decode_image
from mnistnet.nn.checkpoint import load_model
from mnistnet.pipeline.errors import DataError

MAX_BODY = 2 * 1024 * 1024  # bytes; a canvas PNG is ~5 KB, a phone photo a few MB
MAX_HEADERS = 16 * 1024  # bytes of request line and headers; browsers send under 2 KB
IDLE_TIMEOUT = 30  # seconds a connection may stay silent (before or between requests)
REQUEST_DEADLINE = 20  # seconds from a request's first byte to its last: 2 MB at 0.8 Mbit/s
UPLOAD_BUDGET = 64 * 2**20  # bytes of bodies held at once, arriving or queued: 32 full ones
LINGER = 2  # seconds a refused connection stays open, shut for writing, before it is closed
MAX_LINGERING = 32  # refused connections left open at once (connection_limit leaves room)
THREADS = 8  # requests in progress at once; decodes are capped by DecodeBudget
DECODE_BUDGET = 400 * 2**20  # bytes all decodes together may hold (images.decode_bytes)
MAX_FORM_PARTS = 8  # parts of a form read up to its first file; the page sends one
IMAGE_TYPES = ("image/png", "image/jpeg")
PAGES = {  # path → (file in mnistnet/apps/web, content type)
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
API = {"/api/predict": "POST", "/api/model": "GET", "/healthz": "GET"}
# The page loads only its own files; blob: is the image a person opens, shown on the pad
CSP = (
    "default-src 'self'; img-src 'self' blob:; object-src 'none'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = (  # on every response, waitress's own errors included
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),  # JSON is never run as a script or shown as HTML
    ("X-Frame-Options", "DENY"),  # with frame-ancestors: no other page frames this one
    ("Content-Security-Policy", CSP),
)


class RequestError(Exception):
    """A bad request: answered with ``status``, ``{"error": message}`` and ``headers``."""

    def __init__(self, status: HTTPStatus, message: str, headers=()) -> None:
        super().__init__(message)
        self.status, self.headers = status, list(headers)


class DecodeBudget:
    """Decodes at once: at most one per core, and no more memory than ``budget`` bytes
    between them (one larger than the budget runs alone). A 6,324² RGBA PNG of 169 KB
    takes 320 MB to decode: sixteen of them at once must queue, not add up."""

    def __init__(self, budget: int = DECODE_BUDGET, slots: int = os.cpu_count() or 1) -> None:
        self.budget, self.slots = budget, slots
        self.used, self.running = 0, 0
        self.changed = threading.Condition()

    @contextlib.contextmanager
    def reserve(self, nbytes: int) -> Iterator[None]:
        with self.changed:
            self.changed.wait_for(
                lambda: (
                    self.running == 0
                    or (self.running < self.slots and self.used + nbytes <= self.budget)
                )
            )
            self.used += nbytes
            self.running += 1
        try:
            yield
        finally:
            with self.changed:
                self.used -= nbytes
                self.running -= 1
                self.changed.notify_all()


class Classifier:
    """The model and its facts, loaded once at start-up and shared by every request."""

    def __init__(self, model_path, metrics_path, budget: DecodeBudget | None = None) -> None:
        self.params, meta = load_model(model_path)  # DataError: a clear start-up failure
        self.facts = model_facts(self.params, meta, model_path, metrics_path)
        self.budget = budget or DecodeBudget()

    def predict(self, image_bytes: bytes) -> dict:
        """``{"digit", "probabilities" (10), "normalized" (784)}`` for one PNG/JPEG."""
        x = decode_image(image_bytes, self.budget.reserve)  # (1, 784) float32 in [0, 1]
        probs = probabilities(self.params, x)[0]  # (10,), as `mnistnet predict` computes it
        return {
            "digit": int(probs.argmax()),
            "probabilities": [round(float(p), 6) for p in probs],
            "normalized": np.round(x[0].astype(np.float64), 4).tolist(),  # 784 at once
        }


def model_facts(params: dict, meta: dict, model_path, metrics_path) -> dict:
    """What the page shows about the model: size, test accuracy, and what trained it."""
    accuracy = None
    try:
        accuracy = json.loads(Path(metrics_path).read_text())["test"]["accuracy"]
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no evaluate stage run yet: the page says "not measured"
    return {
        "model": str(model_path),
        "hidden_size": int(params["W1"].shape[1]),
        "test_accuracy": accuracy,
        "train": meta.get("train"),
        "augment": meta.get("augment"),
        "data": meta.get("data"),
    }


def image_from_request(content_type: str, body: bytes) -> bytes:
    """The image bytes of a request body: raw PNG/JPEG, or the first file of a form."""
    kind = content_type.split(";")[0].strip().lower()
    if kind in IMAGE_TYPES:
        return body
    if kind == "multipart/form-data":
        return first_file(content_type, body)
    allowed = ", ".join((*IMAGE_TYPES, "multipart/form-data"))
    raise RequestError(
        HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
        f"content type {kind[:60] or 'none'}; send one of {allowed}",
    )


class FirstFileFound(Exception):
    """Raised from the form parser's callback to stop at the first file."""


def first_file(content_type: str, body: bytes) -> bytes:
    """The first file in a ``multipart/form-data`` body, parsed by python-multipart (a
    streaming parser: parts are flat, so no nesting can recurse). Parsing stops at the first
    file; more than ``MAX_FORM_PARTS`` parts before it are refused (thousands of tiny parts
    would cost CPU and nothing else), and the file is kept in memory, never spooled to disk."""
    from python_multipart import create_form_parser
    from python_multipart.exceptions import FormParserError
    from python_multipart.multipart import File

    files, parts = [], 0

    def on_part(part) -> None:  # called as each part ends
        nonlocal parts
        parts += 1
        if isinstance(part, File):
            files.append(part)
            raise FirstFileFound
        if parts >= MAX_FORM_PARTS:
            raise RequestError(
                HTTPStatus.BAD_REQUEST,
                f"the form has {MAX_FORM_PARTS} parts and no file yet; send the image as "
                f"one of its first {MAX_FORM_PARTS} parts",
            )

    headers = {"Content-Type": content_type.encode("latin-1")}
    try:
        form = create_form_parser(headers, on_part, on_part, {"MAX_MEMORY_FILE_SIZE": MAX_BODY})
        form.write(body)
        form.finalize()
    except FirstFileFound:
        files[0].file_object.seek(0)
        return files[0].file_object.read()
    except (FormParserError, ValueError) as e:  # ValueError: a form with no boundary
        raise RequestError(HTTPStatus.BAD_REQUEST, f"not a readable form ({e})") from e
    raise RequestError(HTTPStatus.BAD_REQUEST, "the form holds no image file")


class HostCheck:
    """Which ``Host`` headers name this server.

    A page on any site can point a DNS name of its own at 127.0.0.1 and then read this
    server's answers as its own origin (DNS rebinding); the browser sends that name as
    ``Host``. Accepted: ``localhost``, ``127.0.0.1``, ``[::1]`` and the address bound, with
    the port served (none: port 80). Bound to every interface (0.0.0.0, ::), the server's
    addresses are not known in advance, so any IP address is accepted too, and the
    computer's own name: a rebinding page cannot send an address as its name, only a name.
    """

    def __init__(self, bind_host: str) -> None:
        names = {"localhost", "127.0.0.1", "[::1]", bracketed(bind_host.lower())}
        self.everywhere = bind_host in WILDCARDS
        if self.everywhere:
            names.add(socket.gethostname().lower())
        self.names = names

    def allows(self, host: str, port: int) -> bool:
        """Whether a ``Host`` header value (``name[:port]``) names this server at ``port``."""
        host = host.lower()
        name, sep, given = host.rpartition(":") if host.rfind(":") > host.rfind("]") else (
            host, "", "")  # fmt: skip
        if (sep and not (given.isascii() and given.isdigit())) or (int(given or 80) != port):
            return False
        name = name.removesuffix(".")  # "localhost." is the same name, fully qualified
        return name in self.names or (self.everywhere and is_ip_address(name))

    def advice(self, port: int) -> str:
        if self.everywhere:
            return f"use this computer's IP address or name, or localhost, with :{port}"
        return f"open http://127.0.0.1:{port}/"


WILDCARDS = ("0.0.0.0", "::")  # bind addresses that mean every interface


def bracketed(host: str) -> str:
    """An IPv6 address as it appears in a URL or Host header: ``[::1]``."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def is_ip_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name.removeprefix("[").removesuffix("]"))
    except ValueError:
        return False
    return name.startswith("[") == (":" in name)  # IPv6 in brackets, IPv4 without


class App:
    """The WSGI application: routing, the predict API, and JSON for every error."""

    def __init__(self, classifier: Classifier, quiet: bool = False, host: str = "127.0.0.1"):
        self.classifier, self.quiet, self.hosts = classifier, quiet, HostCheck(host)

    def __call__(self, environ: dict, start_response) -> list[bytes]:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        try:
            status, headers, body = self.respond(environ, method, path)
        except RequestError as e:
            status, headers, body = e.status, [*e.headers, *json_type()], error_body(str(e))
        except DataError as e:
            status, body = HTTPStatus.BAD_REQUEST, error_body(str(e))
            headers = [("Content-Type", "application/json")]
        except Exception:  # a bug: its traceback goes to the log, the client gets JSON
            traceback.print_exc()
            status, body = HTTPStatus.INTERNAL_SERVER_ERROR, error_body("internal error")
            headers = [("Content-Type", "application/json")]
        headers += [("Content-Length", str(len(body))), *SECURITY_HEADERS]
        start_response(f"{status.value} {status.phrase}", headers)
        if not self.quiet:
            target = environ.get("REQUEST_URI", path)  # as sent, before percent-decoding
            log_request(environ.get("REMOTE_ADDR", "-"), method, target, status.value)
        return [] if method == "HEAD" else [body]

    def respond(self, environ: dict, method: str, path: str):
        self.check_host(environ)
        allowed = "GET" if path in PAGES else API.get(path)
        if allowed is None:
            raise RequestError(HTTPStatus.NOT_FOUND, f"no such page: {path[:200]}")
        if method != allowed and not (method == "HEAD" and allowed == "GET"):
            methods = "GET, HEAD" if allowed == "GET" else allowed
            raise RequestError(HTTPStatus.METHOD_NOT_ALLOWED, f"{path} takes {methods}",
                               [("Allow", methods)])  # fmt: skip
        if path in PAGES:
            name, content_type = PAGES[path]
            page = resources.files("mnistnet.apps").joinpath("web", name).read_bytes()
            return HTTPStatus.OK, [("Content-Type", content_type)], page
        if path == "/healthz":
            return HTTPStatus.OK, json_type(), json.dumps({"status": "ok"}).encode()
        if path == "/api/model":
            return HTTPStatus.OK, json_type(), json.dumps(self.classifier.facts).encode()
        image = image_from_request(environ.get("CONTENT_TYPE", ""), read_body(environ))
        reply = self.classifier.predict(image)
        return HTTPStatus.OK, json_type(), json.dumps(reply).encode()

    def check_host(self, environ: dict) -> None:
        """421 unless the Host header names this server (``HostCheck``); an HTTP/1.1
        request without one is a 400, as the standard says."""
        host, port = environ.get("HTTP_HOST"), int(environ["SERVER_PORT"])
        if host is None:
            if environ.get("SERVER_PROTOCOL") == "HTTP/1.0":
                return  # no Host at all: a script, never a browser
            raise RequestError(HTTPStatus.BAD_REQUEST, "send a Host header (HTTP/1.1 needs one)")
        if not self.hosts.allows(host, port):
            raise RequestError(
                HTTPStatus.MISDIRECTED_REQUEST,
                f"the Host header {host[:100]!r} does not name this server, so a page elsewhere "
                f"cannot read it through DNS rebinding: {self.hosts.advice(port)}",
            )


def read_body(environ: dict) -> bytes:
    """The request body. waitress has already refused one over ``MAX_BODY`` (413) and read
    the rest, so this only checks that a length was sent and the body is not empty."""
    length = environ.get("CONTENT_LENGTH")
    if not length:
        raise RequestError(HTTPStatus.LENGTH_REQUIRED, "send the image with Content-Length")
    body = environ["wsgi.input"].read(int(length))
    if not body:
        raise RequestError(HTTPStatus.BAD_REQUEST, "the body is empty; send a PNG or JPEG")
    return body


def log_request(client: str, method: str, target: str, status: int) -> None:
    """One line on stderr per request: time, client, method, target, status."""
    stamp = time.strftime("%H:%M:%S")
    print(f"{stamp} {client} {method} {loggable(target)} {status}", file=sys.stderr)


def loggable(target: str, limit: int = 200) -> str:
    """A request target as the log shows it: every byte outside printable ASCII
    percent-encoded (ESC → %1B, CR LF → %0D%0A), so a client can write no control
    sequence or line of its own into the operator's terminal; cut to ``limit`` characters."""
    raw = target.encode("latin-1", "backslashreplace")  # WSGI strings hold bytes as latin-1
    escaped = re.sub(rb"[^\x21-\x7e]", lambda m: b"%%%02X" % m[0][0], raw).decode("ascii")
    return escaped if len(escaped) <= limit else escaped[: limit - 3] + "..."


def json_type() -> list[tuple[str, str]]:
    return [("Content-Type", "application/json")]


def error_body(message: str) -> bytes:
    return json.dumps({"error": " ".join(message.split())}).encode()


def connection_limit() -> int:
    """Connections served at once: what the file limit allows, with room for the model,
    the page's files, the threads and the refused connections lingering; more wait in the
    kernel's backlog."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(16, min(1000, soft - 32 - MAX_LINGERING))


def server_error(request: HTTPRequestParser) -> str:
    """The message of waitress's own refusal of ``request``, in this API's words."""
    error = request.error
    if error.code == 413:
        return f"the body is {request.content_length:,} bytes; at most {MAX_BODY:,} are accepted"
    if error.code == 431:
        return f"the request line and headers are over {MAX_HEADERS:,} bytes"
    return f"{error.reason}: {error.body}"


class LengthRequired(Error):
    code, reason = 411, "Length Required"


class JSONErrorTask(ErrorTask):
    """waitress's own error responses (a malformed request, 413, 431, …) as JSON, like the
    app's."""

    def execute(self) -> None:
        error = self.request.error
        body = error_body(server_error(self.request))
        self.status = f"{error.code} {error.reason}"
        self.response_headers += [("Content-Type", "application/json"), *SECURITY_HEADERS]
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)
        if not self.channel.server.quiet:
            parsed = error.code != 431  # 431: waitress stands in "GET /" for what it read
            method = getattr(self.request, "command", None) if parsed else None
            target = getattr(self.request, "request_uri", None) if parsed else None
            log_request(self.channel.addr[0], method or "-", target or "-", error.code)


class Uploads:
    """Bytes of request bodies the server holds, arriving or complete and queued, against a
    budget: the event loop adds them as they arrive, whoever closes a request takes them off."""

    def __init__(self, budget: int) -> None:
        self.budget, self.held, self.lock = budget, 0, threading.Lock()

    def add(self, nbytes: int) -> None:
        with self.lock:
            self.held += nbytes


class StrictParser(HTTPRequestParser):
    """waitress's request parser, with a Content-Length too long for int() a 400, and a
    chunked body a 411: a body has one length, known before it is read, as the page sends.
    It counts its body against ``uploads`` and notes when its first byte came (``started``).
    """

    def __init__(self, adj: Adjustments, uploads: Uploads | None = None) -> None:
        super().__init__(adj)
        self.uploads, self.counted, self.started = uploads, 0, time.time()

    def received(self, data: bytes) -> int:
        consumed = super().received(data)
        if self.uploads is not None and self.body_bytes_received > self.counted:
            self.uploads.add(self.body_bytes_received - self.counted)
            self.counted = self.body_bytes_received
        return consumed

    def close(self) -> None:
        if self.counted:
            self.uploads.add(-self.counted)
            self.counted = 0
        super().close()

    def parse_header(self, header_plus: bytes) -> None:
        try:
            super().parse_header(header_plus)
        except ValueError as e:  # int() of a Content-Length over Python's 4,300 digits
            raise ParsingError(f"Content-Length is invalid ({e})") from None
        if self.chunked:  # answered at once; what follows the headers is never run
            self.chunked, self.body_rcv = False, None
            self.error = LengthRequired("send the image with Content-Length, not chunked")


class Channel(HTTPChannel):
    """waitress's connection, which the server can refuse and close between two turns of
    its loop: a request that is too slow to arrive, or that must make room."""

    error_task_class = JSONErrorTask

    def __init__(self, server: Server, sock, addr, adj, map=None) -> None:
        self.parser_class = functools.partial(StrictParser, uploads=server.uploads)
        super().__init__(server, sock, addr, adj, map)

    def readable(self) -> bool:  # closed by ``refuse`` earlier in this turn: not polled
        return self._fileno is not None and super().readable()

    def writable(self) -> bool:
        return self._fileno is not None and super().writable()

    def waiting_since(self) -> float | None:
        """Since when this connection has waited on its client: the first byte of its
        incomplete request, or, idle, its last activity. None while the server owes it an
        answer (a request queued or running)."""
        if self.requests or self._fileno is None:
            return None
        return self.request.started if self.request is not None else self.last_activity

    def arriving(self) -> bool:
        """Whether a request has begun to arrive and is not whole yet (nothing queued)."""
        return not self.requests and self.request is not None and not self.request.completed

    def service(self) -> None:
        super().service()
        with self.requests_lock:
            if self.request is not None:  # read while the server was busy: its clock starts now
                self.request.started = time.time()

    def refuse(self, status: HTTPStatus, message: str) -> None:
        """Answer the request still arriving with ``status`` and close the connection, from
        the event loop (never while a task writes to it)."""
        request, body = self.request, error_body(message)
        head = [f"HTTP/1.1 {status.value} {status.phrase}", "Content-Type: application/json",
                f"Content-Length: {len(body)}", "Connection: close",
                *(f"{name}: {value}" for name, value in SECURITY_HEADERS)]  # fmt: skip
        sock = self.socket
        with contextlib.suppress(OSError):
            if not self.total_outbufs_len:  # nothing of an earlier answer still on its way
                sock.send("\r\n".join(head).encode() + b"\r\n\r\n" + body)  # fits: ~600 B
            sock.shutdown(socket.SHUT_WR)
        self.socket = None  # leaves the loop and its slot now; the server closes it later
        self.handle_close()
        self.server.linger(sock)
        if not self.server.quiet:
            parsed = request is not None and request.headers_finished and not request.error
            method = request.command if parsed else "-"
            target = request.request_uri if parsed else "-"
            log_request(self.addr[0], method, target, status.value)

    def handle_close(self) -> None:  # no lock: received() may call it, holding requests_lock
        if self.request is not None:  # incomplete: its body's bytes leave the budget
            self.request.close()
            self.request = None
        super().handle_close()


class Server(TcpWSGIServer):
    """waitress's server, which a slow client cannot fill.

    A request must arrive whole within ``limits.request_deadline`` of its first byte (408
    otherwise); at the connection limit, a new connection makes room by closing the one
    that has waited longest on its client (idle, or still sending a request: 503); and over
    ``limits.upload_budget`` bytes of bodies, the longest-arriving upload is dropped (503).
    """

    channel_class = Channel
    quiet = True  # no line per request (make_server follows the app)
    warned = 0.0  # when the connection limit was last logged

    def __init__(self, application, limits: Limits, **kw) -> None:
        self.limits, self.uploads = limits, Uploads(limits.upload_budget)
        self.lingering: collections.deque = collections.deque()  # (close when, socket)
        super().__init__(application, **kw)
        self.arrivals = select.poll()  # the listening socket: is a connection waiting?
        self.arrivals.register(self.socket.fileno(), select.POLLIN)

    def readable(self) -> bool:
        """Called before each turn of the loop: the deadlines (every second), the upload
        budget, then whether to accept. At the limit, a connection waiting in the backlog
        makes room; with none waiting, the socket is still watched, so one that comes wakes
        the loop (``handle_accept`` leaves it in the backlog until the next turn)."""
        now = time.time()
        if now >= self.next_channel_cleanup:
            self.next_channel_cleanup = now + self.adj.cleanup_interval
            self.maintenance(now)
        if self.uploads.held > self.uploads.budget:
            self.drop_uploads()
        self.close_lingering()
        if not self.accepting:
            return False
        if len(self._map) < self.adj.connection_limit or not self.arrivals.poll(0):
            return True
        return self.make_room(now)

    def linger(self, sock: socket.socket) -> None:
        """Close ``sock`` (answered, shut for writing) ``LINGER`` seconds from now: closed at
        once, with bytes of the client's still unread, it would send a reset, and a client
        still sending could lose the answer before reading it. At most ``MAX_LINGERING``."""
        self.lingering.append((time.monotonic() + LINGER, sock))
        while len(self.lingering) > MAX_LINGERING:
            self.lingering.popleft()[1].close()

    def close_lingering(self) -> None:
        now = time.monotonic()
        while self.lingering and self.lingering[0][0] <= now:
            self.lingering.popleft()[1].close()

    def handle_accept(self) -> None:
        if len(self._map) < self.adj.connection_limit:
            super().handle_accept()

    def close(self) -> None:
        while self.lingering:
            self.lingering.popleft()[1].close()
        super().close()

    def maintenance(self, now: float) -> None:
        """waitress's idle timeout, then 408 for each request not whole by its deadline."""
        super().maintenance(now)
        deadline = self.limits.request_deadline
        for channel in list(self.active_channels.values()):
            if channel.arriving() and channel.request.started < now - deadline:
                channel.refuse(
                    HTTPStatus.REQUEST_TIMEOUT,
                    f"the request did not arrive whole within {deadline:g} s of its first "
                    f"byte; send it at once",
                )

    def make_room(self, now: float) -> bool:
        """Close the connection that has waited longest on its client; False if every one
        is being answered."""
        waiting = [(since, channel) for channel in self.active_channels.values()
                   if (since := channel.waiting_since()) is not None]  # fmt: skip
        if not waiting:
            return False
        since, victim = min(waiting, key=lambda pair: pair[0])
        limit = self.adj.connection_limit
        if now - self.warned > 60:
            self.warned = now
            self.logger.warning(
                f"the connection limit ({limit:,}) is reached: each new connection closes the "
                f"one that has waited longest on its client"
            )
        if victim.arriving():
            victim.refuse(
                HTTPStatus.SERVICE_UNAVAILABLE,
                f"the server is at its limit of {limit:,} connections and this request, still "
                f"arriving after {now - since:.0f} s, had waited longest; send it at once",
            )
        else:  # idle: closed without a word, as the idle timeout does
            victim.handle_close()
        return True

    def drop_uploads(self) -> None:
        """Over the upload budget: drop bodies still arriving, the longest-arriving first."""
        arriving = sorted(
            (c for c in self.active_channels.values() if c.arriving() and c.request.counted),
            key=lambda channel: channel.request.started,
        )
        budget = self.uploads.budget
        for channel in arriving:
            if self.uploads.held <= budget:
                break
            channel.refuse(
                HTTPStatus.SERVICE_UNAVAILABLE,
                f"the server holds its {budget / 2**20:g} MiB of uploads at once, and this one "
                f"had been arriving longest; send it again",
            )


@dataclass(frozen=True)
class Limits:
    """What the server gives its clients, and for how long (tests lower them)."""

    idle_timeout: int = IDLE_TIMEOUT  # s a connection may stay silent, before or between requests
    request_deadline: float = REQUEST_DEADLINE  # s from a request's first byte to its last
    connections: int | None = None  # open at once; None: what the file limit allows
    upload_budget: int = UPLOAD_BUDGET  # bytes of bodies held at once (arriving or queued)


def make_server(
    app: App, host: str = "127.0.0.1", port: int = 8000, limits: Limits = Limits()
) -> Server:
    """A waitress server bound to (host, port); port 0 picks a free one (``.effective_port``).
    Deadlines and the idle timeout are checked every second. A body of ``MAX_BODY`` bytes is
    accepted (waitress refuses a length *at* its limit: hence + 1), and kept in memory
    (within ``limits.upload_budget``), never spooled to a temporary file."""
    adj = Adjustments(
        host=host, port=port, threads=THREADS, backlog=2048,
        connection_limit=limits.connections or connection_limit(),
        channel_timeout=limits.idle_timeout, cleanup_interval=1, asyncore_use_poll=True,
        max_request_header_size=MAX_HEADERS, max_request_body_size=MAX_BODY + 1,
        inbuf_overflow=MAX_BODY + 1, ident="mnistnet", expose_tracebacks=False,
    )  # fmt: skip
    dispatcher = ThreadedTaskDispatcher()
    dispatcher.set_thread_count(adj.threads)
    server = Server(app, limits, map={}, dispatcher=dispatcher, adj=adj, sockinfo=adj.listen[0])
    server.quiet = app.quiet
    return server


def return_freed_memory() -> None:
    """Have glibc give large freed blocks back to the system at once.

    By default glibc raises its mmap threshold to the size of the largest block freed (up to
    32 MB), so after one big decode every later one is served from the heap, and its pages
    stay with the process when freed. A threshold fixed at glibc's starting value, 128 KiB,
    keeps big blocks in mmap, returned when freed: decodes, and upload buffers too, which
    grow as bytes arrive (from the heap, growing 300 of them side by side left holes: 105
    MiB resident for 64 MiB held; in mmap, 67). Elsewhere (not glibc) nothing is changed.
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        if libc is not None and hasattr(libc, "mallopt"):
            libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD: fixed at 128 KiB
    except OSError:
        pass


class _OneLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {' '.join(record.getMessage().split())}"


def serve(model: str, metrics: str, host: str, port: int, quiet: bool) -> int:
    """Run until Ctrl-C; return the exit status (1: the model or the port is unusable)."""
    try:
        classifier = Classifier(model, metrics)
    except DataError as e:
        print(f"error: model: {e}", file=sys.stderr)
        return 1
    return_freed_memory()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine())
    logger = logging.getLogger("waitress")
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    # "Task queue depth is N": requests waiting for a thread, as a burst of uploads makes
    # them wait for the decode budget; expected, and a line per request would bury the rest
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    # python-multipart logs each malformed form before raising; the 400 says it already
    logging.getLogger("python_multipart").setLevel(logging.CRITICAL)
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)  # waitress: a ValueError
        server = make_server(App(classifier, quiet, host), host, port)
    except OSError as e:  # a name that does not resolve, a port in use or not allowed
        print(
            f"error: cannot listen on {host}:{port} ({e.strerror}); check --host and --port",
            file=sys.stderr,
        )
        return 1
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"warning: listening on {host}: the page is reachable from the network, "
            f"not only from this computer",
            file=sys.stderr,
        )
    shown = "127.0.0.1" if host in WILDCARDS else bracketed(host)  # a URL that passes HostCheck
    print(f"serving {model} at http://{shown}:{server.effective_port}/  (Ctrl-C stops)", flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0

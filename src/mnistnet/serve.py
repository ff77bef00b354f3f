"""``mnistnet serve``: a local web page to draw a digit and watch the trained model read it.

The standard library's ``ThreadingHTTPServer`` is enough for a local tool: one thread per
request, no dependency, and the model is a few read-only arrays that threads can share. The
page (``web/``: plain HTML, CSS and JavaScript, no build step, nothing fetched from elsewhere)
sends each drawing as a PNG to ``POST /api/predict``, which runs the same normalization and
model code as ``mnistnet predict``.

Routes: ``GET /`` and its two assets, ``GET /api/model``, ``GET /healthz``,
``POST /api/predict``. Anything else is 404 (unknown path) or 405 (known path, wrong
method). Errors are JSON ``{"error": "..."}`` with one line of reason, and the server keeps
serving. Request paths only ever select from the fixed table ``PAGES``: nothing a client
sends reaches the file system.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import os
import sys
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path

from mnistnet.checkpoint import load_model
from mnistnet.errors import DataError
from mnistnet.model import predict_proba
from mnistnet.predict import decode_image

MAX_BODY = 2 * 1024 * 1024  # bytes; a canvas PNG is ~5 KB, a phone photo a few MB
IMAGE_TYPES = ("image/png", "image/jpeg")
PAGES = {  # path → (file in mnistnet/web, content type)
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
API = {"/api/predict": "POST", "/api/model": "GET", "/healthz": "GET"}


class RequestError(Exception):
    """A bad request: answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


class Classifier:
    """The model and its facts, loaded once at start-up and shared by every request."""

    def __init__(self, model_path: str | os.PathLike, metrics_path: str | os.PathLike) -> None:
        self.params, meta = load_model(model_path)  # DataError: a clear start-up failure
        self.facts = model_facts(self.params, meta, model_path, metrics_path)

    def predict(self, image_bytes: bytes) -> dict:
        """``{"digit", "probabilities" (10), "normalized" (784)}`` for one PNG/JPEG."""
        x = decode_image(image_bytes)  # (1, 784) float32 in [0, 1]
        probs = predict_proba(self.params, x.astype(self.params["W1"].dtype))[0]  # (10,)
        return {
            "digit": int(probs.argmax()),
            "probabilities": [round(float(p), 6) for p in probs],
            "normalized": [round(float(v), 4) for v in x[0]],
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
        head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1")
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
        for part in message.iter_parts() if message.is_multipart() else ():
            if part.get_content_type() in IMAGE_TYPES or part.get_filename():
                return part.get_payload(decode=True) or b""
        raise RequestError(HTTPStatus.BAD_REQUEST, "the form holds no image file")
    allowed = ", ".join((*IMAGE_TYPES, "multipart/form-data"))
    raise RequestError(
        HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"content type {kind or 'none'}; send one of {allowed}"
    )


class Handler(BaseHTTPRequestHandler):
    server_version = "mnistnet"
    sys_version = ""
    protocol_version = "HTTP/1.1"  # keep-alive: the page sends a request per stroke
    classifier: Classifier  # set on the subclass made by ``make_server``
    quiet = False

    def do_GET(self) -> None:
        self.handle_request("GET")

    def do_POST(self) -> None:
        self.handle_request("POST")

    def do_PUT(self) -> None:
        self.handle_request("PUT")

    def do_DELETE(self) -> None:
        self.handle_request("DELETE")

    def handle_request(self, method: str) -> None:
        path = self.route = self.path.split("?", 1)[0]
        self.body_read = False
        try:
            allowed = "GET" if path in PAGES else API.get(path)
            if allowed is None:
                raise RequestError(HTTPStatus.NOT_FOUND, f"no such page: {path}")
            if method != allowed:
                raise RequestError(HTTPStatus.METHOD_NOT_ALLOWED, f"{path} takes {allowed}")
            if path in PAGES:
                name, content_type = PAGES[path]
                page = resources.files("mnistnet").joinpath("web", name).read_bytes()
                self.send(HTTPStatus.OK, page, content_type)
            elif path == "/healthz":
                self.send_json(HTTPStatus.OK, {"status": "ok"})
            elif path == "/api/model":
                self.send_json(HTTPStatus.OK, self.classifier.facts)
            else:
                image = image_from_request(self.headers.get("Content-Type", ""), self.read_body())
                self.send_json(HTTPStatus.OK, self.classifier.predict(image))
        except RequestError as e:
            self.send_json(e.status, {"error": str(e)})
        except DataError as e:
            self.send_json(HTTPStatus.BAD_REQUEST, {"error": str(e)})

    def read_body(self) -> bytes:
        """The request body, refused before reading when missing or over ``MAX_BODY``."""
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.close_connection = True
            raise RequestError(HTTPStatus.LENGTH_REQUIRED, "send the image with Content-Length")
        if int(length) > MAX_BODY:
            raise RequestError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"the body is {int(length):,} bytes; at most {MAX_BODY:,} are accepted",
            )
        body = self.rfile.read(int(length))
        self.body_read = True
        if not body:
            raise RequestError(HTTPStatus.BAD_REQUEST, "the body is empty; send a PNG or JPEG")
        return body

    def send_json(self, status: HTTPStatus, payload: dict) -> None:
        self.send(status, json.dumps(payload).encode(), "application/json")

    def send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        if status == HTTPStatus.METHOD_NOT_ALLOWED:
            self.send_header("Allow", "GET" if self.route in PAGES else API[self.route])
        if not self.body_read and self.headers.get("Content-Length", "0") != "0":
            self.close_connection = True  # the unread body must not be parsed as a request
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:
        if not self.quiet:
            stamp = time.strftime("%H:%M:%S")
            print(f"{stamp} {self.address_string()} {format % args}", file=sys.stderr)


def make_server(
    classifier: Classifier, host: str = "127.0.0.1", port: int = 8000, quiet: bool = False
) -> ThreadingHTTPServer:
    """A server bound to (host, port); port 0 picks a free one (see ``server_address``)."""
    handler = type("BoundHandler", (Handler,), {"classifier": classifier, "quiet": quiet})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def serve(model: str, metrics: str, host: str, port: int, quiet: bool) -> int:
    """Run until Ctrl-C; return the exit status (1: the model or the port is unusable)."""
    try:
        classifier = Classifier(model, metrics)
    except DataError as e:
        print(f"error: model: {e}", file=sys.stderr)
        return 1
    try:
        server = make_server(classifier, host, port, quiet)
    except OSError as e:
        print(f"error: cannot listen on {host}:{port} ({e.strerror}); try --port", file=sys.stderr)
        return 1
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"warning: listening on {host}: the page is reachable from the network, "
            f"not only from this computer",
            file=sys.stderr,
        )
    bound_host, bound_port = server.server_address[:2]
    shown = "127.0.0.1" if bound_host in ("0.0.0.0", "") else bound_host
    print(f"serving {model} at http://{shown}:{bound_port}/  (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0

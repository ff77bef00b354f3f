"""What the project promises when things go wrong: clear errors, nothing lost, same bytes.

Stage scripts are run as the user runs them (a subprocess, or under the real `dvc repro`).
"""

from __future__ import annotations

import errno
import http.server
import os
import runpy
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import psutil
import pytest
import yaml

from conftest import ROOT, digests_of, make_project, sha256_file, write_keras_npz
from mnistnet.storage import save_npz

pytestmark = pytest.mark.cli  # real dvc / subprocesses: `make test-fast` skips these

STAGE_OUTPUTS = {
    "download": ["data/raw/mnist.npz"],
    "preprocess": ["data/processed/train.npz", "data/processed/val.npz", "data/processed/test.npz"],
    "train": ["data/model/model.npz", "data/train/history.csv", "data/train/metrics.json"],
}  # the stages the signal tests interrupt
STAGE_ARGS = {
    "download": ["--out", "data/raw/mnist.npz"],
    "preprocess": ["--raw", "data/raw/mnist.npz", "--out", "data/processed"],
    "augment": ["--train", "data/processed/train.npz", "--out", "data/augmented/pool.npz"],
    "train": ["--data", "data/processed", "--pool", "data/augmented/pool.npz",
              "--model", "data/model/model.npz",
              "--history", "data/train/history.csv", "--metrics", "data/train/metrics.json"],
    "evaluate": ["--model", "data/model/model.npz", "--test", "data/processed/test.npz",
                 "--out", "data/eval"],
    "plot": ["--history", "data/train/history.csv", "--eval", "data/eval", "--test",
             "data/processed/test.npz", "--train", "data/processed/train.npz",
             "--pool", "data/augmented/pool.npz", "--model", "data/model/model.npz",
             "--out", "data/plots"],
}  # fmt: skip
PARAMS_ARG = {"download": True, "preprocess": True, "augment": True, "train": True,
              "evaluate": False, "plot": True}  # fmt: skip


def run_stage(folder: Path, stage: str, params: str = "params.yaml") -> subprocess.CompletedProcess:
    args = [sys.executable, str(folder / "stages" / f"{stage}.py"), *STAGE_ARGS[stage]]
    if PARAMS_ARG[stage]:
        args += ["--params", params]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(args, cwd=folder, capture_output=True, text=True, env=env, timeout=120)


def snapshot(folder: Path) -> dict[str, str]:
    """sha256 of every file under data/, temporary files included."""
    return {
        str(p.relative_to(folder)): sha256_file(p)
        for p in sorted((folder / "data").rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny):
    """A folder where every stage has run once on the tiny dataset (no DVC needed)."""
    folder = tmp_path_factory.mktemp("stages")
    (folder / "stages").symlink_to(ROOT / "stages")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["download"]["sources"] = [{"url": str(write_keras_npz(tiny, folder / "tiny.npz"))}]
    params["download"]["digests"] = digests_of(tiny)
    params["preprocess"]["val_size"] = 40
    params["train"].update(epochs=2, batch_size=32, hidden_size=16)
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for stage in STAGE_ARGS:
        result = run_stage(folder, stage)
        assert result.returncode == 0, result.stderr
    return folder


def write_params(folder: Path, name: str, change) -> str:
    params = yaml.safe_load((folder / "params.yaml").read_text())
    change(params)
    (folder / name).write_text(yaml.safe_dump(params, sort_keys=False))
    return name


BAD_PARAMS = [
    ("train", lambda p: p["train"].update(lrr=0.1), "unknown key(s) train.lrr"),
    (
        "train",
        lambda p: p["train"].update(hidden_size="abc"),
        "train.hidden_size: expected a whole",
    ),
    ("train", lambda p: p["train"].update(epochs=2.5), "train.epochs: expected a whole number"),
    ("train", lambda p: p["train"].update(lr=-1), "train.lr: got -1.0; expected a number > 0"),
    ("train", lambda p: p["train"].update(batch_size=-3), "train.batch_size: got -3"),
    ("train", lambda p: p["train"].update(dtype="float16"), "train.dtype: got 'float16'"),
    ("train", lambda p: p["train"].update(optimizer="rmsprop"), "train.optimizer: got 'rmsprop'"),
    ("train", lambda p: p.pop("train"), "section 'train' is missing"),
    ("preprocess", lambda p: p["preprocess"].update(val_size=240), "val_size: got 240, but"),
    (
        "preprocess",
        lambda p: p["preprocess"].update(seed=None),
        "preprocess.seed: expected a whole",
    ),
    ("download", lambda p: p["download"].update(sources=[]), "download.sources: got []"),
    ("download", lambda p: p["download"]["sources"].append({"url": "x.pkl.gz"}), "must pin"),
    ("augment", lambda p: p["augment"].update(copies=-1), "augment.copies: got -1"),
    ("augment", lambda p: p["augment"].update(rotate=180), "augment.rotate: got 180.0"),
    ("augment", lambda p: p["augment"].update(elastic=3), "unknown key(s) augment.elastic"),
    ("plot", lambda p: p["plot"].update(hidden_units=17), "plot.hidden_units: got 17, but the"),
    ("plot", lambda p: p["plot"].update(dpi="high"), "plot.dpi: expected a whole number"),
]


@pytest.mark.parametrize(("stage", "change", "message"), BAD_PARAMS)
def test_bad_params_fail_clearly_and_keep_outputs(finished, stage, change, message):
    before = snapshot(finished)
    result = run_stage(finished, stage, write_params(finished, "bad.yaml", change))
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr
    assert snapshot(finished) == before


@pytest.mark.parametrize(
    ("text", "message"),
    [(None, "params file not found"), ("train: [unclosed\n", "invalid YAML"),
     ("- a list\n", "expected a mapping of sections")],
)  # fmt: skip
def test_unreadable_params_files(finished, text, message):
    if text is not None:
        (finished / "broken.yaml").write_text(text)
    before = snapshot(finished)
    result = run_stage(finished, "train", "broken.yaml" if text else "absent.yaml")
    assert result.returncode == 1 and message in result.stderr
    assert snapshot(finished) == before


def corrupt(folder: Path, relative: str, how) -> bytes:
    path = folder / relative
    original = path.read_bytes()
    how(path)
    return original


BAD_DATA = [
    ("preprocess", "data/raw/mnist.npz", lambda p: p.write_bytes(p.read_bytes()[:5000]),
     "not a readable .npz file"),
    ("preprocess", "data/raw/mnist.npz", lambda p: p.write_bytes(b"\x00\x00\x08\x03" + b"\0" * 99),
     "not a readable .npz file"),
    ("preprocess", "data/raw/mnist.npz",
     lambda p: save_npz(p, {**dict(np.load(p)), "y_test": np.full(60, 12, np.uint8)}),
     "y_test holds label 12, not a digit 0-9"),
    ("preprocess", "data/raw/mnist.npz",
     lambda p: save_npz(p, {**dict(np.load(p)), "x_train": np.zeros((240, 28, 27), np.uint8)}),
     "x_train (240, 28, 27)"),
    ("train", "data/processed/train.npz",
     lambda p: save_npz(p, {**dict(np.load(p)), "x": np.full((200, 784), np.nan, np.float32)}),
     "x holds NaN or pixels outside [0, 1]"),
    ("train", "data/augmented/pool.npz",
     lambda p: save_npz(p, {**dict(np.load(p)), "pool": np.zeros((2, 199, 784), np.uint8)}),
     "pool (2, 199, 784) is not (copies, 200, 784). Rerun the augment stage"),
    ("evaluate", "data/processed/test.npz",
     lambda p: save_npz(p, {**dict(np.load(p)), "meta": np.array(
         '{"seed": 0, "split": "test", "val_size": 7}')}),
     "preprocessed with val_size=7, seed=0, but the model was trained on data preprocessed "
     "with val_size=40"),
    ("evaluate", "data/model/model.npz",
     lambda p: save_npz(p, {**dict(np.load(p)), "W1": np.zeros((100, 16), np.float32)}),
     "do not form a 784-h-k network"),
    ("plot", "data/train/history.csv", lambda p: p.write_text("nonsense\n1\n"),
     "not a training history"),
]  # fmt: skip


@pytest.mark.parametrize(("stage", "relative", "how", "message"), BAD_DATA)
def test_bad_data_fails_clearly_and_keeps_outputs(finished, stage, relative, how, message):
    original = corrupt(finished, relative, how)
    try:
        before = snapshot(finished)
        result = run_stage(finished, stage)
        assert result.returncode == 1, result.stderr
        assert message in result.stderr and "Traceback" not in result.stderr
        assert snapshot(finished) == before
    finally:
        (finished / relative).write_bytes(original)


def test_disk_full_mid_write_keeps_the_previous_model(finished, monkeypatch, capsys):
    """ENOSPC while the model is being written: a clear error, the old model intact."""
    model = finished / "data/model/model.npz"
    before = model.read_bytes()
    write = zipfile._ZipWriteFile.write  # where a zip member's bytes go to the file

    def fill_disk(member, data):
        if member._zinfo.filename == "W1.npy" and len(memoryview(data)) > 1000:
            write(member, memoryview(data)[:1000])  # the first big write: part goes out
            raise OSError(errno.ENOSPC, "No space left on device")
        return write(member, data)

    monkeypatch.setattr(zipfile._ZipWriteFile, "write", fill_disk)
    monkeypatch.chdir(finished)
    monkeypatch.setattr(sys, "argv", ["train.py", *STAGE_ARGS["train"]])
    monkeypatch.syspath_prepend(str(ROOT / "stages"))  # as `python stages/train.py` has it
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(ROOT / "stages/train.py"), run_name="__main__")
    assert exit_info.value.code == 1
    assert "error: [Errno 28] No space left on device" in capsys.readouterr().err
    assert model.read_bytes() == before
    assert sorted(p.name for p in model.parent.iterdir()) == ["model.npz"]


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_disk_full_on_a_real_small_filesystem(finished, tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mount)]).returncode:
        pytest.skip("this machine does not allow mounting tmpfs")
    try:
        old = mount / "model.npz"
        old.write_bytes((finished / "data/model/model.npz").read_bytes())  # ~52 KB of 96 KB
        params = write_params(finished, "wide.yaml", lambda p: p["train"].update(hidden_size=64))
        args = [sys.executable, "stages/train.py", "--params", params, "--data", "data/processed",
                "--pool", "data/augmented/pool.npz", "--model", str(old),
                "--history", str(tmp_path / "h.csv"),
                "--metrics", str(tmp_path / "m.json")]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        result = subprocess.run(args, cwd=finished, capture_output=True, text=True, env=env)
        assert result.returncode == 1
        assert "No space left on device" in result.stderr
        assert old.read_bytes() == (finished / "data/model/model.npz").read_bytes()
        assert [p.name for p in mount.iterdir()] == ["model.npz"]
    finally:
        subprocess.run(["umount", str(mount)], check=True)


# --- signals and locks under the real `dvc repro` --------------------------------------------


class TrickleServer:
    """Serves one file on 127.0.0.1 slowly (about 3 s), so a download is caught mid-way."""

    def __init__(self, path: Path) -> None:
        data = path.read_bytes()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                step = len(data) // 30 + 1
                for start in range(0, len(data), step):
                    self.wfile.write(data[start : start + step])
                    self.wfile.flush()
                    time.sleep(0.1)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/mnist.npz"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_for_stage(dvc: subprocess.Popen, stage: str, timeout: float = 60) -> psutil.Process:
    """The Python process running ``stages/<stage>.py`` under ``dvc``.

    DVC runs a stage's command through ``$SHELL -c`` (``/bin/sh`` when SHELL is unset). Bash
    replaces itself with a lone command; dash stays as the parent. Either way this returns
    the interpreter, never the shell.
    """
    python = Path(sys.executable).resolve()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in psutil.Process(dvc.pid).children(recursive=True):
            try:
                if Path(child.exe()) == python and f"stages/{stage}.py" in child.cmdline():
                    return child
            except psutil.NoSuchProcess:
                continue
        assert dvc.poll() is None, "dvc exited before the stage started"
        time.sleep(0.05)
    raise AssertionError(f"stage {stage} never started")


@pytest.fixture(scope="module")
def trickle(tiny, tmp_path_factory):
    server = TrickleServer(write_keras_npz(tiny, tmp_path_factory.mktemp("www") / "mnist.npz"))
    yield server
    server.close()


class Watched:
    """A `dvc repro` in its own session (as a terminal runs it), its output read as it comes."""

    def __init__(self, project, *args: str) -> None:
        self.dvc = subprocess.Popen(
            [sys.executable, "-m", "dvc", *args], cwd=project.root, env=project.env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.dvc.stdout))
        self.reader.start()

    def wait_for_line(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            assert time.monotonic() < deadline, f"no line with {text!r}:\n{self.output()}"
            assert self.dvc.poll() is None, f"dvc exited first:\n{self.output()}"
            time.sleep(0.02)

    def output(self) -> str:
        return "".join(self.lines)

    def finish(self, timeout: float = 120) -> str:
        self.dvc.wait(timeout)
        self.reader.join(timeout)
        self.dvc.stdout.close()
        return self.output()

    def __enter__(self) -> Watched:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.dvc.poll() is None:  # a failed assertion: stop the run and all it started
            os.killpg(self.dvc.pid, signal.SIGKILL)
        self.finish()


# The line that shows each stage is at work, and how long it then runs before the signal:
# mid-transfer for download (the trickle server takes about 3 s), mid-training for train
# (1500 epochs take about 3 s). Preprocess takes a fraction of a second on the tiny data, too
# short to interrupt on purpose; tests/test_storage.py interrupts a stage between two outputs.
AT_WORK = {"download": "trying http://127.0.0.1", "train": "training on 200 images"}
DELAY = 0.5


@pytest.fixture(scope="module")
def reference(tiny, trickle, tmp_path_factory):
    """Outputs of an uninterrupted `dvc repro train` with the signal tests' params."""
    project = make_project(tmp_path_factory.mktemp("reference"), tiny, source=trickle.url)
    project.set_params("train", epochs=1500)
    project.dvc("repro", "train")
    return project.outputs()


@pytest.mark.parametrize(
    ("how", "shell"),
    [("ctrl-c", "/bin/sh"), ("ctrl-c", "/bin/bash"), ("sigterm", "/bin/sh")],
    ids=["ctrl-c-dash", "ctrl-c-bash", "sigterm"],
)  # SIGTERM goes to the stage's process itself, so which shell sits above it does not matter
@pytest.mark.parametrize("stage", ["download", "train"])
def test_interrupted_stage_leaves_nothing_and_the_rerun_matches(
    tiny, trickle, reference, tmp_path, stage, how, shell
):
    """Ctrl-C sends SIGINT to the terminal's whole process group (dvc, the shell, the stage);
    SIGTERM is what a job runner or `kill` sends to the stage's own process."""
    project = make_project(tmp_path, tiny, source=trickle.url, env={"SHELL": shell})
    project.set_params("train", epochs=1500)
    with Watched(project, "repro", "train") as run:
        run.wait_for_line(AT_WORK[stage])
        process = wait_for_stage(run.dvc, stage)
        time.sleep(DELAY)
        if how == "ctrl-c":
            os.killpg(run.dvc.pid, signal.SIGINT)
        else:
            process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)  # its clean-up done (under dash, the shell may exit first)
        output = run.finish()
    assert run.dvc.returncode != 0, output
    assert f"failed to reproduce '{stage}'" in output
    assert "interrupted: no output was written or replaced" in output
    leftovers = [p for p in (project.root / "data").rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []
    for relative in STAGE_OUTPUTS[stage]:
        assert not (project.root / relative).exists(), f"{relative} left behind"

    project.dvc("repro", "train")
    assert project.outputs() == reference


def test_a_second_repro_is_refused_while_one_runs(dvc_project):
    dvc_project.set_params("train", epochs=1500)
    with Watched(dvc_project, "repro") as first:
        first.wait_for_line("training on")
        second = dvc_project.dvc("repro", check=False)
        output = first.finish()
    assert second.returncode != 0
    assert "is busy, it is being blocked by" in second.stderr
    assert first.dvc.returncode == 0, output
    assert dvc_project.dvc("status", "-q", check=False).returncode == 0  # nothing corrupted


def test_outputs_do_not_depend_on_path_time_zone_or_locale(tiny, tmp_path):
    source = str(write_keras_npz(tiny, tmp_path / "mnist.npz"))  # same params in both
    a = make_project(tmp_path / "a", tiny, source=source)
    other_env = {"TZ": "Asia/Kathmandu", "LC_ALL": "C.UTF-8", "PYTHONHASHSEED": "123"}
    b = make_project(tmp_path / "some" / "deeper place", tiny, source=source, env=other_env)
    a.dvc("repro")
    b.dvc("repro")
    assert a.outputs() == b.outputs()
    assert (a.root / "dvc.lock").read_text() == (b.root / "dvc.lock").read_text()

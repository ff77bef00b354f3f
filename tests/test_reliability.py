"""What the project promises under the real `dvc repro` when runs are interrupted or
overlap, and that its bytes do not depend on where or when it runs.

(The stage wrapper's errors are tested in tests/test_stage.py.)
"""

from __future__ import annotations

import fcntl
import http.server
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from conftest import make_project, write_keras_npz

pytestmark = pytest.mark.cli  # real dvc / subprocesses: `make test-fast` skips these

STAGE_OUTPUTS = {
    "download": ["data/raw/mnist.npz"],
    "train": [
        "data/model/model.npz",
        "data/dvclive/metrics.json",
        "data/dvclive/plots/metrics/train/loss.tsv",
    ],
}  # the stages the signal tests interrupt


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
            [sys.executable, "-m", "dvc", *args],
            cwd=project.root,
            env=project.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
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
def unrun(tiny, trickle, tmp_path_factory):
    """The signal tests' pipeline: MNIST from the trickle server, 1500 epochs, nothing run."""
    project = make_project(tmp_path_factory.mktemp("unrun"), tiny, source=trickle.url)
    project.set_params("train", epochs=1500)
    project.git("commit", "-qam", "1500 epochs")
    return project


@pytest.fixture(scope="module")
def prepared(unrun, tmp_path_factory):
    """``unrun`` with every stage before train run and committed."""
    project = unrun.copy(tmp_path_factory.mktemp("prepared") / "repo")
    project.dvc("repro", "augment")
    project.git("add", "-A")
    project.git("commit", "-qm", "data")
    return project


@pytest.fixture(scope="module")
def reference(prepared, tmp_path_factory):
    """Outputs of an uninterrupted `dvc repro train` with the signal tests' params."""
    project = prepared.copy(tmp_path_factory.mktemp("reference") / "repo")
    project.dvc("repro", "train")
    return project.outputs()


@pytest.mark.parametrize(
    ("stage", "how", "shell"),
    [
        ("download", "ctrl-c", "/bin/sh"),
        ("download", "sigterm", "/bin/sh"),
        ("train", "ctrl-c", "/bin/sh"),
        ("train", "ctrl-c", "/bin/bash"),
        ("train", "sigterm", "/bin/sh"),
    ],
    ids=[
        "download-ctrl-c-dash",
        "download-sigterm",
        "train-ctrl-c-dash",
        "train-ctrl-c-bash",
        "train-sigterm",
    ],
)
# Which shell sits between dvc and the stage (dash stays as the parent, bash replaces
# itself) matters to Ctrl-C, not to what the stage does with it: both shells are tried on
# train. SIGTERM goes to the stage's process itself, so the shell does not matter there.
def test_interrupted_stage_leaves_nothing_and_the_rerun_matches(
    unrun, prepared, reference, tmp_path, stage, how, shell
):
    """Ctrl-C sends SIGINT to the terminal's whole process group (dvc, the shell, the stage);
    SIGTERM is what a job runner or `kill` sends to the stage's own process."""
    project = (unrun if stage == "download" else prepared).copy(tmp_path / "repo")
    project.env["SHELL"] = shell
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

    if how == "ctrl-c" and shell == "/bin/sh":  # once per stage: the rerun starts afresh
        project.dvc("repro", stage)  # and writes the bytes of an uninterrupted run
        produced = project.outputs()
        assert set(STAGE_OUTPUTS[stage]) <= set(produced)
        assert produced == {name: reference[name] for name in produced}


def test_a_second_repro_is_refused_while_one_runs(prepared, tmp_path):
    dvc_project = prepared.copy(tmp_path / "repo")
    with Watched(dvc_project, "repro", "train") as first:
        first.wait_for_line("training on")
        second = dvc_project.dvc("repro", check=False)
        output = first.finish()
    assert second.returncode != 0
    assert "is busy, it is being blocked by" in second.stderr
    assert first.dvc.returncode == 0, output
    assert dvc_project.dvc("status", "-q", "train", check=False).returncode == 0  # intact


def test_a_failed_stage_names_the_commands_that_bring_its_committed_outputs_back(
    finished_project,
):
    """dvc repro deletes a stage's outputs before running it; when the stage fails, the ones
    in DVC's cache and the ones kept in git come back with the commands its error names."""
    project = finished_project
    project.set_params("train", lr=1e6)  # diverges in its first epoch
    failed = project.dvc("repro", "train", check=False)
    assert failed.returncode != 0 and "training diverged" in failed.stderr
    assert not (project.root / "data/dvclive/metrics.json").exists()  # no half-written log
    assert not (project.root / "data/dvclive/plots").exists()
    named = "dvc checkout --force train brings back the committed ones"
    assert named in failed.stderr
    project.git("checkout", "--", "params.yaml")
    project.dvc("checkout", "--force", "train")
    assert project.git("status", "--short").stdout == ""
    assert "up to date" in project.dvc("status").stdout

    (project.root / "data/own-digits/3/scan.gif").write_bytes(b"GIF89a")  # refused by own
    failed = project.dvc("repro", "robustness@own", check=False)
    assert not (project.root / "data/robustness/own.json").exists()
    restore = re.search(r": (dvc checkout .*) brings back the committed ones", failed.stderr)
    assert restore.group(1) == (
        "dvc checkout --force robustness@own && git checkout -- data/robustness/own.json"
    )
    subprocess.run(restore.group(1), shell=True, cwd=project.root, env=project.env, check=True)
    assert project.git("status", "--short", "data/robustness").stdout == ""


def test_a_stage_dies_with_its_killed_dvc_and_a_second_run_is_refused(prepared, tmp_path):
    """kill -9 of dvc cannot stop its stage; the stage notices within a second and stops as
    SIGTERM stops it (nothing written), so no orphan goes on writing outputs a new run
    writes. While a stage runs, a second run of it in the same project is refused."""
    project = prepared.copy(tmp_path / "repo")
    with Watched(project, "repro", "train") as run:
        run.wait_for_line(AT_WORK["train"])
        stage = wait_for_stage(run.dvc, "train")
        run.dvc.kill()  # SIGKILL to dvc alone: its stage is orphaned
        assert stage.wait(timeout=15) != 0  # it ended by itself
        run.finish()
    for relative in STAGE_OUTPUTS["train"]:
        assert not (project.root / relative).exists(), f"{relative} left behind"

    lock = project.root / ".dvc/tmp/mnistnet-train.lock"
    with open(lock, "w") as held:  # as a run of the stage still going would hold it
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write("4242")
        held.flush()
        env = {**project.env, "DVC_STAGE": "train", "DVC_ROOT": str(project.root)}
        second = subprocess.run(
            [
                sys.executable,
                "stages/train.py",
                "--data",
                "data/processed",
                "--pool",
                "data/augmented/pool.npz",
                "--model",
                "m.npz",
                "--live",
                "live",
            ],
            cwd=project.root,
            env=env,
            capture_output=True,
            text=True,
        )
    assert second.returncode == 1
    assert "error: stage train is already running (PID 4242), on the same outputs" in second.stderr
    assert not (project.root / "m.npz").exists()

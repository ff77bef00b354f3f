"""Sharing through DVC remotes: a local folder and a real S3-compatible server on loopback.

The S3 tests start `moto_server` (from its own venv, .venv-moto, made by `make test`) on a
free 127.0.0.1 port, with authentication enforced, and stop it by PID at the end.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import ROOT, Project, run, sha256_file

pytestmark = pytest.mark.cli  # real dvc / subprocesses: `make test-fast` skips these

MOTO_BIN = ROOT / ".venv-moto" / "bin"
BUCKET = "mnistnet-artifacts"


def tree_digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): sha256_file(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "tmp" not in p.relative_to(folder).parts
    }


def clone(project: Project, where: Path, env: dict | None = None, source=None) -> Project:
    """A git clone of ``source`` (default: ``project``) with ``project``'s environment."""
    run(["git", "clone", "-q", str(source or project.root), str(where)], project.root.parent)
    return Project(where, {**project.env, "PYTHONPATH": str(where / "src"), **(env or {})})


def test_local_folder_remote_round_trip(finished_project, tmp_path):
    a = finished_project
    a.dvc("remote", "add", "-d", "shared", str(tmp_path / "remote"))
    a.git("commit", "-qam", "remote")
    push = a.dvc("push")
    assert "pushed" in push.stdout

    b = clone(a, tmp_path / "teammate")
    b.dvc("pull")
    assert b.dvc("status", "-q", check=False).returncode == 0  # nothing changed or missing
    assert "Running stage" not in b.dvc("repro").stdout
    assert b.outputs() == a.outputs()


def test_run_cache_recipe_lets_a_teammate_skip_a_run_someone_shared(finished_template, tmp_path):
    """The README's recipe, command for command. A runs an experiment, goes back to the
    commit (so the workspace no longer holds its outputs) and shares it; B, a fresh clone
    given the same params, checks the run's outputs out instead of training."""
    origin = tmp_path / "origin.git"
    run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], tmp_path)
    a = finished_template.copy(tmp_path / "a")
    a.git("remote", "add", "origin", str(origin))
    a.dvc("remote", "add", "-d", "shared", str(tmp_path / "remote"))  # absolute: see README
    a.git("commit", "-qm", "remote", ".dvc/config")
    a.git("push", "-q", "origin", "HEAD:main")
    a.dvc("push")
    a.dvc("exp", "run", "-n", "wider", "-S", "train.hidden_size=24")
    model = "data/model/model.npz"
    wider = sha256_file(a.root / model)
    shutil.copy(a.root / "data/eval/metrics.json", tmp_path / "wider-metrics.json")
    a.git("checkout", "--", ".")
    a.dvc("checkout")  # the README's way back: the workspace holds the commit's outputs
    # `dvc push --run-cache` would upload the records and only the workspace's outputs, so
    # the record of `wider` would point at a model the remote lacks; this uploads both.
    shared = a.dvc("exp", "push", "--run-cache", "origin", "wider")
    assert "Pushed experiment wider" in shared.stdout

    b = clone(a, tmp_path / "teammate", source=origin)
    result = b.dvc("exp", "run", "--pull", "-S", "train.hidden_size=24")
    assert "Stage 'train' is cached - skipping run, checking out outputs" in result.stdout
    assert "Running stage 'train'" not in result.stdout
    # evaluate reruns (seconds): its results are files kept in git, which the run-cache
    # does not store; it writes the same bytes as A's
    assert sha256_file(b.root / model) == wider
    assert (b.root / "data/eval/metrics.json").read_bytes() == (
        tmp_path / "wider-metrics.json"
    ).read_bytes()


def test_a_corrupted_remote_object_never_reaches_the_workspace(finished_project, tmp_path):
    a = finished_project
    remote = tmp_path / "remote"
    a.dvc("remote", "add", "-d", "shared", str(remote))
    a.git("commit", "-qam", "remote")
    a.dvc("push")
    lock = yaml.safe_load((a.root / "dvc.lock").read_text())
    md5 = next(o["md5"] for o in lock["stages"]["train"]["outs"] if o["path"].endswith(".npz"))
    obj = remote / "files" / "md5" / md5[:2] / md5[2:]
    obj.chmod(0o644)
    data = bytearray(obj.read_bytes())
    data[300] ^= 0xFF
    obj.write_bytes(bytes(data))

    b = clone(a, tmp_path / "teammate")
    result = b.dvc("pull", check=False)
    assert result.returncode != 0
    assert "data/model/model.npz" in result.stderr and "Missing cache files" in result.stderr
    assert not (b.root / "data/model/model.npz").exists()
    assert (b.root / "data/raw/mnist.npz").exists()  # the intact objects still arrive


# --- S3 on loopback --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_server():
    """A moto S3 server with one bucket and one valid key; yields (endpoint, key id, secret)."""
    if importlib.util.find_spec("dvc_s3") is None:
        pytest.skip("dvc-s3 is not installed: pip install -e '.[s3]' (make test does)")
    if not (MOTO_BIN / "moto_server").exists():
        pytest.skip(f"no moto server at {MOTO_BIN}: run `make test` to create .venv-moto")
    port = free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"}
    server = subprocess.Popen(
        [str(MOTO_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "moto did not start"
                time.sleep(0.1)
        endpoint = f"http://127.0.0.1:{port}"
        setup = subprocess.run(
            [str(MOTO_BIN / "python"), str(ROOT / "tests/moto_setup.py"), endpoint, BUCKET],
            capture_output=True,
            text=True,
            check=True,
        )
        key = json.loads(setup.stdout)
        yield endpoint, key["id"], key["secret"]
    finally:
        server.terminate()
        server.wait(timeout=10)


def with_s3_remote(project: Project, endpoint: str, bucket: str = BUCKET) -> None:
    project.dvc("remote", "add", "-d", "storage", f"s3://{bucket}/mnistnet")
    project.dvc("remote", "modify", "storage", "endpointurl", endpoint)
    project.git("commit", "-qam", "S3 remote")


def aws_env(key_id: str, secret: str) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": key_id,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": "us-east-1",
    }


def test_s3_round_trip(finished_project, s3_server, tmp_path):
    endpoint, key_id, secret = s3_server
    a = finished_project
    with_s3_remote(a, endpoint)
    # credentials stay out of git: .dvc/config.local is git-ignored
    a.dvc("remote", "modify", "--local", "storage", "access_key_id", key_id)
    a.dvc("remote", "modify", "--local", "storage", "secret_access_key", secret)
    assert key_id not in (a.root / ".dvc/config").read_text()
    a.dvc("push")

    b = clone(a, tmp_path / "teammate", env=aws_env(key_id, secret))  # creds from env
    b.dvc("pull")
    assert b.dvc("status", "-q", check=False).returncode == 0
    assert "Running stage" not in b.dvc("repro").stdout
    assert b.outputs() == a.outputs()


@pytest.mark.parametrize("fault", ["unreachable", "no bucket", "wrong credentials"])
def test_failed_push_leaves_cache_and_workspace_untouched(finished_project, s3_server, fault):
    endpoint, key_id, secret = s3_server
    project = finished_project
    if fault == "unreachable":
        endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    if fault == "wrong credentials":
        key_id, secret = "AKIAWRONGWRONGWRONG0", "not-the-secret"
    with_s3_remote(project, endpoint, "no-such-bucket" if fault == "no bucket" else BUCKET)
    project.env.update(aws_env(key_id, secret))
    project.env["AWS_MAX_ATTEMPTS"] = "1"  # fail fast instead of retrying
    cache, workspace = tree_digests(project.root / ".dvc/cache"), project.outputs()

    result = project.dvc("push", check=False)
    assert result.returncode != 0
    expected = {
        "unreachable": "Could not connect",
        "no bucket": "NoSuchBucket",
        "wrong credentials": "Forbidden",  # HeadObject answers 403 for an unknown key
    }[fault]
    assert "ERROR" in result.stderr and expected in result.stderr, result.stderr[-2000:]
    assert tree_digests(project.root / ".dvc/cache") == cache
    assert project.outputs() == workspace


# --- experiments and models across machines -----------------------------------------------


def with_origin(project: Project, tmp_path: Path) -> Path:
    """A bare git repository as ``origin``, holding the project's current branch."""
    origin = tmp_path / "origin.git"
    branch = project.git("branch", "--show-current").stdout.strip()
    run(["git", "init", "-q", "--bare", f"--initial-branch={branch}", str(origin)], tmp_path)
    project.git("remote", "add", "origin", str(origin))
    project.git("push", "-q", "origin", branch)
    return origin


def teammate(origin: Path, where: Path, env: dict) -> Project:
    run(["git", "clone", "-q", str(origin), str(where)], where.parent)
    return Project(where, {**env, "PYTHONPATH": str(where / "src")})


@pytest.fixture(scope="module")
def sharing(finished_template, tmp_path_factory, request) -> tuple[Project, dict]:
    """The README's team set-up, made once: remotes committed (a folder and, when moto is
    there, the S3 bucket), then `dvc exp run -n wider`. Yields the repo and the remotes."""
    a = finished_template.copy(tmp_path_factory.mktemp("sharing") / "a")
    remotes = {"local folder": "shared"}
    a.dvc("remote", "add", "-d", "shared", str(a.root.parent / "dvc-remote"))
    try:
        endpoint, key_id, secret = request.getfixturevalue("s3_server")
    except pytest.skip.Exception:
        pass  # the S3 case skips on its own
    else:
        a.env.update(aws_env(key_id, secret))
        a.dvc("remote", "add", "storage", f"s3://{BUCKET}/mnistnet")
        a.dvc("remote", "modify", "storage", "endpointurl", endpoint)
        remotes["s3"] = "storage"
    a.git("commit", "-qm", "DVC remotes", ".dvc/config")
    a.dvc("exp", "run", "-n", "wider", "-S", "train.hidden_size=24")
    return a, remotes


@pytest.mark.parametrize("remote", ["local folder", "s3"])
def test_an_experiment_travels_between_machines(sharing, tmp_path, request, remote):
    if remote == "s3":
        request.getfixturevalue("s3_server")  # skips without moto
    template, remotes = sharing
    a = template.copy(tmp_path / "a")
    use = ["-r", remotes[remote]]
    a.dvc("push", *use)
    origin = with_origin(a, tmp_path)

    pushed = a.dvc("exp", "push", "origin", "wider", *use)
    assert "Pushed experiment wider to Git remote 'origin'" in pushed.stdout + pushed.stderr
    experiment = a.outputs()

    b = teammate(origin, tmp_path / "teammate", a.env)
    b.dvc("exp", "pull", "origin", "wider", *use)
    shown = json.loads(b.dvc("exp", "show", "--json").stdout)
    runs = {
        exp["name"]: exp["data"]
        for commit in shown
        for branch in commit.get("experiments") or []
        for exp in branch["revs"]
    }
    assert set(runs) == {"wider"}
    accuracy = runs["wider"]["metrics"]["data/eval/metrics.json"]["data"]["test"]["accuracy"]
    assert (
        accuracy == json.loads((a.root / "data/eval/metrics.json").read_text())["test"]["accuracy"]
    )
    b.dvc("exp", "apply", "wider")
    assert b.dvc("status", "-q", check=False).returncode == 0
    assert "Running stage" not in b.dvc("repro").stdout  # nothing retrained
    assert b.outputs() == experiment


def test_a_released_model_is_fetched_without_cloning(finished_project, tmp_path):
    a = finished_project
    a.dvc("remote", "add", "-d", "shared", str(tmp_path / "dvc-remote"))
    a.git("commit", "-qam", "remote")
    a.dvc("push")
    gto = Path(sys.executable).parent / "gto"  # installed with DVC
    registered = run([str(gto), "register", "mnist-mlp", "--version", "v1.0.0"], a.root, env=a.env)
    assert "mnist-mlp@v1.0.0" in registered.stdout
    tag = a.git("cat-file", "-t", "mnist-mlp@v1.0.0").stdout.strip()
    assert tag == "tag"  # annotated: dvc artifacts get does not see lightweight tags
    origin = with_origin(a, tmp_path)
    a.git("push", "-q", "origin", "--tags")

    consumer = tmp_path / "consumer"
    consumer.mkdir()
    got = run(
        [sys.executable, "-m", "dvc", "artifacts", "get", str(origin), "mnist-mlp"],
        consumer,
        env=a.env,
    )
    assert "Downloaded 1 file(s) to 'model.npz'" in got.stdout
    assert os.listdir(consumer) == ["model.npz"]
    model = consumer / "model.npz"
    assert sha256_file(model) == sha256_file(a.root / "data/model/model.npz")

    digits = tmp_path / "digits.npy"
    test = np.load(a.root / "data/processed/test.npz")
    np.save(digits, test["x"][:5].reshape(5, 28, 28))
    predict = [sys.executable, "-m", "mnistnet.apps.cli", "predict", "--json", str(digits)]
    ours = run([*predict, "--model", str(model)], consumer, env=a.env).stdout
    theirs = run(predict, a.root, env=a.env).stdout  # the model in the pipeline's workspace
    assert ours == theirs and len(ours.splitlines()) == 5

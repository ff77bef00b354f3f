"""Sharing through DVC remotes: a local folder and a real S3-compatible server on loopback.

The S3 tests start `moto_server` (from its own venv, .venv-moto, made by `make test`) on a
free 127.0.0.1 port, with authentication enforced, and stop it by PID at the end.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, Project, run, sha256_file

MOTO_BIN = ROOT / ".venv-moto" / "bin"
BUCKET = "mnistnet-artifacts"


def tree_digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): sha256_file(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "tmp" not in p.relative_to(folder).parts
    }


def clone(project: Project, where: Path, env: dict | None = None) -> Project:
    run(["git", "clone", "-q", str(project.root), str(where)], project.root.parent)
    return Project(where, {**project.env, "PYTHONPATH": str(where / "src"), **(env or {})})


def committed(project: Project) -> Project:
    project.dvc("repro")
    project.git("add", "-A")
    project.git("commit", "-q", "-m", "results")
    return project


def test_local_folder_remote_round_trip(dvc_project, tmp_path):
    a = committed(dvc_project)
    a.dvc("remote", "add", "-d", "shared", str(tmp_path / "remote"))
    a.git("commit", "-qam", "remote")
    push = a.dvc("push")
    assert "pushed" in push.stdout

    b = clone(a, tmp_path / "teammate")
    b.dvc("pull")
    assert b.dvc("status", "-q", check=False).returncode == 0  # nothing changed or missing
    assert "Running stage" not in b.dvc("repro").stdout
    assert b.outputs() == a.outputs()


def test_run_cache_restores_train_instead_of_retraining(dvc_project, tmp_path):
    a = committed(dvc_project)
    a.dvc("remote", "add", "-d", "shared", str(tmp_path / "remote"))
    a.git("commit", "-qam", "remote")
    a.dvc("push")
    a.set_params("train", lr=0.05)  # A tries a new lr and shares the run, uncommitted
    a.dvc("repro")
    a.dvc("push", "--run-cache")

    b = clone(a, tmp_path / "teammate")
    b.dvc("pull", "--run-cache")
    b.set_params("train", lr=0.05)
    result = b.dvc("repro", "--pull")  # --pull: fetch the cached run's outputs it needs
    assert "Stage 'train' is cached - skipping run, checking out outputs" in result.stdout
    assert "Running stage 'train'" not in result.stdout
    model = "data/model/model.npz"
    assert sha256_file(b.root / model) == sha256_file(a.root / model)


def test_a_corrupted_remote_object_never_reaches_the_workspace(dvc_project, tmp_path):
    a = committed(dvc_project)
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
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
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
            capture_output=True, text=True, check=True,
        )  # fmt: skip
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
    return {"AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip


def test_s3_round_trip(dvc_project, s3_server, tmp_path):
    endpoint, key_id, secret = s3_server
    a = committed(dvc_project)
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
def test_failed_push_leaves_cache_and_workspace_untouched(dvc_project, s3_server, fault):
    endpoint, key_id, secret = s3_server
    project = committed(dvc_project)
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

"""The real `dvc` CLI on the tiny dataset in a temporary git repo."""

import contextlib
import csv
import io
import json
import subprocess
import sys
import time

import psutil
import pytest

from conftest import Project, run

pytestmark = pytest.mark.cli  # real dvc / subprocesses: `make test-fast` skips these

STAGES = ("download", "preprocess", "augment", "train", "evaluate", "plot")


def ran(result) -> set[str]:
    return {s for s in STAGES if f"Running stage '{s}'" in result.stdout}


def test_repro_runs_every_stage_then_nothing_and_outputs_are_stable(dvc_project):
    first = dvc_project.dvc("repro")
    assert ran(first) == set(STAGES)
    produced = dvc_project.outputs()
    expected = {
        "data/raw/mnist.npz", "data/processed/val.npz", "data/model/model.npz",
        "data/eval/metrics.json", "data/eval/confusion.csv", "data/plots/confusion_matrix.png",
    }  # fmt: skip
    assert expected <= set(produced)
    assert dvc_project.dvc("status", "-q", check=False).returncode == 0

    assert ran(dvc_project.dvc("repro")) == set()
    assert dvc_project.outputs() == produced

    lock = (dvc_project.root / "dvc.lock").read_text()
    dvc_project.dvc("repro", "-f")  # rerun everything: the same bytes come out
    assert dvc_project.outputs() == produced
    assert (dvc_project.root / "dvc.lock").read_text() == lock
    metrics = json.loads(dvc_project.dvc("metrics", "show", "--json").stdout)
    flat = next(iter(metrics.values()))["data"]
    assert flat["data/train/metrics.json"]["data"]["epochs"] == 3
    assert 0.5 < flat["data/eval/metrics.json"]["data"]["test"]["accuracy"] <= 1


def test_each_change_reruns_exactly_the_stages_it_affects(dvc_project):
    dvc_project.dvc("repro")
    before = dvc_project.outputs()

    dvc_project.set_params("plot", dpi=60)
    assert ran(dvc_project.dvc("repro")) == {"plot"}

    dvc_project.set_params("train", lr=0.05)
    result = dvc_project.dvc("repro")
    assert ran(result) == {"train", "evaluate", "plot"}
    assert "Stage 'download' didn't change, skipping" in result.stdout
    assert "Stage 'preprocess' didn't change, skipping" in result.stdout
    after = dvc_project.outputs()
    assert after["data/processed/train.npz"] == before["data/processed/train.npz"]
    assert after["data/model/model.npz"] != before["data/model/model.npz"]

    with open(dvc_project.root / "src/mnistnet/plots.py", "a") as f:
        f.write("\n# a change to plotting code\n")
    assert ran(dvc_project.dvc("repro")) == {"plot"}

    # With augmentation off, other warp settings leave the (empty) pool's bytes alone
    dvc_project.set_params("augment", rotate=5.0)
    assert ran(dvc_project.dvc("repro")) == {"augment"}
    dvc_project.set_params("augment", epoch_shift=2)  # applied by train, not the pool
    assert ran(dvc_project.dvc("repro")) == {"train", "evaluate", "plot"}
    dvc_project.set_params("augment", copies=2)
    assert ran(dvc_project.dvc("repro")) == {"augment", "train", "evaluate", "plot"}

    assert ran(dvc_project.dvc("repro")) == set()


def test_metrics_and_params_diff_between_commits(dvc_project):
    dvc_project.dvc("repro")
    dvc_project.git("add", "-A")
    dvc_project.git("commit", "-q", "-m", "baseline")
    dvc_project.set_params("train", lr=0.02, epochs=2)
    dvc_project.dvc("repro")
    dvc_project.git("add", "-A")
    dvc_project.git("commit", "-q", "-m", "smaller lr")

    params = json.loads(dvc_project.dvc("params", "diff", "HEAD~1", "--json").stdout)
    lr = params["params.yaml"]["train.lr"]
    assert (lr["old"], lr["new"]) == (0.2, 0.02)
    metrics = json.loads(dvc_project.dvc("metrics", "diff", "HEAD~1", "--json").stdout)
    assert metrics["data/train/metrics.json"]["epochs"] == {"old": 3, "new": 2, "diff": -1}
    assert "test.accuracy" in metrics["data/eval/metrics.json"]


def test_experiments_run_and_show(dvc_project):
    dvc_project.dvc("repro")
    dvc_project.git("add", "-A")
    dvc_project.git("commit", "-q", "-m", "baseline")
    dvc_project.dvc("exp", "run", "-n", "lr-small", "-S", "train.lr=0.03")
    shown = dvc_project.dvc("exp", "show", "--md", "--no-pager").stdout
    assert "lr-small" in shown and "0.03" in shown and "test.accuracy" in shown


def test_a_failing_stage_exits_nonzero_with_the_message(dvc_project):
    dvc_project.set_params("train", lrr=0.1)
    result = dvc_project.dvc("repro", check=False)
    assert result.returncode != 0
    assert "train: unknown key(s) train.lrr" in result.stderr + result.stdout


def stop_queue_workers(project: Project) -> None:
    """`dvc queue stop`, then end any worker of this project still alive.

    A celery worker sometimes logs "shutting down due to empty queue" and stays in its event
    loop (seen here with dvc-task's temporary worker); it must not outlive the test.
    """
    project.dvc("queue", "stop", check=False)
    for process in psutil.process_iter(["cmdline", "cwd"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if "dvc" in cmdline and "queue" in cmdline and process.info["cwd"] == str(project.root):
            with contextlib.suppress(psutil.Error):  # it may have ended meanwhile
                process.kill()


def test_a_queued_grid_sweep_runs_every_experiment(dvc_project):
    dvc_project.dvc("repro")
    dvc_project.git("add", "-A")
    dvc_project.git("commit", "-q", "-m", "baseline")
    queued = dvc_project.dvc(
        "exp", "run", "--queue", "-S", "train.lr=0.1,0.05", "-S", "train.hidden_size=8,16"
    )
    assert queued.stdout.count("Queued experiment") == 4
    # The worker daemon inherits the starter's stdout: capturing it would wait for the worker.
    subprocess.run(
        [sys.executable, "-m", "dvc", "queue", "start", "--jobs", "2"], cwd=dvc_project.root,
        env=dvc_project.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60,
        check=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 600
        while any(s in dvc_project.dvc("queue", "status").stdout for s in ("Queued", "Running")):
            assert time.monotonic() < deadline, "the sweep did not finish in 10 minutes"
            time.sleep(1)
    finally:
        stop_queue_workers(dvc_project)
    shown = dvc_project.dvc(
        "exp", "show", "--csv", "--no-pager", "--drop", ".*",
        "--keep", "Experiment|State|train.lr$|train.hidden_size|test.accuracy",
    ).stdout  # fmt: skip
    runs = [row for row in csv.DictReader(io.StringIO(shown)) if row["Experiment"]]
    assert len(runs) == 4 and all(row["State"] == "Success" for row in runs)
    grid = {(float(row["train.lr"]), int(row["train.hidden_size"])) for row in runs}
    assert grid == {(0.1, 8), (0.1, 16), (0.05, 8), (0.05, 16)}
    assert all(0 <= float(row["test.accuracy"]) <= 1 for row in runs)  # each has its metrics


def test_a_fresh_clone_reproduces_head_so_its_cache_serves_diffs_and_checkout(
    dvc_project, tmp_path
):
    """What a newcomer does first: clone, run, compare against HEAD, try a change, go back."""
    dvc_project.dvc("repro")
    dvc_project.git("add", "-A")
    dvc_project.git("commit", "-q", "-m", "results")
    committed = dvc_project.outputs()

    clone = Project(
        tmp_path / "clone", {**dvc_project.env, "PYTHONPATH": str(tmp_path / "clone/src")}
    )
    run(["git", "clone", "-q", str(dvc_project.root), str(clone.root)], tmp_path)
    clone.dvc("repro")  # an empty cache: every stage runs
    assert clone.git("status", "--porcelain").stdout == ""  # same dvc.lock, same eval files
    assert clone.outputs() == committed

    diff = clone.dvc("metrics", "diff", "HEAD", "--all", "--json")
    assert "failed to load" not in diff.stderr
    train = json.loads(diff.stdout)["data/train/metrics.json"]
    assert train["train.accuracy"]["old"] == train["train.accuracy"]["new"] is not None
    plots = clone.dvc("plots", "diff", "HEAD", "--json")
    assert "failed to load" not in plots.stderr
    curves = [
        e for p in json.loads(plots.stdout)["data"].values() for e in p if e["type"] == "vega"
    ]
    assert len(curves) == 3  # loss, accuracy, confusion: each drawn from HEAD's data too
    for entry in curves:
        assert {point["rev"] for point in entry["content"]["data"]["values"]} == {
            "HEAD",
            "workspace",
        }

    clone.dvc("exp", "run", "-S", "train.lr=0.05")
    assert clone.outputs() != committed
    run(["git", "checkout", "--", "."], clone.root, env=clone.env)  # the README's way back
    clone.dvc("checkout")
    assert clone.outputs() == committed
    assert clone.dvc("status", "-q", check=False).returncode == 0

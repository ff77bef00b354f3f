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


def test_repro_runs_every_stage_then_nothing_and_outputs_are_stable(
    finished_template, finished_project
):
    assert ran(finished_template.first_run) == set(STAGES)  # the first `dvc repro` of a repo
    project = finished_project
    produced = project.outputs()
    expected = {
        "data/raw/mnist.npz", "data/processed/val.npz", "data/model/model.npz",
        "data/eval/metrics.json", "data/eval/confusion.csv", "data/plots/confusion_matrix.png",
    }  # fmt: skip
    assert expected <= set(produced)
    assert project.dvc("status", "-q", check=False).returncode == 0

    assert ran(project.dvc("repro")) == set()  # (a full rerun giving the same bytes: below)
    assert project.outputs() == produced
    metrics = json.loads(project.dvc("metrics", "show", "--json").stdout)
    flat = next(iter(metrics.values()))["data"]
    assert flat["data/train/metrics.json"]["data"]["step"] == 2  # 3 epochs, counted from 0
    assert 0.5 < flat["data/eval/metrics.json"]["data"]["test"]["accuracy"] <= 1


def test_each_change_reruns_exactly_the_stages_it_affects(finished_project):
    dvc_project = finished_project
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

    # (code changes: each stage's deps list is checked against its imports, test_dvc_yaml.py)
    # With augmentation off, other warp settings leave the (empty) pool's bytes alone
    dvc_project.set_params("augment", rotate=5.0)
    assert ran(dvc_project.dvc("repro")) == {"augment"}
    dvc_project.set_params("augment", copies=2)
    assert ran(dvc_project.dvc("repro")) == {"augment", "train", "evaluate", "plot"}

    assert ran(dvc_project.dvc("repro")) == set()


def test_metrics_and_params_diff_between_commits(experimented_template, tmp_path):
    dvc_project = experimented_template.copy(tmp_path / "repo")  # hidden_size 16 → 24, run
    dvc_project.git("add", "-A")
    dvc_project.git("commit", "-q", "-m", "wider")

    params = json.loads(dvc_project.dvc("params", "diff", "HEAD~1", "--json").stdout)
    hidden = params["params.yaml"]["train.hidden_size"]
    assert (hidden["old"], hidden["new"]) == (16, 24) and len(params["params.yaml"]) == 1
    metrics = json.loads(dvc_project.dvc("metrics", "diff", "HEAD~1", "--json").stdout)
    accuracy = metrics["data/eval/metrics.json"]["test.accuracy"]
    assert accuracy["old"] != accuracy["new"] and "diff" in accuracy
    assert "train.loss" in metrics["data/train/metrics.json"]


def test_an_experiment_is_shown_and_the_way_back_restores_the_commit(
    experimented_template, finished_template, tmp_path
):
    dvc_project = experimented_template.copy(tmp_path / "repo")  # after an exp run
    shown = dvc_project.dvc("exp", "show", "--md", "--no-pager").stdout
    row = next(line for line in shown.splitlines() if "[wider]" in line)
    assert "24" in row and "test.accuracy" in shown
    assert dvc_project.outputs() != finished_template.outputs()  # its results are in place

    run(["git", "checkout", "--", "."], dvc_project.root, env=dvc_project.env)  # the README's
    dvc_project.dvc("checkout")  # way back
    assert dvc_project.outputs() == finished_template.outputs()
    assert dvc_project.dvc("status", "-q", check=False).returncode == 0


def test_a_failing_stage_exits_nonzero_with_the_message(finished_project):
    dvc_project = finished_project
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


def live_steps(shown: list, running_only: bool = False) -> list[int]:
    """The train step each row of `dvc exp show --json` reports (of running ones only)."""
    rows = [] if running_only else [shown[0]]
    for commit in shown:
        for exp in commit.get("experiments") or []:
            if not running_only or (exp.get("executor") or {}).get("state") == "running":
                rows += exp["revs"]
    steps = []
    for row in rows:
        metrics = ((row.get("data") or {}).get("metrics") or {}).get("data/train/metrics.json")
        step = ((metrics or {}).get("data") or {}).get("step")
        if step is not None:
            steps.append(step)
    return steps


def watch(project: Project, running, running_only: bool = False) -> tuple[list, list]:
    """Poll `dvc exp show --json` while ``running()``: (seconds since start, steps) seen."""
    started, seen = time.monotonic(), []
    while running():
        assert time.monotonic() - started < 300, "the run did not end in 5 minutes"
        shown = project.dvc("exp", "show", "--json", check=False, timeout=120)
        if shown.returncode == 0:
            steps = live_steps(json.loads(shown.stdout), running_only)
            seen.append((round(time.monotonic() - started, 1), steps))
        time.sleep(0.3)
    return seen


EPOCHS = 1500  # on the tiny data, a few seconds of training: long enough to be watched


def test_a_running_experiment_can_be_watched_epoch_by_epoch(finished_project, tmp_path):
    """`dvc exp show` reads DVCLive's metrics.json while `dvc exp run` is still training."""
    log = open(tmp_path / "exp-run.log", "w")  # a file, not a pipe: nothing blocks on it
    run = subprocess.Popen(
        [sys.executable, "-m", "dvc", "exp", "run", "-S", f"train.epochs={EPOCHS}"],
        cwd=finished_project.root, env=finished_project.env, stdout=log, stderr=log,
    )  # fmt: skip
    try:
        seen = watch(finished_project, lambda: run.poll() is None)
    finally:
        run.wait(timeout=300)
        log.close()
    assert run.returncode == 0, (tmp_path / "exp-run.log").read_text()
    during = [max(steps) for _, steps in seen if steps and 0 < max(steps) < EPOCHS - 1]
    assert len(during) >= 2 and during == sorted(during)  # epochs counted up, live
    print(f"\nworkspace run watched: steps {during} at {[t for t, _ in seen]} s")
    final = live_steps(json.loads(finished_project.dvc("exp", "show", "--json").stdout))
    assert EPOCHS - 1 in final


def test_a_queued_grid_sweep_runs_every_experiment_and_can_be_watched(finished_project):
    dvc_project = finished_project
    # a grid of two values by one: every run costs seconds, and the README's sweep of four
    # runs in `make readme-check`
    queued = dvc_project.dvc(
        "exp", "run", "--queue", "-S", "train.lr=0.1,0.05", "-S", "train.hidden_size=8",
        "-S", f"train.epochs={EPOCHS}",
    )  # fmt: skip
    assert queued.stdout.count("Queued experiment") == 2
    # The worker daemon inherits the starter's stdout: capturing it would wait for the worker.
    subprocess.run(
        [sys.executable, "-m", "dvc", "queue", "start", "--jobs", "2"], cwd=dvc_project.root,
        env=dvc_project.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60,
        check=True,
    )  # fmt: skip

    def pending() -> bool:
        status = dvc_project.dvc("queue", "status").stdout
        return any(s in status for s in ("Queued", "Running"))

    try:
        seen = watch(dvc_project, pending, running_only=True)
    finally:
        stop_queue_workers(dvc_project)
    during = [step for _, steps in seen for step in steps if 0 < step < EPOCHS - 1]
    assert during, f"no running experiment showed a step before it ended: {seen}"
    print(f"\nqueued runs watched: steps {sorted(set(during))[:8]}…")
    shown = dvc_project.dvc(
        "exp", "show", "--csv", "--no-pager", "--drop", ".*",
        "--keep", "Experiment|State|train.lr$|train.hidden_size|test.accuracy",
    ).stdout  # fmt: skip
    runs = [row for row in csv.DictReader(io.StringIO(shown)) if row["Experiment"]]
    assert len(runs) == 2 and all(row["State"] == "Success" for row in runs)
    grid = {(float(row["train.lr"]), int(row["train.hidden_size"])) for row in runs}
    assert grid == {(0.1, 8), (0.05, 8)}
    assert all(0 <= float(row["test.accuracy"]) <= 1 for row in runs)  # each has its metrics


def test_a_fresh_clone_elsewhere_reproduces_head_byte_for_byte_and_compares_with_it(
    finished_template, tmp_path
):
    """What a newcomer does first: clone, run, compare against HEAD. Their clone is in
    another folder, time zone and locale: none of that may reach an output's bytes."""
    committed = finished_template.outputs()
    where = tmp_path / "some" / "deeper place" / "clone"
    other = {"TZ": "Asia/Kathmandu", "LC_ALL": "C.UTF-8", "PYTHONHASHSEED": "123"}
    clone = Project(where, {**finished_template.env, "PYTHONPATH": str(where / "src"), **other})
    where.parent.mkdir(parents=True)
    run(["git", "clone", "-q", str(finished_template.root), str(where)], tmp_path)
    # an empty cache: every stage runs but evaluate, whose outputs are in git and whose input,
    # the model, comes out with the committed hash
    assert ran(clone.dvc("repro")) == set(STAGES) - {"evaluate"}
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

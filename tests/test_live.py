"""Watching experiments while they run: DVCLive's files, read by `dvc exp show`.

The train stage logs each epoch through DVCLive as it ends; `dvc exp show --json` reads
those files from the workspace (a workspace run) or from the queue's temporary workspace
(a queued run) before the run has finished.
"""

import contextlib
import csv
import io
import json
import subprocess
import sys
import time

import psutil
import pytest

from conftest import Project

pytestmark = pytest.mark.cli  # real dvc / subprocesses: `make test-fast` skips these


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
        metrics = ((row.get("data") or {}).get("metrics") or {}).get("data/dvclive/metrics.json")
        step = ((metrics or {}).get("data") or {}).get("step")
        if step is not None:
            steps.append(step)
    return steps


def watch(
    project: Project, running, running_only: bool = False, enough: int = 0
) -> tuple[list, int]:
    """Poll `dvc exp show --json` while ``running()``: (seconds since start, steps) seen, and
    how many polls hung.

    A poll that takes over ``POLL_TIMEOUT`` seconds is ended and counted: while queue workers
    run, `dvc exp show` reads each running experiment's temporary git repository, and when a
    worker deletes that repository as its run ends, pygit2 can fail to find a blob in the
    thread that streams it (``NotFoundError``) and leave the reader waiting forever for data
    (pygit2's ``BlobIO``: the error path never sets the events the reader waits on). That is
    upstream's; the watch, like a user's, ends such a call and asks again. With ``enough``,
    polling stops once that many polls have shown a step mid-run, and the
    rest of the run is waited for with `dvc queue status` alone, which never opens them.
    """
    started, seen, hung = time.monotonic(), [], 0
    while running():
        assert time.monotonic() - started < 300, "the run did not end in 5 minutes"
        if (
            enough
            and sum(1 for _, steps in seen if any(0 < s < EPOCHS - 1 for s in steps)) >= enough
        ):
            time.sleep(0.5)
            continue
        try:
            shown = project.dvc("exp", "show", "--json", check=False, timeout=POLL_TIMEOUT)
        except subprocess.TimeoutExpired:
            hung += 1
            continue
        if shown.returncode == 0:
            steps = live_steps(json.loads(shown.stdout), running_only)
            seen.append((round(time.monotonic() - started, 1), steps))
        time.sleep(0.3)
    return seen, hung


POLL_TIMEOUT = 30  # seconds: a `dvc exp show` that has not answered by then has hung (above)
EPOCHS = 1500  # on the tiny data, a few seconds of training: long enough to be watched


def test_a_running_experiment_can_be_watched_epoch_by_epoch(finished_project, tmp_path):
    """`dvc exp show` reads DVCLive's metrics.json while `dvc exp run` is still training."""
    log = open(tmp_path / "exp-run.log", "w")  # a file, not a pipe: nothing blocks on it
    run = subprocess.Popen(
        [sys.executable, "-m", "dvc", "exp", "run", "-S", f"train.epochs={EPOCHS}"],
        cwd=finished_project.root,
        env=finished_project.env,
        stdout=log,
        stderr=log,
    )
    try:
        seen, hung = watch(finished_project, lambda: run.poll() is None)
    finally:
        run.wait(timeout=300)
        log.close()
    assert run.returncode == 0, (tmp_path / "exp-run.log").read_text()
    assert hung == 0  # no queue, no temporary repository: nothing to race with
    during = [max(steps) for _, steps in seen if steps and 0 < max(steps) < EPOCHS - 1]
    assert len(during) >= 2 and during == sorted(during)  # epochs counted up, live
    print(f"\nworkspace run watched: steps {during} at {[t for t, _ in seen]} s")
    final = live_steps(json.loads(finished_project.dvc("exp", "show", "--json").stdout))
    assert EPOCHS - 1 in final


def test_a_queued_grid_sweep_runs_every_experiment_and_can_be_watched(finished_project):
    dvc_project = finished_project
    # a grid of two values by one: every run costs seconds, and the README's sweep of four
    # runs in `make docs-check`
    queued = dvc_project.dvc(
        "exp",
        "run",
        "--queue",
        "-S",
        "train.lr=0.1,0.05",
        "-S",
        "train.hidden_size=8",
        "-S",
        f"train.epochs={EPOCHS}",
    )
    assert queued.stdout.count("Queued experiment") == 2
    # The worker daemon inherits the starter's stdout: capturing it would wait for the worker.
    subprocess.run(
        [sys.executable, "-m", "dvc", "queue", "start", "--jobs", "2"],
        cwd=dvc_project.root,
        env=dvc_project.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=60,
        check=True,
    )

    def pending() -> bool:
        status = dvc_project.dvc("queue", "status").stdout
        return any(s in status for s in ("Queued", "Running"))

    try:
        seen, hung = watch(dvc_project, pending, running_only=True, enough=3)
    finally:
        stop_queue_workers(dvc_project)
    assert hung <= 1, f"{hung} polls of dvc exp show hung"
    during = [step for _, steps in seen for step in steps if 0 < step < EPOCHS - 1]
    assert during, f"no running experiment showed a step before it ended: {seen}"
    print(f"\nqueued runs watched: steps {sorted(set(during))[:8]}…")
    shown = dvc_project.dvc(
        "exp",
        "show",
        "--csv",
        "--no-pager",
        "--drop",
        ".*",
        "--keep",
        "Experiment|State|train.lr$|train.hidden_size|test.accuracy",
    ).stdout
    runs = [row for row in csv.DictReader(io.StringIO(shown)) if row["Experiment"]]
    assert len(runs) == 2 and all(row["State"] == "Success" for row in runs)
    grid = {(float(row["train.lr"]), int(row["train.hidden_size"])) for row in runs}
    assert grid == {(0.1, 8), (0.05, 8)}
    assert all(0 <= float(row["test.accuracy"]) <= 1 for row in runs)  # each has its metrics

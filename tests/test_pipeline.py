"""The real `dvc` CLI on the tiny dataset in a temporary git repo."""

import json

import pytest

from conftest import VARIANTS, Project, run

pytestmark = pytest.mark.cli  # real dvc / subprocesses: `make test-fast` skips these

ROBUSTNESS = {f"robustness@{variant}" for variant in VARIANTS}  # the matrix's stages
STAGES = ("download", "preprocess", "augment", "train", "evaluate", *sorted(ROBUSTNESS), "plot")


def ran(result) -> set[str]:
    out = result if isinstance(result, str) else result.stdout
    return {s for s in STAGES if f"Running stage '{s}'" in out}


def test_repro_runs_every_stage_then_nothing_and_outputs_are_stable(
    finished_template, finished_project
):
    assert ran(finished_template.first_run) == set(STAGES)  # the first `dvc repro` of a repo
    project = finished_project
    produced = project.outputs()
    expected = {
        "data/raw/mnist.npz",
        "data/processed/val.npz",
        "data/model/model.npz",
        "data/eval/metrics.json",
        "data/eval/confusion.csv",
        "data/plots/confusion_matrix.png",
    }
    assert expected <= set(produced)
    assert project.dvc("status", "-q", check=False).returncode == 0

    assert ran(project.dvc("repro")) == set()  # (a full rerun giving the same bytes: below)
    assert project.outputs() == produced
    metrics = json.loads(project.dvc("metrics", "show", "--json").stdout)
    flat = next(iter(metrics.values()))["data"]
    assert flat["data/dvclive/metrics.json"]["data"]["step"] == 2  # 3 epochs, counted from 0
    assert 0.5 < flat["data/eval/metrics.json"]["data"]["test"]["accuracy"] <= 1


def test_each_change_reruns_exactly_the_stages_it_affects(finished_project):
    dvc_project = finished_project
    before = dvc_project.outputs()

    dvc_project.set_params("plot", dpi=60)
    assert ran(dvc_project.dvc("repro")) == {"plot"}

    dvc_project.set_params("train", lr=0.05)
    result = dvc_project.dvc("repro")
    assert ran(result) == {"train", "evaluate", "plot", *ROBUSTNESS}
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
    assert ran(dvc_project.dvc("repro")) == {"augment", "train", "evaluate", "plot", *ROBUSTNESS}

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
    assert "train.loss" in metrics["data/dvclive/metrics.json"]


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
    assert "train.lrr: unknown key" in result.stderr + result.stdout


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
    assert ran(clone.dvc("repro")) == set(STAGES) - {"evaluate", *ROBUSTNESS}  # outs in git
    assert clone.git("status", "--porcelain").stdout == ""  # same dvc.lock, same eval files
    assert clone.outputs() == committed

    diff = clone.dvc("metrics", "diff", "HEAD", "--all", "--json")
    assert "failed to load" not in diff.stderr
    train = json.loads(diff.stdout)["data/dvclive/metrics.json"]
    assert train["train.accuracy"]["old"] == train["train.accuracy"]["new"] is not None
    plots = clone.dvc("plots", "diff", "HEAD", "--json")
    assert "failed to load" not in plots.stderr
    curves = [
        e for p in json.loads(plots.stdout)["data"].values() for e in p if e["type"] == "vega"
    ]
    assert len(curves) == 4  # loss, accuracy, confusion, robustness: each from HEAD too
    for entry in curves:
        assert {point["rev"] for point in entry["content"]["data"]["values"]} == {
            "HEAD",
            "workspace",
        }

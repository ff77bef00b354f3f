"""The real `dvc` CLI on the tiny dataset in a temporary git repo."""

import json


def test_repro_runs_every_stage_then_nothing_and_outputs_are_stable(dvc_project):
    first = dvc_project.dvc("repro")
    for stage in ("download", "preprocess", "train"):
        assert f"Running stage '{stage}'" in first.stdout
    produced = dvc_project.outputs()
    assert {"data/raw/mnist.npz", "data/processed/val.npz", "data/model/model.npz"} <= set(produced)
    assert dvc_project.dvc("status", "-q", check=False).returncode == 0

    second = dvc_project.dvc("repro")
    assert "Running stage" not in second.stdout
    assert dvc_project.outputs() == produced

    dvc_project.dvc("repro", "-f")  # rerun everything: the same bytes come out
    assert dvc_project.outputs() == produced
    metrics = json.loads((dvc_project.root / "data/train/metrics.json").read_text())
    assert metrics["epochs"] == 3 and metrics["val"]["accuracy"] > 0.5


def test_changing_a_train_param_reruns_only_train(dvc_project):
    dvc_project.dvc("repro")
    before = dvc_project.outputs()
    dvc_project.set_params("train", lr=0.05)
    result = dvc_project.dvc("repro")
    assert "Stage 'download' didn't change, skipping" in result.stdout
    assert "Stage 'preprocess' didn't change, skipping" in result.stdout
    assert "Running stage 'train'" in result.stdout
    after = dvc_project.outputs()
    assert after["data/processed/train.npz"] == before["data/processed/train.npz"]
    assert after["data/model/model.npz"] != before["data/model/model.npz"]


def test_a_failing_stage_exits_nonzero_with_the_message(dvc_project):
    dvc_project.set_params("train", lrr=0.1)
    result = dvc_project.dvc("repro", check=False)
    assert result.returncode != 0
    assert "train: unknown key(s) train.lrr" in result.stderr + result.stdout

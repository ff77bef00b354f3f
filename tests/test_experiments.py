"""mnistnet experiments: a table of every experiment that fits the terminal, no cell cut."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mnistnet.apps.experiments import render


def revision(name, lr, accuracy, experiments=()):
    return {
        "rev": name,
        "name": name,
        "data": {
            "params": {
                "params.yaml": {
                    "data": {"train": {"lr": lr, "hidden_size": 128}, "augment": {"copies": 0}}
                }
            },
            "metrics": {
                "data/eval/metrics.json": {"data": {"test": {"accuracy": accuracy}}},
                "data/dvclive/metrics.json": {"data": {"val": {"accuracy": 0.97}}},
            },
        },
        "experiments": [{"revs": [run]} for run in experiments],
    }


def test_the_table_names_each_run_its_accuracy_and_only_what_changed():
    wide = revision("many-knobs", 0.05, 0.9855)
    wide["data"]["params"]["params.yaml"]["data"]["augment"]["copies"] = 16
    for i in range(12):  # far more changed params than fit on one line
        wide["data"]["params"]["params.yaml"]["data"]["train"][f"knob_{i}"] = "x" * 10
    runs = [revision("lr-0.05", 0.05, 0.9855), wide]
    shown = [revision("workspace", 0.2, 0.9881), revision("main", 0.2, 0.9881, runs)]
    table = render(shown, width=100)
    lines = table.splitlines()
    assert lines[0].split() == ["experiment", "test", "val", "changed", "params"]
    assert lines[1].startswith("workspace") and "98.81%" in lines[1]
    assert "├─ lr-0.05" in table and "└─ many-knobs" in table
    assert "train.lr=0.05" in table and "train.hidden_size" not in table  # only what changed
    assert all(len(line) <= 100 for line in lines)
    words = table.split()  # every changed param whole, however many lines it takes
    assert "augment.copies=16" in words and all(
        f"train.knob_{i}=xxxxxxxxxx" in words for i in range(12)
    )


def test_a_teammates_names_and_values_reach_the_terminal_escaped():
    hostile = revision("x\x1b]0;pwned\x07\x1b[2J", 0.05, 0.98)
    hostile["data"]["params"]["params.yaml"]["data"]["train"]["lr"] = "1\nforged line"
    table = render([revision("main", 0.2, 0.9881, [hostile])], width=100)
    assert "\x1b" not in table and "\x07" not in table
    assert "x\\x1b]0;pwned\\x07\\x1b[2J" in table  # shown, escaped as ls -b shows names
    assert "train.lr=1\\nforged line" in table and "\nforged" not in table


@pytest.mark.cli
def test_a_repository_without_a_commit_is_one_line(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=tmp_path, check=True)
    done = subprocess.run(
        [sys.executable, "-m", "mnistnet.apps.cli", "experiments"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and done.stdout == ""
    assert (
        done.stderr
        == "error: no commit here yet: commit the pipeline (git commit), then dvc exp run\n"
    )


@pytest.mark.cli
def test_it_reads_the_real_dvc_exp_show_at_100_columns(experimented_template, tmp_path):
    project = experimented_template.copy(tmp_path / "repo")  # the template is shared: read a copy
    env = {**project.env, "COLUMNS": "100"}
    done = subprocess.run(
        [sys.executable, "-m", "mnistnet.apps.cli", "experiments"],
        cwd=project.root,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert all(len(line) <= 100 for line in lines)
    (wider,) = [line for line in lines if "wider" in line]
    assert "train.hidden_size=24" in wider and "%" in wider and "…" not in done.stdout


def test_outside_a_dvc_project_it_is_one_line(tmp_path, capsys, monkeypatch):
    from mnistnet.apps.cli import main

    monkeypatch.chdir(tmp_path)  # not a DVC project
    assert main(["experiments"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: `dvc exp show` failed: ERROR: you are not inside of a DVC")
    assert err.count("\n") == 1


def test_two_experiments_with_every_variant_fit_80_columns_uncut():
    def with_scores(rev: dict, base: float) -> dict:
        rev["data"]["metrics"] |= {
            f"data/robustness/{v}.json": {"data": {"robustness": {v: {"accuracy": base}}}}
            for v in ("shifted", "rotated", "scaled", "elastic", "noisy", "own")
        }
        return rev

    runs = [with_scores(revision(name, 0.05, 0.9855), 0.9) for name in ("augmented", "no-shift")]
    runs[0]["data"]["params"]["params.yaml"]["data"]["augment"]["copies"] = 8
    shown = [with_scores(revision("main", 0.2, 0.9881, runs), 0.95)]
    table = render(shown, width=80, robustness=True)
    assert all(len(line) <= 80 for line in table.splitlines()), table
    assert "…" not in table and "├─ augmented" in table and "└─ no-shift" in table
    assert table.splitlines()[0].split() == [
        "experiment",
        "test",
        "val",
        "shifted",
        "rotated",
        "scaled",
        "elastic",
        "noisy",
        "own",
    ]
    assert table.count("90.00%") == 12  # every variant of both runs, whole

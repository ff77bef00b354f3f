"""The environment as a dependency: stage-packages.yaml agrees with requirements.lock, each
stage lists the packages its code computes with, and DVC reruns exactly those stages."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from conftest import ROOT
from test_dvc_yaml import STAGES, transitive_files

# top-level module imported → the stage-packages.yaml keys whose version shapes the outputs
COMPUTES_WITH = {
    "numpy": {"numpy"},
    "ruamel": {"ruamel-yaml"},
    "dvclive": {"dvclive"},
    "matplotlib": {"matplotlib", "pillow", "kiwisolver"},  # its PNG writer, its layout
    "PIL": {"pillow"},
}


# the plot stage imports evaluation/history.py to read DVCLive's files, not to write them
READS_ONLY = {"plot": {"dvclive"}}


def test_the_committed_file_is_what_the_lock_pins():
    done = subprocess.run(
        [sys.executable, str(ROOT / ".ci/stage-packages"), "--check"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


def listed_packages(spec: dict) -> set[str]:
    for param in spec.get("params", []):
        if isinstance(param, dict) and "stage-packages.yaml" in param:
            return set(param["stage-packages.yaml"])
    return set()


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_each_stage_lists_the_packages_its_code_computes_with(stage):
    spec = STAGES[stage]
    script = re.search(r"python (stages/\S+\.py)", spec["cmd"]).group(1)
    imported = set()
    for path in [script, *transitive_files(ROOT / script)]:
        for node in ast.walk(ast.parse((ROOT / path).read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module.split(".")[0])
    expected = set().union(*(keys for module, keys in COMPUTES_WITH.items() if module in imported))
    assert listed_packages(spec) == expected - READS_ONLY.get(stage, set())


@pytest.mark.cli
def test_a_new_numpy_reruns_every_stage_and_a_new_pytest_none(finished_project):
    project = finished_project
    assert "up to date" in project.dvc("status").stdout
    lock = (ROOT / "requirements.lock").read_text()
    shutil.copytree(ROOT / ".ci", project.root / ".ci")
    (project.root / "requirements.lock").write_text(lock)

    bumped = re.sub(r"^pytest==\S+", "pytest==99.0", lock, flags=re.MULTILINE)
    (project.root / "requirements.lock").write_text(bumped)
    subprocess.run([sys.executable, ".ci/stage-packages"], cwd=project.root, check=True)
    assert "up to date" in project.dvc("status").stdout  # a test tool: nothing to rerun

    bumped = re.sub(r"^numpy==\S+", "numpy==99.0", lock, flags=re.MULTILINE)
    (project.root / "requirements.lock").write_text(bumped)
    subprocess.run([sys.executable, ".ci/stage-packages"], cwd=project.root, check=True)
    status = project.dvc("status", "--json").stdout
    changed = set(yaml.safe_load(status))
    every = set(project.dvc("stage", "list", "--name-only").stdout.split())
    assert changed == every  # every stage computes with NumPy (robustness@*: the matrix)
    bumped = re.sub(r"^matplotlib==\S+", "matplotlib==99.0", lock, flags=re.MULTILINE)
    (project.root / "requirements.lock").write_text(bumped)
    subprocess.run([sys.executable, ".ci/stage-packages"], cwd=project.root, check=True)
    assert set(yaml.safe_load(project.dvc("status", "--json").stdout)) == {"plot"}

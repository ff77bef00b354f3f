"""docs/start-your-own.md, followed step by step on a synthetic dataset with the real dvc:
delete the apps, swap in another dataset with `mnistnet digests`, change the activation,
check dvc.yaml against the imports, and run the whole pipeline."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT, make_tiny_mnist, write_idx_folder

pytestmark = pytest.mark.cli
GUIDE = (ROOT / "docs/start-your-own.md").read_text()


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", GUIDE, re.DOTALL)


def test_following_the_guide_gives_a_pipeline_that_runs(dvc_project, tmp_path):
    project, src = dvc_project, dvc_project.root / "src/mnistnet"
    # 2. delete the apps the guide names, and their lines of the module map
    for name in ("predict.py", "report.py", "experiments.py"):
        assert f"`{name}`" in GUIDE
        (src / "apps" / name).unlink()
    init = src / "__init__.py"
    init.write_text(re.sub(r"  - ``(predict|report|experiments)``.*\n", "", init.read_text()))

    # 3. another dataset: digests of a local copy, as the guide shows
    other = make_tiny_mnist(n_train=300, n_test=80, seed=7)  # not the tests' usual one
    folder = write_idx_folder(other, tmp_path / "fashion")
    assert "mnistnet digests" in GUIDE and "must end in `/`" in GUIDE
    cli = src / "apps/cli.py"  # the copy's, after step 2
    done = subprocess.run(
        [sys.executable, str(cli), "digests", f"{folder}/"],
        env=project.env,
        capture_output=True,
        text=True,
        check=True,
    )
    (project.root / "data/mnist-sources.yaml").write_text(done.stdout)
    assert "train_images: 300" in done.stdout

    # 4. another network: the guide's two lines replace ReLU in model.py
    model = src / "nn/model.py"
    text = model.read_text()
    forward, backward = (block.strip() for block in code_blocks("python"))
    relu_forward = re.search(r"^ +H = np\.maximum\(Z1.*$", text, re.MULTILINE).group(0)
    relu_backward = re.search(r"^ +dZ1 = np\.multiply\(dH, H > 0.*$", text, re.MULTILINE).group(0)
    text = text.replace(relu_forward, "    " + forward).replace(relu_backward, "    " + backward)
    model.write_text(text)

    project.dvc("repro")
    metrics = json.loads((project.root / "data/eval/metrics.json").read_text())
    assert metrics["test"]["accuracy"] > 0.5  # tanh learns the new data too
    assert len(json.loads(project.dvc("exp", "show", "--json").stdout)) >= 1

    # 5. dvc.yaml against the imports, and dvc.lock against the code and params after the
    # run: the project's own checks, run on the copy
    tests = project.root / "tests"
    tests.mkdir()
    shutil.copy(ROOT / "tests/test_dvc_yaml.py", tests)
    checked = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(tests / "test_dvc_yaml.py"),
        ],
        cwd=project.root,
        env=project.env,
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout[-2000:]

"""dvc.yaml's code dependencies, checked against what each stage script really imports."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "mnistnet"


def imported_modules(path: Path) -> set[str]:
    """Dotted names of the ``mnistnet`` modules that ``path`` imports, anywhere in the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("mnistnet")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mnistnet"):
            found.add(node.module)
            for alias in node.names:  # `from mnistnet import plots` imports a module
                if (PACKAGE / f"{alias.name}.py").exists() and node.module == "mnistnet":
                    found.add(f"mnistnet.{alias.name}")
    return found


def module_file(name: str) -> Path:
    parts = name.split(".")[1:]
    return PACKAGE.joinpath(*parts).with_suffix(".py") if parts else PACKAGE / "__init__.py"


def transitive_files(script: Path) -> set[str]:
    """Every package file that running ``script`` executes, as paths relative to the root."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        for name in imported_modules(todo.pop()):
            # importing mnistnet.x runs mnistnet/__init__.py first, then x
            for file in {module_file("mnistnet"), module_file(name)}:
                if file not in seen:
                    seen.add(file)
                    todo.append(file)
    return {str(f.relative_to(ROOT)) for f in seen}


STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_each_stage_lists_exactly_the_package_modules_it_imports(stage):
    spec = STAGES[stage]
    script = re.search(r"python (stages/\S+\.py)", spec["cmd"]).group(1)
    deps = {d if isinstance(d, str) else next(iter(d)) for d in spec["deps"]}
    assert script in deps, f"stage {stage}: dvc.yaml does not list its script {script}"
    listed = {d for d in deps if d.startswith("src/")}
    derived = transitive_files(ROOT / script)
    missing, extra = sorted(derived - listed), sorted(listed - derived)
    assert not missing, f"stage {stage}: {script} imports {missing}, missing from dvc.yaml deps"
    assert not extra, f"stage {stage}: dvc.yaml lists {extra}, which {script} no longer imports"


def test_the_import_walk_sees_every_form_of_import(tmp_path):
    script = tmp_path / "s.py"
    script.write_text(
        "import mnistnet.model\nfrom mnistnet import plots\n"
        "def f():\n    from mnistnet.checkpoint import load_model\n"
    )
    files = transitive_files(script)
    for name in ("__init__", "numerics", "model", "plots", "checkpoint", "storage"):
        assert f"src/mnistnet/{name}.py" in files


def test_params_yaml_is_in_the_layout_dvc_writes(tmp_path):
    """`dvc exp run -S key=value` rewrites params.yaml: its diff must be that one line."""
    from dvc.utils.serialize._yaml import modify_yaml  # what `-S` itself uses

    copy = tmp_path / "params.yaml"
    original = (ROOT / "params.yaml").read_text()
    copy.write_text(original)
    with modify_yaml(copy) as params:
        params["train"]["lr"] = 0.05
    changed = [
        (a, b) for a, b in zip(original.splitlines(), copy.read_text().splitlines(), strict=True)
        if a != b
    ]  # fmt: skip
    assert len(changed) == 1 and changed[0][1].strip().startswith("lr: 0.05")


def test_the_package_map_lists_every_module():
    doc = (PACKAGE / "__init__.py").read_text().split('"""')[1]
    listed = set(re.findall(r"^- ``(\w+)``", doc, re.MULTILINE))
    modules = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert listed == modules


@pytest.mark.parametrize("script", sorted((ROOT / "stages").glob("[!_]*.py")), ids=lambda p: p.name)
def test_stage_scripts_import_nothing_that_loads_numpy_before_mnistnet(script):
    """NumPy must load after mnistnet has pinned the numerics; a stage script importing NumPy
    (or a library that does) directly would run unpinned."""
    tree = ast.parse(script.read_text())
    top = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    names = [a.name for n in top if isinstance(n, ast.Import) for a in n.names]
    names += [n.module for n in top if isinstance(n, ast.ImportFrom)]
    allowed = {"_venv", "mnistnet", *sys.stdlib_module_names}
    outside = [m for m in names if m.split(".")[0] not in allowed]
    assert not outside, f"{script.name} imports {outside} before or beside mnistnet"

"""dvc.yaml's code dependencies, checked against what each stage script really imports."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "mnistnet"


def module_file(name: str) -> Path | None:
    """The file of module ``mnistnet.a.b`` (``a/b.py``), or None for a package."""
    path = PACKAGE.joinpath(*name.split(".")[1:])
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def imported_modules(path: Path) -> set[str]:
    """Dotted names of the ``mnistnet`` modules that ``path`` imports, anywhere in the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("mnistnet")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mnistnet"):
            found.add(node.module)
            for alias in node.names:  # `from mnistnet.nn import model` imports a module
                if module_file(f"{node.module}.{alias.name}"):
                    found.add(f"{node.module}.{alias.name}")
    return found


def transitive_files(script: Path) -> set[str]:
    """Every package module that running ``script`` executes, as paths relative to the root.

    Packages' ``__init__.py`` files run too, but hold no code (tested below), so no stage
    needs to list them."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        for name in imported_modules(todo.pop()):
            file = module_file(name)
            if file and file not in seen:
                seen.add(file)
                todo.append(file)
    return {str(f.relative_to(ROOT)) for f in seen}


def expand(dep: str) -> set[str]:
    """A dependency as the package modules it covers: a folder stands for all of them."""
    path = ROOT / dep
    if path.is_dir():
        return {str(p.relative_to(ROOT)) for p in path.glob("*.py") if p.name != "__init__.py"}
    return {dep}


STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_each_stage_lists_exactly_the_package_modules_it_imports(stage):
    spec = STAGES[stage]
    script = re.search(r"python (stages/\S+\.py)", spec["cmd"]).group(1)
    deps = {d if isinstance(d, str) else next(iter(d)) for d in spec["deps"]}
    assert script in deps, f"stage {stage}: dvc.yaml does not list its script {script}"
    code = [d for d in deps if d.startswith("src/")]
    listed = set().union(*map(expand, code))
    derived = transitive_files(ROOT / script)
    missing, extra = sorted(derived - listed), sorted(listed - derived)
    assert not missing, f"stage {stage}: {script} imports {missing}, missing from dvc.yaml deps"
    assert not extra, f"stage {stage}: dvc.yaml lists {extra}, which {script} does not import"
    # a folder where the stage uses all of it, single files where not: short lists
    for folder in {str(Path(f).parent) for f in derived}:
        files = [d for d in code if d.startswith(folder + "/")]
        if expand(folder) <= derived and folder != "src/mnistnet":
            assert not files, f"stage {stage}: list {folder} instead of {files}"


def test_package_init_files_run_no_code():
    """They are left out of every stage's deps: a docstring and the version, nothing else."""
    for init in PACKAGE.rglob("__init__.py"):
        body = ast.parse(init.read_text()).body
        code = [
            n
            for n in body[1:]
            if not (isinstance(n, ast.Assign) and n.targets[0].id == "__version__")
        ]
        assert isinstance(body[0].value, ast.Constant) and not code, init


def test_the_import_walk_sees_every_form_of_import(tmp_path):
    script = tmp_path / "s.py"
    script.write_text(
        "import mnistnet.nn.model\nfrom mnistnet.evaluation import plots\n"
        "def f():\n    from mnistnet.nn.checkpoint import load_model\n"
    )
    files = transitive_files(script)
    for name in ("nn/model", "evaluation/plots", "nn/checkpoint", "pipeline/storage"):
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
        (a, b)
        for a, b in zip(original.splitlines(), copy.read_text().splitlines(), strict=True)
        if a != b
    ]
    assert len(changed) == 1 and changed[0][1].strip().startswith("lr: 0.05")


def test_the_module_map_lists_every_module():
    """docs/layout.md holds the one map of the package (the docstring and README link it)."""
    if not (ROOT / "docs" / "layout.md").is_file():
        pytest.skip("no docs/layout.md: a project of your own deleted the docs, and the map")
    doc = (ROOT / "docs" / "layout.md").read_text().split("## The package")[1].split("```")[1]
    listed = set(re.findall(r"[├└]── (\w+)(?:\.py|/)", doc))
    folders = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    modules = {p.stem for p in PACKAGE.rglob("*.py") if p.stem != "__init__"}
    assert listed == folders | modules


@pytest.mark.parametrize("script", sorted((ROOT / "stages").glob("[!_]*.py")), ids=lambda p: p.name)
def test_stage_scripts_pin_the_numerics_before_anything_loads_numpy(script):
    """``pin()`` must run before NumPy loads: only ``_venv`` and the numerics module (which
    imports no NumPy) may be imported before the call."""
    body = ast.parse(script.read_text()).body
    calls = [
        i
        for i, n in enumerate(body)
        if isinstance(n, ast.Expr) and getattr(getattr(n.value, "func", None), "id", "") == "pin"
    ]
    assert calls, f"{script.name} does not call pin()"
    before = [n for n in body[: calls[0]] if isinstance(n, ast.Import | ast.ImportFrom)]
    names = [a.name for n in before if isinstance(n, ast.Import) for a in n.names]
    names += [n.module for n in before if isinstance(n, ast.ImportFrom)]
    assert set(names) <= {"_venv", "mnistnet.pipeline.numerics", "__future__"}, names


@pytest.mark.cli
def test_the_committed_lock_matches_the_code_and_params():
    """A clone's `dvc repro` reruns nothing only while dvc.lock's hashes of the code and the
    params are those of the files beside it: after editing them, run `dvc repro` and commit
    dvc.lock with the change (data outputs, absent on a fresh clone, are not compared)."""
    from dvc.repo import Repo

    tracked = ("src/", "stages/", "params.yaml", "stage-packages.yaml")
    with Repo(str(ROOT)) as repo:
        status = repo.status()
    stale = sorted(
        f"{stage}: {path}"
        for stage, changes in status.items()
        for change in changes
        if isinstance(change, dict)
        for kind, paths in change.items()
        if kind in ("changed deps", "changed params") and isinstance(paths, dict)
        for path, what in paths.items()
        if what != "deleted" and path.startswith(tracked)
    )
    assert not stale, f"dvc.lock is stale, run `dvc repro` and commit it: {stale[:5]}"

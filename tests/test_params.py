"""The whole params file: one definition per section, and what is derived from it."""

import copy
import json
import shutil
from pathlib import Path

import jsonschema
import pytest
import yaml

from bad_params import CASES, FILES
from conftest import ROOT
from mnistnet.apps.cli import main
from mnistnet.apps.params import SCHEMA_FILE, SECTIONS, ParamsFile, json_schema, markdown_table

COMMITTED = yaml.safe_load((ROOT / "params.yaml").read_text())
SCHEMA = json.loads((ROOT / SCHEMA_FILE).read_text())


def test_the_committed_schema_is_what_the_definitions_generate():
    assert (ROOT / SCHEMA_FILE).read_text() == json_schema(), "run: mnistnet schema --out " + (
        SCHEMA_FILE
    )


def test_params_yaml_points_editors_at_the_schema_and_validates_against_it():
    first = (ROOT / "params.yaml").read_text().splitlines()[0]
    assert first == f"# yaml-language-server: $schema={SCHEMA_FILE}"
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.Draft202012Validator(SCHEMA).validate(COMMITTED)  # as an editor does


def test_the_codes_defaults_are_the_committed_values():
    """Deleting a key from params.yaml must not change the run."""
    defaults = {name: cls() for name, cls in SECTIONS.items()}
    assert ParamsFile.model_validate(COMMITTED).model_dump() == ParamsFile(**defaults).model_dump()


def test_the_parameters_page_table_is_the_generated_one():
    assert markdown_table() in (ROOT / "docs/parameters.md").read_text()


SCHEMA_CASES = [c for c in CASES if c.schema]
CHECK_CASES = [c for c in CASES if c.check]


@pytest.mark.parametrize("case", SCHEMA_CASES, ids=[c.id for c in SCHEMA_CASES])
def test_every_bad_value_json_schema_can_express_is_refused_by_the_schema(case):
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(SCHEMA).validate(case.apply(COMMITTED))


def test_the_committed_params_pass_check():
    assert main(["check", str(ROOT / "params.yaml")]) == 0


def beside_the_sources(folder) -> Path:
    """``folder/params.yaml``'s path, with the committed sources file where check looks."""
    (folder / "data").mkdir()
    shutil.copyfile(ROOT / "data/mnist-sources.yaml", folder / "data/mnist-sources.yaml")
    return folder / "params.yaml"


@pytest.mark.parametrize("case", CHECK_CASES, ids=[c.id for c in CHECK_CASES])
def test_check_names_each_bad_value_in_one_line(case, tmp_path, capsys):
    path = beside_the_sources(tmp_path)
    path.write_text(yaml.safe_dump(case.apply(COMMITTED)))
    assert main(["check", str(path)]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: ") and case.says in line


@pytest.mark.parametrize(("name", "data", "says"), FILES, ids=[f[0] for f in FILES])
def test_check_refuses_hostile_files_in_one_short_line(name, data, says, tmp_path, capsys):
    path = tmp_path / "params.yaml"
    path.write_bytes(data)
    assert main(["check", str(path)]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert says in line and len(line) < 300


def test_check_estimates_memory_before_a_run_can_fail_for_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(
        "mnistnet.pipeline.config.available_bytes", lambda: 2 * 10**9
    )  # a 2 GB machine
    params = copy.deepcopy(COMMITTED)
    params["augment"]["copies"] = 100  # 100 × 55,000 images: 4.3 GB for the pool
    path = beside_the_sources(tmp_path)
    path.write_text(yaml.safe_dump(params))
    assert main(["check", str(path)]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: augment.copies: 100 copies of 55,000 images need about 4.")
    assert "the pool 4.3 GB" in line and "this machine has 2.0 GB available" in line
    params["augment"]["copies"] = 10  # 0.4 GB: fits
    path.write_text(yaml.safe_dump(params))
    assert main(["check", str(path)]) == 0


def test_check_reports_every_problem_in_one_run(tmp_path, capsys):
    params = copy.deepcopy(COMMITTED)
    params["train"].update(epochs="twenty", optimizer="adamw", lr=-1)
    params["augment"].update(rotate=500)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "error: augment.rotate: Input should be less than or equal to 90 (got 500).",
        "error: train.epochs: Input should be a valid integer (got 'twenty').",
        "error: train.lr: Input should be greater than 0 (got -1).",
        "error: train.optimizer: Input should be 'sgd', 'momentum' or 'adam' (got 'adamw').",
    ]


def test_check_names_unknown_and_missing_sections(tmp_path, capsys):
    path = tmp_path / "params.yaml"
    path.write_text("download: {}\npreprocess: {}\ntrain: {}\ntrian: {}\nplot: {}\n")
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert "unknown section(s) ['trian']" in err and "section 'augment' is missing" in err

"""The whole params file: one definition per section, and what is derived from it."""

import copy
import json

import jsonschema
import pytest
import yaml

from conftest import ROOT
from mnistnet.cli import main
from mnistnet.params import SCHEMA_FILE, SECTIONS, ParamsFile, json_schema, markdown_table

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


def test_the_readme_table_is_the_generated_one():
    assert markdown_table() in (ROOT / "README.md").read_text()


BAD = [  # (section, change); each is refused by the stages (tests/test_config.py and others)
    ("train", {"lrr": 0.1}),
    ("train", {"hidden_size": "abc"}),
    ("train", {"epochs": 2.5}),
    ("train", {"epochs": True}),
    ("train", {"lr": -1}),
    ("train", {"lr": 0}),
    ("train", {"lr": "1e-3"}),
    ("train", {"hidden_size": 0}),
    ("train", {"batch_size": -3}),
    ("train", {"optimizer": "rmsprop"}),
    ("train", {"dtype": "float16"}),
    ("train", {"momentum": 1.0}),
    ("preprocess", {"seed": None}),
    ("preprocess", {"val_size": -1}),
    ("augment", {"copies": -1}),
    ("augment", {"rotate": 180}),
    ("augment", {"elastic": 3}),
    ("plot", {"dpi": "high"}),
    ("plot", {"dpi": 5}),
    ("plot", {"misclassified": 0}),
    ("download", {"sources": []}),
    ("download", {"timeout": 0}),
    ("download", {"sources": [{"url": "a.npz", "sha256": "XYZ"}]}),
]


@pytest.mark.parametrize(("section", "change"), BAD)
def test_every_bad_value_json_schema_can_express_is_refused_by_the_schema(section, change):
    params = copy.deepcopy(COMMITTED)
    params[section].update(change)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(SCHEMA).validate(params)


def test_check_reports_every_problem_in_one_run(tmp_path, capsys):
    params = copy.deepcopy(COMMITTED)
    params["train"].update(epochs="twenty", optimizer="adamw", lr=-1)
    params["augment"].update(rotate=500)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "error: augment.rotate: got 500.0; expected 0 <= rotate <= 90",
        "error: train.epochs: expected a whole number, got 'twenty'.",
        "error: train.lr: got -1.0; expected a number > 0",
        "error: train.optimizer: got 'adamw'; allowed values are 'sgd', 'momentum' or 'adam'.",
    ]


def test_check_runs_the_checks_that_span_two_sections(tmp_path, capsys):
    params = copy.deepcopy(COMMITTED)
    params["plot"]["hidden_units"] = params["train"]["hidden_size"] + 1
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    assert main(["check", str(path)]) == 1
    assert "plot.hidden_units: got 129, but train.hidden_size is 128" in capsys.readouterr().err

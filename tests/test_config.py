"""params.yaml loading: every kind of bad value names the key, the value and what is allowed."""

import pytest

from conftest import ROOT
from mnistnet.config import ConfigError, from_mapping, load_section
from mnistnet.preprocess import PreprocessConfig
from mnistnet.train import TrainConfig


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"lrr": 0.1}, r"unknown key\(s\) train\.lrr; allowed keys are .*lr,"),
        ({"hidden_size": "abc"}, r"train\.hidden_size: expected a whole number, got 'abc'"),
        ({"epochs": 2.5}, r"train\.epochs: expected a whole number, got 2\.5"),
        ({"epochs": True}, r"train\.epochs: expected a whole number, got True"),
        ({"lr": -1}, r"train\.lr: got -1\.0; expected a number > 0"),
        ({"lr": 0}, r"train\.lr: got 0\.0"),
        ({"lr": "1e-3"}, r"train\.lr: got the text '1e-3'.*write it as 0\.001"),
        ({"hidden_size": 0}, r"train\.hidden_size: got 0; expected 1 or more"),
        ({"batch_size": -3}, r"train\.batch_size: got -3"),
        ({"optimizer": "rmsprop"}, r"train\.optimizer: got 'rmsprop'; allowed values are 'sgd'"),
        ({"dtype": "float16"}, r"train\.dtype: got 'float16'; allowed values are 'float32'"),
        ({"lr_schedule": "step"}, r"train\.lr_schedule: got 'step'"),
        ({"momentum": 1.0}, r"train\.momentum: got 1\.0; expected 0 <= momentum < 1"),
        ({"init": "xavier"}, r"train\.init: got 'xavier'"),
    ],
)
def test_bad_train_values_name_the_key(values, message):
    with pytest.raises(ConfigError, match=message):
        from_mapping(TrainConfig, values, "train")


def test_defaults_and_int_to_float():
    cfg = from_mapping(TrainConfig, {"lr": 1}, "train")
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)
    assert cfg.hidden_size == 128


def test_file_level_errors(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="params file not found"):
        load_section(missing, "train", TrainConfig)
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_section(bad, "train", TrainConfig)
    bad.write_text("train: {}\n")
    with pytest.raises(ConfigError, match="section 'preprocess' is missing"):
        load_section(bad, "preprocess", PreprocessConfig)
    bad.write_text("preprocess: 5\n")
    with pytest.raises(ConfigError, match="preprocess: expected a mapping"):
        load_section(bad, "preprocess", PreprocessConfig)


def test_project_params_are_valid():
    from mnistnet.cli import main

    assert main(["check", str(ROOT / "params.yaml")]) == 0


def test_check_reports_every_problem(tmp_path, capsys):
    from mnistnet.cli import main

    path = tmp_path / "params.yaml"
    path.write_text(
        "download: {sources: [{url: x.npz}]}\npreprocess: {val_size: -1}\n"
        "train: {lrr: 1}\ntrian: {}\n"
    )
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert "unknown section(s) ['trian']" in err
    assert "preprocess.val_size: got -1" in err
    assert "train.lrr" in err

"""params.yaml loading: every kind of bad value names the key, the value and what is allowed."""

import pytest
import yaml

from bad_params import CASES, DROP
from conftest import ROOT
from mnistnet.apps.params import SECTIONS
from mnistnet.data.preprocess import PreprocessConfig
from mnistnet.nn.config import TrainConfig
from mnistnet.pipeline.config import from_mapping, load_section, read_params
from mnistnet.pipeline.errors import ConfigError

COMMITTED = yaml.safe_load((ROOT / "params.yaml").read_text())
LOCAL = [c for c in CASES if c.local and c.change is not DROP]


@pytest.mark.parametrize("case", LOCAL, ids=[c.id for c in LOCAL])
def test_each_bad_value_is_refused_by_its_section_in_one_line(case):
    values = case.apply(COMMITTED)[case.section]
    with pytest.raises(ConfigError) as refused:
        from_mapping(SECTIONS[case.section], values, case.section)
    (line,) = str(refused.value).splitlines()
    assert case.says in line


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
    with pytest.raises(ConfigError, match="preprocess: Input should be a valid dictionary"):
        load_section(bad, "preprocess", PreprocessConfig)


@pytest.mark.parametrize(
    "text",
    [
        "train:\n  epochs: 030\n",
        "train:\n  hidden_size: 0200\n",
        "train:\n  seed: 1:30\n",
        "train:\n  lr: 1e-3\n",
        "train:\n  epochs: 0x1e\n",
        "train:\n  init: yes\n",
        "train:\n  lr: 1_0.5\n",
        "train:\n  epochs: 0o36\n",
    ],
)
def test_a_stage_reads_every_value_as_dvc_does(tmp_path, text):
    """`dvc params diff`, `dvc exp show` and the stage must see the same numbers: YAML 1.1
    (PyYAML) reads 030 as 24 and 1:30 as 90, YAML 1.2 (ruamel, DVC's parser) as 30 and text."""
    from dvc.utils.serialize import parse_yaml

    path = tmp_path / "params.yaml"
    path.write_text(text)
    assert read_params(path) == parse_yaml(text, str(path))


def test_a_huge_integer_is_one_line_not_a_traceback(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  epochs: " + "9" * 5000 + "\n")
    with pytest.raises(ConfigError, match="a number of over 4,300 digits") as e:
        load_section(path, "train", TrainConfig)
    assert len(str(e.value).splitlines()) == 1 and len(str(e.value)) < 200
    path.write_text("train:\n  epochs: " + "9" * 4000 + "\n")  # parses; refused by its bound
    with pytest.raises(ConfigError, match=r"train.epochs: Input should be less than or equal"):
        load_section(path, "train", TrainConfig)

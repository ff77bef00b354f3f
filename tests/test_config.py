"""params.yaml loading: every kind of bad value names the key, the value and what is allowed."""

import pytest
import yaml

from bad_params import CASES, DROP
from conftest import ROOT
from mnistnet.apps.params import SECTIONS
from mnistnet.data.preprocess import PreprocessConfig
from mnistnet.nn.train import TrainConfig
from mnistnet.pipeline.config import from_mapping, load_section
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
    with pytest.raises(ConfigError, match="preprocess: expected a mapping"):
        load_section(bad, "preprocess", PreprocessConfig)

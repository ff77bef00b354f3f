"""The whole params file: every section's model, and what is derived from them.

Each section is defined once, as a ``config.Section`` beside the code that uses it. From
those definitions come ``check`` (every problem in the file at once, including the checks
that span two sections), ``json_schema`` (``params.schema.json``, for editors) and
``markdown_table`` (the README's table of keys). The stages do not import this module: each
reads only its own section, so DVC reruns a stage only for its own code and params.
"""

from __future__ import annotations

import json
import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mnistnet.augment import AugmentConfig
from mnistnet.config import Section, from_mapping, read_params
from mnistnet.download import DownloadConfig
from mnistnet.errors import ConfigError
from mnistnet.plots import PlotConfig
from mnistnet.preprocess import PreprocessConfig
from mnistnet.train import TrainConfig

SECTIONS: dict[str, type[Section]] = {
    "download": DownloadConfig,
    "preprocess": PreprocessConfig,
    "augment": AugmentConfig,
    "train": TrainConfig,
    "plot": PlotConfig,
}
SCHEMA_FILE = "params.schema.json"


class ParamsFile(BaseModel):
    """params.yaml: one section per stage, each read by that stage alone."""

    model_config = ConfigDict(extra="forbid", title="mnistnet params.yaml")
    download: DownloadConfig = Field(description="fetching and verifying MNIST")
    preprocess: PreprocessConfig = Field(description="the validation split")
    augment: AugmentConfig = Field(description="distorted copies of the training images")
    train: TrainConfig = Field(description="the network and its training")
    plot: PlotConfig = Field(description="the plot stage's figures")


def check(path: str | os.PathLike) -> tuple[dict[str, Section], list[str]]:
    """Validate every section of the params file at ``path``.

    Returns the sections that are valid and one line per problem, across all sections.
    """
    try:
        params = read_params(path)
    except ConfigError as e:
        return {}, [str(e)]
    problems = []
    extra = sorted(set(params) - set(SECTIONS))
    if extra:
        problems.append(f"{path}: unknown section(s) {extra}; known: {sorted(SECTIONS)}")
    valid = {}
    for name, cls in SECTIONS.items():
        if name not in params:
            problems.append(f"{path}: section {name!r} is missing. Add it (see the README).")
            continue
        try:
            valid[name] = from_mapping(cls, params[name], name)
        except ConfigError as e:
            problems += str(e).splitlines()
    problems += cross_section_problems(valid)
    return valid, problems


def cross_section_problems(sections: dict[str, Any]) -> list[str]:
    """Checks that span two sections (the stages repeat them against their real inputs)."""
    problems = []
    plot, train = sections.get("plot"), sections.get("train")
    if plot and train and plot.hidden_units > train.hidden_size:
        problems.append(
            f"plot.hidden_units: got {plot.hidden_units}, but train.hidden_size is "
            f"{train.hidden_size}; choose at most {train.hidden_size}, or 0 for all."
        )
    return problems


def json_schema() -> str:
    """The JSON Schema of params.yaml, as the text committed in ``params.schema.json``."""
    schema = ParamsFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def markdown_table() -> str:
    """Every key of every section: default and meaning, as the README shows them."""
    lines = ["| key | default | meaning |", "|---|---|---|"]
    for section, cls in SECTIONS.items():
        for name, field in cls.model_fields.items():
            default = field.get_default(call_default_factory=True)
            if isinstance(default, BaseModel | tuple):
                default = "(see params.yaml)"
            lines.append(f"| `{section}.{name}` | {default} | {field.description} |")
    return "\n".join(lines) + "\n"

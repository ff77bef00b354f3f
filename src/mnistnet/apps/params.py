"""The whole params file: every section's model, and what is derived from them.

Each section is defined once, as a ``config.Section`` beside the code that uses it. From
those definitions come ``check`` (every problem in the file at once, including the checks
that span two sections), ``json_schema`` (``params.schema.json``, for editors) and
``markdown_table`` (the table of keys in docs/parameters.md). The stages do not import this
module: each reads only its own section, so DVC reruns a stage only for its own code and params.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mnistnet.data import augment
from mnistnet.data.augment import AugmentConfig
from mnistnet.data.download import SOURCES_FILE, DownloadConfig, load_sources
from mnistnet.data.mnist import CLASSES, PIXELS
from mnistnet.data.preprocess import PreprocessConfig, check_val_size
from mnistnet.evaluation.plots import PlotConfig
from mnistnet.evaluation.robustness import RobustnessConfig
from mnistnet.nn import config as training
from mnistnet.nn.config import TrainConfig
from mnistnet.pipeline.config import Section, from_mapping, read_params, shown
from mnistnet.pipeline.errors import ConfigError
from mnistnet.pipeline.storage import npz_shape

RAW_FILE = "data/raw/mnist.npz"  # the download stage's output, beside params.yaml

SECTIONS: dict[str, type[Section]] = {
    "download": DownloadConfig,
    "preprocess": PreprocessConfig,
    "augment": AugmentConfig,
    "train": TrainConfig,
    "robustness": RobustnessConfig,
    "plot": PlotConfig,
}
SCHEMA_FILE = "params.schema.json"


class ParamsFile(BaseModel):
    """params.yaml: one section per stage, each read by that stage alone."""

    model_config = ConfigDict(extra="forbid", title="mnistnet params.yaml")
    download: DownloadConfig = Field(
        description="fetching MNIST (its sources: " + SOURCES_FILE + ")"
    )
    preprocess: PreprocessConfig = Field(description="the validation split")
    augment: AugmentConfig = Field(description="distorted copies of the training images")
    train: TrainConfig = Field(description="the network and its training")
    robustness: RobustnessConfig = Field(description="the variants of the test set")
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
    extra = sorted(map(str, set(params) - set(SECTIONS)))
    if extra:
        named = ", ".join(map(shown, extra[:5]))
        problems.append(f"{path}: unknown section(s) [{named}]; known: {sorted(SECTIONS)}")
    valid = {}
    for name, cls in SECTIONS.items():
        if name not in params:
            problems.append(
                f"{path}: section {name!r} is missing. Add it (docs/parameters.md lists the keys)."
            )
            continue
        try:
            valid[name] = from_mapping(cls, params[name], name)
        except ConfigError as e:
            problems += str(e).splitlines()
    problems += cross_section_problems(valid, training_images(path, problems))
    return valid, problems


def training_images(params_path: str | os.PathLike, problems: list[str]) -> int | None:
    """How many training images the download stage yields: the count in its output beside
    the params file, else the sources file's; None where neither is there (a params file
    checked on its own). Problems in the sources file are added to ``problems``."""
    shape = npz_shape(Path(params_path).parent / RAW_FILE, "x_train")
    if shape:
        return shape[0]
    sources = Path(params_path).parent / SOURCES_FILE
    if not sources.is_file():
        return None
    try:
        return load_sources(sources).train_images
    except ConfigError as e:
        problems += str(e).splitlines()
        return None


def cross_section_problems(sections: dict[str, Any], n_train: int | None = None) -> list[str]:
    """Checks that span two sections or need the data's size (``n_train`` training images,
    None: unknown). The stages repeat each against their real inputs."""
    problems = []
    plot, trainer = sections.get("plot"), sections.get("train")
    prepare, augmentation = sections.get("preprocess"), sections.get("augment")
    if plot and trainer and plot.hidden_units > trainer.hidden_size:
        problems.append(
            f"plot.hidden_units: got {plot.hidden_units}, but train.hidden_size is "
            f"{trainer.hidden_size}; choose at most {trainer.hidden_size}, or 0 for all."
        )
    if not (n_train and prepare):
        return problems
    try:
        check_val_size(prepare.val_size, n_train)
    except ConfigError as e:
        return [*problems, str(e)]
    n, n_val = n_train - prepare.val_size, prepare.val_size
    try:  # the pool first: it is what a huge augment.copies overflows
        copies = augmentation.copies if augmentation else 0
        if augmentation:
            augment.check_memory(augmentation, n)
        if trainer:
            training.check_memory(trainer, n, n_val, copies, PIXELS, CLASSES)
    except ConfigError as e:
        problems.append(str(e))
    return problems


def json_schema() -> str:
    """The JSON Schema of params.yaml, as the text committed in ``params.schema.json``."""
    schema = ParamsFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def markdown_table() -> str:
    """Every key of every section: default and meaning, as docs/parameters.md shows them."""
    lines = ["| key | default | meaning |", "|---|---|---|"]

    def rows(prefix: str, cls: type[BaseModel]) -> None:
        for name, field in cls.model_fields.items():
            default = field.get_default(call_default_factory=True)
            if isinstance(default, BaseModel) and type(default).model_fields:
                rows(f"{prefix}.{name}", type(default))  # a subsection: its keys
                continue
            if isinstance(default, BaseModel | tuple):
                default = "(see params.yaml)"
            lines.append(f"| `{prefix}.{name}` | {default} | {field.description} |")

    for section, cls in SECTIONS.items():
        rows(section, cls)
    return "\n".join(lines) + "\n"

"""One table of bad params: every check of them reads it (the section models, JSON Schema,
``mnistnet check`` and the stages themselves), so a case added here is tested everywhere.

Each case changes the committed params (or the tiny pipelines' of the tests, 16 hidden units
and 240 training images), and is bad for both; it names what every check must say.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

DROP = object()  # as a change: remove the whole section


@dataclass(frozen=True)
class Bad:
    section: str
    change: Any  # a mapping of keys to set in the section, or DROP
    says: str  # a part of the one line every check prints about it
    schema: bool = True  # JSON Schema can express the rule (not: rules across two values)
    local: bool = True  # the section's own model finds it (not: needs another section or data)
    check: bool = True  # `mnistnet check` finds it before any stage runs

    @property
    def id(self) -> str:
        return f"{self.section}-" + ("dropped" if self.change is DROP else "-".join(self.change))

    def apply(self, params: dict) -> dict:
        """A changed deep copy of ``params``."""
        params = copy.deepcopy(params)
        if self.change is DROP:
            del params[self.section]
        else:
            params[self.section].update(self.change)
        return params


CASES = [
    Bad("train", {"lrr": 0.1}, "train: unknown key(s) train.lrr; allowed keys are"),
    Bad("train", {"hidden_size": "abc"}, "train.hidden_size: expected a whole number, got 'abc'"),
    Bad("train", {"epochs": 2.5}, "train.epochs: expected a whole number, got 2.5"),
    Bad("train", {"epochs": True}, "train.epochs: expected a whole number, got True"),
    Bad("train", {"lr": -1}, "train.lr: got -1.0; expected a number > 0"),
    Bad("train", {"lr": 0}, "train.lr: got 0.0; expected a number > 0"),
    Bad("train", {"lr": "1e-3"}, "train.lr: got the text '1e-3'; YAML reads exponents"),
    Bad("train", {"hidden_size": 0}, "train.hidden_size: got 0; expected 1 <= hidden_size"),
    Bad("train", {"batch_size": -3}, "train.batch_size: got -3; expected 0 <= batch_size"),
    Bad("train", {"optimizer": "rmsprop"}, "train.optimizer: got 'rmsprop'; allowed values are"),
    Bad("train", {"dtype": "float16"}, "train.dtype: got 'float16'; allowed values are"),
    Bad("train", {"lr_schedule": "step"}, "train.lr_schedule: got 'step'; allowed values are"),
    Bad("train", {"momentum": 1.0}, "train.momentum: got 1.0; expected 0 <= momentum < 1"),
    Bad("train", {"init": "xavier"}, "train.init: got 'xavier'; allowed values are"),
    Bad("train", {"shift": 9}, "train.shift: got 9; expected 0 <= shift <= 4"),
    Bad("train", {"epochs": 10**30}, "train.epochs: got 10000000000"),
    Bad("train", {"hidden_size": 10**8}, "train.hidden_size: got 100000000; expected 1 <="),
    Bad("train", {"optimizer": "x" * 100_000}, "train.optimizer: got 'xxxxx"),
    Bad("train", DROP, "section 'train' is missing"),
    Bad("preprocess", {"seed": None}, "preprocess.seed: expected a whole number, got None"),
    Bad("preprocess", {"val_size": -1}, "preprocess.val_size: got -1"),
    Bad(
        "preprocess",
        {"val_size": 70000},
        "preprocess.val_size: got 70000, but the training",
        schema=False,
        local=False,
    ),  # fmt: skip
    Bad("augment", {"copies": -1}, "augment.copies: got -1"),
    Bad("augment", {"copies": 10**6}, "augment.copies: got 1000000; expected 0 <= copies <= 1000"),
    Bad("augment", {"rotate": 180}, "augment.rotate: got 180.0; expected 0 <= rotate <= 90"),
    Bad("augment", {"scale": 1.0}, "augment.scale: got 1.0; expected 0 <= scale < 1"),
    Bad("augment", {"elastic_sigma": 0}, "augment.elastic_sigma: got 0.0"),
    Bad("augment", {"shift": "2px"}, "augment.shift: expected a number, got '2px'"),
    Bad("augment", {"elastic": 3}, "augment: unknown key(s) augment.elastic;"),
    Bad("plot", {"dpi": "high"}, "plot.dpi: expected a whole number, got 'high'"),
    Bad("plot", {"dpi": 5}, "plot.dpi: got 5; expected 20 <= dpi <= 600"),
    Bad("plot", {"misclassified": 0}, "plot.misclassified: got 0"),
    Bad(
        "plot", {"hidden_units": 200}, "plot.hidden_units: got 200, but", schema=False, local=False
    ),  # fmt: skip
    Bad("download", {"timeout": 0}, "download.timeout: got 0.0; expected 0 < timeout"),
]


# Whole files an attacker or an accident could hand `mnistnet check` or a stage: (name, the
# file's bytes, what the one line says).
LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 10)}]\n"
    for a, b in zip("abcdefgh", "bcdefghi", strict=True)
)  # under 1 KB that expand to 10^9 items
FILES = [
    ("billion-laughs", LAUGHS.encode(), "an alias (*a): aliases are not read here"),
    ("duplicate-key", b"train:\n  lr: 0.1\n  epochs: 3\n  lr: 0.5\n",
     ":4:3: invalid YAML, the key 'lr' again (first on line 2)"),
    ("nested-20000", b"train: " + b"[" * 20_000 + b"]" * 20_000 + b"\n", "nested over 16 levels"),
    ("latin-1", "train:\n  optimizer: sgd # d\xe9j\xe0 vu\n".encode("latin-1"),
     ":2: byte 0xe9 is not UTF-8. Save the file as UTF-8."),
    ("50-MB", b"train:\n  optimizer: " + b"x" * 50_000_000 + b"\n", "over 1,048,576 bytes"),
]  # fmt: skip

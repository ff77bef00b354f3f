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
    Bad("train", {"lrr": 0.1}, "train.lrr: unknown key; allowed keys here are hidden_size"),
    Bad(
        "train",
        {"hidden_size": "abc"},
        "train.hidden_size: Input should be a valid integer (got 'abc')",
    ),
    Bad("train", {"epochs": 2.5}, "train.epochs: Input should be a valid integer (got 2.5)"),
    Bad("train", {"epochs": True}, "train.epochs: Input should be a valid integer (got True)"),
    Bad("train", {"lr": -1}, "train.lr: Input should be greater than 0 (got -1)"),
    Bad("train", {"lr": 0}, "train.lr: Input should be greater than 0 (got 0)"),
    Bad("train", {"lr": "fast"}, "train.lr: Input should be a valid number (got 'fast')"),
    Bad(
        "train",
        {"hidden_size": 0},
        "train.hidden_size: Input should be greater than or equal to 1 (got 0)",
    ),
    Bad(
        "train",
        {"batch_size": -3},
        "train.batch_size: Input should be greater than or equal to 0 (got -3)",
    ),
    Bad(
        "train",
        {"optimizer": "rmsprop"},
        "train.optimizer: Input should be 'sgd', 'momentum' or 'adam' (got 'rmsprop')",
    ),
    Bad(
        "train",
        {"dtype": "float16"},
        "train.dtype: Input should be 'float32' or 'float64' (got 'float16')",
    ),
    Bad(
        "train",
        {"lr_schedule": "step"},
        "train.lr_schedule: Input should be 'constant' or 'cosine' (got 'step')",
    ),
    Bad("train", {"momentum": 1.0}, "train.momentum: Input should be less than 1 (got 1.0)"),
    Bad("train", {"init": "xavier"}, "train.init: Input should be 'normal' or 'he' (got 'xavier')"),
    Bad("train", {"shift": 9}, "train.shift: Input should be less than or equal to 4 (got 9)"),
    Bad(
        "train",
        {"epochs": 10**30},
        "train.epochs: Input should be less than or equal to 100000 (got 10000000000",
    ),
    Bad(
        "train",
        {"hidden_size": 10**8},
        "train.hidden_size: Input should be less than or equal to 65536 (got 100000000)",
    ),
    Bad("train", {"optimizer": "x" * 100_000}, "(got 'xxxxx"),
    Bad("train", DROP, "section 'train' is missing"),
    Bad(
        "preprocess", {"seed": None}, "preprocess.seed: Input should be a valid integer (got None)"
    ),
    Bad(
        "preprocess",
        {"val_size": -1},
        "preprocess.val_size: Input should be greater than or equal to 0 (got -1)",
    ),
    Bad(
        "preprocess",
        {"val_size": 70000},
        "preprocess.val_size: got 70000, but the training",
        schema=False,
        local=False,
    ),
    Bad(
        "augment",
        {"copies": -1},
        "augment.copies: Input should be greater than or equal to 0 (got -1)",
    ),
    Bad(
        "augment",
        {"copies": 10**6},
        "augment.copies: Input should be less than or equal to 1000 (got 1000000)",
    ),
    Bad(
        "augment",
        {"rotate": 180},
        "augment.rotate: Input should be less than or equal to 90 (got 180)",
    ),
    Bad("augment", {"scale": 1.0}, "augment.scale: Input should be less than 1 (got 1.0)"),
    Bad(
        "augment",
        {"elastic_sigma": 0},
        "augment.elastic_sigma: Input should be greater than 0 (got 0)",
    ),
    Bad("augment", {"translate": "2px"}, "augment.translate: Input should be a valid number"),
    Bad("augment", {"elastic": 3}, "augment.elastic: unknown key; allowed keys here are"),
    Bad("plot", {"dpi": "high"}, "plot.dpi: Input should be a valid integer (got 'high')"),
    Bad("plot", {"dpi": 5}, "plot.dpi: Input should be greater than or equal to 20 (got 5)"),
    Bad(
        "plot",
        {"misclassified": 0},
        "plot.misclassified: Input should be greater than or equal to 1 (got 0)",
    ),
    Bad(
        "plot",
        {"hidden_units": 257},
        "plot.hidden_units: Input should be less than or equal to 256",
    ),
    Bad("plot", {"misclassified": 101}, "plot.misclassified: Input should be less than or equal"),
    Bad(
        "plot", {"hidden_units": 200}, "plot.hidden_units: got 200, but", schema=False, local=False
    ),
    Bad("download", {"timeout": 0}, "download.timeout: Input should be greater than 0 (got 0)"),
]


# Whole files an attacker or an accident could hand `mnistnet check` or a stage: (name, the
# file's bytes, what the one line says).
LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 10)}]\n"
    for a, b in zip("abcdefgh", "bcdefghi", strict=True)
)  # under 1 KB that expand to 10^9 items
FILES = [
    ("billion-laughs", LAUGHS.encode(), "an alias (*a): aliases are not read here"),
    (
        "duplicate-key",
        b"train:\n  lr: 0.1\n  epochs: 3\n  lr: 0.5\n",
        ':4:3: invalid YAML, found duplicate key "lr"',
    ),
    ("nested-20000", b"train: " + b"[" * 20_000 + b"]" * 20_000 + b"\n", "nested over 16 levels"),
    (
        "latin-1",
        "train:\n  optimizer: sgd # d\xe9j\xe0 vu\n".encode("latin-1"),
        ":2: byte 0xe9 is not UTF-8. Save the file as UTF-8.",
    ),
    ("50-MB", b"train:\n  optimizer: " + b"x" * 50_000_000 + b"\n", "over 1,048,576 bytes"),
]

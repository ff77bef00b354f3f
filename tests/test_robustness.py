"""The robustness variants: each changes the test images as it says, the same bytes every
run; and with the real dvc, one variant's settings rerun that variant alone."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mnistnet.data.preprocess import normalize
from mnistnet.evaluation.robustness import TRANSFORMS, RobustnessConfig, vary

VARIANTS = ("clean", "shifted", "rotated", "scaled", "elastic", "noisy")


@pytest.fixture(scope="module")
def x(tiny) -> np.ndarray:
    return normalize(tiny["x_test"])


def test_clean_is_the_test_set_and_each_variant_changes_it_reproducibly(x):
    cfg = RobustnessConfig()
    assert vary(x, "clean", cfg) is x
    for variant in [*TRANSFORMS, "noisy"]:
        once, again = vary(x, variant, cfg), vary(x, variant, cfg)
        assert once.dtype == np.float32 and once.shape == x.shape
        assert once.tobytes() == again.tobytes()  # fixed seeds: the same bytes
        assert 0 <= once.min() and once.max() <= 1
        changed = np.abs(once - x).mean()
        assert changed > 0.01, variant


def test_each_setting_moves_its_variant_and_nothing_else(x):
    cfg = RobustnessConfig()
    stronger = RobustnessConfig.model_validate({"rotated": {"degrees": 40.0}})
    assert vary(x, "rotated", stronger).tobytes() != vary(x, "rotated", cfg).tobytes()
    assert vary(x, "shifted", stronger).tobytes() == vary(x, "shifted", cfg).tobytes()
    reseeded = RobustnessConfig.model_validate({"noisy": {"seed": 1}})
    assert vary(x, "noisy", reseeded).tobytes() != vary(x, "noisy", cfg).tobytes()


def test_a_shift_moves_the_ink_by_the_distance_asked():
    """The centre of mass of each image moves by about ``pixels`` (a random direction)."""
    blocks = np.zeros((50, 28, 28), np.uint8)
    blocks[:, 10:18, 11:17] = 200  # ink well inside the field: none leaves it
    x = normalize(blocks)
    cfg = RobustnessConfig.model_validate({"shifted": {"pixels": 3.0}})
    grid = np.mgrid[0:28, 0:28].reshape(2, 784)

    def centres(images):
        return (images @ grid.T) / images.sum(axis=1, keepdims=True)  # (n, 2)

    distance = np.linalg.norm(centres(vary(x, "shifted", cfg)) - centres(x), axis=1)
    assert distance == pytest.approx(np.full(50, 3.0), abs=0.1)


@pytest.mark.cli
def test_one_variants_settings_rerun_that_variant_alone(finished_project):
    project = finished_project
    project.set_params("robustness", rotated={"degrees": 30.0, "seed": 0})
    ran = project.dvc("repro").stdout
    assert "Running stage 'robustness@rotated'" in ran
    assert ran.count("Running stage") == 2  # that variant, then the plot of all of them
    workspace = json.loads(project.dvc("exp", "show", "--json").stdout)[0]["data"]["metrics"]
    for variant in VARIANTS:  # a metric per variant: a column each in dvc exp show
        scores = workspace[f"data/robustness/{variant}.json"]["data"]["robustness"][variant]
        assert 0 <= scores["accuracy"] <= 1 and scores["loss"] > 0

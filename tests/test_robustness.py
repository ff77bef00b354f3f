"""The robustness variants: each changes the test images as it says, the same bytes every
run; and with the real dvc, one variant's settings rerun that variant alone."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from conftest import ROOT, VARIANTS
from mnistnet.data.images import read_labelled_folder
from mnistnet.data.preprocess import normalize
from mnistnet.evaluation.robustness import TRANSFORMS, RobustnessConfig, vary
from mnistnet.pipeline.errors import DataError


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


def test_the_shipped_digits_are_read_as_predict_reads_them():
    x, y = read_labelled_folder(ROOT / "data/own-digits")
    assert x.shape == (180, 784) and x.dtype == np.float32
    assert np.bincount(y).tolist() == [18] * 10  # 18 fonts per digit, labelled by folder
    assert 0 <= x.min() and x.max() <= 1


def test_a_bad_image_among_your_digits_is_named(tmp_path):
    (tmp_path / "3").mkdir()
    (tmp_path / "3" / "scan.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(DataError, match=r"3/scan\.png \(not a readable PNG or JPEG"):
        read_labelled_folder(tmp_path)
    (tmp_path / "3" / "scan.png").unlink()
    with pytest.raises(DataError, match="no PNG or JPEG images in its folders 0 to 9"):
        read_labelled_folder(tmp_path)


def test_only_photos_in_folders_0_to_9_are_read_and_everything_else_is_named(tmp_path):
    """An .npz posing as a photo is not read as a batch of images (it would be 85,597 of
    them), and what would have been skipped is named, escaped, instead of a smaller score."""
    digit = tmp_path / "1"
    digit.mkdir()
    np.savez(digit / "scan05.png", x=np.zeros((100, 28, 28), np.uint8))  # .npz bytes
    os.rename(digit / "scan05.png.npz", digit / "scan05.png")
    (tmp_path / "seven").mkdir()
    (tmp_path / "notes.txt").write_text("my digits")
    (digit / "forged\nerror: line.png").write_bytes(b"GIF89a")
    (tmp_path / ".gitignore").write_text("")  # hidden files are left alone
    with pytest.raises(DataError) as refused:
        read_labelled_folder(tmp_path)
    message = str(refused.value)
    assert "\n" not in message
    for named in (
        "1/scan05.png (not a PNG or JPEG photo)",
        "1/forged\\nerror: line.png",
        "notes.txt (not a folder named 0 to 9)",
        "seven (not a folder named",
    ):
        assert named in message


@pytest.mark.cli
def test_your_own_digits_with_dvc_add_push_repro_and_metrics_diff(finished_project, tmp_path):
    """The README's workflow: the digits leave git for DVC, go to the remote, and score."""
    project = finished_project
    project.dvc("remote", "add", "-d", "shared", str(tmp_path / "remote"))
    project.git("add", ".dvc/config")
    project.git("commit", "-q", "-m", "Add a DVC remote")
    own = project.root / "data/own-digits"
    project.git("rm", "-r", "-q", "--cached", "data/own-digits")
    for font in own.glob("*/cmr10.png"):  # "your photos": here, one font fewer
        font.unlink()
    project.dvc("add", "data/own-digits")
    assert (own.parent / "own-digits.dvc").is_file()
    project.git("add", "data/own-digits.dvc", "data/.gitignore")
    project.git("commit", "-q", "-m", "My own digits, tracked by DVC")
    assert "pushed" in project.dvc("push").stdout
    ran = project.dvc("repro").stdout
    assert "Running stage 'robustness@own'" in ran and "Running stage 'train'" not in ran
    diff = json.loads(project.dvc("metrics", "diff", "HEAD~2", "--json").stdout)
    own_metrics = diff["data/robustness/own.json"]
    assert "robustness.own.accuracy" in own_metrics


@pytest.mark.cli
def test_the_plot_shows_the_variants_dvc_yaml_declares_not_the_files_left_behind(
    finished_project,
):
    """Dropping `own` from the variants (as docs/start-your-own.md suggests) reruns the plot
    without it, though own.json from the last run is still in data/robustness."""
    project = finished_project
    dvc_yaml = project.root / "dvc.yaml"
    dvc_yaml.write_text(dvc_yaml.read_text().replace(", own]", "]", 1))
    assert "Running stage 'plot'" in project.dvc("repro").stdout
    assert (project.root / "data/robustness/own.json").is_file()
    table = (project.root / "data/robustness.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in table[1:]] == list(VARIANTS[:-1])

"""Flatten, scale, one-hot and split: values, shapes, determinism and input checks."""

import numpy as np
import pytest

from mnistnet.data.preprocess import PreprocessConfig, load_raw, normalize, one_hot, preprocess
from mnistnet.data.splits import load_split, split_meta
from mnistnet.pipeline.errors import ConfigError, DataError
from mnistnet.pipeline.storage import save_npz


def test_normalize_flattens_and_scales_by_255():
    images = np.zeros((2, 28, 28), np.uint8)
    images[0, 0, :4] = [0, 255, 51, 102]
    images[1, 27, 27] = 1
    x = normalize(images)
    assert x.dtype == np.float32 and x.shape == (2, 784)
    np.testing.assert_array_equal(x[0, :4], [0.0, 1.0, np.float32(51) / 255, np.float32(102) / 255])
    assert x[1, 783] == np.float32(1) / 255 and x[1, :783].sum() == 0


def test_one_hot():
    np.testing.assert_array_equal(one_hot(np.array([2, 0]), 3), [[0, 0, 1], [1, 0, 0]])


def test_splits_record_how_they_were_made(tiny, tmp_path):
    out = preprocess(tiny, PreprocessConfig(val_size=40, seed=3))
    save_npz(tmp_path / "val.npz", out["val"])
    assert split_meta(tmp_path / "val.npz") == {"split": "val", "val_size": 40, "seed": 3}


def test_split_is_seeded_disjoint_and_complete(tiny):
    cfg = PreprocessConfig(val_size=40, seed=3)
    a, b = preprocess(tiny, cfg), preprocess(tiny, cfg)
    assert a["train"]["x"].shape == (200, 784) and a["val"]["x"].shape == (40, 784)
    assert a["test"]["y"].shape == (60, 10)
    np.testing.assert_array_equal(a["val"]["x"], b["val"]["x"])
    rows = {r.tobytes() for r in np.concatenate([a["train"]["x"], a["val"]["x"]])}
    assert rows == {r.tobytes() for r in normalize(tiny["x_train"])}
    other = preprocess(tiny, PreprocessConfig(val_size=40, seed=4))
    assert not np.array_equal(other["val"]["x"], a["val"]["x"])


def test_no_validation_split_keeps_every_training_image(tiny):
    out = preprocess(tiny, PreprocessConfig(val_size=0))
    np.testing.assert_array_equal(out["train"]["x"], normalize(tiny["x_train"]))
    assert out["val"]["x"].shape == (0, 784)


def test_val_size_must_leave_training_data(tiny):
    with pytest.raises(ConfigError, match=r"preprocess\.val_size: got 240.*only 240"):
        preprocess(tiny, PreprocessConfig(val_size=240))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.update(x_test=r["x_test"][:, 0]), r"'x_test' is uint8 with shape \(60, 28\)"),
        (lambda r: r.pop("y_test"), "'y_test' is missing"),
        (lambda r: r.update(x_train=r["x_train"].astype(np.float32)), "'x_train' is float32"),
    ],
)
def test_load_raw_rejects_bad_input(tiny, tmp_path, change, message):
    raw = {k: v.copy() for k, v in tiny.items()}
    change(raw)
    save_npz(tmp_path / "raw.npz", raw)
    with pytest.raises(DataError, match=message):
        load_raw(tmp_path / "raw.npz")


def test_load_split_gives_integer_labels_and_checks_dtypes(tmp_path):
    x = np.zeros((2, 784), np.float32)
    save_npz(tmp_path / "ok.npz", {"x": x, "y": one_hot(np.array([1, 2])), "meta": np.array("{}")})
    _, labels = load_split(tmp_path / "ok.npz")
    np.testing.assert_array_equal(labels, [1, 2])
    save_npz(
        tmp_path / "bad.npz",
        {"x": x.astype(np.float64), "y": one_hot(np.array([1, 2])), "meta": np.array("{}")},
    )
    with pytest.raises(DataError, match=r"'x' is float64 .*dvc repro -f preprocess"):
        load_split(tmp_path / "bad.npz")

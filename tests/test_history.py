"""The per-epoch log: DVCLive's files as the train stage writes them, and read back."""

import json

import pytest

from mnistnet.data.preprocess import PreprocessConfig, preprocess
from mnistnet.evaluation import history
from mnistnet.evaluation.plots import read_log
from mnistnet.nn.config import TrainConfig
from mnistnet.nn.train import train

SMALL = TrainConfig(hidden_size=16, epochs=3, batch_size=32, lr=0.1)


@pytest.fixture(scope="module")
def data(tiny):
    s = preprocess(tiny, PreprocessConfig(val_size=40))
    return (s["train"]["x"], s["train"]["y"].argmax(1), s["val"]["x"], s["val"]["y"].argmax(1))


def logged(folder, cfg, *data) -> list:
    with history.open_log(folder) as live:
        _, stats = train(cfg, *data, on_epoch=lambda s: history.log_epoch(live, s))
    return stats


def test_each_epoch_is_logged_as_it_ends_and_read_back(data, tmp_path):
    stats = logged(tmp_path / "a", SMALL, *data)
    summary = json.loads((tmp_path / "a/metrics.json").read_text())
    assert summary["step"] == 2  # the last epoch, counted from 0 as DVC's charts do
    assert summary["train"]["loss"] == round(stats[-1].train_loss, 6)
    assert summary["val"]["accuracy"] == round(stats[-1].val_accuracy, 6)
    assert "lr" not in summary  # its curve is plotted; its last value is no column to compare
    loss = (tmp_path / "a/plots/metrics/train/loss.tsv").read_text().splitlines()
    assert loss[0] == "step\tloss" and [row.split("\t")[0] for row in loss[1:]] == ["0", "1", "2"]
    columns = read_log(tmp_path / "a")
    assert columns["epoch"] == [0, 1, 2]
    assert columns["train_loss"] == [round(s.train_loss, 6) for s in stats]
    assert columns["lr"][0] == pytest.approx(stats[0].lr, rel=1e-5)


def test_the_log_is_the_same_bytes_every_run_and_has_no_time_in_it(data, tmp_path):
    logged(tmp_path / "a", SMALL, *data)
    logged(tmp_path / "b", SMALL, *data)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.*"))
    assert len(files) == 6  # metrics.json and five TSVs
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert "timestamp" not in (tmp_path / "a/plots/metrics/lr.tsv").read_text()


def test_without_a_validation_split_there_is_no_val_log(data, tmp_path):
    logged(tmp_path / "a", SMALL, data[0], data[1])
    assert not (tmp_path / "a/plots/metrics/val").exists()
    assert read_log(tmp_path / "a")["val_loss"] == [None, None, None]
    assert "val" not in json.loads((tmp_path / "a/metrics.json").read_text())

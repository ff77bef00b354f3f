"""The training loop: it learns, it is reproducible, it fails loudly."""

import math

import numpy as np
import pytest

from mnistnet.preprocess import PreprocessConfig, preprocess
from mnistnet.train import TrainConfig, TrainingDiverged, final_metrics, history_csv, train

SMALL = TrainConfig(hidden_size=32, epochs=4, batch_size=32, lr=0.1)


@pytest.fixture(scope="module")
def data(tiny):
    s = preprocess(tiny, PreprocessConfig(val_size=40))
    return (s["train"]["x"], s["train"]["y"].argmax(1), s["val"]["x"], s["val"]["y"].argmax(1))


def test_default_recipe_learns_the_tiny_set(data):
    params, history = train(SMALL, *data)
    assert [s.epoch for s in history] == [0, 1, 2, 3]
    assert history[-1].train_loss < history[0].train_loss / 3
    assert history[-1].val_accuracy >= 0.9
    assert params["W1"].dtype == np.float32


def test_same_config_gives_identical_bytes(data):
    a, ha = train(SMALL, *data)
    b, hb = train(SMALL, *data)
    for name in a:
        assert a[name].tobytes() == b[name].tobytes()
    assert history_csv(ha) == history_csv(hb)
    c, _ = train(SMALL.model_copy(update=dict(seed=1)), *data)
    assert c["W1"].tobytes() != a["W1"].tobytes()


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_every_optimizer_trains(data, optimizer):
    lr = 0.01 if optimizer == "adam" else 0.1
    cfg = SMALL.model_copy(update=dict(optimizer=optimizer, lr=lr, weight_decay=1e-4))
    _, history = train(cfg, *data)
    assert history[-1].train_loss < history[0].train_loss


def test_batch_size_n_is_full_batch(data):
    x, y = data[0], data[1]
    full = SMALL.model_copy(update=dict(batch_size=0, dtype="float64", lr_schedule="constant"))
    as_n = full.model_copy(update=dict(batch_size=len(x)))
    a, ha = train(full, x, y)
    b, hb = train(as_n, x, y)
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-12, atol=1e-15)
    assert [s.train_loss for s in ha] == pytest.approx([s.train_loss for s in hb], rel=1e-12)


def test_notebook_recipe_starts_at_log_10(data):
    x, y = data[0], data[1]
    cfg = TrainConfig(
        batch_size=0, init="normal", init_scale=0.01, optimizer="sgd", lr=0.1,
        lr_schedule="constant", epochs=30, dtype="float64", weight_decay=0.0,
    )  # fmt: skip
    _, history = train(cfg, x, y)
    assert history[0].train_loss == pytest.approx(math.log(10), abs=0.01)
    losses = [s.train_loss for s in history]
    assert all(b < a for a, b in zip(losses, losses[1:], strict=False))  # full-batch GD descends
    assert history[0].val_loss is None


def test_divergence_names_the_epoch_and_the_fix(data):
    cfg = SMALL.model_copy(update=dict(lr=1e30, optimizer="sgd", lr_schedule="constant"))
    with pytest.raises(
        TrainingDiverged, match=r"diverged in epoch 0: .*Lower train\.lr \(now 1e\+30"
    ):
        train(cfg, *data)


def test_history_and_metrics_outputs(data):
    _, history = train(SMALL.model_copy(update=dict(epochs=2)), *data)
    lines = history_csv(history).splitlines()
    assert lines[0] == "epoch,train_loss,train_accuracy,val_loss,val_accuracy,lr"
    assert len(lines) == 3 and lines[1].startswith("0,")
    metrics = final_metrics(history)
    assert set(metrics) == {"epochs", "train", "val"}
    assert metrics["val"]["accuracy"] == round(history[-1].val_accuracy, 6)
    _, no_val = train(SMALL.model_copy(update=dict(epochs=1)), data[0], data[1])
    assert "val" not in final_metrics(no_val)
    assert history_csv(no_val).splitlines()[1].count(",,") == 1

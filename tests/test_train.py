"""The training loop: it learns, it follows the reference math step after step, each random
purpose has its own stream, it is reproducible, it fails loudly."""

import math

import numpy as np
import pytest

from mnistnet.data.augment import AugmentConfig, make_pool
from mnistnet.data.preprocess import PreprocessConfig, preprocess
from mnistnet.nn import model
from mnistnet.nn.batches import Batches
from mnistnet.nn.config import TrainConfig, format_epoch
from mnistnet.nn.optim import ADAM_BETA2, ADAM_EPS, FLUSH_EVERY, make_optimizer
from mnistnet.nn.train import EpochStats, step, train
from mnistnet.pipeline.errors import TrainingDiverged

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
    assert ha == hb
    c, _ = train(SMALL.model_copy(update=dict(seed=1)), *data)
    assert c["W1"].tobytes() != a["W1"].tobytes()


def reference_step(params, state, X, labels, lr, cfg, t):
    """One update written the obvious way, from the formulas: a new array per operation."""
    loss, grads = model.loss_and_grads(params, X, labels)
    beta1 = cfg.beta1
    for name, g in grads.items():
        p = params[name]
        if p.ndim == 2:  # decoupled weight decay: the weight matrices, not the biases
            p = p * (1 - lr * cfg.weight_decay)
        if cfg.optimizer == "sgd":
            p = p - lr * g
        elif cfg.optimizer == "momentum":
            state[name] = cfg.momentum * state.get(name, 0) + g
            p = p - lr * state[name]
        else:
            m = beta1 * state.get(("m", name), 0) + (1 - beta1) * g
            v = ADAM_BETA2 * state.get(("v", name), 0) + (1 - ADAM_BETA2) * g * g
            state["m", name], state["v", name] = m, v
            m_hat, v_hat = m / (1 - beta1**t), v / (1 - ADAM_BETA2**t)
            p = p - lr * m_hat / (np.sqrt(v_hat) + ADAM_EPS)
        params[name] = p
    return loss


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_the_training_step_follows_the_reference_math_for_many_steps(optimizer):
    """Forty steps of changing batch sizes and learning rates, with weight decay, momentum 0.7
    and beta1 0.8
    (so swapped Adam betas or a missed bias correction show after the first step), and past
    a flush of tiny values (FLUSH_EVERY), which must change nothing here."""
    rng = np.random.default_rng(0)
    X, labels = rng.random((1000, 20)), rng.integers(0, 4, 1000)
    start = model.init_params(rng, 20, 8, 4, dtype=np.float64)
    cfg = TrainConfig(optimizer=optimizer, momentum=0.7, beta1=0.8, weight_decay=0.05)
    trained = {name: p.copy() for name, p in start.items()}
    grads = {name: np.empty_like(p) for name, p in start.items()}
    opt = make_optimizer(optimizer, trained, cfg.momentum, cfg.beta1, cfg.weight_decay)
    reference, state = {name: p.copy() for name, p in start.items()}, {}
    sizes, lrs = [32, 32, 17, 32, 5] * 8, np.linspace(0.3, 0.02, 40)
    assert len(sizes) > FLUSH_EVERY
    first = 0
    for t, (m, lr) in enumerate(zip(sizes, lrs, strict=True), 1):
        xb, yb = X[first : first + m], labels[first : first + m]
        first += m
        loss, Z2 = step(trained, grads, opt, xb, yb, lr)
        reference_loss = reference_step(reference, state, xb, yb, lr, cfg, t)
        assert loss == pytest.approx(reference_loss, rel=1e-12), t
    for name in start:
        np.testing.assert_allclose(trained[name], reference[name], rtol=1e-10, atol=1e-13)
        assert not np.allclose(trained[name], start[name])  # it moved


def test_augmentation_changes_neither_the_start_nor_the_shuffle(data, monkeypatch):
    """Each purpose draws from its own stream: a shift or a pool of copies changes what the
    images look like, not the initial weights nor the order the images come in."""
    seen = []
    epoch = Batches.epoch

    def spy_optimizer(name, params, *args):
        seen.append(("start", {name: p.copy() for name, p in params.items()}))
        return make_optimizer(name, params, *args)

    def spy_epoch(self, order, where=None):
        seen.append(("order", order.copy()))
        yield from epoch(self, order, where)

    monkeypatch.setattr("mnistnet.nn.train.make_optimizer", spy_optimizer)
    monkeypatch.setattr(Batches, "epoch", spy_epoch)
    pool = make_pool(data[0], AugmentConfig(copies=2))
    runs = {}
    for name, shift, copies in [("plain", 0, None), ("shifted", 2, None), ("copies", 1, pool)]:
        seen.clear()
        cfg = SMALL.model_copy(update=dict(shift=shift, epochs=3))
        params, _ = train(cfg, *data, pool=copies)
        runs[name] = (list(seen), params["W1"].tobytes())
    (plain, plain_w), others = runs.pop("plain"), runs.values()
    for calls, weights in others:
        assert len(calls) == len(plain) == 4  # the start, then one order per epoch
        assert all(np.array_equal(calls[0][1][k], plain[0][1][k]) for k in plain[0][1])
        assert all(np.array_equal(a[1], b[1]) for a, b in zip(calls[1:], plain[1:], strict=True))
        assert weights != plain_w  # and augmentation did change what was learned


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
        batch_size=0,
        init="normal",
        init_scale=0.01,
        optimizer="sgd",
        lr=0.1,
        lr_schedule="constant",
        epochs=30,
        dtype="float64",
        weight_decay=0.0,
        shift=0,
    )
    _, history = train(cfg, x, y)
    assert history[0].train_loss == pytest.approx(math.log(10), abs=0.01)
    losses = [s.train_loss for s in history]
    assert all(b < a for a, b in zip(losses, losses[1:], strict=False))  # full-batch GD descends
    assert history[0].val_loss is None


def test_divergence_names_the_epoch_and_the_fix(data):
    cfg = SMALL.model_copy(update=dict(lr=1e30, optimizer="sgd", lr_schedule="constant"))
    with pytest.raises(
        TrainingDiverged, match=r"diverged in epoch 1/4: .*Lower train\.lr \(now 1e\+30"
    ):
        train(cfg, *data)


def test_training_runs_the_network_in_model_py(data, monkeypatch):
    """A learner who swaps ReLU for a leaky ReLU in model.py changes what training learns."""
    relu, _ = train(SMALL, *data)

    def leaky_forward(params, X):
        Z1 = X @ params["W1"] + params["b1"]
        H = np.where(Z1 > 0, Z1, 0.1 * Z1)
        return H, H @ params["W2"] + params["b2"]

    def leaky_backward(params, X, H, dZ2, grads=None):
        dH = dZ2 @ params["W2"].T
        dZ1 = dH * np.where(H > 0, 1.0, 0.1)
        fresh = {"W1": X.T @ dZ1, "b1": dZ1.sum(0), "W2": H.T @ dZ2, "b2": dZ2.sum(0)}
        for name, g in fresh.items():
            grads[name][...] = g
        return grads

    monkeypatch.setattr(model, "forward", leaky_forward)
    monkeypatch.setattr(model, "backward", leaky_backward)
    leaky, history = train(SMALL, *data)
    assert leaky["W1"].tobytes() != relu["W1"].tobytes()
    assert history[-1].train_loss < history[0].train_loss / 3  # and it still learns


def test_a_progress_line_fits_80_columns():
    stats = EpochStats(
        epoch=998,
        train_loss=12.3456,
        train_accuracy=1.0,
        val_loss=10.1234,
        val_accuracy=0.9999,
        lr=0.1,
    )
    line = format_epoch(stats, 1000, elapsed=3599.0)
    assert (
        line == "epoch  999/1000  loss 12.3456 acc 100.00%  val 10.1234 99.99%  59m59s, 3.6s left"
    )
    assert len(line) <= 80

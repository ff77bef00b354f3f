"""Optimizers and schedules: each update rule against its formula, and each one learns."""

import math

import numpy as np
import pytest

from mnistnet.nn import model
from mnistnet.nn.optim import ADAM_EPS, learning_rate, make_optimizer


def test_schedules():
    assert learning_rate("constant", 0.1, 50, 100) == 0.1
    assert learning_rate("cosine", 0.1, 0, 100) == pytest.approx(0.1)
    assert learning_rate("cosine", 0.1, 50, 100) == pytest.approx(0.05)
    assert learning_rate("cosine", 0.1, 100, 100) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="unknown lr_schedule"):
        learning_rate("step", 0.1, 0, 1)


def one_param(g):
    params = {"W": np.array([[1.0, -2.0]]), "b": np.array([0.5])}
    grads = {"W": np.array([[g, -g]]), "b": np.array([g])}
    return params, grads


def test_sgd_momentum_and_decoupled_decay_skip_biases():
    params, grads = one_param(0.5)
    opt = make_optimizer("momentum", params, grads, momentum=0.9, weight_decay=0.1)
    opt.step(lr=0.1)
    # W *= 1 - 0.1 * 0.1; v = g; W -= 0.1 * v.  Bias: no decay.
    np.testing.assert_allclose(params["W"], [[0.99 - 0.05, -1.98 + 0.05]])
    np.testing.assert_allclose(params["b"], [0.5 - 0.05])
    grads["W"][:] = 0.0
    grads["b"][:] = 0.0
    opt.step(lr=0.1)
    np.testing.assert_allclose(params["b"], [0.45 - 0.1 * 0.9 * 0.5])  # momentum carries on


def test_adam_first_step_matches_the_formula():
    params, grads = one_param(0.5)
    w0 = params["W"].copy()
    opt = make_optimizer("adam", params, grads, momentum=0.9, weight_decay=0.0)
    opt.step(lr=0.01)
    m_hat = 0.5  # bias-corrected first and second moments equal g and g² on step one
    v_hat = 0.25
    expected = w0 - 0.01 * np.array([[m_hat, -m_hat]]) / (np.sqrt(v_hat) + ADAM_EPS)
    np.testing.assert_allclose(params["W"], expected, rtol=1e-6)


@pytest.mark.parametrize(("name", "lr"), [("sgd", 0.5), ("momentum", 0.1), ("adam", 0.01)])
def test_each_optimizer_decreases_the_loss(name, lr):
    rng = np.random.default_rng(0)
    X = rng.random((64, 20))
    labels = (X[:, 0] > 0.5).astype(int)  # a separable two-class problem
    params = model.init_params(rng, 20, 8, 2, dtype=np.float64)
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    opt = make_optimizer(name, params, grads, momentum=0.9, weight_decay=0.0)
    start, _ = model.loss_and_grads(params, X, labels)
    for _ in range(100):
        _, g = model.loss_and_grads(params, X, labels)
        for k in grads:
            grads[k][:] = g[k]
        opt.step(lr)
    end, _ = model.loss_and_grads(params, X, labels)
    assert end < 0.5 * start, (start, end)
    assert math.isfinite(end)


def test_unknown_optimizer():
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        make_optimizer("rmsprop", {}, {}, 0.9, 0.0)

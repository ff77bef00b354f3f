"""Optimizers and schedules: each update rule against its formula, each one learns, and no
value lingers among the subnormal floats."""

import math

import numpy as np
import pytest

from mnistnet.nn import model
from mnistnet.nn.optim import ADAM_EPS, FLUSH_EVERY, learning_rate, make_optimizer


def test_schedules():
    assert learning_rate("constant", 0.1, 50, 100) == 0.1
    assert learning_rate("cosine", 0.1, 0, 100) == pytest.approx(0.1)
    assert learning_rate("cosine", 0.1, 50, 100) == pytest.approx(0.05)
    assert learning_rate("cosine", 0.1, 100, 100) == pytest.approx(0.0)


def one_param(g):
    params = {"W": np.array([[1.0, -2.0]]), "b": np.array([0.5])}
    grads = {"W": np.array([[g, -g]]), "b": np.array([g])}
    return params, grads


def test_sgd_momentum_and_decoupled_decay_skip_biases():
    params, grads = one_param(0.5)
    opt = make_optimizer("momentum", params, momentum=0.9, weight_decay=0.1)
    opt.step(params, grads, lr=0.1)
    # W *= 1 - 0.1 * 0.1; v = g; W -= 0.1 * v.  Bias: no decay.
    np.testing.assert_allclose(params["W"], [[0.99 - 0.05, -1.98 + 0.05]])
    np.testing.assert_allclose(params["b"], [0.5 - 0.05])
    grads["W"][:] = 0.0
    grads["b"][:] = 0.0
    opt.step(params, grads, lr=0.1)
    np.testing.assert_allclose(params["b"], [0.45 - 0.1 * 0.9 * 0.5])  # momentum carries on


def test_adam_first_step_matches_the_formula():
    params, grads = one_param(0.5)
    w0 = params["W"].copy()
    opt = make_optimizer("adam", params, beta1=0.9, weight_decay=0.0)
    opt.step(params, grads, lr=0.01)
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
    opt = make_optimizer(name, params)
    start, _ = model.loss_and_grads(params, X, labels)
    for _ in range(100):
        _, grads = model.loss_and_grads(params, X, labels)
        opt.step(params, grads, lr)
    end, _ = model.loss_and_grads(params, X, labels)
    assert end < 0.5 * start, (start, end)
    assert math.isfinite(end)


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam"])
def test_a_weight_without_gradient_never_lingers_among_the_subnormals(name):
    """A weight whose gradient stays exactly 0 (a pixel no image inks) decays by μ every step;
    without the flush its velocity would sink below 1e-38 and stay there (0.9 × the smallest
    float32 rounds back to itself), to be computed with up to 100 times slower."""
    params = {"W": np.full((4, 4), 0.5, np.float32), "b": np.zeros(4, np.float32)}
    grads = {"W": np.full((4, 4), 1e-3, np.float32), "b": np.zeros(4, np.float32)}
    opt = make_optimizer(name, params, weight_decay=0.5)
    tiny = np.finfo(np.float32).tiny
    subnormal = lambda a: ((a != 0) & (np.abs(a) < tiny)).any()  # noqa: E731
    opt.step(params, grads, lr=0.5)
    grads["W"][:] = 0  # from now on, no gradient: velocity and weights only decay
    for t in range(2, 40 * FLUSH_EVERY):
        opt.step(params, grads, lr=0.5)
        if t % FLUSH_EVERY == 0:
            assert not any(subnormal(a) for a in (*params.values(), *opt.state)), t
    assert not params["W"].any()  # decayed all the way to exactly 0

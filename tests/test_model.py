"""The network math against independent references: finite differences, plain formulas."""

import numpy as np
import pytest

from mnistnet.nn import model
from mnistnet.nn.train import TrainConfig, Trainer


def small_problem(seed=0, n=7, d=12, h=5, k=10):
    rng = np.random.default_rng(seed)
    params = model.init_params(rng, d, h, k, init="he", dtype=np.float64)
    params["b1"] = rng.normal(size=h) * 0.1  # non-zero biases exercise their gradients
    params["b2"] = rng.normal(size=k) * 0.1
    X = rng.random((n, d))
    labels = rng.integers(0, k, n)
    return params, X, labels


@pytest.mark.parametrize("name", model.PARAM_NAMES)
def test_gradients_match_finite_differences(name):
    params, X, labels = small_problem()
    _, grads = model.loss_and_grads(params, X, labels)
    numeric = np.zeros_like(params[name])
    eps = 1e-6
    for i in np.ndindex(params[name].shape):
        original = params[name][i]
        params[name][i] = original + eps
        up = model.cross_entropy(model.forward(params, X)[1], labels)
        params[name][i] = original - eps
        down = model.cross_entropy(model.forward(params, X)[1], labels)
        params[name][i] = original
        numeric[i] = (up - down) / (2 * eps)
    np.testing.assert_allclose(grads[name], numeric, rtol=1e-5, atol=1e-8)


def test_softmax_and_cross_entropy_are_stable_at_extreme_logits():
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [3e4, 3e4, -3e4]])
    probs = model.softmax(logits)
    assert np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1)
    np.testing.assert_allclose(probs[1], [1 / 3] * 3)
    assert model.cross_entropy(logits, np.array([0, 1, 0])) == pytest.approx(
        np.log(3) / 3 + np.log(2) / 3
    )
    loss = model.cross_entropy(logits, np.array([1, 0, 2]))  # confidently wrong
    assert np.isfinite(loss) and loss == pytest.approx((2e4 + np.log(3) + 6e4 + np.log(2)) / 3)


def test_cross_entropy_matches_the_textbook_formula():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(5, 10))
    labels = rng.integers(0, 10, 5)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected = -np.mean(np.log(probs[np.arange(5), labels]))
    assert model.cross_entropy(logits, labels) == pytest.approx(expected, rel=1e-12)


def test_init_schemes():
    rng = np.random.default_rng(0)
    p = model.init_params(rng, 784, 128, 10, init="normal", init_scale=0.01, dtype=np.float64)
    assert p["W1"].std() == pytest.approx(0.01, rel=0.02)
    assert not p["b1"].any() and not p["b2"].any()
    he = model.init_params(rng, 784, 128, 10, init="he")
    assert he["W1"].dtype == np.float32
    assert he["W1"].std() == pytest.approx(np.sqrt(2 / 784), rel=0.02)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fast_trainer_step_computes_the_reference_loss_and_gradients(dtype):
    params, X, labels = small_problem()
    params = {k: v.astype(dtype) for k, v in params.items()}
    X = X.astype(dtype)
    ref_loss, ref_grads = model.loss_and_grads(params, X, labels)
    ref_correct = int((model.predict(params, X) == labels).sum())
    cfg = TrainConfig(optimizer="sgd", weight_decay=0.0)
    trainer = Trainer({k: v.copy() for k, v in params.items()}, cfg, max_batch=16)
    loss_sum, correct = trainer.step(X, labels, lr=0.1)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    assert loss_sum / len(X) == pytest.approx(ref_loss, rel=tol)
    assert correct == ref_correct
    for name in model.PARAM_NAMES:
        np.testing.assert_allclose(trainer.grads[name], ref_grads[name], rtol=tol * 10, atol=tol)
        np.testing.assert_allclose(
            trainer.params[name], params[name] - 0.1 * ref_grads[name], rtol=tol * 10, atol=tol
        )


def test_kept_start_tells_a_unit_that_never_learned():
    rng = np.random.default_rng(0)
    start = rng.standard_normal((784, 3))
    now = np.stack([0.3 * start[:, 0], rng.standard_normal(784), start[:, 2] + 5], axis=1)
    kept = model.kept_start(now, start)
    assert kept[0] == pytest.approx(1.0)  # only shrunk (weight decay): learned nothing
    assert abs(kept[1]) < 0.2  # a pattern of its own
    assert 0 < kept[2] < 0.5

"""The network math against independent references: finite differences, plain formulas."""

import numpy as np
import pytest

from mnistnet.nn import model


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
        up = model.softmax_cross_entropy(model.forward(params, X)[1], labels)[0]
        params[name][i] = original - eps
        down = model.softmax_cross_entropy(model.forward(params, X)[1], labels)[0]
        params[name][i] = original
        numeric[i] = (up - down) / (2 * eps)
    np.testing.assert_allclose(grads[name], numeric, rtol=1e-5, atol=1e-8)


def test_softmax_and_cross_entropy_are_stable_at_extreme_logits():
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [3e4, 3e4, -3e4]])
    probs = model.softmax(logits)
    assert np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1)
    np.testing.assert_allclose(probs[1], [1 / 3] * 3)
    assert model.softmax_cross_entropy(logits, np.array([0, 1, 0]))[0] == pytest.approx(
        np.log(3) / 3 + np.log(2) / 3
    )
    loss, _ = model.softmax_cross_entropy(logits, np.array([1, 0, 2]))  # confidently wrong
    assert np.isfinite(loss) and loss == pytest.approx((2e4 + np.log(3) + 6e4 + np.log(2)) / 3)


def test_cross_entropy_matches_the_textbook_formula():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(5, 10))
    labels = rng.integers(0, 10, 5)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected = -np.mean(np.log(probs[np.arange(5), labels]))
    loss, dZ2 = model.softmax_cross_entropy(logits, labels)
    assert loss == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(dZ2, (probs - np.eye(10)[labels]) / 5, rtol=1e-12)


def test_init_schemes():
    rng = np.random.default_rng(0)
    p = model.init_params(rng, 784, 128, 10, init="normal", init_scale=0.01, dtype=np.float64)
    assert p["W1"].std() == pytest.approx(0.01, rel=0.02)
    assert not p["b1"].any() and not p["b2"].any()
    he = model.init_params(rng, 784, 128, 10, init="he")
    assert he["W1"].dtype == np.float32
    assert he["W1"].std() == pytest.approx(np.sqrt(2 / 784), rel=0.02)


def test_backward_writes_into_given_buffers_the_same_gradients():
    params, X, labels = small_problem()
    _, fresh = model.loss_and_grads(params, X, labels)
    H, Z2 = model.forward(params, X)
    buffers = {name: np.full_like(p, np.nan) for name, p in params.items()}
    written = model.backward(params, X, H, model.softmax_cross_entropy(Z2, labels)[1], buffers)
    for name in model.PARAM_NAMES:
        assert written[name] is buffers[name]
        np.testing.assert_array_equal(buffers[name], fresh[name])


def test_no_probability_or_gradient_is_subnormal_at_any_gap_between_logits():
    """float32 turns subnormal below 1e-38 (e^-87), and CPUs compute with subnormal floats up
    to 100 times slower: a logit far below its row's maximum must not produce one."""
    tiny = np.finfo(np.float32).tiny
    Z2 = np.array([[0, -50, -87, -100, -200, -1e4, 3, 5, 1, 2]], np.float32).repeat(1024, 0)
    probs = model.softmax(Z2)
    labels = np.arange(1024) % 10  # each class, the confidently wrong ones too
    loss, dZ2 = model.softmax_cross_entropy(Z2, labels)
    for a in (probs, dZ2):
        assert not ((a != 0) & (np.abs(a) < tiny)).any()
    # and the floor leaves the loss as it was: e^-60 vanishes beside e^0 in the row's sum
    z = Z2[0].astype(np.float64)
    exact = np.mean(5 + np.log(np.exp(z - 5).sum()) - z[labels])
    assert loss == pytest.approx(exact, rel=1e-6)

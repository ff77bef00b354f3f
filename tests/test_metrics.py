"""Metrics against hand-computed cases."""

import json

import numpy as np
import pytest

from mnistnet.evaluation.metrics import (
    class_scores,
    classes_report,
    confusion_matrix,
    confusion_rows_csv,
    evaluate_model,
    metrics_json,
    misclassified_csv,
)
from mnistnet.nn import model


def test_perfect_predictions():
    y = np.array([0, 1, 2, 2, 1])
    cm = confusion_matrix(y, y, 3)
    np.testing.assert_array_equal(cm, np.diag([1, 2, 2]))
    scores = class_scores(cm)
    for name in ("precision", "recall", "f1"):
        np.testing.assert_array_equal(scores[name], [1, 1, 1])


def test_all_wrong():
    y = np.array([0, 1, 2])
    cm = confusion_matrix(y, (y + 1) % 3, 3)
    assert np.trace(cm) == 0 and cm.sum() == 3
    assert cm[0, 1] == cm[1, 2] == cm[2, 0] == 1  # rows true, columns predicted
    for name in ("precision", "recall", "f1"):
        np.testing.assert_array_equal(class_scores(cm)[name], [0, 0, 0])


def test_hand_computed_scores_with_a_class_missing():
    # Class 2 never occurs and is never predicted; class 0 is predicted once wrongly.
    true = np.array([0, 0, 0, 1, 1])
    pred = np.array([0, 0, 1, 1, 0])
    cm = confusion_matrix(true, pred, 3)
    np.testing.assert_array_equal(cm, [[2, 1, 0], [1, 1, 0], [0, 0, 0]])
    s = class_scores(cm)
    np.testing.assert_allclose(s["precision"], [2 / 3, 1 / 2, 0])
    np.testing.assert_allclose(s["recall"], [2 / 3, 1 / 2, 0])
    np.testing.assert_allclose(s["f1"], [2 / 3, 1 / 2, 0])
    np.testing.assert_array_equal(s["support"], [3, 2, 0])


def test_evaluate_model_agrees_with_the_model():
    rng = np.random.default_rng(0)
    params = model.init_params(rng, 784, 8, 10, dtype=np.float64)
    X = rng.random((50, 784)).astype(np.float32)
    y = rng.integers(0, 10, 50)
    result = evaluate_model(params, X, y)
    predicted = model.predict(params, X.astype(np.float64))
    np.testing.assert_array_equal(result["predicted"], predicted)
    assert result["confusion"].sum() == 50
    assert result["accuracy"] == pytest.approx(np.mean(predicted == y))
    loss, _ = model.softmax_cross_entropy(model.forward(params, X)[1], y)
    assert result["loss"] == pytest.approx(loss)
    probs = model.predict_proba(params, X)
    np.testing.assert_allclose(result["confidence"], probs.max(axis=1))


def test_output_files():
    y = np.array([3, 1, 1, 0])
    result = {
        "accuracy": 0.5,
        "loss": 0.25,
        "confusion": confusion_matrix(y, np.array([3, 1, 0, 1]), 4),
        "macro": {"precision": 0.5, "recall": 0.5, "f1": 0.5},
        "predicted": np.array([3, 1, 0, 1]),
        "confidence": np.array([0.9, 0.8, 0.6, 0.7]),
    }
    result["scores"] = class_scores(result["confusion"])
    assert metrics_json(result)["test"] == {
        "accuracy": 0.5,
        "loss": 0.25,
        "macro": {"precision": 0.5, "recall": 0.5, "f1": 0.5},
    }
    report = json.loads(json.dumps(classes_report(result)))
    assert report["per_class"]["1"]["support"] == 2
    assert report["confusion_matrix"][0] == [0, 1, 0, 0]
    assert confusion_rows_csv(y, result["predicted"]).splitlines() == [
        "actual,predicted",
        "3,3",
        "1,1",
        "1,0",
        "0,1",
    ]
    # wrong predictions, most confident first
    assert misclassified_csv(y, result).splitlines() == [
        "index,true,predicted,confidence",
        "3,0,1,0.700000",
        "2,1,0,0.600000",
    ]

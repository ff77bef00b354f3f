"""Classification metrics from labels and predictions: confusion counts, per-class scores.

Pure NumPy; no files. Conventions: the confusion matrix ``C`` is (k, k) int64 with rows the
true class and columns the predicted class, so ``C[i, j]`` counts class-i images predicted as
j. A score whose denominator is zero (a class never predicted, or absent from the labels) is
reported as 0.0, the convention of scikit-learn's ``zero_division=0``.
"""

from __future__ import annotations

import numpy as np

from mnistnet.data.mnist import CLASSES
from mnistnet.nn.model import forward, softmax, softmax_cross_entropy
from mnistnet.pipeline.errors import DataError


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, k: int = CLASSES) -> np.ndarray:
    """Counts (k, k) int64: rows are true classes, columns predicted classes."""
    flat = np.bincount(labels.astype(np.int64) * k + predicted, minlength=k * k)
    return flat.reshape(k, k)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    out = np.zeros(numerator.shape, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def class_scores(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class precision, recall, F1 (each float64 (k,)) and support (int64 (k,))."""
    hits = np.diag(cm).astype(np.float64)
    precision = _ratio(hits, cm.sum(axis=0))  # of the images predicted as c, how many are c
    recall = _ratio(hits, cm.sum(axis=1))  # of the images of class c, how many were found
    f1 = _ratio(2 * precision * recall, precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1, "support": cm.sum(axis=1)}


def evaluate_model(params: dict, X: np.ndarray, labels: np.ndarray) -> dict:
    """Everything the evaluate stage reports, for inputs X (n, d) and true labels (n,).

    Returns ``accuracy``, ``loss`` (mean cross-entropy), ``confusion`` (k, k), per-class
    ``scores`` (see ``class_scores``), ``macro`` averages, and ``predicted`` (n,) with
    ``confidence`` (n,), the probability the model gave its prediction. Raises ``DataError``
    when the logits overflow, since no finite loss (nor valid JSON) could be reported.
    """
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is checked right below
        _, logits = forward(params, X.astype(params["W1"].dtype, copy=False))  # (n, k)
    if not np.isfinite(logits).all():
        raise DataError(
            "the model's outputs overflow to infinity on the test set: its weights are far "
            "too large. Retrain it with a lower train.lr (or more train.weight_decay)"
        )
    # float64: finite float32 logits can still be too far apart for a float32 softmax
    logits = logits.astype(np.float64)
    probs = softmax(logits)
    predicted = probs.argmax(axis=1)
    k = logits.shape[1]
    cm = confusion_matrix(labels, predicted, k)
    scores = class_scores(cm)
    return {
        "accuracy": float(np.trace(cm) / max(len(labels), 1)),
        "loss": softmax_cross_entropy(logits, labels)[0],
        "confusion": cm,
        "scores": scores,
        "macro": {name: float(scores[name].mean()) for name in ("precision", "recall", "f1")},
        "predicted": predicted,
        "confidence": probs[np.arange(len(X)), predicted],
    }


# --- the evaluate stage's files, as text ----------------------------------------------------


def _r(x: float) -> float:
    return round(float(x), 6)  # six decimals: exact enough, and diffs stay readable


def metrics_json(result: dict) -> dict:
    """The metrics file: ``test.accuracy``, ``test.loss`` and ``test.macro.*`` for DVC."""
    macro = {name: _r(v) for name, v in result["macro"].items()}
    return {
        "test": {"accuracy": _r(result["accuracy"]), "loss": _r(result["loss"]), "macro": macro}
    }


def classes_report(result: dict) -> dict:
    """Per-class precision, recall, F1 and support, and the confusion counts (rows = true)."""
    scores = result["scores"]
    per_class = {
        str(c): {
            "precision": _r(scores["precision"][c]),
            "recall": _r(scores["recall"][c]),
            "f1": _r(scores["f1"][c]),
            "support": int(scores["support"][c]),
        }
        for c in range(len(scores["support"]))
    }
    return {"per_class": per_class, "confusion_matrix": result["confusion"].tolist()}


def confusion_rows_csv(labels: np.ndarray, predicted: np.ndarray) -> str:
    """One ``actual,predicted`` row per image: the input of DVC's ``confusion`` template."""
    rows = "\n".join(f"{a},{p}" for a, p in zip(labels.tolist(), predicted.tolist(), strict=True))
    return "actual,predicted\n" + rows + "\n"


def misclassified_csv(labels: np.ndarray, result: dict) -> str:
    """Every wrong prediction, most confident first: ``index,true,predicted,confidence``."""
    predicted, confidence = result["predicted"], result["confidence"]
    wrong = np.flatnonzero(predicted != labels)
    wrong = wrong[np.argsort(-confidence[wrong], kind="stable")]
    lines = [f"{i},{labels[i]},{predicted[i]},{confidence[i]:.6f}" for i in wrong]
    return "index,true,predicted,confidence\n" + "".join(line + "\n" for line in lines)

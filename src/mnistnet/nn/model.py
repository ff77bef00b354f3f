"""The network: ``X (n, d) → Linear → ReLU (n, h) → Linear → softmax (n, k)``, cross-entropy.

Pure NumPy math with no file I/O, no printing and no global state. These are the readable
reference versions; ``train.Trainer`` runs the same math with preallocated buffers, and the
tests check that the two agree and that ``backward`` matches finite differences.

Parameters are a dict: ``W1`` (d, h), ``b1`` (h,), ``W2`` (h, k), ``b2`` (k,). Letters: ``n``
batch, ``d`` input features (784), ``h`` hidden units, ``k`` classes (10).
"""

from __future__ import annotations

import numpy as np

Params = dict[str, np.ndarray]
PARAM_NAMES = ("W1", "b1", "W2", "b2")


def init_params(
    rng: np.random.Generator,
    d: int,
    h: int,
    k: int,
    init: str = "he",
    init_scale: float = 0.01,
    dtype: np.dtype | type = np.float32,
) -> Params:
    """Initial weights and zero biases.

    ``init="normal"``: N(0, 1) · ``init_scale`` (the original notebook, with 0.01).
    ``init="he"``: N(0, 2 / fan_in), which keeps ReLU activations at unit scale.
    """
    if init == "normal":
        scale1 = scale2 = init_scale
    elif init == "he":
        scale1, scale2 = np.sqrt(2.0 / d), np.sqrt(2.0 / h)
    else:
        raise ValueError(f"unknown init {init!r}; expected 'normal' or 'he'")
    return {
        "W1": (rng.standard_normal((d, h)) * scale1).astype(dtype),
        "b1": np.zeros(h, dtype=dtype),
        "W2": (rng.standard_normal((h, k)) * scale2).astype(dtype),
        "b2": np.zeros(k, dtype=dtype),
    }


def forward(params: Params, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hidden activations H (n, h) and logits (n, k) for inputs X (n, d)."""
    H = np.maximum(X @ params["W1"] + params["b1"], 0)  # (n, h)
    logits = H @ params["W2"] + params["b2"]  # (n, k)
    return H, logits


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-probabilities (n, k); finite for any finite logits."""
    # Subtracting the row max makes the largest exponent exp(0) = 1: no overflow, and the
    # log of the sum is at least log(1) = 0, so no log(0) either.
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise probabilities (n, k), each row summing to 1."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of integer ``labels`` (n,) under ``logits`` (n, k)."""
    logp = log_softmax(logits)
    return float(-logp[np.arange(len(labels)), labels].mean())


def backward(
    params: Params, X: np.ndarray, H: np.ndarray, logits: np.ndarray, labels: np.ndarray
) -> Params:
    """Gradients of the mean cross-entropy with respect to every parameter.

    Returns a dict with the same keys and shapes as ``params``.
    """
    n = len(X)
    dlogits = softmax(logits)  # fused softmax + cross-entropy gradient: probs - one_hot
    dlogits[np.arange(n), labels] -= 1
    dlogits /= n  # (n, k)
    dH = dlogits @ params["W2"].T  # (n, h)
    dH *= H > 0  # ReLU passes gradient only where it was active
    return {
        "W1": X.T @ dH,  # (d, h)
        "b1": dH.sum(axis=0),  # (h,)
        "W2": H.T @ dlogits,  # (h, k)
        "b2": dlogits.sum(axis=0),  # (k,)
    }


def loss_and_grads(params: Params, X: np.ndarray, labels: np.ndarray) -> tuple[float, Params]:
    """Mean cross-entropy loss and its gradients for one batch."""
    H, logits = forward(params, X)
    return cross_entropy(logits, labels), backward(params, X, H, logits, labels)


def predict_proba(params: Params, X: np.ndarray) -> np.ndarray:
    """Class probabilities (n, k) for inputs X (n, d)."""
    return softmax(forward(params, X)[1])


def kept_start(W: np.ndarray, W_start: np.ndarray) -> np.ndarray:
    """float (h,): per unit (column), the cosine between its weights and its initial ones.

    Near 1: the unit's weights are still their random start, at most shrunk by weight decay,
    so it learned nothing (typically a ReLU that gradients rarely reach); a unit that learned
    has a pattern of its own, at about 0.2 here.
    """
    dot = (W * W_start).sum(axis=0, dtype=np.float64)
    norms = np.linalg.norm(W, axis=0) * np.linalg.norm(W_start, axis=0)
    return np.divide(dot, norms, out=np.zeros_like(dot), where=norms > 0)


def predict(params: Params, X: np.ndarray) -> np.ndarray:
    """Predicted class (n,) int64: the argmax of the logits."""
    return forward(params, X)[1].argmax(axis=1)

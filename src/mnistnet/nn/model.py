"""The network: ``X (n, d) → Linear → ReLU → Linear → softmax``, trained on cross-entropy.

Pure NumPy, no files, no printing, no global state. Everything that runs the network calls
these functions: the training loop (``nn/train.py``), the evaluate stage, ``predict`` and
``serve``. Each line of ``forward`` and ``backward`` is one equation of the textbook
derivation, named by its symbol (``Z1``, ``dW2``), with the array's shape beside it.

Parameters are a dict: ``W1`` (d, h), ``b1`` (h,), ``W2`` (h, k), ``b2`` (k,). Letters: ``n``
batch, ``d`` input features (784), ``h`` hidden units, ``k`` classes (10).
"""

from __future__ import annotations

import numpy as np

Params = dict[str, np.ndarray]
PARAM_NAMES = ("W1", "b1", "W2", "b2")
# Softmax gives a logit more than 60 below its row's largest the probability e^-60 (1e-26)
# rather than less: below e^-87 float32 turns subnormal, and CPUs compute with subnormal
# numbers up to 100× slower. Beside the largest term e^0 = 1, e^-60 vanishes from the row's
# sum in float32 and float64 alike, so the loss is unchanged to the last bit.
LOGIT_FLOOR = -60.0


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
    else:  # "he"
        scale1, scale2 = np.sqrt(2.0 / d), np.sqrt(2.0 / h)
    return {
        "W1": (rng.standard_normal((d, h)) * scale1).astype(dtype),
        "b1": np.zeros(h, dtype=dtype),
        "W2": (rng.standard_normal((h, k)) * scale2).astype(dtype),
        "b2": np.zeros(k, dtype=dtype),
    }


def forward(params: Params, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hidden activations H (n, h) and logits Z2 (n, k) for inputs X (n, d)."""
    Z1 = X @ params["W1"]  # (n, h)
    Z1 += params["b1"]
    H = np.maximum(Z1, 0, out=Z1)  # (n, h)  ReLU, in place: Z1 is not needed again
    Z2 = H @ params["W2"]  # (n, k)  logits
    Z2 += params["b2"]
    return H, Z2


def softmax(Z2: np.ndarray) -> np.ndarray:
    """Row-wise probabilities (n, k) from logits (n, k); each row sums to 1."""
    # Subtracting the row max makes the largest exponent e^0 = 1: exp cannot overflow.
    shifted = Z2 - Z2.max(axis=1, keepdims=True)
    exp = np.exp(np.maximum(shifted, LOGIT_FLOOR))
    return exp / exp.sum(axis=1, keepdims=True)


def softmax_cross_entropy(Z2: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of integer ``labels`` (n,) under logits Z2 (n, k), and its gradient
    with respect to the logits, dZ2 (n, k) = (softmax(Z2) − one_hot(labels)) / n."""
    n = len(labels)
    rows = np.arange(n)
    shifted = Z2 - Z2.max(axis=1, keepdims=True)  # (n, k), row max 0: exp cannot overflow
    exp = np.exp(np.maximum(shifted, LOGIT_FLOOR))  # (n, k)
    sums = exp.sum(axis=1, keepdims=True)  # (n, 1), each >= e^0 = 1: its log is finite
    # −log softmax(Z2)[y] = log Σ e^z − z_y, from the logits: finite when softmax is ~0
    loss = float(np.log(sums).sum() - shifted[rows, labels].sum()) / n
    dZ2 = exp / (sums * n)  # (n, k) probabilities, over n: the loss is a mean
    dZ2[rows, labels] -= 1 / n
    return loss, dZ2


def backward(
    params: Params, X: np.ndarray, H: np.ndarray, dZ2: np.ndarray, grads: Params | None = None
) -> Params:
    """Gradients of the loss for every parameter, given dZ2 (n, k), its gradient with respect
    to the logits: a dict shaped like ``params``.

    Written into ``grads`` when given: training reuses one set, since a fresh (d, h) array
    every step costs about as much as the matrix product that fills it.
    """
    out = grads or {}
    dW2 = np.matmul(H.T, dZ2, out=out.get("W2"))  # (h, k)
    db2 = np.sum(dZ2, axis=0, out=out.get("b2"))  # (k,)
    dH = dZ2 @ params["W2"].T  # (n, h)
    dZ1 = np.multiply(dH, H > 0, out=dH)  # (n, h)  ReLU passes gradient only where it was active
    dW1 = np.matmul(X.T, dZ1, out=out.get("W1"))  # (d, h)
    db1 = np.sum(dZ1, axis=0, out=out.get("b1"))  # (h,)
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}


def loss_and_grads(params: Params, X: np.ndarray, labels: np.ndarray) -> tuple[float, Params]:
    """Mean cross-entropy and its gradients for one batch: the three steps in one call (what
    the gradient tests and the plain loop of bench/bench_train.py use)."""
    H, Z2 = forward(params, X)
    loss, dZ2 = softmax_cross_entropy(Z2, labels)
    return loss, backward(params, X, H, dZ2)


def predict_proba(params: Params, X: np.ndarray) -> np.ndarray:
    """Class probabilities (n, k) for inputs X (n, d)."""
    return softmax(forward(params, X)[1])


def predict(params: Params, X: np.ndarray) -> np.ndarray:
    """Predicted class (n,) int64: the argmax of the logits."""
    return forward(params, X)[1].argmax(axis=1)

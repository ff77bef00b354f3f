"""Parameter updates (SGD, momentum, Adam) and learning-rate schedules, all in place.

Each optimizer keeps all parameters (and all gradients) in one flat buffer, rebinding the
caller's arrays to views of it, and updates it in place with preallocated scratch space, so
a training step allocates nothing and costs a few NumPy calls whatever the layer count.
Weight decay is decoupled from the gradient (as in AdamW and SGDW): every update shrinks the
weight matrices, never the biases, by the factor ``1 - lr * weight_decay``. For plain SGD that
is exactly an L2 penalty; for momentum and Adam it keeps the decay out of the running averages
and costs one pass over each matrix instead of two.
"""

from __future__ import annotations

import math

import numpy as np

ADAM_BETA2 = 0.999  # second-moment decay; the standard value, rarely worth tuning
ADAM_EPS = 1e-8  # keeps the step finite where the second moment is ~0


def learning_rate(schedule: str, base_lr: float, step: int, total_steps: int) -> float:
    """Learning rate for update ``step`` (0-based) of ``total_steps``.

    1. ``constant``: ``base_lr`` throughout.
    2. ``cosine``: from ``base_lr`` down to 0 along half a cosine, so early steps explore
       and the last ones settle into a minimum.
    """
    if schedule == "constant":
        return base_lr
    if schedule == "cosine":
        return base_lr * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))
    raise ValueError(f"unknown lr_schedule {schedule!r}; expected 'constant' or 'cosine'")


class Optimizer:
    """Shared set-up: every parameter and gradient moved into one flat buffer each.

    The arrays in ``params`` and ``grads`` are replaced, in the caller's dicts, by views into
    a flat buffer (weight matrices first, then biases), so each update is a handful of NumPy
    calls over one array instead of the same calls repeated per parameter. Callers must read
    the arrays from the dicts after constructing the optimizer.
    """

    def __init__(
        self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray], weight_decay: float
    ) -> None:
        self.weight_decay = weight_decay
        order = sorted(params, key=lambda name: params[name].ndim == 1)  # matrices first
        self.n_decayed = sum(params[name].size for name in order if params[name].ndim > 1)
        self.p = _flatten(params, order)
        self.g = _flatten(grads, order)
        self.scratch = np.empty_like(self.p)

    def step(self, lr: float) -> None:
        raise NotImplementedError

    def decay(self, lr: float) -> None:
        """Shrink the weight matrices by ``1 - lr * weight_decay`` (biases are left alone)."""
        if self.weight_decay:
            self.p[: self.n_decayed] *= 1 - lr * self.weight_decay


def _flatten(arrays: dict[str, np.ndarray], order: list[str]) -> np.ndarray:
    """Copy ``arrays`` into one flat buffer and rebind each entry to its view of it."""
    flat = np.empty(sum(arrays[name].size for name in order), arrays[order[0]].dtype)
    start = 0
    for name in order:
        view = flat[start : start + arrays[name].size].reshape(arrays[name].shape)
        view[...] = arrays[name]
        arrays[name] = view
        start += view.size
    return flat


class SGD(Optimizer):
    """``p -= lr * g``; with ``momentum`` μ > 0, heavy-ball: ``v = μ v + g; p -= lr * v``."""

    def __init__(self, params, grads, momentum: float = 0.0, weight_decay: float = 0.0) -> None:
        super().__init__(params, grads, weight_decay)
        self.momentum = momentum
        self.velocity = np.zeros_like(self.p) if momentum else None

    def step(self, lr: float) -> None:
        self.decay(lr)
        update = self.g
        if self.velocity is not None:
            self.velocity *= self.momentum
            self.velocity += self.g
            update = self.velocity
        np.multiply(update, lr, out=self.scratch)
        self.p -= self.scratch


class Adam(Optimizer):
    """Adam with bias correction (with weight decay: AdamW)."""

    def __init__(self, params, grads, beta1: float = 0.9, weight_decay: float = 0.0) -> None:
        super().__init__(params, grads, weight_decay)
        self.beta1, self.beta2 = beta1, ADAM_BETA2
        self.m = np.zeros_like(self.p)
        self.v = np.zeros_like(self.p)
        self.t = 0

    def step(self, lr: float) -> None:
        self.t += 1
        # Bias corrections fold into two scalars instead of two more passes over each array.
        step_size = lr / (1 - self.beta1**self.t)
        v_scale = 1 / (1 - self.beta2**self.t)
        g, m, v, tmp = self.g, self.m, self.v, self.scratch
        self.decay(lr)
        m *= self.beta1
        np.multiply(g, 1 - self.beta1, out=tmp)
        m += tmp
        v *= self.beta2
        np.multiply(g, g, out=tmp)
        tmp *= 1 - self.beta2
        v += tmp
        np.multiply(v, v_scale, out=tmp)  # v̂
        np.sqrt(tmp, out=tmp)
        tmp += ADAM_EPS
        np.divide(m, tmp, out=tmp)
        tmp *= step_size
        self.p -= tmp


def make_optimizer(name: str, params, grads, momentum: float, weight_decay: float) -> Optimizer:
    """The optimizer called ``name``: ``sgd``, ``momentum`` or ``adam`` (``momentum`` is β1)."""
    if name == "sgd":
        return SGD(params, grads, 0.0, weight_decay)
    if name == "momentum":
        return SGD(params, grads, momentum, weight_decay)
    if name == "adam":
        return Adam(params, grads, momentum, weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; expected 'sgd', 'momentum' or 'adam'")

"""Parameter updates (SGD, momentum, Adam) and learning-rate schedules, all in place.

Each optimizer holds references to the parameter and gradient arrays and updates the
parameters in place with preallocated scratch buffers, so a training step allocates nothing.
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
    """Shared set-up: parameter/gradient pairs, which of them decay, one scratch each."""

    def __init__(
        self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray], weight_decay: float
    ) -> None:
        self.names = list(params)
        self.params, self.grads = params, grads
        self.weight_decay = weight_decay
        self.decays = {name: params[name].ndim > 1 for name in self.names}  # weights, not biases
        self.scratch = {name: np.empty_like(params[name]) for name in self.names}

    def step(self, lr: float) -> None:
        raise NotImplementedError

    def decay(self, name: str, lr: float) -> None:
        """Shrink weight matrix ``name`` by ``1 - lr * weight_decay`` (biases are left alone)."""
        if self.weight_decay and self.decays[name]:
            self.params[name] *= 1 - lr * self.weight_decay


class SGD(Optimizer):
    """``p -= lr * g``; with ``momentum`` μ > 0, heavy-ball: ``v = μ v + g; p -= lr * v``."""

    def __init__(self, params, grads, momentum: float = 0.0, weight_decay: float = 0.0) -> None:
        super().__init__(params, grads, weight_decay)
        self.momentum = momentum
        self.velocity = {n: np.zeros_like(p) for n, p in params.items()} if momentum else None

    def step(self, lr: float) -> None:
        for name in self.names:
            p, g, tmp = self.params[name], self.grads[name], self.scratch[name]
            self.decay(name, lr)
            if self.velocity is not None:
                v = self.velocity[name]
                v *= self.momentum
                v += g
                g = v
            np.multiply(g, lr, out=tmp)
            p -= tmp


class Adam(Optimizer):
    """Adam with bias correction (with weight decay: AdamW)."""

    def __init__(self, params, grads, beta1: float = 0.9, weight_decay: float = 0.0) -> None:
        super().__init__(params, grads, weight_decay)
        self.beta1, self.beta2 = beta1, ADAM_BETA2
        self.m = {n: np.zeros_like(p) for n, p in params.items()}
        self.v = {n: np.zeros_like(p) for n, p in params.items()}
        self.t = 0

    def step(self, lr: float) -> None:
        self.t += 1
        # Bias corrections fold into two scalars instead of two more passes over each array.
        step_size = lr / (1 - self.beta1**self.t)
        v_scale = 1 / (1 - self.beta2**self.t)
        for name in self.names:
            p, g, tmp = self.params[name], self.grads[name], self.scratch[name]
            m, v = self.m[name], self.v[name]
            self.decay(name, lr)
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
            p -= tmp


def make_optimizer(name: str, params, grads, momentum: float, weight_decay: float) -> Optimizer:
    """The optimizer called ``name``: ``sgd``, ``momentum`` or ``adam`` (``momentum`` is β1)."""
    if name == "sgd":
        return SGD(params, grads, 0.0, weight_decay)
    if name == "momentum":
        return SGD(params, grads, momentum, weight_decay)
    if name == "adam":
        return Adam(params, grads, momentum, weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; expected 'sgd', 'momentum' or 'adam'")

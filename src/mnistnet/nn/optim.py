"""Update rules (SGD, momentum, Adam) and learning-rate schedules.

Each optimizer updates a dict of parameters in place from a dict of gradients of the same
shapes, one parameter at a time, as its formula reads. Weight decay is decoupled from the
gradient (as in AdamW and SGDW): every update first shrinks the weight matrices, never the
biases, by the factor ``1 - lr * weight_decay``. For plain SGD that is exactly an L2 penalty;
for momentum and Adam it keeps the decay out of the running averages.

Every ``FLUSH_EVERY`` steps, values too small to matter are set to exactly 0. A weight whose
gradient stays 0 (a pixel no image inks, a unit that never fires) has a velocity that shrinks
by μ every step into the subnormal floats below 1e-38, which CPUs compute with up to 100×
slower; and 0.9 × the smallest of them rounds back to itself, so they never leave.
"""

from __future__ import annotations

import math

import numpy as np

ADAM_BETA2 = 0.999  # second-moment decay; the standard value, rarely worth tuning
ADAM_EPS = 1e-8  # keeps the step finite where the second moment is ~0
# Steps between flushes. A value above the threshold (2^FLUSH_EVERY × the smallest normal
# float) that at most halves each step stays normal until the next flush; one shrinking
# faster passes through the subnormals to 0 within a few steps.
FLUSH_EVERY = 32


def learning_rate(schedule: str, base_lr: float, step: int, total_steps: int) -> float:
    """Learning rate for update ``step`` (0-based) of ``total_steps``.

    1. ``constant``: ``base_lr`` throughout.
    2. ``cosine``: from ``base_lr`` down to 0 along half a cosine, so early steps explore
       and the last ones settle into a minimum.
    """
    if schedule == "cosine":
        return base_lr * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))
    return base_lr


def flush_tiny(a: np.ndarray) -> None:
    """Set the entries of ``a`` below 2^FLUSH_EVERY × the smallest normal float to exactly 0
    (for float32, below 5e-29: far below anything that moves a weight)."""
    a[np.abs(a) < np.finfo(a.dtype).tiny * 2.0**FLUSH_EVERY] = 0


class Optimizer:
    """What every rule shares: decoupled weight decay, the step count, the flush."""

    def __init__(self, params: dict[str, np.ndarray], weight_decay: float) -> None:
        self.weight_decay = weight_decay
        self.t = 0  # updates so far
        self.state: list[np.ndarray] = []  # running averages, flushed with the parameters

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray], lr: float):
        self.t += 1
        for name, p in params.items():
            if p.ndim > 1 and self.weight_decay:
                p *= 1 - lr * self.weight_decay  # weight matrices only, not biases
            self.update(name, p, grads[name], lr)
        if self.t % FLUSH_EVERY == 0:
            for a in (*params.values(), *self.state):
                flush_tiny(a)

    def update(self, name: str, p: np.ndarray, g: np.ndarray, lr: float) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """``p ← p − lr·g``."""

    def update(self, name, p, g, lr):
        p -= lr * g


class Momentum(Optimizer):
    """Heavy ball: ``v ← μ·v + g``, ``p ← p − lr·v``."""

    def __init__(self, params, momentum: float, weight_decay: float) -> None:
        super().__init__(params, weight_decay)
        self.momentum = momentum
        self.velocity = {name: np.zeros_like(p) for name, p in params.items()}
        self.state = list(self.velocity.values())

    def update(self, name, p, g, lr):
        v = self.velocity[name]
        v *= self.momentum
        v += g
        p -= lr * v


class Adam(Optimizer):
    """``m ← β1·m + (1 − β1)·g``, ``v ← β2·v + (1 − β2)·g²``, and with the bias-corrected
    ``m̂ = m / (1 − β1^t)``, ``v̂ = v / (1 − β2^t)``: ``p ← p − lr·m̂ / (√v̂ + ε)``."""

    def __init__(self, params, beta1: float, weight_decay: float) -> None:
        super().__init__(params, weight_decay)
        self.beta1, self.beta2 = beta1, ADAM_BETA2
        self.m = {name: np.zeros_like(p) for name, p in params.items()}
        self.v = {name: np.zeros_like(p) for name, p in params.items()}
        self.state = [*self.m.values(), *self.v.values()]

    def update(self, name, p, g, lr):
        m, v = self.m[name], self.v[name]
        m *= self.beta1
        m += (1 - self.beta1) * g
        v *= self.beta2
        v += (1 - self.beta2) * g * g
        m_hat = m / (1 - self.beta1**self.t)
        v_hat = v / (1 - self.beta2**self.t)
        p -= lr * m_hat / (np.sqrt(v_hat) + ADAM_EPS)


def make_optimizer(
    name: str, params, momentum: float = 0.9, beta1: float = 0.9, weight_decay: float = 0.0
) -> Optimizer:
    """The optimizer called ``name``: ``sgd``, ``momentum`` or ``adam``."""
    if name == "sgd":
        return SGD(params, weight_decay)
    if name == "momentum":
        return Momentum(params, momentum, weight_decay)
    return Adam(params, beta1, weight_decay)

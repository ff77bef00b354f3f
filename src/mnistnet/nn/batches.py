"""What training shows the network: shuffled mini-batches, augmented afresh every epoch.

``Batches`` gathers each batch into one reused buffer. Augmented, every epoch shows each image
as itself or as one of its distorted copies (the augment stage's pool), moved by a whole
number of pixels in ±``shift`` per axis; ``draw`` picks both from the augmentation stream.
The move is a 28×28 window of a batch-sized canvas padded with ``shift`` zeros all round, so
it costs one small copy per batch and no second copy of the pool.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from mnistnet.data.mnist import PIXELS, SHAPE, SIDE
from mnistnet.data.preprocess import to_uint8


class Batches:
    """Mini-batches of X (n, d) and labels (n,) in a given order, in reused buffers."""

    def __init__(
        self,
        X: np.ndarray,
        labels: np.ndarray,
        batch: int,
        pool: np.ndarray | None = None,
        shift: int = 0,
    ) -> None:
        n = len(X)
        self.X, self.labels, self.batch = X, labels, batch
        self.Xb = np.empty((batch, X.shape[1]), X.dtype)  # (batch, d)
        self.yb = np.empty(batch, labels.dtype)
        self.copies = 0 if pool is None else len(pool)
        self.shift = shift
        self.augmented = bool(self.copies or shift)
        if self.augmented:
            if pool is not None and pool.shape[1:] != (n, PIXELS):
                raise ValueError(f"pool {pool.shape} does not hold copies of x {X.shape}")
            self.originals = to_uint8(X)  # (n, d) uint8: version 0 of every image
            self.pool = pool  # (copies, n, d) uint8, versions 1…copies; not copied
            side = SIDE + 2 * shift
            self.canvas = np.zeros((batch, side, side), np.uint8)  # the border stays 0
            # (batch, 2 shift + 1, 2 shift + 1, 28, 28): [i, dy, dx] is a window of image i
            self.windows = np.lib.stride_tricks.sliding_window_view(self.canvas, SHAPE, axis=(1, 2))

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray | None:
        """Per image, what this epoch shows: int (3, n) of (version, dy, dx), or None when
        unaugmented.

        Draws from ``rng`` which version of each image to show (0: the original, k: copy k)
        and its translation, uniform in ±``shift`` pixels per axis (``dy = shift``: none).
        """
        if not self.augmented:
            return None
        where = np.zeros((3, n), np.intp)
        if self.copies:
            where[0] = rng.integers(0, self.copies + 1, n)
        if self.shift:
            where[1:] = rng.integers(0, 2 * self.shift + 1, (2, n))
        return where

    def epoch(
        self, order: np.ndarray | None, where: np.ndarray | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (X (m, d), labels (m,)) batches; ``order=None`` yields the whole set, uncopied.

        ``where`` (3, n) from ``draw``: the version and window each image is read from.
        """
        if order is None and where is None:
            yield self.X, self.labels
            return
        order = np.arange(len(self.X)) if order is None else order
        for first in range(0, len(order), self.batch):
            idx = order[first : first + self.batch]
            m = len(idx)
            if where is None:
                # mode="clip": the default "raise" buffers the output, doubling the copy
                np.take(self.X, idx, axis=0, out=self.Xb[:m], mode="clip")
            else:
                images = self._versions(idx, where[0, idx])  # uint8 (m, d)
                s = self.shift
                self.canvas[:m, s : s + SIDE, s : s + SIDE] = images.reshape(m, *SHAPE)
                shown = self.windows[np.arange(m), where[1, idx], where[2, idx]]  # a copy
                np.divide(shown.reshape(m, -1), np.float32(255), out=self.Xb[:m])  # as normalize
            np.take(self.labels, idx, out=self.yb[:m], mode="clip")
            yield self.Xb[:m], self.yb[:m]

    def _versions(self, idx: np.ndarray, version: np.ndarray) -> np.ndarray:
        """uint8 (m, d): image ``idx[i]`` as its ``version[i]`` (0: the original)."""
        images = self.originals[idx]
        copied = np.flatnonzero(version)
        if len(copied):
            images[copied] = self.pool[version[copied] - 1, idx[copied]]
        return images


def epoch_views(
    x: np.ndarray, labels: np.ndarray, pool: np.ndarray | None, shift: int, epochs: int
) -> np.ndarray:
    """Images x (m, d) as ``Batches`` shows them in ``epochs`` successive epochs: float
    (m, epochs, d). Drawn with a fixed seed: a picture of what training sees, not a replay."""
    batches = Batches(x, labels, len(x), pool, shift)
    rng = np.random.default_rng(0)
    order = np.arange(len(x))
    views = [next(batches.epoch(order, batches.draw(rng, len(x))))[0].copy() for _ in range(epochs)]
    return np.stack(views, axis=1)  # (m, epochs, d)

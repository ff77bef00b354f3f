"""What training shows the network: shuffled mini-batches, augmented afresh every epoch.

Augmented, every epoch shows each image as itself or as one of its distorted copies (the
augment stage's pool), moved by a whole number of pixels in ±``shift`` per axis; ``draw``
picks both from the augmentation stream. A move is a 28×28 window of the image padded with
``shift`` zeros all round, so a batch of moved images costs one gather, like an unmoved one.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np


class Batches:
    """Mini-batches of square images x (n, d) and labels (n,), in a given order."""

    def __init__(
        self,
        x: np.ndarray,
        labels: np.ndarray,
        batch: int,
        pool: np.ndarray | None = None,
        shift: int = 0,
    ) -> None:
        self.x, self.labels, self.batch, self.shift = x, labels, batch, shift
        self.shape = (math.isqrt(x.shape[1]),) * 2  # (28, 28): each row an image
        self.buffer = np.empty((batch, x.shape[1]), x.dtype)  # unshifted batches, reused
        self.pool = pool  # uint8 (copies, n, d): versions 1…copies of every image
        self.copies = 0 if pool is None else len(pool)
        self.augmented = bool(self.copies or shift)
        if self.augmented:  # (n, 2 shift + 1, 2 shift + 1, 28, 28)
            self.windows = moved_views(x.reshape(len(x), *self.shape), shift)

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray | None:
        """Per image, what this epoch shows: int (3, n) of (version, dy, dx), or None when
        unaugmented.

        Draws from ``rng`` which version of each image to show (0: the original, k: copy k)
        and its move, uniform in ±``shift`` pixels per axis (``dy = shift``: none).
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
        An unshifted batch is written into one reused buffer: use it before the next.

        ``where`` (3, n) from ``draw``: the version and move of each image.
        """
        if order is None and where is None:
            yield self.x, self.labels
            return
        order = np.arange(len(self.x)) if order is None else order
        for first in range(0, len(order), self.batch):
            idx = order[first : first + self.batch]
            if where is None:  # mode="clip": the default "raise" buffers, copying twice
                X = np.take(self.x, idx, axis=0, out=self.buffer[: len(idx)], mode="clip")
            else:
                X = self.windows[idx, where[1, idx], where[2, idx]]  # (m, 28, 28)
                copied = np.flatnonzero(where[0, idx])
                if len(copied):
                    X[copied] = self.from_pool(idx[copied], where[:, idx[copied]])
                X = X.reshape(len(idx), -1)
            yield X, self.labels[idx]

    def from_pool(self, idx: np.ndarray, where: np.ndarray) -> np.ndarray:
        """Images ``idx`` (c,) as their copies ``where[0]``, moved by ``where[1:]``: (c, 28, 28)."""
        copies = self.pool[where[0] - 1, idx]  # (c, 784) uint8: scaled as preprocess scales
        images = (copies.astype(np.float32) / np.float32(255)).astype(self.x.dtype, copy=False)
        views = moved_views(images.reshape(len(idx), *self.shape), self.shift)
        return views[np.arange(len(idx)), where[1], where[2]]


def moved_views(images: np.ndarray, shift: int) -> np.ndarray:
    """Every move of images (n, 28, 28) by up to ``shift`` pixels, as a view of one padded
    copy: (n, 2 shift + 1, 2 shift + 1, 28, 28), ``[i, dy, dx]`` is image i moved down by
    ``shift - dy`` and right by ``shift - dx`` pixels over a zero border."""
    n, rows, cols = images.shape
    padded = np.zeros((n, rows + 2 * shift, cols + 2 * shift), images.dtype)
    padded[:, shift : shift + rows, shift : shift + cols] = images
    return np.lib.stride_tricks.sliding_window_view(padded, (rows, cols), axis=(1, 2))

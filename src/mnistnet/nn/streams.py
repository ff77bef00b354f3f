"""One random generator per purpose, all spawned from one seed.

Training draws three kinds of random numbers: the initial weights, each epoch's shuffle, and
each epoch's augmentation (which version of an image, moved how far). With one shared
generator, switching augmentation on would also change every later shuffle, and an A/B of two
augmentation settings would differ in more than the one knob. ``Streams.from_seed`` gives each
purpose its own generator (``SeedSequence.spawn``), so a change touches only what it says.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Streams:
    init: np.random.Generator  # the initial weights
    shuffle: np.random.Generator  # each epoch's order of the training images
    augment: np.random.Generator  # each epoch's version and shift of every image

    @classmethod
    def from_seed(cls, seed: int) -> Streams:
        # spawn(3)[i] is the same generator as spawn(i + 1)[i]: adding a purpose at the
        # end would leave these three as they are
        init, shuffle, augment = np.random.SeedSequence(seed).spawn(3)
        return cls(*(np.random.default_rng(s) for s in (init, shuffle, augment)))

"""Batches: the exact preprocessed values, copies and shifts as drawn, and what epochs show."""

import numpy as np
import pytest

from mnistnet.data.augment import AugmentConfig, make_pool
from mnistnet.data.preprocess import normalize
from mnistnet.evaluation.plots import epoch_views
from mnistnet.nn.batches import Batches


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batches_show_the_originals_and_copies_with_the_exact_preprocessed_values(tiny, dtype):
    x = normalize(tiny["x_train"]).astype(dtype)
    labels, n = tiny["y_train"], len(x)
    pool = make_pool(x, AugmentConfig(copies=2))
    batches = Batches(x, labels, 32, pool)
    order = np.arange(n)
    itself = np.zeros((3, n), np.intp)  # version 0, no shift
    xb, yb = next(batches.epoch(order, itself))
    assert xb.dtype == dtype and np.array_equal(xb, x[:32]) and np.array_equal(yb, labels[:32])
    copy2 = itself + [[2], [0], [0]]  # every image as its copy 2
    xb, _ = next(batches.epoch(order, copy2))
    assert np.array_equal(xb, normalize(pool[1, :32].reshape(-1, 28, 28)))
    mixed = itself.copy()
    mixed[0, 1::2] = 1  # odd images as copy 1, even ones as themselves
    xb, _ = next(batches.epoch(order, mixed))
    assert np.array_equal(xb[0::2], x[0:32:2])
    assert np.array_equal(xb[1::2], normalize(pool[0, 1:32:2]))


def test_per_epoch_shifts_move_the_window_over_a_zero_border(tiny):
    x = normalize(tiny["x_train"])
    n = len(x)
    batches = Batches(x, tiny["y_train"], 16, None, shift=2)
    centred = np.stack([np.zeros(n, int), np.full(n, 2), np.full(n, 2)])  # dy = dx = shift
    xb, _ = next(batches.epoch(np.arange(n), centred))
    assert np.array_equal(xb, x[:16])
    xb, _ = next(batches.epoch(np.arange(n), centred + [[0], [1], [-2]]))  # 1 lower, 2 left
    moved = np.zeros((16, 28, 28), np.float32)
    moved[:, :-1, 2:] = x[:16].reshape(-1, 28, 28)[:, 1:, :-2]  # up 1 row, right 2 columns
    assert np.array_equal(xb.reshape(-1, 28, 28), moved)
    version, dy, dx = batches.draw(np.random.default_rng(0), n)
    assert (version == 0).all()  # no copies: always the original
    assert set(np.unique(dy)) == set(range(5)) == set(np.unique(dx))


def test_a_batch_never_shows_the_previous_batch_through_the_border(tiny):
    """The padded canvas is reused: its border must stay zero after a shifted batch."""
    x = normalize(tiny["x_train"])
    n = len(x)
    batches = Batches(x, tiny["y_train"], 8, None, shift=1)
    order = np.arange(n)
    far = np.zeros((3, n), np.intp)  # window (0, 0): the image moved 1 px down and right
    first, second = [xb.copy() for xb, _ in batches.epoch(order, far)][:2]  # buffers are reused
    expected = np.zeros((8, 28, 28), np.float32)
    expected[:, 1:, 1:] = x[8:16].reshape(-1, 28, 28)[:, :-1, :-1]
    assert np.array_equal(second.reshape(-1, 28, 28), expected)


def test_epoch_views_show_what_each_epoch_draws(tiny):
    x, labels = normalize(tiny["x_train"][:6]), tiny["y_train"][:6]
    still = epoch_views(x, labels, None, 0, epochs=4)
    assert still.shape == (6, 4, 784) and all(np.array_equal(still[:, e], x) for e in range(4))
    moving = epoch_views(x, labels, make_pool(x, AugmentConfig(copies=2)), 1, epochs=4)
    assert not np.array_equal(moving[:, 0], moving[:, 1])  # each epoch draws anew

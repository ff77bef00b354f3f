"""Distortions: exact geometry, pixel range, determinism, and training on the pool."""

import numpy as np
import pytest

from mnistnet.augment import (
    AugmentConfig,
    distort,
    elastic_fields,
    gaussian_matrix,
    make_pool,
    to_uint8,
    warp,
)
from mnistnet.config import ConfigError, from_mapping
from mnistnet.preprocess import PreprocessConfig, normalize, preprocess
from mnistnet.train import Batches, TrainConfig, train


@pytest.fixture(scope="module")
def images(tiny):
    return tiny["x_train"][:50]  # uint8 (50, 28, 28)


def still(n, angle=0.0, zoom=1.0, shift=(0.0, 0.0)):
    return np.full(n, angle), np.full(n, zoom), np.tile(np.array(shift, float), (n, 1))


def test_no_warp_is_the_identity(images):
    assert np.array_equal(warp(images, *still(len(images))), images)


def test_a_one_pixel_translation_moves_each_pixel_by_one():
    image = np.zeros((1, 28, 28), np.uint8)
    image[0, 10, 12] = 200
    down = warp(image, *still(1, shift=(1, 0)))
    right = warp(image, *still(1, shift=(0, -1)))  # negative: to the left
    assert down[0, 11, 12] == 200 and down.sum() == 200
    assert right[0, 10, 11] == 200 and right.sum() == 200


def test_a_shift_off_the_edge_brings_in_zeros(images):
    moved = warp(images, *still(len(images), shift=(3, 0)))
    assert (moved[:, :3] == 0).all()
    assert np.array_equal(moved[:, 3:], images[:, :-3])


def test_a_quarter_turn_rotates_the_array_exactly(images):
    turned = warp(images, *still(len(images), angle=np.pi / 2))
    assert np.array_equal(turned, np.rot90(images, k=-1, axes=(1, 2)))  # clockwise on screen


def test_zoom_enlarges_about_the_centre():
    image = np.zeros((1, 28, 28), np.uint8)
    image[0, 11:17, 11:17] = 255  # a 6×6 square around the centre
    big = warp(image, *still(1, zoom=2.0))
    ink = np.argwhere(big[0] > 127)
    assert ink.min(0).tolist() == [8, 8] and ink.max(0).tolist() == [19, 19]


def test_gaussian_smoothing_matrix_matches_a_direct_convolution():
    sigma = 3.0
    G = gaussian_matrix(sigma)
    signal = np.random.default_rng(0).uniform(-1, 1, 28)
    taps = np.arange(-40, 41)
    kernel = np.exp(-0.5 * (taps / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))
    direct = np.convolve(signal, kernel, mode="full")[40:-40]  # zero outside the line
    np.testing.assert_allclose(G @ signal, direct, rtol=1e-5, atol=1e-6)


def test_elastic_fields_scale_with_alpha_and_are_smooth():
    rng = np.random.default_rng(0)
    small = elastic_fields(rng, 200, 10, 4)
    large = elastic_fields(np.random.default_rng(0), 200, 20, 4)
    np.testing.assert_allclose(large, 2 * small, rtol=1e-6)
    neighbours = np.abs(np.diff(small, axis=-1)).mean()
    assert neighbours < 0.2 * np.abs(small).mean()  # smooth: neighbours nearly agree


def test_distortions_keep_pixels_in_range_and_labels_free(images):
    cfg = AugmentConfig(copies=1, shift=3, rotate=30, scale=0.2, elastic_alpha=40)
    out = distort(images, cfg, np.random.default_rng(0))
    assert out.dtype == np.uint8 and out.shape == images.shape
    assert not np.array_equal(out, images)
    x = normalize(out)
    assert x.min() >= 0 and x.max() <= 1


def test_strength_zero_is_the_identity(images):
    cfg = AugmentConfig(copies=1, shift=0, rotate=0, scale=0, elastic_alpha=0)
    assert np.array_equal(distort(images, cfg, np.random.default_rng(5)), images)


def test_the_pool_is_deterministic_under_its_seed(images):
    x = normalize(images)
    cfg = AugmentConfig(copies=3, elastic_alpha=20)
    pool = make_pool(x, cfg)
    assert pool.shape == (3, 50, 784) and pool.dtype == np.uint8
    assert np.array_equal(pool, make_pool(x, cfg))
    assert not np.array_equal(pool, make_pool(x, cfg.model_copy(update={"seed": 1})))
    assert not np.array_equal(pool[0], pool[1])  # each copy is its own draw


def test_to_uint8_undoes_normalize_exactly(tiny):
    x = normalize(tiny["x_train"])
    assert np.array_equal(to_uint8(x).reshape(tiny["x_train"].shape), tiny["x_train"])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batches_show_the_originals_with_the_exact_preprocessed_values(tiny, dtype):
    x = normalize(tiny["x_train"]).astype(dtype)
    labels, n = tiny["y_train"], len(x)
    pool = make_pool(x, AugmentConfig(copies=2))
    batches = Batches(x, labels, 32, pool)
    order = np.arange(n)
    itself = np.stack([np.arange(n), np.zeros(n, int), np.zeros(n, int)])
    xb, yb = next(batches.epoch(order, itself))
    assert xb.dtype == dtype and np.array_equal(xb, x[:32]) and np.array_equal(yb, labels[:32])
    copy2 = itself + [[2 * n], [0], [0]]  # every image as its copy 2
    xb, _ = next(batches.epoch(order, copy2))
    assert np.array_equal(xb, normalize(pool[1, :32].reshape(-1, 28, 28)))


def test_per_epoch_shifts_move_the_window_over_the_padded_image(tiny):
    x = normalize(tiny["x_train"])
    n = len(x)
    batches = Batches(x, tiny["y_train"], 16, None, shift=2)
    centred = np.stack([np.arange(n), np.full(n, 2), np.full(n, 2)])  # dy = dx = shift
    xb, _ = next(batches.epoch(np.arange(n), centred))
    assert np.array_equal(xb, x[:16])
    xb, _ = next(batches.epoch(np.arange(n), centred + [[0], [1], [0]]))  # one row lower
    up = np.zeros((16, 28, 28), np.float32)
    up[:, :-1] = x[:16].reshape(-1, 28, 28)[:, 1:]  # the digit moves up by one row
    assert np.array_equal(xb.reshape(-1, 28, 28), up)
    rows, dy, dx = batches.draw(np.random.default_rng(0), n)
    assert np.array_equal(rows, np.arange(n))  # no copies: always the original
    assert set(np.unique(dy)) == set(range(5)) == set(np.unique(dx))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"copies": -1}, "augment.copies: got -1"),
        ({"rotate": 120}, "augment.rotate: got 120.0; expected 0 <= rotate <= 90"),
        ({"scale": 1.0}, "augment.scale: got 1.0"),
        ({"elastic_sigma": 0}, "augment.elastic_sigma: got 0.0"),
        ({"shift": "2px"}, "augment.shift: expected a number"),
        ({"elastik_alpha": 3}, "unknown key(s) augment.elastik_alpha"),
    ],
)
def test_bad_augment_params_are_named(change, message):
    with pytest.raises(ConfigError) as e:
        from_mapping(AugmentConfig, change, "augment")
    assert message in str(e.value)


def test_training_on_the_pool_learns_and_is_reproducible(tiny):
    splits = preprocess(tiny, PreprocessConfig(val_size=40))
    x, y = splits["train"]["x"], splits["train"]["y"].argmax(1)
    xv, yv = splits["val"]["x"], splits["val"]["y"].argmax(1)
    pool = make_pool(x, AugmentConfig(copies=2, shift=1, rotate=5, scale=0.05))
    cfg = TrainConfig(hidden_size=32, epochs=6, batch_size=32, lr=0.1)
    params, history = train(cfg, x, y, xv, yv, pool=pool)
    again, _ = train(cfg, x, y, xv, yv, pool=pool)
    plain, _ = train(cfg, x, y, xv, yv)
    shifted, _ = train(cfg, x, y, xv, yv, pool=pool, shift=1)
    assert history[-1].val_accuracy >= 0.9
    assert all(params[k].tobytes() == again[k].tobytes() for k in params)
    assert params["W1"].tobytes() != plain["W1"].tobytes()  # the copies were used
    assert shifted["W1"].tobytes() != params["W1"].tobytes()  # and so were the shifts


def test_a_pool_made_from_another_split_is_refused(tmp_path, images):
    from mnistnet.augment import load_pool, save_pool
    from mnistnet.storage import DataError

    cfg = AugmentConfig(copies=1)
    made_from = {"seed": 0, "split": "train", "val_size": 40}
    save_pool(tmp_path / "pool.npz", make_pool(normalize(images), cfg), cfg, made_from)
    pool, meta = load_pool(tmp_path / "pool.npz", len(images), made_from)
    assert pool.shape == (1, 50, 784) and meta["augment"]["copies"] == 1
    with pytest.raises(DataError, match="preprocessed as .*Rerun the augment stage"):
        load_pool(tmp_path / "pool.npz", len(images), {**made_from, "seed": 1})


def test_epoch_views_show_what_each_epoch_draws(tiny):
    from mnistnet.train import epoch_views

    x, labels = normalize(tiny["x_train"][:6]), tiny["y_train"][:6]
    still = epoch_views(x, labels, None, 0, epochs=4)
    assert still.shape == (6, 4, 784) and all(np.array_equal(still[:, e], x) for e in range(4))
    moving = epoch_views(x, labels, make_pool(x, AugmentConfig(copies=2)), 1, epochs=4)
    assert not np.array_equal(moving[:, 0], moving[:, 1])  # each epoch draws anew

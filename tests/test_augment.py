"""Distortions: exact geometry against a plain reference, pixel range, determinism that no
memory or thread setting changes, and training on the pool."""

import math

import numpy as np
import pytest

from mnistnet.data.augment import (
    AugmentConfig,
    distort,
    elastic_fields,
    gaussian_matrix,
    make_pool,
    warp,
)
from mnistnet.data.preprocess import PreprocessConfig, normalize, preprocess
from mnistnet.nn.config import TrainConfig
from mnistnet.nn.train import train


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


def reference_warp(image, angle, zoom, shift, displacement=None):
    """The warp written pixel by pixel from its definition: independent of ``warp``'s
    vectorised indexing and clipping."""
    centre = 13.5
    out = np.zeros((28, 28))
    for i in range(28):
        for j in range(28):
            y, x = i - centre - shift[0], j - centre - shift[1]
            r = centre + (math.cos(angle) * y - math.sin(angle) * x) / zoom
            c = centre + (math.sin(angle) * y + math.cos(angle) * x) / zoom
            if displacement is not None:
                r, c = r + displacement[0, i, j], c + displacement[1, i, j]
            r0, c0 = math.floor(r), math.floor(c)
            value = 0.0
            for rr, wr in ((r0, 1 - (r - r0)), (r0 + 1, r - r0)):
                for cc, wc in ((c0, 1 - (c - c0)), (c0 + 1, c - c0)):
                    if 0 <= rr < 28 and 0 <= cc < 28:  # outside the image: 0
                        value += wr * wc * image[rr, cc]
            out[i, j] = value
    return out


@pytest.mark.parametrize(
    ("angle", "shift"),
    [(0.0, (2.5, -2.5)), (0.0, (-3.25, 1.75)), (np.pi / 6, (0.0, 0.0)), (np.pi / 6, (2.5, 1.5))],
    ids=["shift-2.5", "shift-3.25", "rotate-30", "rotate-30-shift-2.5"],
)
def test_warp_matches_the_pixel_by_pixel_definition(angle, shift):
    image = np.full((1, 28, 28), 255, np.uint8)  # all ink: any leak past the edge shows
    image[0, 5:20, 7:15] = np.arange(15 * 8).reshape(15, 8)
    got = warp(image, np.array([angle]), np.array([1.0]), np.array([shift]))[0]
    expected = reference_warp(image[0].astype(float), angle, 1.0, shift)
    assert np.abs(got.astype(int) - np.rint(expected)).max() <= 1  # float32 vs float64 rounding
    assert np.array_equal(got == 0, np.rint(expected) == 0)  # zero exactly where outside


def test_a_fractional_shift_beyond_one_pixel_leaks_no_edge_row():
    """r = -2.5 lies wholly outside the image: it must read 0, not half of row 0."""
    image = np.full((1, 28, 28), 255, np.uint8)
    moved = warp(image, np.zeros(1), np.ones(1), np.array([[2.5, 0.0]]))[0]
    assert (moved[:2] == 0).all()  # rows 0, 1 sample at r = -2.5, -1.5: outside
    assert (moved[2] == 128).all()  # r = -0.5: half of row 0
    assert (moved[3:] == 255).all()


def test_elastic_warp_matches_the_pixel_by_pixel_definition():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (1, 28, 28), dtype=np.uint8)
    field = elastic_fields(rng, 1, alpha=30, sigma=4)
    got = warp(image, np.array([0.2]), np.array([1.1]), np.array([[1.5, -0.5]]), field)[0]
    expected = reference_warp(image[0].astype(float), 0.2, 1.1, (1.5, -0.5), field[0])
    assert np.abs(got.astype(int) - np.rint(expected)).max() <= 1


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
    cfg = AugmentConfig(copies=1, translate=3, rotate=30, scale=0.2, elastic_alpha=40)
    out = distort(images, cfg, np.random.default_rng(0))
    assert out.dtype == np.uint8 and out.shape == images.shape
    assert not np.array_equal(out, images)
    x = normalize(out)
    assert x.min() >= 0 and x.max() <= 1


def test_strength_zero_is_the_identity(images):
    cfg = AugmentConfig(copies=1, translate=0, rotate=0, scale=0, elastic_alpha=0)
    assert np.array_equal(distort(images, cfg, np.random.default_rng(5)), images)


def test_the_pool_is_deterministic_under_its_seed(images):
    x = normalize(images)
    cfg = AugmentConfig(copies=3, elastic_alpha=20)
    pool = make_pool(x, cfg)
    assert pool.shape == (3, 50, 784) and pool.dtype == np.uint8
    assert np.array_equal(pool, make_pool(x, cfg))
    assert not np.array_equal(pool, make_pool(x, cfg.model_copy(update={"seed": 1})))
    assert not np.array_equal(pool[0], pool[1])  # each copy is its own draw


@pytest.mark.parametrize("elastic_alpha", [0.0, 20.0])
def test_the_pool_does_not_depend_on_chunk_size_or_threads(images, elastic_alpha):
    x = normalize(images)
    cfg = AugmentConfig(copies=2, elastic_alpha=elastic_alpha)
    reference = make_pool(x, cfg, chunk=4096, threads=1)
    for chunk, threads in [(7, 1), (7, 3), (16, 2), (49, 4)]:
        assert np.array_equal(make_pool(x, cfg, chunk=chunk, threads=threads), reference)


def test_copy_k_is_the_same_whatever_the_number_of_copies(images):
    x = normalize(images)
    two = make_pool(x, AugmentConfig(copies=2, elastic_alpha=10))
    five = make_pool(x, AugmentConfig(copies=5, elastic_alpha=10))
    assert np.array_equal(five[:2], two)


def test_training_on_the_pool_learns_and_is_reproducible(tiny):
    splits = preprocess(tiny, PreprocessConfig(val_size=40))
    x, y = splits["train"]["x"], splits["train"]["y"].argmax(1)
    xv, yv = splits["val"]["x"], splits["val"]["y"].argmax(1)
    pool = make_pool(x, AugmentConfig(copies=2, translate=1, rotate=5, scale=0.05))
    cfg = TrainConfig(hidden_size=32, epochs=6, batch_size=32, lr=0.1, shift=0)
    params, history = train(cfg, x, y, xv, yv, pool=pool)
    again, _ = train(cfg, x, y, xv, yv, pool=pool)
    plain, _ = train(cfg, x, y, xv, yv)
    shifted, _ = train(cfg.model_copy(update={"shift": 1}), x, y, xv, yv, pool=pool)
    assert history[-1].val_accuracy >= 0.9
    assert all(params[k].tobytes() == again[k].tobytes() for k in params)
    assert params["W1"].tobytes() != plain["W1"].tobytes()  # the copies were used
    assert shifted["W1"].tobytes() != params["W1"].tobytes()  # and so were the shifts


def test_the_pool_loads_as_it_was_saved(tmp_path, images):
    from mnistnet.data.augment import save_pool
    from mnistnet.data.splits import load_pool

    cfg = AugmentConfig(copies=1)
    made_from = {"seed": 0, "split": "train", "val_size": 40}
    save_pool(tmp_path / "pool.npz", make_pool(normalize(images), cfg), cfg, made_from)
    pool, meta = load_pool(tmp_path / "pool.npz")
    assert pool.shape == (1, 50, 784) and meta["augment"]["copies"] == 1

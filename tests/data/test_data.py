import socket

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffusion.analytic import GMM
from diffusion.data import (
    BUNDLED_PHOTOS,
    TILE_TYPES,
    c_alpha_images,
    deduplicate,
    digits,
    disjoint_subsets,
    disks,
    grid_mixture_2d,
    mixture_1d,
    photo_patches,
    split,
    textured_tiles,
)


def test_loaders_make_no_network_access(monkeypatch, key):
    def refuse(*args, **kwargs):
        raise AssertionError("a data loader tried to open a socket")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    d = digits(upsample=2)
    assert d.images.shape == (1797, 16, 16, 1) and d.images.dtype == np.float32
    assert d.images.min() == 0.0 and d.images.max() == 1.0 and set(np.unique(d.labels)) == set(range(10))
    patches = photo_patches(32, names=BUNDLED_PHOTOS)
    assert patches.shape[1:] == (32, 32, 1) and patches.shape[0] > 1000
    assert 0.0 <= patches.min() and patches.max() <= 1.0
    assert mixture_1d().sample(key, 5).shape == (5, 1)
    assert grid_mixture_2d().sample(key, 5).shape == (5, 2)


def test_photo_patches_layout_and_errors():
    camera = photo_patches(64, names=("camera",))
    assert camera.shape == (64, 64, 64, 1)  # the 512 × 512 camera man cut into 8 × 8 patches
    assert photo_patches(32, names=("camera",), stride=16).shape[0] == 31 * 31
    assert photo_patches(32, names=("camera",), downsample=2).shape[0] == 64
    with pytest.raises(ValueError, match="`names` must be bundled photographs"):
        photo_patches(names=("brain",))


def test_mixtures_are_exact_gmm_models(key):
    one = mixture_1d()
    assert isinstance(one, GMM)
    np.testing.assert_allclose(np.sort(np.asarray(one.means[:, 0])), [1.0, 2.0, 3.0])
    np.testing.assert_allclose(one.eigvals, 0.05**2, rtol=1e-6)
    grid = grid_mixture_2d()
    assert grid.means.shape == (25, 2)
    assert set(np.round(np.asarray(grid.means).ravel(), 6)) == {-4.0, -2.0, 0.0, 2.0, 4.0}
    x = grid.sample(key, 20_000)
    nearest = jnp.min(jnp.linalg.norm(x[:, None] - grid.means[None], axis=-1), axis=1)
    assert float(jnp.sqrt(jnp.mean(nearest**2))) == pytest.approx(0.05 * np.sqrt(2), rel=0.03)


def test_synthetic_images_shapes_ranges_and_determinism(key):
    for make in (c_alpha_images, disks):
        x = make(key, 5, size=16)
        assert x.shape == (5, 16, 16, 1) and x.dtype == jnp.float32
        assert bool(jnp.all(jnp.isfinite(x)))
        np.testing.assert_array_equal(make(key, 5, size=16), x)
        assert not np.array_equal(make(jax.random.fold_in(key, 1), 5, size=16), x)
    d = disks(key, 20, size=32)
    assert float(d.min()) >= 0.0 and float(d.max()) <= 1.0
    for bad in (0.0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="`alpha` must be a finite number > 0"):
            c_alpha_images(key, 2, alpha=bad)
    with pytest.raises(ValueError, match="`radius`"):
        disks(key, 2, radius=(0.3, 0.6))


def test_c_alpha_images_have_two_regions_with_a_sharp_contour(key):
    x = np.asarray(c_alpha_images(key, 8, size=32, alpha=1.0))[..., 0]
    jumps = np.abs(np.diff(x, axis=1))
    # most neighbouring pixels differ little (C^α inside); a few straddle the contour with a large jump
    assert np.median(jumps) < 0.05 and np.max(jumps) > 0.1


def test_textured_tiles_labels_and_type_statistics(key):
    tiles = textured_tiles(key, 600, size=32)
    assert tiles.images.shape == (600, 32, 32, 1) and tiles.labels.dtype == jnp.int32
    counts = np.bincount(np.asarray(tiles.labels), minlength=3)
    assert len(TILE_TYPES) == 3 and counts.min() > 150
    images, labels = np.asarray(tiles.images)[..., 0], np.asarray(tiles.labels)
    mean = np.array([images[labels == t].mean() for t in range(3)])
    roughness = np.array([np.abs(np.diff(images[labels == t], axis=2)).mean() for t in range(3)])
    assert mean[1] < mean[0] and mean[1] < mean[2]  # water is dark
    assert roughness[1] < roughness[0] and roughness[1] < roughness[2]  # and smooth
    only_roads = textured_tiles(key, 10, probs=(1.0, 0.0, 0.0))
    assert set(np.asarray(only_roads.labels)) == {0}


def test_disjoint_subsets_are_disjoint_and_deterministic(key):
    a, b, c = disjoint_subsets(key, 1797, (600, 600, 500))
    assert len(a) == len(b) == 600 and len(c) == 500
    assert not set(a) & set(b) and not set(a) & set(c) and not set(b) & set(c)
    again = disjoint_subsets(key, 1797, (600, 600, 500))
    for x, y in zip((a, b, c), again, strict=True):
        np.testing.assert_array_equal(x, y)
    other = disjoint_subsets(jax.random.fold_in(key, 1), 1797, (600, 600, 500))
    assert not np.array_equal(a, other[0])
    train, test = split(key, np.arange(100), (0.8, 0.2))
    assert len(train) == 80 and len(test) == 20 and not set(train) & set(test)
    with pytest.raises(ValueError, match="sum to at most n=10"):
        disjoint_subsets(key, 10, (6, 6))


def test_deduplicate_removes_near_copies(key):
    k1, k2 = jax.random.split(key)
    base = np.asarray(jax.random.normal(k1, (50, 8, 8)))
    near = 2.0 * base[:10] + 0.5 + 0.01 * np.asarray(jax.random.normal(k2, (10, 8, 8)))  # correlation ≈ 1
    flat = np.stack([np.full((8, 8), 3.0), np.full((8, 8), 3.0), np.full((8, 8), 4.0)])
    data = np.concatenate([base, near, flat])
    keep = deduplicate(data, threshold=0.95, chunk=16)
    np.testing.assert_array_equal(keep, np.r_[np.arange(50), 60, 62])
    assert len(deduplicate(base, threshold=0.95)) == 50
    with pytest.raises(ValueError, match="`threshold` must lie in"):
        deduplicate(base, threshold=1.5)

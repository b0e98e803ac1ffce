"""Empirical (memorizing) denoiser: limits in σ, exact Gaussian-KDE agreement with scipy, chunking, locality."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import gaussian_kde

from diffusion.analytic import circular_translates, empirical, local_empirical, square_masks, wiener_masks


def _points(n=30, d=3, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


def test_sigma_limits(key, x64):
    pts = _points()
    w = np.random.default_rng(1).dirichlet(np.ones(30))
    model = empirical(pts, w, chunk_size=7)
    x = jnp.asarray(pts[:5] + 0.01 * np.random.default_rng(2).normal(size=(5, 3)))
    np.testing.assert_allclose(model.denoise(x, 1e-3), pts[:5], atol=1e-12)
    np.testing.assert_allclose(model.denoise(x, 1e5), np.broadcast_to(w @ pts, (5, 3)), rtol=1e-8)


@pytest.mark.parametrize("weighted", [False, True])
def test_score_is_gaussian_kde_score(weighted, x64):
    """At σ = h, log_prob / score are scipy's gaussian_kde log-density and its derivative (d = 1)."""
    rng = np.random.default_rng(3)
    data = np.concatenate([rng.normal(-1.0, 0.5, 120), rng.normal(1.5, 0.3, 80)])
    w = rng.uniform(0.5, 1.5, data.size) if weighted else None
    w = None if w is None else w / w.sum()
    h = 0.3
    kde = gaussian_kde(data, weights=w)
    kde.set_bandwidth(h / np.sqrt(kde.covariance[0, 0] / kde.factor**2))  # kernel std = h exactly
    assert np.sqrt(kde.covariance[0, 0]) == pytest.approx(h, rel=1e-14)
    model = empirical(data[:, None], w, chunk_size=64, query_chunk=16)
    x = np.linspace(-3.0, 3.0, 13)
    np.testing.assert_allclose(model.log_prob(x[:, None], h), kde.logpdf(x), rtol=1e-12)
    eps = 1e-3  # five-point stencil: O(eps⁴) truncation, O(1e-16/eps) rounding
    deriv = (-kde.logpdf(x + 2 * eps) + 8 * kde.logpdf(x + eps) - 8 * kde.logpdf(x - eps)
             + kde.logpdf(x - 2 * eps)) / (12 * eps)
    np.testing.assert_allclose(model.score(x[:, None], h)[:, 0], deriv, rtol=1e-8, atol=1e-8)


def test_chunked_equals_unchunked(key, x64):
    pts = _points(53, 4)
    x = jax.random.normal(key, (11, 4))
    sigma = jnp.linspace(0.2, 2.0, 11)
    whole = empirical(pts, chunk_size=10_000, query_chunk=10_000)
    chunked = empirical(pts, chunk_size=8, query_chunk=3)
    all_three = jax.jit(lambda m, x, s: (m.denoise(x, s), m.score(x, s), m.log_prob(x, s)))
    for a, b in zip(all_three(chunked, x, sigma), all_three(whole, x, sigma), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(whole.denoise(x, sigma), _naive(pts, x, sigma), rtol=1e-12)


def _naive(pts, x, sigma):
    """Softmax over all points at once (numpy, float64)."""
    x, sigma = np.asarray(x), np.broadcast_to(np.asarray(sigma), np.shape(x)[:-1])
    logits = -0.5 * ((x[:, None, :] - pts) ** 2).sum(-1) / sigma[:, None] ** 2
    w = np.exp(logits - logits.max(-1, keepdims=True))
    return (w / w.sum(-1, keepdims=True)) @ pts


def test_float32_small_sigma_accuracy(key):
    """Centering keeps float32 matmul distances accurate for data far from the origin."""
    pts = _points(40, 16) + 100.0
    model = empirical(pts.astype(np.float32), chunk_size=16)
    x = jnp.asarray(pts[:4] + 0.02, jnp.float32)
    np.testing.assert_allclose(model.denoise(x, 0.05), pts[:4], atol=1e-3)


@pytest.mark.slow
def test_mnist_scale_runs_in_bounded_memory():
    """N = 60,000 × d = 784 in float32: the logits never exceed query_chunk × chunk_size."""
    pts = np.random.default_rng(0).random((60_000, 784), dtype=np.float32)
    model = empirical(pts, chunk_size=4096, query_chunk=2)
    assert model.centered.shape == (15, 4096, 784)
    out = model.denoise(pts[:2] + 0.01, 0.1)
    np.testing.assert_allclose(out, pts[:2], atol=1e-5)


def test_local_empirical_special_cases(key, x64):
    pts = _points(25, 4)
    x = np.asarray(jax.random.normal(key, (6, 4)))
    sigma = 0.6
    full = local_empirical(pts, np.ones((4, 4)), chunk_size=8, query_chunk=4)
    np.testing.assert_allclose(full.denoise(x, sigma), _naive(pts, x, sigma), rtol=1e-12)
    diag = local_empirical(pts, np.eye(4), chunk_size=8, query_chunk=4)
    per_pixel = np.stack([_naive(pts[:, j:j + 1], x[:, j:j + 1], sigma)[:, 0] for j in range(4)], -1)
    np.testing.assert_allclose(diag.denoise(x, sigma), per_pixel, rtol=1e-12)
    np.testing.assert_allclose(diag.score(x, sigma), (per_pixel - x) / sigma**2, rtol=1e-10)
    # a per-pixel softmax is the posterior mean of no single density: no log_prob or x0 sampler is offered
    assert not hasattr(diag, "log_prob") and not hasattr(diag, "sample")


def test_wiener_masks():
    assert (wiener_masks(np.diag([1.0, 2.0, 3.0]), 0.5) == np.eye(3)).all()
    # a chain of correlations: a small noise level makes the filter (and masks) local
    d = 8
    cov = 0.9 ** np.abs(np.subtract.outer(np.arange(d), np.arange(d)))
    local, wide = wiener_masks(cov, 0.05, 0.1), wiener_masks(cov, 3.0, 0.1)
    assert local.sum() < wide.sum()
    assert (np.diag(local) == 1).all() and (local == local.T).all()


def test_square_masks():
    m = square_masks((3, 4), 3)
    assert m[0].reshape(3, 4).tolist() == [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]]  # cut at the corner
    assert m[5].sum() == 9 and (m == m.T).all()
    assert (square_masks((3, 4), 1) == np.eye(12)).all()
    assert (square_masks((3, 4), 7) == 1).all()
    wrapped = square_masks((3, 4), 3, periodic=True)
    assert (wrapped.sum(1) == 9).all() and wrapped[0].reshape(3, 4)[2, 3] == 1  # the corner's torus neighbour
    with pytest.raises(ValueError, match="patch_size"):
        square_masks((3, 4), 2)


def test_square_patch_equivariant_denoiser_commutes_with_shifts(key, x64):
    """The equivariant patch denoiser (all circular translates, periodic square masks) satisfies
    D(shift(x)) = shift(D(x)) exactly; without the translates it does not."""
    shape = (4, 5)
    pts = np.asarray(jax.random.uniform(key, (6, 20)))
    x = np.asarray(jax.random.normal(jax.random.fold_in(key, 1), (3, 20)))
    masks = square_masks(shape, 3, periodic=True)
    shift = lambda v: np.roll(v.reshape(-1, *shape), (1, 2), axis=(1, 2)).reshape(-1, 20)  # noqa: E731
    model = local_empirical(circular_translates(pts, shape), masks)
    assert model.num_points == 6 * 20
    np.testing.assert_allclose(model.denoise(shift(x), 0.3), shift(np.asarray(model.denoise(x, 0.3))), atol=1e-12)
    plain = local_empirical(pts, masks)
    assert np.abs(np.asarray(plain.denoise(shift(x), 0.3)) - shift(np.asarray(plain.denoise(x, 0.3)))).max() > 1e-3

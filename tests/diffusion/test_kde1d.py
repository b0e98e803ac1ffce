"""The 1-D KDE kernel (sorted tiles, fixed shift, proven skips) against a dense float64 logsumexp."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp

from diffusion.analytic import Empirical, empirical
from diffusion.analytic._kde1d import kde_1d
from estimators.debias.correction import kde_score

pytestmark = pytest.mark.gpu


def _dense(points, weights, x, sigma):
    """log Σ w N(x; p, σ²) and the score, dense in float64 NumPy."""
    p, w = np.asarray(points, np.float64), np.asarray(weights, np.float64)
    x, sigma = np.asarray(x, np.float64), np.broadcast_to(np.asarray(sigma, np.float64), np.shape(x))
    with np.errstate(divide="ignore"):
        logits = np.log(w)[None] - 0.5 * (x[:, None] - p[None]) ** 2 / sigma[:, None] ** 2
    lse = logsumexp(logits, axis=1)
    mean = np.exp(logits - lse[:, None]) @ p
    return lse - 0.5 * np.log(2 * np.pi * sigma**2), (mean - x) / sigma**2


def _data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    pts = np.concatenate([rng.normal(-3.0, 0.4, n // 2), rng.normal(4.0, 1.0, n - n // 2)])
    w = rng.uniform(0.2, 1.0, n)
    return pts, w / w.sum(), rng


def _model(pts, w, dtype):
    # small tiles: many point tiles and query blocks, most tiles skipped at σ = 0.05
    return empirical(pts[:, None].astype(dtype), w.astype(dtype), chunk_size=16, query_chunk=8)


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-11), (np.float32, 2e-5)])
def test_equals_dense_logsumexp(dtype, rtol, x64):
    pts, w, rng = _data()
    x = np.concatenate([rng.uniform(-5.0, 8.0, 37), pts[:5]])
    sigma = rng.uniform(0.05, 1.0, x.size)
    model = _model(pts, w, dtype)
    log_prob, score = _dense(pts, w, x, sigma)
    xq, sq = jnp.asarray(x[:, None], dtype), jnp.asarray(sigma, dtype)
    np.testing.assert_allclose(model.log_prob(xq, sq), log_prob, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(model.score(xq, sq)[:, 0], score, rtol=rtol, atol=rtol * np.abs(score).max())
    np.testing.assert_allclose(model.denoise(xq, sq)[:, 0], x + sigma**2 * score, rtol=rtol, atol=rtol)


def test_skips_and_max_refinement_are_exact(x64):
    """At σ = 0.05 most tiles are skipped; with weights spanning e^60 the nearest point is far from the max logit
    and the max pass must refine it; both stay exact."""
    pts, w, rng = _data()
    x = rng.uniform(-5.0, 8.0, 40)
    centered = pts - w @ pts  # 19 tiles of 16 over [-4, 7]: at σ = 0.05 each query block keeps one or two
    steep = np.exp(np.linspace(0.0, -60.0, pts.size))
    steep /= steep.sum()
    for weights in (w, steep):
        log_norm, offset = kde_1d(jnp.asarray(centered), jnp.asarray(np.log(weights)), jnp.asarray(x - w @ pts),
                                  jnp.full(x.shape, 0.05), point_tile=16, query_block=8)
        log_prob, score = _dense(pts, weights, x, 0.05)
        np.testing.assert_allclose(log_norm - 0.5 * np.log(2 * np.pi * 0.05**2), log_prob, rtol=1e-11)
        np.testing.assert_allclose(offset / 0.05**2, score, rtol=1e-10, atol=1e-9)


def test_zero_weight_nearest_point(x64):
    pts, w, _ = _data(64)
    w = w.copy()
    w[np.argmin(np.abs(pts - 0.0))] = 0.0  # the nearest point to x = 0 carries no weight
    w /= w.sum()
    x = np.array([0.0, -3.0, 5.0])
    model = empirical(pts[:, None], w, chunk_size=8, query_chunk=2)
    log_prob, score = _dense(pts, w, x, 0.1)
    np.testing.assert_allclose(model.log_prob(x[:, None], 0.1), log_prob, rtol=1e-11)
    np.testing.assert_allclose(model.score(x[:, None], 0.1)[:, 0], score, rtol=1e-10)


def test_float32_stable_fifty_bandwidths_away():
    pts, w, _ = _data()
    h = 0.1
    x = np.array([pts.max() + 50 * h, pts.min() - 50 * h, pts.max() + 200 * h])
    model = _model(pts, w, np.float32)
    log_prob, score = _dense(pts, w, x, h)
    got_lp = np.asarray(model.log_prob(jnp.asarray(x[:, None], jnp.float32), h))
    got_score = np.asarray(model.score(jnp.asarray(x[:, None], jnp.float32), h)[:, 0])
    assert np.isfinite(got_lp).all() and np.isfinite(got_score).all()
    np.testing.assert_allclose(got_score, score, rtol=1e-5)
    np.testing.assert_allclose(got_lp, log_prob, rtol=1e-5)


def test_gradients_match_dense(x64):
    """Reverse mode through the kernel (sorting, skips, remat) equals the dense float64 derivative."""
    pts, w, rng = _data(120)
    x = jnp.asarray(rng.uniform(-4.0, 6.0, 30))

    def dense(points, weights, h):
        logits = jnp.log(weights)[None] - 0.5 * (x[:, None] - points[None]) ** 2 / h**2
        soft = jax.nn.softmax(logits, axis=1)
        return jnp.sum(jnp.sin(((soft @ points) - x) / h**2))

    def tiled(points, weights, h):  # the sorted-tile path (16-point tiles, 8-query blocks)
        model = Empirical.from_points(points[:, None], weights, chunk_size=16, query_chunk=8)
        return jnp.sum(jnp.sin(model.score(x[:, None], h)[:, 0]))

    def one_tile(points, weights, h):  # kde_score's defaults: 120 points fit one tile
        return jnp.sum(jnp.sin(kde_score(points, weights, x, h)))

    args = (jnp.asarray(pts), jnp.asarray(w), jnp.asarray(0.2))
    expected = jax.grad(dense, (0, 1, 2))(*args)
    for ours in (tiled, one_tile):
        for a, b in zip(jax.grad(ours, (0, 1, 2))(*args), expected, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-10)


def test_vmap_over_bandwidths_equals_loop(x64):
    pts, w, rng = _data(90)
    x = jnp.asarray(rng.uniform(-4.0, 6.0, 20))
    hs = jnp.asarray([0.05, 0.3, 1.5])
    batched = jax.vmap(lambda h: Empirical.from_points(jnp.asarray(pts)[:, None], jnp.asarray(w), chunk_size=16,
                                                       query_chunk=8).score(x[:, None], h))(hs)
    for i, h in enumerate(np.asarray(hs)):
        np.testing.assert_allclose(batched[i, :, 0], _dense(pts, w, np.asarray(x), h)[1], rtol=1e-10)
